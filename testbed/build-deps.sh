#!/usr/bin/env bash
# testbed/build-deps.sh — what building Earshot itself needs beyond Go:
# cgo with libopus (transcribe decodes Opus with libopus) and pkg-config.
# Quiet when everything is present.
set -euo pipefail
TB_COMPONENT=build
# shellcheck source=testbed/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
tb_init
apt_install gcc libc6-dev pkg-config libopus-dev
