package testbed_test

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/earshot/earshot/internal/testbed"
)

// endTB records how a helper ended a test: Fatal or Skip stop the
// goroutine as the real ones do.
type endTB struct {
	testing.TB
	failed, skipped bool
	msg             string
}

func (e *endTB) Helper()           {}
func (e *endTB) Fatal(args ...any) { e.failed, e.msg = true, fmt.Sprint(args...); runtime.Goexit() }
func (e *endTB) Fatalf(f string, args ...any) {
	e.failed, e.msg = true, fmt.Sprintf(f, args...)
	runtime.Goexit()
}
func (e *endTB) Skip(args ...any) { e.skipped, e.msg = true, fmt.Sprint(args...); runtime.Goexit() }
func (e *endTB) Skipf(f string, args ...any) {
	e.skipped, e.msg = true, fmt.Sprintf(f, args...)
	runtime.Goexit()
}
func (e *endTB) Logf(format string, args ...any) {}

func runEnd(fn func(tb testing.TB)) *endTB {
	e := &endTB{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(e)
	}()
	<-done
	return e
}

// TestRequireToolMissing: a missing program fails the test under the test
// bed and skips it otherwise, naming what installs it either way.
func TestRequireToolMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	for _, bed := range []string{"1", ""} {
		t.Setenv("EARSHOT_TESTBED", bed)
		e := runEnd(func(tb testing.TB) { testbed.RequireTool(tb, "opusdec") })
		if e.failed != (bed == "1") || e.skipped == (bed == "1") {
			t.Errorf("EARSHOT_TESTBED=%q: failed %v skipped %v, want a failure only under the test bed", bed, e.failed, e.skipped)
		}
		if !strings.Contains(e.msg, "opus-tools") {
			t.Errorf("EARSHOT_TESTBED=%q: message %q does not name the package to install", bed, e.msg)
		}
	}
}

// TestRequireToolPresent returns the program's path and lets the test go on.
func TestRequireToolPresent(t *testing.T) {
	t.Setenv("EARSHOT_TESTBED", "1")
	var path string
	e := runEnd(func(tb testing.TB) { path = testbed.RequireTool(tb, "sh") })
	if e.failed || e.skipped || !strings.HasSuffix(path, "/sh") {
		t.Errorf("sh: path %q, failed %v, skipped %v", path, e.failed, e.skipped)
	}
}
