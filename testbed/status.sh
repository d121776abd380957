#!/usr/bin/env bash
# testbed/status.sh [component...]   components: janus kafka s3 whisper speech chromium icecast
#
# One line per component. Exits 0 when every named component is running
# (ready, for speech), 3 otherwise.
set -euo pipefail
TB_COMPONENT=testbed
# shellcheck source=testbed/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

comps=("$@")
((${#comps[@]})) || comps=("${TB_ALL_COMPONENTS[@]}")
rc=0
for c in "${comps[@]}"; do
	if [[ ! -f "$TB_REPO/testbed/$c.sh" ]]; then
		echo "$c: unknown component (no testbed/$c.sh)"
		rc=3
		continue
	fi
	bash "$TB_REPO/testbed/$c.sh" status || rc=3
done
echo "state: $TB_STATE  cache: $TB_CACHE  logs: $TB_LOGS"
exit "$rc"
