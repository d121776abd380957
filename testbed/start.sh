#!/usr/bin/env bash
# testbed/start.sh [component...]   components: janus kafka s3 whisper speech chromium icecast
#
# Start the test bed's components (all, or those named), in parallel,
# installing what is missing first. Each component's start script waits for
# readiness and writes <state>/<component>.env. Fails, naming the failed
# components and their logs, when any does not come up.
set -euo pipefail
TB_COMPONENT=testbed
# shellcheck source=testbed/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

tb_each start "$@"
