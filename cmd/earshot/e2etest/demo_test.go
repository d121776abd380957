// Package e2etest runs `make demo`'s script, testbed/demo.sh, on the test
// bed: the demo passes when the pipeline works and fails, saying why, when
// it showed nothing. Real time (speaker bots in Janus): make test runs it
// with the other real-time packages, one at a time.
package e2etest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/earshot/earshot/internal/e2e"
	"github.com/earshot/earshot/internal/testbed"
	"github.com/earshot/earshot/storage"
)

// demoRun is one run of testbed/demo.sh.
type demoRun struct {
	out    string            // its output folder
	stdout string            // what it printed
	code   int               // its exit status
	fig    map[string]string // OUT/summary.txt, when written
}

// runDemo runs testbed/demo.sh in a fresh VideoRoom (rooms 1700-1749
// belong to this package) on the running test bed, with extra environment.
func runDemo(t *testing.T, env ...string) demoRun {
	t.Helper()
	if !testbed.Enabled() {
		t.Skip("real-time end-to-end test: run with EARSHOT_TESTBED=1 under flock /tmp/earshot-realtime.lock")
	}
	for _, c := range []string{testbed.Janus, testbed.Whisper, testbed.Speech} {
		testbed.Require(t, c)
	}
	n, _ := rand.Int(rand.Reader, big.NewInt(50))
	room := 1700 + n.Uint64()
	e2e.CreateRoom(t, testbed.JanusServer(t), room)

	r := demoRun{out: t.TempDir()}
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(testbed.RepoRoot(), "testbed", "demo.sh"))
	cmd.Env = append(os.Environ(), "DEMO_USE_RUNNING_TESTBED=1", "DEMO_ROOM="+strconv.FormatUint(room, 10), "DEMO_OUT="+r.out)
	cmd.Env = append(cmd.Env, env...)
	// The script's children (earshot, bots) go with it on timeout.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	r.stdout = string(out)
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("demo.sh: %v\n%s", err, out)
	}
	if ctx.Err() != nil {
		t.Fatalf("demo.sh did not end within 8 minutes:\n%s", out)
	}
	r.fig = readFigures(t, filepath.Join(r.out, "summary.txt"))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("demo output:\n%s", r.stdout)
			if b, err := os.ReadFile(filepath.Join(r.out, "earshot.log")); err == nil {
				t.Logf("earshot.log (last 40 lines):\n%s", lastLines(string(b), 40))
			}
		}
	})
	return r
}

// figure returns a summary figure as a number (-1 when absent).
func (r demoRun) figure(name string) int {
	v, ok := r.fig[name]
	if !ok {
		return -1
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return -1
	}
	return n
}

// readFigures reads name=value lines (nil when the file is absent).
func readFigures(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			out[k] = v
		}
	}
	return out
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}

// storedSegments counts the audio objects in the run's local store, which
// the test lists itself rather than trusting the summary.
func storedSegments(t *testing.T, out string) int {
	t.Helper()
	l, err := storage.OpenLocal(filepath.Join(out, "data", "store"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, err := range l.List(t.Context(), "audio/") {
		if err != nil {
			t.Fatalf("list the demo's store: %v", err)
		}
		n++
	}
	return n
}

// TestDemo runs the real demo (its scripted conversation, the Whisper
// fixture): it passes, and what its summary counts is there.
func TestDemo(t *testing.T) {
	r := runDemo(t)
	if r.code != 0 {
		t.Fatalf("demo exited with status %d", r.code)
	}
	segs := storedSegments(t, r.out)
	if r.figure("segments_stored") <= 0 || r.figure("segments_stored") != segs {
		t.Errorf("summary says %d segments stored, the store holds %d audio objects", r.figure("segments_stored"), segs)
	}
	log, err := os.ReadFile(filepath.Join(r.out, "earshot.log"))
	if err != nil {
		t.Fatal(err)
	}
	if lines := bytes.Count(log, []byte(`msg=transcript `)); r.figure("transcript_lines") <= 0 || lines == 0 {
		t.Errorf("summary says %d transcript lines, the log shows %d", r.figure("transcript_lines"), lines)
	}
	if r.figure("alerts") <= 0 {
		t.Errorf("summary says %d alerts", r.figure("alerts"))
	}
	for _, want := range []string{"[demo]\x1b[0m summary", "segments stored:  " + r.fig["segments_stored"], "output:           " + r.out,
		"moderator console: http://127.0.0.1:8470/console/", "one-time sign-in link (demo operator, works once, for an hour): http://127.0.0.1:8470/console/signin/once?"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("the demo's output lacks %q", want)
		}
	}
	t.Logf("demo summary: %v", r.fig)
}

// TestDemoFailsWithoutEngine runs a short demo (two lines of the scripted
// conversation) against a transcription engine URL on a closed loopback
// port: the audio is recorded, nothing is transcribed, and the demo must
// fail saying that no transcript arrived.
func TestDemoFailsWithoutEngine(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	script := filepath.Join(t.TempDir(), "short.txt")
	if err := os.WriteFile(script, []byte("alice: Welcome to the product roadmap room.\nbob: Happy to be here. Can we start with the launch dates?\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runDemo(t, "DEMO_WHISPER_URL=http://"+closed, "DEMO_SCRIPT="+script, "DEMO_DRAIN_S=2")
	if r.code == 0 {
		t.Fatal("the demo passed with its transcription engine unreachable")
	}
	if !strings.Contains(r.stdout, "FAILED: no transcript arrived") {
		t.Errorf("the demo's output does not say that no transcript arrived")
	}
	if r.figure("transcript_lines") != 0 || r.figure("engine_errors") <= 0 {
		t.Errorf("summary %v: want no transcript line and failed engine calls", r.fig)
	}
	// The rest of the pipeline ran: the failure is the engine's.
	if r.figure("segments_stored") <= 0 || storedSegments(t, r.out) == 0 {
		t.Errorf("summary %v: no segment stored", r.fig)
	}
}

// TestCheckStep runs the demo's last step (testbed/demo/check.sh) on
// summaries of runs that showed nothing, one way each: every one fails,
// naming what was missing; a run that showed everything passes.
func TestCheckStep(t *testing.T) {
	good := "segments_stored=4\ntranscript_lines=9\nsettled_transcript_lines=2\nengine_errors=0\nalerts=3\nalerts.pii.phone=1\n"
	tests := []struct {
		name, summary, earshotRC, botsRC string
		want                             string // "" passes
	}{
		{"everything", good, "0", "0", ""},
		{"no segment", strings.Replace(good, "segments_stored=4", "segments_stored=0", 1), "0", "0", "no segment was stored"},
		{"no transcript", strings.Replace(good, "transcript_lines=9", "transcript_lines=0", 1), "0", "0", "no transcript arrived"},
		{"no alert", strings.Replace(strings.Replace(good, "alerts=3", "alerts=0", 1), "alerts.pii.phone=1\n", "", 1), "0", "0", "none of the scripted alerts was raised"},
		{"no summary", "", "0", "0", "earshot run wrote no summary"},
		{"earshot failed", good, "1", "0", "earshot run exited with status 1"},
		{"bot failed", good, "0", "1", "a speaker bot failed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			if tc.summary != "" {
				if err := os.WriteFile(filepath.Join(out, "summary.txt"), []byte(tc.summary), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			cmd := exec.Command("bash", filepath.Join(testbed.RepoRoot(), "testbed", "demo", "check.sh"), out, tc.earshotRC, tc.botsRC, "http://127.0.0.1:9")
			b, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if err != nil && !errors.As(err, &ee) {
				t.Fatal(err)
			}
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("failed:\n%s", b)
			case tc.want != "" && err == nil:
				t.Errorf("passed; want it to fail saying %q:\n%s", tc.want, b)
			case tc.want != "" && !strings.Contains(string(b), "FAILED: "+tc.want):
				t.Errorf("output does not say %q:\n%s", tc.want, b)
			}
			if !strings.Contains(string(b), "output:           "+out) {
				t.Errorf("the summary does not say where the output is:\n%s", b)
			}
		})
	}
}
