package testbed

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// Unavailable ends the test because something it needs is missing from
// this machine: a failure under EARSHOT_TESTBED=1 (the test bed provides
// it, so its absence is a broken test bed, not a reason to test less), a
// skip that says why otherwise. reason should say what to install or run.
func Unavailable(tb testing.TB, reason string) {
	tb.Helper()
	if Enabled() {
		tb.Fatalf("%s (EARSHOT_TESTBED=1: the test bed must provide this)", reason)
	}
	tb.Skip("not run: " + reason + "; set EARSHOT_TESTBED=1 to make this a failure")
}

// toolSources says what provides each program tests run, for the message
// when one is missing.
var toolSources = map[string]string{
	"opusdec":   "Debian package opus-tools: run testbed/speech.sh install",
	"opusenc":   "Debian package opus-tools: run testbed/speech.sh install",
	"sox":       "Debian package sox: run testbed/speech.sh install",
	"espeak-ng": "Debian package espeak-ng: run testbed/speech.sh install",
	"iptables":  "Debian package iptables: run testbed/janus.sh install",
	"chromium":  "Debian package chromium: run testbed/chromium.sh install",
	"ffmpeg":    "Debian package ffmpeg: run testbed/icecast.sh install",
}

// RequireTool returns the path of the program name on PATH, or ends the
// test through Unavailable, naming what installs it.
func RequireTool(tb testing.TB, name string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		src, ok := toolSources[name]
		if !ok {
			src = "install it"
		}
		Unavailable(tb, fmt.Sprintf("%s is not on PATH (%s)", name, src))
	}
	return p
}

// RequireRoot ends the test through Unavailable unless it runs as root;
// why says what needs root. `make test` runs as root in CI.
func RequireRoot(tb testing.TB, why string) {
	tb.Helper()
	if os.Geteuid() != 0 {
		Unavailable(tb, fmt.Sprintf("needs root to %s: run it as root (make test does in CI)", why))
	}
}
