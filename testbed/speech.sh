#!/usr/bin/env bash
# testbed/speech.sh {install|start|stop|status}
#
# The speech tools that tests use to make audio (internal/speech):
# espeak-ng (text to WAV), sox (gain, tones, silence, resampling,
# concatenation) and opus-tools (opusenc, opusdec), all from Debian. There is
# no daemon: start checks the tools and writes speech.env with their paths:
#   ESPEAK_NG OPUSENC OPUSDEC SOX
set -euo pipefail
TB_COMPONENT=speech
# shellcheck source=testbed/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PACKAGES=(espeak-ng opus-tools sox)
TOOLS=(espeak-ng opusenc opusdec sox)

missing_tools() {
	local t out=()
	for t in "${TOOLS[@]}"; do
		tb_have_cmd "$t" || out+=("$t")
	done
	echo "${out[*]}"
}

cmd_install() {
	[[ -z "$(missing_tools)" ]] && return 0
	local t0
	t0=$(date +%s)
	apt_install "${PACKAGES[@]}"
	local still
	still=$(missing_tools)
	[[ -z "$still" ]] || tb_die "still missing after apt-get install ${PACKAGES[*]}: $still"
	tb_log "installed ${PACKAGES[*]} in $(tb_elapsed "$t0")s"
}

cmd_start() {
	cmd_install
	# A smoke test: a voice that does not load would only show up later as
	# an empty WAV.
	local tmp
	tmp=$(mktemp -d)
	if ! espeak-ng -v en-us -w "$tmp/probe.wav" "probe" 2>"$tmp/err" || [[ ! -s "$tmp/probe.wav" ]]; then
		cat "$tmp/err" >&2
		rm -rf "$tmp"
		tb_die "espeak-ng could not synthesise a test word"
	fi
	rm -rf "$tmp"
	write_env speech \
		"ESPEAK_NG=$(command -v espeak-ng)" \
		"OPUSENC=$(command -v opusenc)" \
		"OPUSDEC=$(command -v opusdec)" \
		"SOX=$(command -v sox)"
}

cmd_stop() { remove_env speech; }

cmd_status() {
	local m
	m=$(missing_tools)
	if [[ -n "$m" ]]; then
		echo "speech: not installed (missing $m)"
		return 3
	fi
	if [[ -f "$TB_STATE/speech.env" ]]; then
		echo "speech: ready ($(espeak-ng --version | head -n1 | cut -d' ' -f1-4); $(opusenc --version | head -n1); SoX $(sox --version | grep -o 'v[0-9.]*'))"
		return 0
	fi
	echo "speech: installed, not started (no $TB_STATE/speech.env)"
	return 3
}

tb_main "$@"
