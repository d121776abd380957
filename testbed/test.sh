#!/usr/bin/env bash
# testbed/test.sh   what `make test` runs, phase by phase, with each phase's time
#
# Phases: install, start (the real components), vet, unit (every package
# whose tests do not run rooms in real time, in parallel, -race), realtime
# (the packages that do, one at a time, after the rest so that they do not
# compete for the CPU), disruptive (tests that restart a shared component,
# alone), stop. Every phase is timed; the table at the end says where the
# time went and how it stands against the budget (TEST_BUDGET_S, default
# 3600 s: CI stops at 5400 s, and later work needs the room).
#
# Environment: COMPONENTS, GO, GOTESTFLAGS, REALTIME_RE, DISRUPTIVE (the
# Makefile passes its own).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

GO=${GO:-go}
COMPONENTS=${COMPONENTS:-janus kafka s3 whisper speech chromium icecast}
GOTESTFLAGS=${GOTESTFLAGS:--race -timeout 40m}
REALTIME_RE=${REALTIME_RE:-/ingest($|/)|/e2etest$|/webrtcbench$|/browsertest$}
DISRUPTIVE=${DISRUPTIVE:-TestE2EJanusRestart}
TEST_BUDGET_S=${TEST_BUDGET_S:-3600}

phases=()
t_all=$(date +%s)

# phase NAME CMD...: run CMD, record its time and result; a failed phase
# ends the run (after the table and the stop).
phase() {
	local name=$1 t0 rc=0
	shift
	t0=$(date +%s)
	printf '=== phase %s\n' "$name"
	"$@" || rc=$?
	phases+=("$(printf '%-11s %5ss  %s' "$name" "$(($(date +%s) - t0))" "$([[ $rc == 0 ]] && echo ok || echo "FAILED (exit $rc)")")")
	return "$rc"
}

summary() {
	local rc=${1:-$?} total
	total=$(($(date +%s) - t_all))
	echo "--- make test phases"
	printf '%s\n' "${phases[@]}"
	printf '%-11s %5ss  (budget %ss)\n' total "$total" "$TEST_BUDGET_S"
	if ((total > TEST_BUDGET_S)); then
		echo "make test: over its ${TEST_BUDGET_S}s budget: move slow checks to their own targets"
	fi
	exit "$rc"
}
trap summary EXIT

stopped=0
stop_testbed() {
	((stopped)) && return 0
	stopped=1
	phase stop testbed/stop.sh $COMPONENTS || true
}

phase install make --no-print-directory install
phase start testbed/start.sh $COMPONENTS
trap 'rc=$?; stop_testbed; summary "$rc"' EXIT

mapfile -t pkgs < <($GO list ./...)
unit=() realtime=()
for p in "${pkgs[@]}"; do
	if [[ $p =~ $REALTIME_RE ]]; then realtime+=("$p"); else unit+=("$p"); fi
done

export EARSHOT_TESTBED=1
# shellcheck disable=SC2086 # GOTESTFLAGS is a list of flags
phase vet $GO vet ./...
# shellcheck disable=SC2086
phase unit $GO test $GOTESTFLAGS "${unit[@]}"
# shellcheck disable=SC2086
phase realtime $GO test $GOTESTFLAGS -p 1 -skip "$DISRUPTIVE" "${realtime[@]}"
# shellcheck disable=SC2086
phase disruptive env EARSHOT_E2E_DISRUPTIVE=1 $GO test $GOTESTFLAGS -run "$DISRUPTIVE" ./ingest/
