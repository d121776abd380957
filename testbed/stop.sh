#!/usr/bin/env bash
# testbed/stop.sh [component...]   components: janus kafka s3 whisper speech chromium icecast
#
# Stop the test bed's components (all, or those named) and remove their
# env files. Data stays in the state folder for the next start.
set -euo pipefail
TB_COMPONENT=testbed
# shellcheck source=testbed/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

tb_each stop "$@"
