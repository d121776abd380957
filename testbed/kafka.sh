#!/usr/bin/env bash
# testbed/kafka.sh {install|start|stop|status}
# testbed/kafka.sh {start|stop|kill|status} --cluster [NODE]
#
# Apache Kafka (KRaft, one node acting as broker and controller) from Maven
# Central jars, run on the machine's Java 17. Apache ships no Debian package;
# `mvn dependency:copy-dependencies` over a generated pom fetches the broker,
# the tools (storage formatting, topic listing) and a log4j2 binding into
# $EARSHOT_CACHE/kafka/<version>/libs.
#
# Broker 127.0.0.1:19092, SASL_SSL only: TLS with a certificate from the
# test bed's own CA (generated once with openssl into <state>/kafka-tls,
# PEM keystore), SCRAM-SHA-512 logins, StandardAuthorizer with
# allow.everyone.if.no.acl.found=false and super.users=User:admin. There is
# no plaintext client listener. The controller listens on 127.0.0.1:19093
# (SASL_PLAINTEXT, PLAIN login of the admin, loopback only). Inter-broker
# traffic uses the SASL_SSL listener as admin. SCRAM users (admin and one
# per stage principal, earshot-<stage>, passwords generated once into
# <state>/kafka-tls/users) are added when the data folder
# <state>/kafka-data is formatted; a data folder formatted for another
# listener setup or user list (its .earshot-stamp differs, e.g. an older
# plaintext test bed's) is formatted again. Ready when a metadata request
# as admin succeeds; then writes kafka.env (mode 600):
#   KAFKA_BROKERS=127.0.0.1:19092
#   KAFKA_SECURITY=SASL_SSL  KAFKA_SASL_MECHANISM=SCRAM-SHA-512
#   KAFKA_CA_FILE=<state>/kafka-tls/ca.pem
#   KAFKA_ADMIN_USER=admin  KAFKA_ADMIN_PASSWORD=...
#   KAFKA_USER_<STAGE>=earshot-<stage>  KAFKA_PASSWORD_<STAGE>=...
# The stage principals have no ACLs until a test or `earshot kafka acls
# -apply` adds them.
#
# Overrides: KAFKA_VERSION, KAFKA_HEAP_OPTS, JAVA (a java binary),
# KAFKA_PORT and KAFKA_CONTROLLER_PORT (default 19092 and 19093: a second
# test bed under another EARSHOT_TESTBED_DIR runs its own broker beside).
#
# --cluster: a separate three-node cluster for the broker fault tests and
# benchmarks (`make cluster-test`, `make bench`); the single broker above is
# left alone. Each node is a combined KRaft broker and controller (static
# quorum of the three), secured as the single broker is: node N's clients
# and the other nodes' replica fetchers reach it on 127.0.0.1:1911N
# (SASL_SSL, the same CA and broker certificate, SCRAM-SHA-512; inter-broker
# traffic logs in as admin), and the controllers talk to each other on
# 127.0.0.1:1912N (SASL_PLAINTEXT, PLAIN login of the admin, loopback
# only, as the single broker's controller). StandardAuthorizer,
# allow.everyone.if.no.acl.found=false, super.users=User:admin; the same
# SCRAM users as the single broker (one users file), added when a node's
# data folder <state>/kafka-cluster/N/data is formatted. A cluster
# formatted for another listener setup or user list (its .earshot-stamp
# differs, e.g. an older plaintext cluster's) is formatted again when it
# is stopped. Logs go to <state>/kafka-cluster/N.
# default.replication.factor=3 and min.insync.replicas=2, so one node may
# be down without stopping acks=all producers. Ready when all three
# brokers answer an admin's metadata request; then writes
# kafka-cluster.env (mode 600) with kafka.env's keys, so the helpers that
# read the single broker's endpoint read the cluster's the same way:
#   KAFKA_CLUSTER_BROKERS=127.0.0.1:19111,127.0.0.1:19112,127.0.0.1:19113
#   KAFKA_CLUSTER_NODE_<N>=127.0.0.1:1911N       (N = Kafka's node.id)
#   KAFKA_BROKERS=<the three>  KAFKA_SECURITY=SASL_SSL  KAFKA_CA_FILE=...
#   KAFKA_ADMIN_USER/PASSWORD, KAFKA_USER_<STAGE>/KAFKA_PASSWORD_<STAGE>
# The stage principals have no ACLs until a test or `earshot kafka acls
# -apply` adds them.
# With NODE, start/stop/kill act on that node only, for fault tests: kill
# is SIGKILL (no controlled shutdown), start brings the node back and waits
# until the cluster lists it again. The env file stays while a node is
# down; `stop --cluster` (all nodes) removes it.
# Overrides: KAFKA_CLUSTER_HEAP_OPTS (default -Xms128m -Xmx320m per node).
# shellcheck disable=SC2119 # tb_* helpers default to this component
set -euo pipefail
TB_COMPONENT=kafka
# shellcheck source=testbed/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KAFKA_VERSION=${KAFKA_VERSION:-4.4.0}
# log4j2 binding for the broker's slf4j logging (Kafka 4 logs through log4j2).
LOG4J_VERSION=2.25.3
SLF4J_VERSION=2.0.17
BROKER_ADDR=127.0.0.1:${KAFKA_PORT:-19092}
CONTROLLER_ADDR=127.0.0.1:${KAFKA_CONTROLLER_PORT:-19093}
KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}

KAFKA_HOME=$TB_CACHE/kafka/$KAFKA_VERSION
KAFKA_LIBS=$KAFKA_HOME/libs
CONF_DIR=$TB_STATE/kafka
DATA_DIR=$TB_STATE/kafka-data
TLS_DIR=$TB_STATE/kafka-tls
# The stage principals (event.Access): one SCRAM user each.
STAGES=(ingest transcribe policy serve compliance rebroadcast)
# Bumped when the listener setup changes: a data folder formatted under
# another stamp is formatted again.
STAMP_VERSION=sasl-ssl-scram-1

java_bin() {
	if [[ -n "${JAVA:-}" ]]; then
		echo "$JAVA"
	elif [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
		echo "$JAVA_HOME/bin/java"
	else
		command -v java || true
	fi
}

java_major() {
	local v
	v=$("$1" -version 2>&1 | awk -F'"' '/version/{print $2; exit}')
	v=${v#1.}
	v=${v%%[.+-]*}
	[[ "$v" =~ ^[0-9]+$ ]] && echo "$v" || echo 0
}

ensure_java() {
	local j
	j=$(java_bin)
	if [[ -z "$j" ]] || (($(java_major "$j") < 17)); then
		apt_install openjdk-17-jre-headless
		j=/usr/lib/jvm/java-17-openjdk-amd64/bin/java
	fi
	JAVA=$j
}

write_pom() {
	cat >"$1" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by testbed/kafka.sh: the run-time class path of a KRaft broker. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>earshot.testbed</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>$KAFKA_VERSION</version>
  <packaging>pom</packaging>
  <dependencies>
    <!-- kafka.Kafka (the broker) and kafka.tools.StorageTool -->
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <!-- org.apache.kafka.tools.TopicCommand, for the readiness check -->
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$KAFKA_VERSION</version></dependency>
    <!-- slf4j 2 API plus the log4j2 binding; without them the broker logs nothing -->
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>$SLF4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId><version>$LOG4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>$LOG4J_VERSION</version></dependency>
  </dependencies>
</project>
EOF
}

installed() {
	[[ -f "$KAFKA_HOME/.installed" && -f "$KAFKA_LIBS/kafka_2.13-$KAFKA_VERSION.jar" ]]
}

cmd_install() {
	ensure_java
	installed && return 0
	local t0 log tmp
	t0=$(date +%s)
	tb_have_cmd mvn || apt_install maven
	log=$TB_LOGS/kafka-install.log
	tb_log "installing Apache Kafka $KAFKA_VERSION from Maven Central (log: $log)"
	mkdir -p "$KAFKA_HOME"
	write_pom "$KAFKA_HOME/pom.xml"
	tmp=$(mktemp -d "$KAFKA_HOME/.libs.XXXXXX")
	# A local repository inside the cache keeps the download with the other
	# artefacts and away from the user's ~/.m2.
	if ! mvn -B -q --strict-checksums -f "$KAFKA_HOME/pom.xml" \
		-Dmaven.repo.local="$TB_CACHE/m2" \
		dependency:copy-dependencies -DincludeScope=runtime \
		-DoutputDirectory="$tmp" >>"$log" 2>&1; then
		rm -rf "$tmp"
		tb_log_tail "$log"
		tb_die "mvn could not fetch Kafka $KAFKA_VERSION; see $log"
	fi
	rm -rf "$KAFKA_LIBS"
	mv "$tmp" "$KAFKA_LIBS"
	date -u +%FT%TZ >"$KAFKA_HOME/.installed"
	tb_log "installed Kafka $KAFKA_VERSION ($(find "$KAFKA_LIBS" -name "*.jar" | wc -l) jars, $(du -sh "$KAFKA_LIBS" | cut -f1)) in $(tb_elapsed "$t0")s"
}

# ensure_tls: a CA and a broker certificate for 127.0.0.1 (PEM), made once.
ensure_tls() {
	[[ -s "$TLS_DIR/broker-keystore.pem" && -s "$TLS_DIR/ca.pem" ]] && return 0
	tb_have_cmd openssl || apt_install openssl
	local log tmp
	log=$(tb_log_file)
	tmp=$(mktemp -d "$TB_STATE/.kafka-tls.XXXXXX")
	chmod 700 "$tmp"
	if ! {
		openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=earshot test bed Kafka CA" \
			-keyout "$tmp/ca.key" -out "$tmp/ca.pem" &&
			openssl req -newkey rsa:2048 -nodes -subj "/CN=earshot-testbed-broker" \
				-keyout "$tmp/broker.key.rsa" -out "$tmp/broker.csr" &&
			printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' >"$tmp/ext" &&
			openssl x509 -req -in "$tmp/broker.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -CAcreateserial \
				-days 3650 -extfile "$tmp/ext" -out "$tmp/broker.pem" &&
			openssl pkcs8 -topk8 -nocrypt -in "$tmp/broker.key.rsa" -out "$tmp/broker.key"
	} >>"$log" 2>&1; then
		rm -rf "$tmp"
		tb_die "openssl could not make the Kafka certificates; see $log"
	fi
	# Kafka's PEM keystore: the (unencrypted PKCS#8) key, then the chain.
	cat "$tmp/broker.key" "$tmp/broker.pem" "$tmp/ca.pem" >"$tmp/broker-keystore.pem"
	rm -f "$tmp/broker.key.rsa" "$tmp/broker.csr" "$tmp/ext"
	rm -rf "$TLS_DIR"
	mv "$tmp" "$TLS_DIR"
}

# ensure_users: one SCRAM password per user, generated once
# ("name password" lines in $TLS_DIR/users).
ensure_users() {
	local f=$TLS_DIR/users u
	touch "$f"
	chmod 600 "$f"
	for u in admin "${STAGES[@]/#/earshot-}"; do
		grep -q "^$u " "$f" || echo "$u $(openssl rand -hex 16)" >>"$f"
	done
}

user_password() { awk -v u="$1" '$1 == u {print $2}' "$TLS_DIR/users"; }

# stamp: what the data folder was formatted for (listeners and users).
stamp() { echo "$STAMP_VERSION $(sha256sum <"$TLS_DIR/users" | cut -c1-16)"; }

# security_properties: the listener security, SCRAM users, TLS and
# authorizer lines every node shares (the single broker and each cluster
# node): clients and replica fetchers on SASL_SSL (SCRAM, the test bed's
# CA), the controllers on a loopback SASL_PLAINTEXT listener with the
# admin's PLAIN login, no ACL meaning no access.
security_properties() {
	local admin_pw
	admin_pw=$(user_password admin)
	cat <<EOF
controller.listener.names=CONTROLLER
inter.broker.listener.name=SASL_SSL
listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:SASL_PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$admin_pw";
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="$admin_pw" user_admin="$admin_pw";
ssl.keystore.type=PEM
ssl.keystore.location=$TLS_DIR/broker-keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=$TLS_DIR/ca.pem
ssl.client.auth=none
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin
EOF
}

write_config() {
	mkdir -p "$CONF_DIR"
	local admin_pw
	admin_pw=$(user_password admin)
	(
		umask 077
		cat >"$CONF_DIR/server.properties" <<EOF
# Generated by testbed/kafka.sh: one KRaft node, loopback only.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$CONTROLLER_ADDR
# Clients reach the broker over SASL_SSL only; the controller listener
# (loopback) takes the admin's PLAIN login, which needs no metadata.
listeners=SASL_SSL://$BROKER_ADDR,CONTROLLER://$CONTROLLER_ADDR
advertised.listeners=SASL_SSL://$BROKER_ADDR
$(security_properties)
log.dirs=$DATA_DIR
# Off: a consumer group on a missing topic would create it with one
# partition, and EnsureTopics would then leave it so. Stages create theirs.
auto.create.topics.enable=false
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=5
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Tests join groups often; do not hold the first rebalance back.
group.initial.rebalance.delay.ms=0
# A test bed: small segments, short retention.
log.segment.bytes=16777216
log.retention.hours=24
log.retention.check.interval.ms=60000
EOF
		cat >"$CONF_DIR/admin-client.properties" <<EOF
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$admin_pw";
ssl.truststore.type=PEM
ssl.truststore.location=$TLS_DIR/ca.pem
EOF
	)
	cat >"$CONF_DIR/log4j2.properties" <<'EOF'
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = OUT
# The config dumps at start-up are long and say nothing new.
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = warn
logger.state.name = state.change.logger
logger.state.level = warn
EOF
	cat >"$CONF_DIR/tools-log4j2.properties" <<'EOF'
status = error
appender.err.type = Console
appender.err.name = ERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.err.ref = ERR
EOF
}

# run_tool CLASS ARGS...: a Kafka command-line tool on the cached class path.
run_tool() {
	local class=$1
	shift
	"$JAVA" -Xmx128m -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
		-Dlog4j2.configurationFile="$CONF_DIR/tools-log4j2.properties" \
		-cp "$KAFKA_LIBS/*" "$class" "$@"
}

format_storage() {
	local log cluster_id u scram=()
	if [[ -f "$DATA_DIR/meta.properties" ]]; then
		[[ "$(cat "$DATA_DIR/.earshot-stamp" 2>/dev/null)" == "$(stamp)" ]] && return 0
		tb_log "$DATA_DIR was formatted for another listener setup or user list; formatting it again (its topics are dropped)"
		rm -rf "$DATA_DIR"
	fi
	log=$(tb_log_file)
	for u in admin "${STAGES[@]/#/earshot-}"; do
		scram+=(--add-scram "SCRAM-SHA-512=[name=$u,password=$(user_password "$u")]")
	done
	cluster_id=$(run_tool kafka.tools.StorageTool random-uuid 2>>"$log") ||
		tb_die "StorageTool random-uuid failed; see $log"
	mkdir -p "$DATA_DIR"
	if ! run_tool kafka.tools.StorageTool format --standalone "${scram[@]}" \
		--cluster-id "$cluster_id" --config "$CONF_DIR/server.properties" >>"$log" 2>&1; then
		tb_log_tail "$log"
		tb_die "formatting $DATA_DIR failed; see $log"
	fi
	stamp >"$DATA_DIR/.earshot-stamp"
}

# kafka_env_keys BROKERS: the endpoint keys of kafka.env (and of
# kafka-cluster.env), one KEY=VALUE a line.
kafka_env_keys() {
	local st
	printf '%s\n' "KAFKA_BROKERS=$1" "KAFKA_SECURITY=SASL_SSL" "KAFKA_SASL_MECHANISM=SCRAM-SHA-512" \
		"KAFKA_CA_FILE=$TLS_DIR/ca.pem" "KAFKA_ADMIN_USER=admin" "KAFKA_ADMIN_PASSWORD=$(user_password admin)"
	for st in "${STAGES[@]}"; do
		printf '%s\n' "KAFKA_USER_${st^^}=earshot-$st" "KAFKA_PASSWORD_${st^^}=$(user_password "earshot-$st")"
	done
}

# kafka_env: kafka.env's lines.
kafka_env() {
	local kv
	mapfile -t kv < <(kafka_env_keys "$BROKER_ADDR")
	write_env kafka "${kv[@]}"
}

metadata_ok() {
	timeout 60 "$JAVA" -Xmx128m -XX:TieredStopAtLevel=1 \
		-Dlog4j2.configurationFile="$CONF_DIR/tools-log4j2.properties" \
		-cp "$KAFKA_LIBS/*" org.apache.kafka.tools.TopicCommand \
		--bootstrap-server "$BROKER_ADDR" --command-config "$CONF_DIR/admin-client.properties" --list
}

wait_ready() {
	wait_for "Kafka to listen on $BROKER_ADDR" 90 tb_port_open "${BROKER_ADDR%:*}" "${BROKER_ADDR#*:}"
	wait_for "a metadata request to $BROKER_ADDR" 90 metadata_ok
}

cmd_start() {
	cmd_install
	ensure_tls
	ensure_users
	if tb_running; then
		[[ "$(cat "$DATA_DIR/.earshot-stamp" 2>/dev/null)" == "$(stamp)" ]] ||
			tb_die "the running Kafka (pid $(tb_pid)) was started with another listener setup; run testbed/kafka.sh stop, then start"
		write_config
		wait_ready
		kafka_env
		return 0
	fi
	remove_env kafka
	tb_require_free_port "${BROKER_ADDR%:*}" "${BROKER_ADDR#*:}" "a process that is not this test bed's Kafka"
	tb_require_free_port "${CONTROLLER_ADDR%:*}" "${CONTROLLER_ADDR#*:}" "a process that is not this test bed's Kafka"
	write_config
	format_storage
	local t0
	t0=$(date +%s)
	# shellcheck disable=SC2086 # KAFKA_HEAP_OPTS holds several flags
	tb_start_daemon "$JAVA" $KAFKA_HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
		-Djava.awt.headless=true \
		-Dlog4j2.configurationFile="$CONF_DIR/log4j2.properties" \
		-Dkafka.logs.dir="$TB_LOGS" \
		-cp "$KAFKA_LIBS/*" kafka.Kafka "$CONF_DIR/server.properties"
	wait_ready
	kafka_env
	tb_log "Kafka $KAFKA_VERSION ready on $BROKER_ADDR (SASL_SSL, ACLs; pid $(tb_pid)) in $(tb_elapsed "$t0")s"
}

cmd_stop() {
	remove_env kafka
	if tb_running; then
		# A controlled shutdown of a single node takes a few seconds.
		tb_stop_daemon 45
		tb_log "stopped"
	else
		rm -f "$(tb_pidfile)"
	fi
}

cmd_status() {
	if tb_running; then
		echo "kafka: running (pid $(tb_pid)), Kafka $KAFKA_VERSION, broker $BROKER_ADDR (SASL_SSL), controller $CONTROLLER_ADDR, data $DATA_DIR"
		return 0
	fi
	if installed; then
		echo "kafka: stopped (Kafka $KAFKA_VERSION installed in $KAFKA_HOME)"
	else
		echo "kafka: not installed"
	fi
	return 3
}

# --- cluster mode -----------------------------------------------------------

CLUSTER_NODES=(1 2 3)
CLUSTER_DIR=$TB_STATE/kafka-cluster
KAFKA_CLUSTER_HEAP_OPTS=${KAFKA_CLUSTER_HEAP_OPTS:--Xms128m -Xmx320m}

cluster_broker_addr() { echo "127.0.0.1:1911$1"; }
cluster_controller_addr() { echo "127.0.0.1:1912$1"; }
cluster_brokers() {
	local n out=()
	for n in "${CLUSTER_NODES[@]}"; do out+=("$(cluster_broker_addr "$n")"); done
	(IFS=,; echo "${out[*]}")
}

# cluster_node_config N: node N's server.properties.
cluster_node_config() {
	local n=$1 voters=() m
	for m in "${CLUSTER_NODES[@]}"; do voters+=("$m@$(cluster_controller_addr "$m")"); done
	mkdir -p "$CLUSTER_DIR/$n/conf"
	chmod 700 "$CLUSTER_DIR/$n/conf"
	(umask 077; cat >"$CLUSTER_DIR/$n/conf/server.properties") <<EOF
# Generated by testbed/kafka.sh start --cluster: node $n of three, loopback only.
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$(IFS=,; echo "${voters[*]}")
# As the single broker: clients and replica fetchers on SASL_SSL (SCRAM,
# the test bed's CA), the controllers' quorum traffic on a loopback
# SASL_PLAINTEXT listener with the admin's PLAIN login.
listeners=SASL_SSL://$(cluster_broker_addr "$n"),CONTROLLER://$(cluster_controller_addr "$n")
advertised.listeners=SASL_SSL://$(cluster_broker_addr "$n")
$(security_properties)
log.dirs=$CLUSTER_DIR/$n/data
auto.create.topics.enable=false
num.partitions=3
# What the fault tests are about: three copies, and an acks=all write
# needs two of them, so one node down stops nothing and loses nothing.
default.replication.factor=3
min.insync.replicas=2
offsets.topic.replication.factor=3
offsets.topic.num.partitions=5
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
unclean.leader.election.enable=false
group.initial.rebalance.delay.ms=0
# Three JVMs share two cores with the rest of the test bed.
num.network.threads=2
num.io.threads=2
num.replica.fetchers=1
background.threads=2
log.segment.bytes=16777216
log.retention.hours=24
log.retention.check.interval.ms=60000
EOF
}

# cluster_stamp: what the cluster's data folders were formatted for.
cluster_stamp() { echo "cluster-$(stamp)"; }

# cluster_any_running: does any node of the cluster run?
cluster_any_running() {
	local n
	for n in "${CLUSTER_NODES[@]}"; do
		[[ -n "$(tb_pid "kafka-cluster-$n")" ]] && return 0
	done
	return 1
}

# cluster_format: one cluster ID for the three nodes, each data folder
# formatted once with the SCRAM users (kept across stop/start, like the
# single broker's). A cluster formatted for another listener setup or user
# list is formatted again, whole: its nodes must agree on the users.
cluster_format() {
	local n log id_file cluster_id u scram=()
	log=$TB_LOGS/kafka-cluster.log
	id_file=$CLUSTER_DIR/cluster-id
	if compgen -G "$CLUSTER_DIR/*/data/meta.properties" >/dev/null &&
		[[ "$(cat "$CLUSTER_DIR/.earshot-stamp" 2>/dev/null)" != "$(cluster_stamp)" ]]; then
		cluster_any_running &&
			tb_die "the running Kafka cluster was started with another listener setup or user list; run testbed/kafka.sh stop --cluster, then start --cluster"
		tb_log "$CLUSTER_DIR was formatted for another listener setup or user list; formatting the cluster again (its topics are dropped)"
		rm -rf "$id_file" "${CLUSTER_NODES[@]/#/$CLUSTER_DIR/}"
		for n in "${CLUSTER_NODES[@]}"; do cluster_node_config "$n"; done
	fi
	if [[ ! -s "$id_file" ]]; then
		cluster_id=$(run_tool kafka.tools.StorageTool random-uuid 2>>"$log") ||
			tb_die "StorageTool random-uuid failed; see $log"
		echo "$cluster_id" >"$id_file"
	fi
	cluster_id=$(<"$id_file")
	for u in admin "${STAGES[@]/#/earshot-}"; do
		scram+=(--add-scram "SCRAM-SHA-512=[name=$u,password=$(user_password "$u")]")
	done
	for n in "${CLUSTER_NODES[@]}"; do
		[[ -f "$CLUSTER_DIR/$n/data/meta.properties" ]] && continue
		mkdir -p "$CLUSTER_DIR/$n/data"
		if ! run_tool kafka.tools.StorageTool format "${scram[@]}" --cluster-id "$cluster_id" \
			--config "$CLUSTER_DIR/$n/conf/server.properties" >>"$log" 2>&1; then
			tb_log_tail "$log"
			tb_die "formatting $CLUSTER_DIR/$n/data failed; see $log"
		fi
	done
	cluster_stamp >"$CLUSTER_DIR/.earshot-stamp"
}

# cluster_live_nodes: the node IDs the cluster's metadata lists as brokers,
# one a line (the brokers that registered with the controller and answer).
cluster_live_nodes() {
	timeout 60 "$JAVA" -Xmx128m -XX:TieredStopAtLevel=1 \
		-Dlog4j2.configurationFile="$CONF_DIR/tools-log4j2.properties" \
		-cp "$KAFKA_LIBS/*" org.apache.kafka.tools.BrokerApiVersionsCommand \
		--bootstrap-server "$(cluster_brokers)" --command-config "$CONF_DIR/admin-client.properties" 2>/dev/null |
		sed -n 's/^.*(id: \([0-9]*\) rack.*$/\1/p' | sort -u
}

cluster_has_nodes() {
	local live n
	live=$(cluster_live_nodes) || return 1
	for n in "$@"; do
		grep -qx "$n" <<<"$live" || return 1
	done
}

# cluster_node_start N: start node N unless it runs (no wait).
cluster_node_start() {
	local n=$1 TB_COMPONENT=kafka-cluster-$1 addr
	tb_running && return 0
	for addr in "$(cluster_broker_addr "$n")" "$(cluster_controller_addr "$n")"; do
		tb_require_free_port "${addr%:*}" "${addr#*:}" "a process that is not this test bed's Kafka cluster node $n"
	done
	# shellcheck disable=SC2086 # KAFKA_CLUSTER_HEAP_OPTS holds several flags
	tb_start_daemon "$JAVA" $KAFKA_CLUSTER_HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
		-XX:CICompilerCount=2 -Djava.awt.headless=true \
		-Dlog4j2.configurationFile="$CONF_DIR/log4j2.properties" \
		-Dkafka.logs.dir="$CLUSTER_DIR/$n" \
		-cp "$KAFKA_LIBS/*" kafka.Kafka "$CLUSTER_DIR/$n/conf/server.properties"
}

# cluster_wait N...: wait until nodes N... listen and the cluster lists them.
cluster_wait() {
	local n addr
	for n in "$@"; do
		addr=$(cluster_broker_addr "$n")
		TB_COMPONENT=kafka-cluster-$n wait_for "node $n to listen on $addr" 120 tb_port_open "${addr%:*}" "${addr#*:}"
	done
	TB_COMPONENT=kafka-cluster-$1 wait_for "the cluster to list node(s) $*" 120 cluster_has_nodes "$@"
}

cluster_write_env() {
	local n kv
	mapfile -t kv < <(kafka_env_keys "$(cluster_brokers)")
	kv+=("KAFKA_CLUSTER_BROKERS=$(cluster_brokers)")
	for n in "${CLUSTER_NODES[@]}"; do kv+=("KAFKA_CLUSTER_NODE_$n=$(cluster_broker_addr "$n")"); done
	write_env kafka-cluster "${kv[@]}"
}

# cluster_nodes_arg [N]: the nodes a command acts on (all, or the one named).
cluster_nodes_arg() {
	if [[ -z "${1:-}" ]]; then
		echo "${CLUSTER_NODES[*]}"
	elif [[ " ${CLUSTER_NODES[*]} " == *" $1 "* ]]; then
		echo "$1"
	else
		tb_die "no cluster node $1 (nodes: ${CLUSTER_NODES[*]})"
	fi
}

cluster_start() {
	local nodes n t0
	read -ra nodes <<<"$(cluster_nodes_arg "${1:-}")"
	cmd_install
	ensure_tls
	ensure_users
	write_config # the tools' log4j2 configuration
	for n in "${CLUSTER_NODES[@]}"; do cluster_node_config "$n"; done
	cluster_format
	t0=$(date +%s)
	for n in "${nodes[@]}"; do cluster_node_start "$n"; done
	cluster_wait "${nodes[@]}"
	cluster_write_env
	tb_log "Kafka cluster node(s) ${nodes[*]} ready ($(cluster_brokers)) in $(tb_elapsed "$t0")s"
}

cluster_stop() {
	local nodes n
	read -ra nodes <<<"$(cluster_nodes_arg "${1:-}")"
	[[ -z "${1:-}" ]] && remove_env kafka-cluster
	# In parallel: a node's controlled shutdown waits for the others. The
	# last node of a whole-cluster stop has no controller quorum left to
	# finish it and waits out the timeout, then gets KILL (its logs are
	# recovered at the next start); 20 s keeps that wait short.
	for n in "${nodes[@]}"; do
		(TB_COMPONENT=kafka-cluster-$n; tb_stop_daemon 20) &
	done
	wait
	tb_log "stopped cluster node(s) ${nodes[*]}"
}

# cluster_kill N: SIGKILL node N's process group, as a crash would end it.
cluster_kill() {
	[[ -n "${1:-}" ]] || tb_die "kill --cluster needs a node (${CLUSTER_NODES[*]})"
	local n TB_COMPONENT pid i
	n=$(cluster_nodes_arg "$1")
	TB_COMPONENT=kafka-cluster-$n
	pid=$(tb_pid)
	if [[ -z "$pid" ]]; then
		tb_log "node $n is not running"
		return 0
	fi
	kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		tb_running || break
		sleep 0.1
	done
	tb_running && tb_die "node $n (pid $pid) survived SIGKILL"
	rm -f "$(tb_pidfile)"
	tb_log "killed node $n (pid $pid)"
}

cluster_status() {
	local n pid rc=0 rss
	for n in "${CLUSTER_NODES[@]}"; do
		pid=$(tb_pid "kafka-cluster-$n")
		if [[ -n "$pid" ]]; then
			rss=$(awk '/^VmRSS:/{printf "%d MiB", $2/1024}' "/proc/$pid/status" 2>/dev/null || true)
			echo "kafka-cluster node $n: running (pid $pid, RSS $rss), broker $(cluster_broker_addr "$n"), data $CLUSTER_DIR/$n/data"
		else
			echo "kafka-cluster node $n: stopped"
			rc=3
		fi
	done
	return "$rc"
}

# Cluster mode takes --cluster anywhere among the arguments; the verbs
# without it are the single broker's, dispatched by tb_main as before.
cluster=0
args=()
for a in "$@"; do
	if [[ "$a" == --cluster ]]; then cluster=1; else args+=("$a"); fi
done
if ((cluster)); then
	tb_init
	verb=${args[0]:-}
	case "$verb" in
	start | stop | kill | status) "cluster_$verb" "${args[@]:1}" ;;
	*)
		echo "usage: $0 {start|stop|kill|status} --cluster [NODE]" >&2
		exit 2
		;;
	esac
	exit
fi
tb_main "$@"
