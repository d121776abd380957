#!/usr/bin/env bash
# testbed/demo/check.sh OUT EARSHOT_RC BOTS_RC ENGINE_URL — the demo's last
# step: prints what the run produced (from the summary `earshot run
# -summary` wrote to OUT/summary.txt: name=value lines) and exits 1 when it
# showed nothing: no segment stored, no transcript line, no alert raised,
# or Earshot or a speaker bot failed.
set -euo pipefail
out=$1 earshot_rc=$2 bots_rc=$3 engine_url=$4
say() { printf '\033[1m[demo]\033[0m %s\n' "$*"; }

declare -A fig=()
alerts_by=""
if [[ -f "$out/summary.txt" ]]; then
	while IFS='=' read -r k v; do
		[[ -n "$k" ]] || continue
		fig[$k]=$v
		if [[ "$k" == alerts.* ]]; then alerts_by+=" ${k#alerts.}=$v"; fi
	done <"$out/summary.txt"
fi
n() { echo "${fig[$1]:-0}"; }

failures=()
[[ "$earshot_rc" == 0 ]] || failures+=("earshot run exited with status $earshot_rc (see earshot.log)")
[[ "$bots_rc" == 0 ]] || failures+=("a speaker bot failed (see alice.log and bob.log)")
if [[ ! -f "$out/summary.txt" ]]; then
	failures+=("earshot run wrote no summary ($out/summary.txt): what it produced is unknown")
else
	(($(n segments_stored) > 0)) || failures+=("no segment was stored")
	if (($(n transcript_lines) == 0)); then
		failures+=("no transcript arrived ($(n engine_errors) engine call(s) failed; is the transcription engine at $engine_url up?)")
	fi
	(($(n alerts) > 0)) || failures+=("none of the scripted alerts was raised")
fi

say "summary"
say "  segments stored:  $(n segments_stored)"
say "  transcript lines: $(n transcript_lines) live, $(n settled_transcript_lines) settled"
say "  alerts:           $(n alerts)${alerts_by:+ (${alerts_by# })}"
say "  output:           $out"
say "    earshot.log (full log), earshot.yaml (config), summary.txt (these figures), data/store (objects),"
say "    *.publog.jsonl (what the bots said, when)"
if ((${#failures[@]} > 0)); then
	for f in "${failures[@]}"; do say "FAILED: $f"; done
	exit 1
fi
say "Janus and the Whisper fixture keep running for the next demo; \`make testbed-down\` stops them"
