#!/usr/bin/env bash
# testbed/chromium.sh {install|start|stop|status}
#
# Debian's chromium, which the moderator console's browser tests
# (serve/browsertest) drive headless through the DevTools protocol
# (chromedp). No daemon: each test starts its own browser. start checks
# that it runs and writes chromium.env:
#   CHROMIUM
set -euo pipefail
TB_COMPONENT=chromium
# shellcheck source=testbed/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PACKAGES=(chromium)

cmd_install() {
	tb_have_cmd chromium && return 0
	local t0
	t0=$(date +%s)
	apt_install "${PACKAGES[@]}"
	tb_have_cmd chromium || tb_die "chromium still missing after apt-get install ${PACKAGES[*]}"
	tb_log "installed ${PACKAGES[*]} in $(tb_elapsed "$t0")s"
}

cmd_start() {
	cmd_install
	chromium --headless --no-sandbox --version >/dev/null 2>&1 ||
		tb_die "chromium does not start (chromium --headless --version failed)"
	write_env chromium "CHROMIUM=$(command -v chromium)"
}

cmd_stop() { remove_env chromium; }

cmd_status() {
	if ! tb_have_cmd chromium; then
		echo "chromium: not installed"
		return 3
	fi
	if [[ -f "$TB_STATE/chromium.env" ]]; then
		echo "chromium: ready ($(chromium --version 2>/dev/null | head -n1))"
		return 0
	fi
	echo "chromium: installed, not started (no $TB_STATE/chromium.env)"
	return 3
}

tb_main "$@"
