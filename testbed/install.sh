#!/usr/bin/env bash
# testbed/install.sh [component...]   components: janus kafka s3 whisper speech chromium icecast
#
# Install every test-bed component (or those named) that is missing:
# apt, go install, mvn, pip. Quiet when everything is present; otherwise
# prints what it installs and how long each part took. Installs run in
# parallel (the apt users one after another).
set -euo pipefail
TB_COMPONENT=testbed
# shellcheck source=testbed/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

tb_each install "$@"
