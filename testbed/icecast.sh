#!/usr/bin/env bash
# testbed/icecast.sh {install|start|stop|status}
#
# An Icecast server on loopback for the rebroadcast watcher's tests
# (policy/rebroadcast): Debian's icecast2 and ffmpeg (the watcher's decoder,
# and what the tests use as an Icecast source). The script runs icecast2 as
# its own daemon with a config it writes into <state>/icecast/ (the Debian
# service is left alone), listening on 127.0.0.1:18100 only. The source
# password is generated once and kept in <state>/icecast/credentials.
# Ready when the status page answers; then writes icecast.env:
#   ICECAST_URL=http://127.0.0.1:18100 ICECAST_SOURCE_USER=source
#   ICECAST_SOURCE_PASSWORD FFMPEG=<path>
# shellcheck disable=SC2119 # tb_* helpers default to this component
set -euo pipefail
TB_COMPONENT=icecast
# shellcheck source=testbed/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ICECAST_HOST=127.0.0.1
ICECAST_PORT=18100
PACKAGES=(icecast2 ffmpeg)
DIR=$TB_STATE/icecast
CONF=$DIR/icecast.xml
CRED_FILE=$DIR/credentials

installed() { tb_have_cmd icecast2 && tb_have_cmd ffmpeg; }

cmd_install() {
	installed && return 0
	local t0
	t0=$(date +%s)
	# icecast2's postinst asks for passwords through debconf: the
	# noninteractive front end (apt_install) takes the defaults, which this
	# script never uses (its own config has its own passwords).
	apt_install "${PACKAGES[@]}"
	installed || tb_die "icecast2 or ffmpeg still missing after apt-get install ${PACKAGES[*]}"
	tb_log "installed ${PACKAGES[*]} in $(tb_elapsed "$t0")s"
}

ensure_credentials() {
	[[ -s "$CRED_FILE" ]] && return 0
	mkdir -p "$DIR"
	local tmp
	tmp=$(mktemp "$CRED_FILE.XXXXXX")
	chmod 600 "$tmp"
	{
		echo "SOURCE_PASSWORD=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
		echo "ADMIN_PASSWORD=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
	} >"$tmp"
	mv -f "$tmp" "$CRED_FILE"
}

load_credentials() {
	SOURCE_PASSWORD=$(sed -n 's/^SOURCE_PASSWORD=//p' "$CRED_FILE")
	ADMIN_PASSWORD=$(sed -n 's/^ADMIN_PASSWORD=//p' "$CRED_FILE")
	[[ -n "$SOURCE_PASSWORD" && -n "$ADMIN_PASSWORD" ]] || tb_die "$CRED_FILE is malformed; delete it and start again"
}

# write_config: icecast refuses to run as root unless it changes owner,
# so as root it drops to Debian's icecast2 user, which must be able to
# write the log folder.
write_config() {
	local owner=""
	mkdir -p "$DIR/log"
	if ((EUID == 0)); then
		owner="<changeowner><user>icecast2</user><group>icecast</group></changeowner>"
		chown icecast2:icecast "$DIR/log" 2>/dev/null || chown icecast2 "$DIR/log"
	fi
	local tmp
	tmp=$(mktemp "$CONF.XXXXXX")
	chmod 640 "$tmp"
	cat >"$tmp" <<EOF
<icecast>
  <location>earshot test bed</location>
  <admin>nobody@localhost</admin>
  <limits>
    <clients>32</clients>
    <sources>8</sources>
    <queue-size>524288</queue-size>
    <client-timeout>30</client-timeout>
    <header-timeout>15</header-timeout>
    <source-timeout>10</source-timeout>
    <burst-on-connect>1</burst-on-connect>
    <burst-size>32768</burst-size>
  </limits>
  <authentication>
    <source-password>$SOURCE_PASSWORD</source-password>
    <relay-password>$ADMIN_PASSWORD</relay-password>
    <admin-user>admin</admin-user>
    <admin-password>$ADMIN_PASSWORD</admin-password>
  </authentication>
  <hostname>$ICECAST_HOST</hostname>
  <listen-socket>
    <port>$ICECAST_PORT</port>
    <bind-address>$ICECAST_HOST</bind-address>
  </listen-socket>
  <fileserve>1</fileserve>
  <paths>
    <basedir>/usr/share/icecast2</basedir>
    <logdir>$DIR/log</logdir>
    <webroot>/usr/share/icecast2/web</webroot>
    <adminroot>/usr/share/icecast2/admin</adminroot>
  </paths>
  <logging>
    <accesslog>access.log</accesslog>
    <errorlog>error.log</errorlog>
    <loglevel>2</loglevel>
  </logging>
  <security>
    <chroot>0</chroot>
    $owner
  </security>
</icecast>
EOF
	if ((EUID == 0)); then
		chgrp icecast "$tmp" 2>/dev/null || true
	fi
	mv -f "$tmp" "$CONF"
}

status_ok() {
	curl -fsS --max-time 5 -o /dev/null "http://$ICECAST_HOST:$ICECAST_PORT/status-json.xsl"
}

publish_env() {
	write_env icecast "ICECAST_URL=http://$ICECAST_HOST:$ICECAST_PORT" "ICECAST_SOURCE_USER=source" \
		"ICECAST_SOURCE_PASSWORD=$SOURCE_PASSWORD" "FFMPEG=$(command -v ffmpeg)"
}

cmd_start() {
	cmd_install
	ensure_credentials
	load_credentials
	if tb_running; then
		wait_for "icecast on $ICECAST_HOST:$ICECAST_PORT" 30 status_ok
		publish_env
		return 0
	fi
	remove_env icecast
	tb_require_free_port "$ICECAST_HOST" "$ICECAST_PORT" "a process that is not this test bed's icecast2"
	write_config
	local t0
	t0=$(date +%s)
	tb_start_daemon icecast2 -c "$CONF"
	wait_for "icecast on $ICECAST_HOST:$ICECAST_PORT" 30 status_ok
	publish_env
	tb_log "icecast2 ready on $ICECAST_HOST:$ICECAST_PORT (pid $(tb_pid)) in $(tb_elapsed "$t0")s"
}

cmd_stop() {
	remove_env icecast
	if tb_running; then
		tb_stop_daemon 20
		tb_log "stopped"
	else
		rm -f "$(tb_pidfile)"
	fi
}

cmd_status() {
	if tb_running; then
		echo "icecast: running (pid $(tb_pid)), http://$ICECAST_HOST:$ICECAST_PORT, config $CONF"
		return 0
	fi
	if installed; then
		echo "icecast: stopped (icecast2 and ffmpeg installed)"
	else
		echo "icecast: not installed"
	fi
	return 3
}

tb_main "$@"
