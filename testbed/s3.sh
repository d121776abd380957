#!/usr/bin/env bash
# testbed/s3.sh {install|start|stop|status}
#
# versitygw (Versity S3 Gateway), built with `go install` into
# $EARSHOT_CACHE/bin, serving the posix backend over <state>/s3-data on
# 127.0.0.1:17070 (plain HTTP, path-style). Bucket versioning is on
# (--versioning-dir <state>/s3-versions), which object lock also needs.
# Root credentials are generated once and kept in <state>/s3/credentials.
# Ready when GET /health answers; then writes s3.env:
#   S3_ENDPOINT=127.0.0.1:17070 S3_ACCESS_KEY S3_SECRET_KEY S3_REGION=us-east-1
# shellcheck disable=SC2119 # tb_* helpers default to this component
set -euo pipefail
TB_COMPONENT=s3
# shellcheck source=testbed/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VERSITYGW_VERSION=v1.8.0
S3_HOST=127.0.0.1
S3_PORT=17070
S3_REGION=us-east-1

BIN=$TB_CACHE/bin/versitygw
STAMP=$TB_CACHE/bin/.versitygw-$VERSITYGW_VERSION
DATA_DIR=$TB_STATE/s3-data
VERSIONS_DIR=$TB_STATE/s3-versions
CRED_FILE=$TB_STATE/s3/credentials

installed() { [[ -x "$BIN" && -f "$STAMP" ]]; }

cmd_install() {
	installed && return 0
	tb_have_cmd go || tb_die "go is not on PATH (expected /usr/local/go/bin/go)"
	local t0 log
	t0=$(date +%s)
	log=$TB_LOGS/s3-install.log
	tb_log "building versitygw $VERSITYGW_VERSION with go install (about 2 minutes; log: $log)"
	mkdir -p "$TB_CACHE/bin"
	# Outside any module, so the repo's go.mod plays no part; the binary's
	# version banner says "git" either way, hence the stamp file.
	if ! (cd / && GOBIN=$TB_CACHE/bin GOFLAGS='' CGO_ENABLED=${CGO_ENABLED:-1} \
		go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION") >>"$log" 2>&1; then
		tb_log_tail "$log"
		tb_die "go install versitygw@$VERSITYGW_VERSION failed; see $log"
	fi
	rm -f "$TB_CACHE"/bin/.versitygw-*
	date -u +%FT%TZ >"$STAMP"
	tb_log "installed versitygw $VERSITYGW_VERSION in $(tb_elapsed "$t0")s"
}

ensure_credentials() {
	[[ -s "$CRED_FILE" ]] && return 0
	mkdir -p "$(dirname "$CRED_FILE")"
	local tmp
	tmp=$(mktemp "$CRED_FILE.XXXXXX")
	chmod 600 "$tmp"
	{
		echo "S3_ACCESS_KEY=earshot$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
		echo "S3_SECRET_KEY=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
	} >"$tmp"
	mv -f "$tmp" "$CRED_FILE"
}

load_credentials() {
	S3_ACCESS_KEY=$(sed -n 's/^S3_ACCESS_KEY=//p' "$CRED_FILE")
	S3_SECRET_KEY=$(sed -n 's/^S3_SECRET_KEY=//p' "$CRED_FILE")
	[[ -n "$S3_ACCESS_KEY" && -n "$S3_SECRET_KEY" ]] || tb_die "$CRED_FILE is malformed; delete it and start again"
}

# The posix backend keeps object metadata in extended attributes.
xattr_ok() {
	local probe ok=0
	probe=$(mktemp "$DATA_DIR/../.xattr-probe.XXXXXX")
	python3 -c 'import os, sys; os.setxattr(sys.argv[1], "user.earshot.probe", b"1")' "$probe" 2>/dev/null || ok=1
	rm -f "$probe"
	return "$ok"
}

health_ok() {
	curl -fsS --max-time 5 -o /dev/null "http://$S3_HOST:$S3_PORT/health"
}

publish_env() {
	write_env s3 "S3_ENDPOINT=$S3_HOST:$S3_PORT" "S3_ACCESS_KEY=$S3_ACCESS_KEY" \
		"S3_SECRET_KEY=$S3_SECRET_KEY" "S3_REGION=$S3_REGION"
}

cmd_start() {
	cmd_install
	ensure_credentials
	load_credentials
	if tb_running; then
		wait_for "versitygw /health on $S3_HOST:$S3_PORT" 30 health_ok
		publish_env
		return 0
	fi
	remove_env s3
	tb_require_free_port "$S3_HOST" "$S3_PORT" "a process that is not this test bed's versitygw"
	mkdir -p "$DATA_DIR" "$VERSIONS_DIR"
	xattr_ok || tb_die "$DATA_DIR does not support user extended attributes, which versitygw's posix backend needs; set EARSHOT_TESTBED_DIR to a folder on ext4, xfs, btrfs or tmpfs"
	local t0
	t0=$(date +%s)
	# Credentials go through the environment, not argv, so ps does not show them.
	ROOT_ACCESS_KEY_ID=$S3_ACCESS_KEY ROOT_SECRET_ACCESS_KEY=$S3_SECRET_KEY \
		tb_start_daemon "$BIN" --port "$S3_HOST:$S3_PORT" --region "$S3_REGION" \
		--health /health --quiet \
		posix --versioning-dir "$VERSIONS_DIR" "$DATA_DIR"
	wait_for "versitygw /health on $S3_HOST:$S3_PORT" 60 health_ok
	publish_env
	tb_log "versitygw $VERSITYGW_VERSION ready on $S3_HOST:$S3_PORT (pid $(tb_pid)) in $(tb_elapsed "$t0")s"
}

cmd_stop() {
	remove_env s3
	if tb_running; then
		tb_stop_daemon 20
		tb_log "stopped"
	else
		rm -f "$(tb_pidfile)"
	fi
}

cmd_status() {
	if tb_running; then
		echo "s3: running (pid $(tb_pid)), versitygw $VERSITYGW_VERSION, http://$S3_HOST:$S3_PORT, data $DATA_DIR, versions $VERSIONS_DIR"
		return 0
	fi
	if installed; then
		echo "s3: stopped (versitygw $VERSITYGW_VERSION installed at $BIN)"
	else
		echo "s3: not installed"
	fi
	return 3
}

tb_main "$@"
