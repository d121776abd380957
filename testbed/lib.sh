# shellcheck disable=SC2119,SC2120 # optional component arguments default to $TB_COMPONENT
# shellcheck shell=bash
# Common functions for the test-bed scripts. Source it; do not run it.
#
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#   TB_COMPONENT=kafka            # names the log, pid and env files
#
# Layout (see the brief and internal/testbed):
#   $TB_STATE  = ${EARSHOT_TESTBED_DIR:-<repo>/out/testbed}   per-clone state
#   $TB_LOGS   = $TB_STATE/logs                          <component>.log
#   $TB_STATE/<component>.pid                            "pid starttime"
#   $TB_STATE/<component>.env                            written when ready
#   $TB_CACHE  = ${EARSHOT_CACHE:-/var/cache/earshot}    downloads, builds;
#                                                        shared by clones
#
# Functions:
#   tb_log MSG... / tb_warn MSG... / tb_die MSG...
#   tb_init                       create the state, log and cache folders
#   tb_log_file [component]       path of a component's log
#   wait_for DESC TIMEOUT_S CMD...
#                                 poll CMD until it succeeds; on timeout (or
#                                 when $TB_COMPONENT's daemon died) fail with
#                                 the log file's name and its last lines
#   tb_start_daemon CMD...        start CMD in its own session, stdout and
#                                 stderr appended to the log, pid recorded
#   tb_running [component]        is the recorded daemon alive (and ours)?
#   tb_pid [component]            its pid (empty when not running)
#   tb_stop_daemon [timeout_s]    TERM the daemon's process group, KILL
#                                 after timeout_s (default 20), drop pidfile
#   write_env COMPONENT K=V...    atomically write $TB_STATE/COMPONENT.env
#   remove_env COMPONENT
#   tb_port_open HOST PORT        is something listening there?
#   tb_port_owner PORT            "pid/command" of whatever listens on PORT
#   tb_require_free_port HOST PORT [WHO]
#                                 fail, naming the owner, when PORT is taken
#   apt_install PKG...            install missing Debian packages (quiet when
#                                 present; apt-get update only when needed)
#   tb_have_cmd CMD               command -v, quietly
#   tb_elapsed START_EPOCH        seconds since START_EPOCH
#   tb_main "$@"                  dispatch install|start|stop|status to the
#                                 script's cmd_install/cmd_start/... functions
#   tb_each VERB [COMPONENT...]   the orchestrators: VERB for each component
#                                 (default all), in parallel

# Guard against double sourcing (orchestrators and component scripts both
# source it).
if [[ -n "${TB_LIB_LOADED:-}" ]]; then
	return 0
fi
TB_LIB_LOADED=1

TB_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TB_STATE=${EARSHOT_TESTBED_DIR:-$TB_REPO/out/testbed}
TB_CACHE=${EARSHOT_CACHE:-/var/cache/earshot}
TB_LOGS=$TB_STATE/logs
TB_COMPONENT=${TB_COMPONENT:-testbed}

# Go lives in /usr/local/go on this machine kind; a non-login shell (CI) may
# not have it on PATH.
if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
	PATH=/usr/local/go/bin:$PATH
fi

# Messages name their component: [testbed/kafka]; the orchestrators' own
# are plain [testbed].
tb_prefix() { [[ "$TB_COMPONENT" == testbed ]] && echo "[testbed]" || echo "[testbed/$TB_COMPONENT]"; }
tb_log() { printf '%s %s\n' "$(tb_prefix)" "$*" >&2; }
tb_warn() { printf '%s warning: %s\n' "$(tb_prefix)" "$*" >&2; }
tb_die() {
	printf '%s error: %s\n' "$(tb_prefix)" "$*" >&2
	exit 1
}

tb_init() {
	mkdir -p "$TB_STATE" "$TB_LOGS" "$TB_CACHE" ||
		tb_die "cannot create $TB_STATE or $TB_CACHE"
}

tb_have_cmd() { command -v "$1" >/dev/null 2>&1; }

tb_elapsed() { echo $(($(date +%s) - $1)); }

tb_log_file() { echo "$TB_LOGS/${1:-$TB_COMPONENT}.log"; }

# tb_log_tail FILE: the last lines of a log, indented, for error messages.
tb_log_tail() {
	[[ -s "$1" ]] || return 0
	printf '  --- last lines of %s ---\n' "$1" >&2
	tail -n 25 "$1" | sed 's/^/  | /' >&2
}

# --- pids -------------------------------------------------------------------

tb_pidfile() { echo "$TB_STATE/${1:-$TB_COMPONENT}.pid"; }

# The start time (clock ticks since boot) tells our process apart from a
# later one that reuses its pid.
tb_proc_start() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	# Field 22; the command name (field 2) may contain spaces, so cut after ')'.
	stat=${stat##*) }
	awk '{print $20}' <<<"$stat"
}

tb_pid() {
	local f pid start now
	f=$(tb_pidfile "${1:-}")
	[[ -f "$f" ]] || return 0
	read -r pid start <"$f" || true
	[[ "$pid" =~ ^[0-9]+$ ]] || return 0
	now=$(tb_proc_start "$pid") || return 0
	[[ -z "$start" || "$now" == "$start" ]] || return 0
	# A zombie is not running.
	[[ "$(awk '/^State:/{print $2}' "/proc/$pid/status" 2>/dev/null)" != Z ]] || return 0
	echo "$pid"
}

tb_running() { [[ -n "$(tb_pid "${1:-}")" ]]; }

tb_start_daemon() {
	tb_init
	local log pid
	log=$(tb_log_file)
	printf '\n=== %s: starting %s ===\n' "$(date -u +%FT%TZ)" "$*" >>"$log"
	# setsid: own session and process group, so stop can signal the whole
	# group and a Ctrl-C in the caller's terminal does not reach it. In a
	# script (no job control) the background child is not a group leader,
	# so setsid execs in place and $! is the daemon's pid.
	# Descriptors beyond stdio are closed first: a daemon must not inherit
	# e.g. the lock a caller ran us under (flock), or it holds it forever.
	(
		for fd in /proc/$BASHPID/fd/*; do
			fd=${fd##*/}
			((fd > 2)) && eval "exec $fd>&-" 2>/dev/null
		done
		exec setsid nohup "$@" >>"$log" 2>&1 </dev/null
	) &
	pid=$!
	printf '%s %s\n' "$pid" "$(tb_proc_start "$pid" || true)" >"$(tb_pidfile)"
}

tb_stop_daemon() {
	local timeout=${1:-20} pid i sig_target
	pid=$(tb_pid)
	if [[ -z "$pid" ]]; then
		rm -f "$(tb_pidfile)"
		return 0
	fi
	# Signal the group when the daemon leads one (it does when started by
	# tb_start_daemon), so helper children go too.
	if [[ "$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ')" == "$pid" ]]; then
		sig_target=-$pid
	else
		sig_target=$pid
	fi
	kill -TERM -- "$sig_target" 2>/dev/null || true
	for ((i = 0; i < timeout * 10; i++)); do
		tb_running || break
		sleep 0.1
	done
	if tb_running; then
		tb_warn "pid $pid ignored TERM for ${timeout}s; sending KILL"
		kill -KILL -- "$sig_target" 2>/dev/null || true
		for ((i = 0; i < 50; i++)); do
			tb_running || break
			sleep 0.1
		done
	fi
	tb_running && tb_die "could not stop pid $pid"
	rm -f "$(tb_pidfile)"
}

# --- readiness ----------------------------------------------------------------

wait_for() {
	local desc=$1 timeout=$2
	shift 2
	local log deadline pidfile
	log=$(tb_log_file)
	pidfile=$(tb_pidfile)
	deadline=$(($(date +%s) + timeout))
	while :; do
		if "$@" >/dev/null 2>&1; then
			return 0
		fi
		# A daemon that died will never become ready: say so at once.
		if [[ -f "$pidfile" ]] && ! tb_running; then
			tb_log_tail "$log"
			tb_die "$TB_COMPONENT exited while waiting for $desc; see $log"
		fi
		if (($(date +%s) >= deadline)); then
			tb_log_tail "$log"
			tb_die "timed out after ${timeout}s waiting for $desc; see $log"
		fi
		sleep 0.5
	done
}

tb_port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

tb_port_owner() {
	ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'users:(([^)]*' | head -n1 | sed 's/users:((//' || true
}

# tb_require_free_port HOST PORT: fail clearly when another program holds a
# port that our daemon needs.
tb_require_free_port() {
	if tb_port_open "$1" "$2"; then
		tb_die "$1:$2 is already in use by ${3:-another process} ($(tb_port_owner "$2")); stop it or free the port"
	fi
}

# --- env files ----------------------------------------------------------------

write_env() {
	local component=$1 kv f tmp
	shift
	tb_init
	f=$TB_STATE/$component.env
	tmp=$(mktemp "$TB_STATE/.$component.env.XXXXXX")
	{
		printf '# written by testbed/%s.sh start at %s\n' "$component" "$(date -u +%FT%TZ)"
		for kv in "$@"; do
			[[ "$kv" == *=* ]] || tb_die "write_env: $kv is not KEY=VALUE"
			printf '%s\n' "$kv"
		done
	} >"$tmp"
	chmod 600 "$tmp"
	mv -f "$tmp" "$f"
}

remove_env() { rm -f "$TB_STATE/$1.env"; }

# --- apt ------------------------------------------------------------------------

tb_pkg_installed() {
	[[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

tb_pkg_has_candidate() {
	local c
	c=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/{print $2}')
	[[ -n "$c" && "$c" != "(none)" ]]
}

# apt_install PKG...: installs the packages that are missing. apt-get update
# runs only when a missing package has no install candidate (lists never
# fetched, or stale). Calls from scripts running in parallel take turns on a
# lock in the cache folder.
apt_install() {
	local missing=() p need_update=0 log
	for p in "$@"; do
		tb_pkg_installed "$p" || missing+=("$p")
	done
	((${#missing[@]})) || return 0
	tb_init
	log=$TB_LOGS/apt.log
	tb_log "installing Debian packages: ${missing[*]}"
	(
		flock -w 900 9 || tb_die "timed out waiting for the apt lock $TB_CACHE/.apt.lock"
		local p
		for p in "${missing[@]}"; do
			tb_pkg_has_candidate "$p" || need_update=1
		done
		if ((need_update)); then
			apt-get -o DPkg::Lock::Timeout=600 update >>"$log" 2>&1 ||
				{ tb_log_tail "$log"; tb_die "apt-get update failed; see $log"; }
		fi
		DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q \
			--no-install-recommends "${missing[@]}" >>"$log" 2>&1 ||
			{ tb_log_tail "$log"; tb_die "apt-get install ${missing[*]} failed; see $log"; }
	) 9>"$TB_CACHE/.apt.lock" || exit 1
}

# --- dispatch ---------------------------------------------------------------------

tb_main() {
	local verb=${1:-}
	case "$verb" in
	install | start | stop | status)
		shift
		tb_init
		"cmd_$verb" "$@"
		;;
	*)
		echo "usage: $0 {install|start|stop|status}" >&2
		exit 2
		;;
	esac
}

# --- orchestration ------------------------------------------------------------------

# Every component, in start order.
TB_ALL_COMPONENTS=(janus kafka s3 whisper speech chromium icecast)
# Components whose install uses apt: run one after another, so no apt-get
# meets another's dpkg lock even if a script calls apt-get directly.
TB_APT_COMPONENTS=" janus speech chromium icecast "

# tb_run_one COMPONENT VERB: run testbed/COMPONENT.sh VERB, its output
# streamed with the component's name in front of lines that lack it.
tb_run_one() {
	local c=$1 verb=$2
	(
		set -o pipefail
		bash "$TB_REPO/testbed/$c.sh" "$verb" 2>&1 |
			sed -u "/^\[testbed\//!s/^/[testbed\/$c] /"
	)
}

# tb_each VERB [COMPONENT...]: run VERB for each component (all by default),
# in parallel, the apt users among them in one serial chain. Fails, naming
# every component that failed, when any does.
tb_each() {
	local verb=$1
	shift
	local comps=("$@") c t0 failed=() serial=() parallel=()
	((${#comps[@]})) || comps=("${TB_ALL_COMPONENTS[@]}")
	for c in "${comps[@]}"; do
		[[ -f "$TB_REPO/testbed/$c.sh" ]] ||
			tb_die "unknown component $c (no testbed/$c.sh); components: ${TB_ALL_COMPONENTS[*]}"
		if [[ "$verb" == install && "$TB_APT_COMPONENTS" == *" $c "* ]]; then
			serial+=("$c")
		else
			parallel+=("$c")
		fi
	done
	tb_init
	local dir
	dir=$(mktemp -d "$TB_STATE/.run.XXXXXX")
	t0=$(date +%s)
	# Each job leaves its exit code and duration in $dir/<component>.
	tb__job() {
		local c=$1 s rc=0
		s=$(date +%s)
		tb_run_one "$c" "$verb" || rc=$?
		echo "$rc $(tb_elapsed "$s")" >"$dir/$c"
	}
	if ((${#serial[@]})); then
		(for c in "${serial[@]}"; do tb__job "$c"; done) &
	fi
	for c in "${parallel[@]}"; do
		tb__job "$c" &
	done
	wait
	local rc secs
	for c in "${comps[@]}"; do
		read -r rc secs <"$dir/$c" 2>/dev/null || { rc=255 secs=0; }
		if ((rc != 0)) && ! [[ "$verb" == status && "$rc" == 3 ]]; then
			failed+=("$c")
		fi
		if [[ "$verb" == install && "$rc" == 0 ]] && ((secs >= 2)); then
			TB_COMPONENT=testbed tb_log "$c install took ${secs}s"
		fi
	done
	rm -rf "$dir"
	if ((${#failed[@]})); then
		TB_COMPONENT=testbed tb_log "$verb failed for: ${failed[*]} (logs in $TB_LOGS)"
		return 1
	fi
	if [[ "$verb" == install ]] && (($(tb_elapsed "$t0") >= 2)); then
		TB_COMPONENT=testbed tb_log "install of ${comps[*]} took $(tb_elapsed "$t0")s"
	fi
}
