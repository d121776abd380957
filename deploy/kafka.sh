#!/usr/bin/env bash
# Runs inside the apache/kafka containers of docker-compose.yml (mounted as a
# config; the image's own scripts do the rest). The broker's settings are
# the KAFKA_* variables the services share; this script adds only what
# needs a secret file or a step the image does not take.
#
#   kafka.sh format  (service kafka-init, as root) formats the data volume
#       with a SCRAM-SHA-512 user for every /run/secrets/kafka-<user>.password
#       mounted. The image's start formats a new volume too, but without
#       users, and a broker whose users do not exist refuses every login, so
#       this runs first. A formatted volume is left as it is
#       (--ignore-formatted): users added later go in with kafka-configs (see
#       docs/security.md). Root only to read the stages' password files
#       (they belong to the stages' user); the data goes back to the
#       image's user.
#   kafka.sh run     (service kafka) the image's start (/etc/kafka/docker/run)
#       with the admin's logins, read from /run/secrets/kafka-admin.password:
#       the inter-broker SCRAM login on the client listener and the PLAIN
#       login of the controller listener. The image formats only an empty
#       volume; on ours its format reports "already formatted", which its
#       launch script accepts, and the broker starts.
#   kafka.sh health  (the healthcheck) a metadata request as the admin.
#   kafka.sh properties  prints the settings `run` gives the broker, the
#       admin's password included (deploy/compose_test.go compares them
#       with the test bed's broker; EARSHOT_KAFKA_SECRETS replaces
#       /run/secrets there).
set -euo pipefail

secrets=${EARSHOT_KAFKA_SECRETS:-/run/secrets}
admin=admin
admin_props=/tmp/earshot-admin.properties

# password USER: the user's password, from its secret file.
password() {
	local pw
	pw=$(cat "$secrets/kafka-$1.password")
	[[ -n "$pw" ]] || {
		echo "kafka.sh: $secrets/kafka-$1.password is empty" >&2
		exit 1
	}
	printf '%s' "$pw"
}

# properties: server.properties from the KAFKA_* variables, by the image's
# own rule (kafka.docker.KafkaDockerWrapper): drop KAFKA_, lower case, "_"
# becomes ".", then "..." becomes "-" and ".." becomes "_"; the same
# variables it leaves out.
properties() {
	local k p
	for k in $(compgen -e); do
		case $k in
		KAFKA_VERSION | KAFKA_HEAP_OPTS | KAFKA_LOG4J_OPTS | KAFKA_OPTS | KAFKA_JMX_OPTS | \
			KAFKA_JVM_PERFORMANCE_OPTS | KAFKA_GC_LOG_OPTS | KAFKA_LOG4J_ROOT_LOGLEVEL | \
			KAFKA_LOG4J_LOGGERS | KAFKA_TOOLS_LOG4J_LOGLEVEL | KAFKA_JMX_HOSTNAME) continue ;;
		KAFKA_*) ;;
		*) continue ;;
		esac
		p=${k#KAFKA_}
		p=${p,,}
		p=${p//_/.}
		p=${p//.../-}
		p=${p//../_}
		printf '%s=%s\n' "$p" "${!k}"
	done
}

cmd_format() {
	local data=${KAFKA_LOG_DIRS:?KAFKA_LOG_DIRS is not set} owner fresh=true f u scram=() conf
	owner=$(stat -c %u:%g "$data")
	[[ -e "$data/meta.properties" ]] && fresh=false
	for f in "$secrets"/kafka-*.password; do
		[[ -e "$f" ]] || continue
		u=${f#"$secrets"/kafka-}
		u=${u%.password}
		scram+=(--add-scram "SCRAM-SHA-512=[name=$u,password=$(password "$u")]")
	done
	if ((${#scram[@]} == 0)); then
		echo "kafka.sh: no $secrets/kafka-<user>.password is mounted: a broker without users refuses every login" >&2
		exit 1
	fi
	conf=$(mktemp)
	properties >"$conf"
	/opt/kafka/bin/kafka-storage.sh format --ignore-formatted --cluster-id "${CLUSTER_ID:?CLUSTER_ID is not set}" \
		"${scram[@]}" --config "$conf"
	rm -f "$conf"
	if $fresh; then
		chown -R "$owner" "$data"
	fi
}

# admin_logins PASSWORD: exports the listener-scoped JAAS settings, named
# by the image's rule ("-" is written "___": scram-sha-512).
admin_logins() {
	export "KAFKA_LISTENER_NAME_${KAFKA_INTER_BROKER_LISTENER_NAME:?}_SCRAM___SHA___512_SASL_JAAS_CONFIG=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"$admin\" password=\"$1\";"
	export "KAFKA_LISTENER_NAME_${KAFKA_CONTROLLER_LISTENER_NAMES:?}_PLAIN_SASL_JAAS_CONFIG=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"$admin\" password=\"$1\" user_$admin=\"$1\";"
}

cmd_run() {
	local pw
	pw=$(password "$admin")
	admin_logins "$pw"
	(
		umask 077
		cat >"$admin_props" <<EOF
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$admin" password="$pw";
ssl.truststore.type=PEM
ssl.truststore.location=${KAFKA_SSL_TRUSTSTORE_LOCATION:?}
EOF
	)
	exec /etc/kafka/docker/run
}

cmd_health() {
	local adv=${KAFKA_ADVERTISED_LISTENERS:?}
	/opt/kafka/bin/kafka-broker-api-versions.sh --bootstrap-server "${adv#*://}" \
		--command-config "$admin_props" >/dev/null 2>&1
}

cmd_properties() {
	admin_logins "$(password "$admin")"
	properties
}

case ${1:-} in
format) cmd_format ;;
run) cmd_run ;;
health) cmd_health ;;
properties) cmd_properties ;;
*)
	echo "usage: kafka.sh format|run|health|properties" >&2
	exit 2
	;;
esac
