#!/bin/sh
# Creates the secret files docker-compose.yml mounts, each only when it is
# missing (never overwrite: a new KEK or pseudonym secret makes everything
# stored before unreadable or unlinkable). Mode 0600; owned by the image's
# user 10001 when run as root (else run: sudo chown 10001:10001 the files).
# Usage: deploy/secrets.sh [folder]   (default: deploy/secrets beside this script)
set -eu
dir=${1:-$(dirname "$0")/secrets}
mkdir -p "$dir"
umask 077
made=""
new() { # name command...
	f="$dir/$1"
	shift
	[ -e "$f" ] && return 0
	"$@" >"$f.tmp"
	mv "$f.tmp" "$f"
	made="$made $f"
}
new s3-secret openssl rand -hex 24
new pseudonym.key openssl rand -hex 32
new kek.key openssl rand -hex 32
new links.key openssl rand -hex 32
new operator-token openssl rand -hex 32
new export.ed25519 openssl genpkey -algorithm ed25519
if [ "$(id -u)" = 0 ]; then
	for f in $made; do chown 10001:10001 "$f"; done
fi
for f in $made; do echo "created $f"; done
