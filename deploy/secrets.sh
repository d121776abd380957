#!/bin/sh
# Creates the secret files docker-compose.yml mounts, each only when it is
# missing (never overwrite: a new KEK or pseudonym secret makes everything
# stored before unreadable or unlinkable; a new Kafka password locks its
# user out of a broker formatted with the old one). Mode 0600, owned by the
# user of the image that reads them when run as root (else run: sudo chown
# them as listed below):
#   10001 (the Earshot image): Earshot's keys and the stages' Kafka passwords;
#   1000 (the apache/kafka image): the broker's keystore and the Kafka
#       admin's password (kafka-acls runs as that user to read it);
#   kafka-ca.pem is the public CA certificate every container reads: 0644.
# Kafka's TLS: a CA made here (kafka-ca.key stays in this folder and is
# mounted nowhere; keep it offline in production, or use your own CA) and a
# broker certificate for the name "kafka" (the service name the stages
# connect to), valid 825 days: delete kafka-broker.pem and run this again
# to renew it.
# Usage: deploy/secrets.sh [folder]   (default: deploy/secrets beside this script)
set -eu
dir=${1:-$(dirname "$0")/secrets}
mkdir -p "$dir"
umask 077
made="" # owner:file, owner earshot or kafka
# The Kafka users: the admin and one per stage service of docker-compose.yml
# (event.Access names them earshot-<stage>; deploy/compose_test.go checks
# that the compose file mounts exactly what this makes).
stage_users="earshot-ingest earshot-transcribe earshot-policy earshot-rebroadcast earshot-serve earshot-compliance"

new() { # owner name command...
	o=$1
	f="$dir/$2"
	shift 2
	[ -e "$f" ] && return 0
	"$@" >"$f.tmp"
	mv "$f.tmp" "$f"
	made="$made $o:$f"
}

# kafka_ca: the CA's key and certificate, together.
kafka_ca() {
	[ -e "$dir/kafka-ca.pem" ] && return 0
	if [ -e "$dir/kafka-broker.pem" ]; then
		echo "secrets.sh: $dir/kafka-ca.pem is missing but kafka-broker.pem is not; a new CA would not have signed it: restore the CA, or delete kafka-broker.pem too" >&2
		exit 1
	fi
	openssl req -x509 -newkey rsa:3072 -nodes -days 3650 -subj "/CN=Earshot Kafka CA" \
		-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
		-keyout "$dir/kafka-ca.key.tmp" -out "$dir/kafka-ca.pem.tmp" 2>/dev/null
	chmod 644 "$dir/kafka-ca.pem.tmp"
	mv "$dir/kafka-ca.key.tmp" "$dir/kafka-ca.key"
	mv "$dir/kafka-ca.pem.tmp" "$dir/kafka-ca.pem"
	echo "created $dir/kafka-ca.key (mounted nowhere)"
	echo "created $dir/kafka-ca.pem"
}

# kafka_broker: Kafka's PEM keystore: the unencrypted PKCS#8 key, then the
# certificate chain (broker, CA), as ssl.keystore.type=PEM reads it.
kafka_broker() {
	f="$dir/kafka-broker.pem"
	[ -e "$f" ] && return 0
	if [ ! -e "$dir/kafka-ca.key" ]; then
		echo "secrets.sh: $dir/kafka-ca.key is missing: cannot sign a new broker certificate with kafka-ca.pem's CA" >&2
		exit 1
	fi
	t=$(mktemp -d "$dir/.kafka-broker.XXXXXX")
	printf 'subjectAltName=DNS:kafka\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n' >"$t/ext"
	openssl req -newkey rsa:3072 -nodes -subj "/CN=kafka" -keyout "$t/key" -out "$t/csr" 2>/dev/null
	openssl x509 -req -in "$t/csr" -CA "$dir/kafka-ca.pem" -CAkey "$dir/kafka-ca.key" \
		-set_serial "0x$(openssl rand -hex 16)" -days 825 -extfile "$t/ext" -out "$t/cert" 2>/dev/null
	openssl pkcs8 -topk8 -nocrypt -in "$t/key" -out "$t/key8"
	cat "$t/key8" "$t/cert" "$dir/kafka-ca.pem" >"$f.tmp"
	rm -rf "$t"
	mv "$f.tmp" "$f"
	made="$made kafka:$f"
}

new earshot s3-secret openssl rand -hex 24
new earshot pseudonym.key openssl rand -hex 32
new earshot kek.key openssl rand -hex 32
new earshot links.key openssl rand -hex 32
new earshot operator-token openssl rand -hex 32
new earshot export.ed25519 openssl genpkey -algorithm ed25519
for u in $stage_users; do
	new earshot "kafka-$u.password" openssl rand -hex 32
done
new kafka kafka-admin.password openssl rand -hex 32
kafka_ca
kafka_broker
for e in $made; do
	f=${e#*:}
	if [ "$(id -u)" = 0 ]; then
		case ${e%%:*} in
		earshot) chown 10001:10001 "$f" ;;
		kafka) chown 1000:1000 "$f" ;;
		esac
	fi
	echo "created $f"
done
