package ingest

import (
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"
)

func TestDiskFullErrors(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("spool: write: %w", syscall.ENOSPC), true},
		{&os.PathError{Op: "write", Path: "x", Err: syscall.EDQUOT}, true},
		{fmt.Errorf("spool: write: %w", syscall.EIO), false},
		{nil, false},
	}
	for _, tc := range tests {
		if got := diskFull(tc.err); got != tc.want {
			t.Errorf("diskFull(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// The guard: a full disk closes the channel stays wait on and alerts once;
// rooms are kept out until the retry has passed; a second full disk
// alerts again only after a segment was spooled in between.
func TestSpoolGuard(t *testing.T) {
	g := newSpoolGuard()
	t0 := time.Unix(1_000_000, 0)
	retry := time.Minute
	ch := g.fullCh()
	if full, _ := g.isFull(t0, retry); full {
		t.Fatal("a new guard is full")
	}
	steps := []struct {
		name       string
		do         func() bool // markFull's answer, or nil
		at         time.Duration
		wantFull   bool
		wantClear  bool
		wantClosed bool
	}{
		{"first full disk alerts", func() bool { return g.markFull(t0) }, 0, true, false, true},
		{"again in the episode: no alert", func() bool { return !g.markFull(t0.Add(time.Second)) }, time.Second, true, false, true},
		{"before the retry: still full", nil, retry - time.Second, true, false, true},
		{"at the retry: cleared", nil, retry, false, true, true},
		{"full again without a segment spooled: no alert", func() bool { return !g.markFull(t0.Add(retry + time.Second)) }, retry + time.Second, true, false, true},
		{"cleared", nil, 2*retry + time.Second, false, true, true},
		{"a segment spooled, then full: alerts", func() bool { g.spooled(); return g.markFull(t0.Add(3 * retry)) }, 3 * retry, true, false, true},
	}
	for _, st := range steps {
		if st.do != nil && !st.do() {
			t.Errorf("%s: markFull answered wrong", st.name)
		}
		full, cleared := g.isFull(t0.Add(st.at), retry)
		if full != st.wantFull || cleared != st.wantClear {
			t.Errorf("%s: isFull = %v, %v; want %v, %v", st.name, full, cleared, st.wantFull, st.wantClear)
		}
		select {
		case <-ch:
			if !st.wantClosed {
				t.Errorf("%s: the first channel is closed", st.name)
			}
		default:
			if st.wantClosed {
				t.Errorf("%s: the channel stays wait on is open", st.name)
			}
		}
	}
	select {
	case <-g.fullCh():
	default:
		t.Error("the current channel is open while full")
	}
}
