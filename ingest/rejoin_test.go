package ingest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// fakeJanus is a Janus that is down until a time on a fake clock; the
// reconnector's sleeps advance that clock instead of waiting.
type fakeJanus struct {
	mu     sync.Mutex
	now    time.Time
	backAt time.Time // probes fail before this
	probes []time.Time
}

func (f *fakeJanus) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeJanus) sleep(ctx context.Context, d time.Duration) bool {
	if ctx.Err() != nil {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if d > 0 {
		f.now = f.now.Add(d)
	}
	return true
}

func (f *fakeJanus) probe(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.probes = append(f.probes, f.now)
	if f.now.Before(f.backAt) {
		return errors.New("connection refused")
	}
	return nil
}

// newFakeReconnector returns a reconnector on f's clock whose jitter is
// the largest it can be (the worst case for the waits under test).
func newFakeReconnector(f *fakeJanus) *reconnector {
	r := newReconnector(f.probe)
	r.sleep, r.now = f.sleep, f.clock
	r.rand = func(n time.Duration) time.Duration { return max(n-1, 0) }
	return r
}

// TestRejoinAfterOutage: however long Janus was away, a bot tries again
// within a probe interval (plus pacing and jitter) of Janus answering,
// not after a backoff that grew during the outage; and the outage resets
// the failure streak.
func TestRejoinAfterOutage(t *testing.T) {
	for _, outage := range []time.Duration{0, 500 * time.Millisecond, 10 * time.Second, time.Minute, 10 * time.Minute} {
		t.Run(outage.String(), func(t *testing.T) {
			start := time.Unix(1_000_000, 0)
			f := &fakeJanus{now: start, backAt: start.Add(outage)}
			r := newFakeReconnector(f)
			// The 6th failure in a row: the old doubling backoff would
			// have waited 30 s here.
			gotOutage, ok := r.wait(context.Background(), 6)
			if !ok {
				t.Fatal("wait ended without its context ending")
			}
			if gotOutage != (outage > 0) {
				t.Errorf("outage reported %v, want %v", gotOutage, outage > 0)
			}
			late := f.clock().Sub(f.backAt)
			if outage == 0 {
				// Janus answered at once: the streak's backoff applies.
				if want := retryDelay(6); late < want || late > want+rejoinJitter {
					t.Errorf("Janus up all along: retried after %v, want the streak's %v (+ up to %v jitter)", late, want, rejoinJitter)
				}
				return
			}
			if bound := probeMax + probeMax/4 + rejoinJitter; late < 0 || late > bound {
				t.Errorf("rejoined %v after Janus answered again, want within %v", late, bound)
			}
			// The probes back off but never beyond probeMax (+ jitter).
			for i := 1; i < len(f.probes); i++ {
				if gap := f.probes[i].Sub(f.probes[i-1]); gap > probeMax+probeMax/4 {
					t.Errorf("probe %d came %v after the one before, more than %v", i, gap, probeMax+probeMax/4)
				}
			}
			if outage >= 10*time.Second {
				// Backed off: far fewer probes than one per probeFirst.
				if n, most := len(f.probes), int(outage/probeMax)+8; n > most {
					t.Errorf("%d probes in a %v outage, want at most %d", n, outage, most)
				}
			}
		})
	}
}

// TestRetryDelayWhileJanusAnswers: stays that keep failing while Janus
// answers back off, doubling to retryMax; the first retry is immediate.
func TestRetryDelayWhileJanusAnswers(t *testing.T) {
	want := []time.Duration{0, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second}
	for i, w := range want {
		if got := retryDelay(i + 1); got != w {
			t.Errorf("retryDelay(%d) = %v, want %v", i+1, got, w)
		}
	}
	if got := retryDelay(1000); got != retryMax {
		t.Errorf("retryDelay(1000) = %v, want %v", got, retryMax)
	}
}

// TestRejoinsArePaced: when Janus comes back, the rooms of a stage do not
// all rejoin at the same instant: their rejoins are spaced by
// rejoinSpacing, and they share probes instead of each probing.
func TestRejoinsArePaced(t *testing.T) {
	start := time.Unix(1_000_000, 0)
	f := &fakeJanus{now: start, backAt: start}
	r := newFakeReconnector(f)
	r.rand = func(time.Duration) time.Duration { return 0 }
	// With the fake clock, a sleep returns at once, so record the slot each
	// room was given rather than when it woke.
	const rooms = 40
	var slots []time.Duration
	for range rooms {
		if !r.up(context.Background()) {
			t.Fatal("probe failed while Janus answers")
		}
		slots = append(slots, r.slot())
	}
	for i, s := range slots {
		if want := time.Duration(i) * rejoinSpacing; s != want {
			t.Errorf("room %d: rejoin slot in %v, want %v", i, s, want)
		}
	}
	if len(f.probes) != 1 {
		t.Errorf("%d probes for %d rooms within %v, want 1 shared probe", len(f.probes), rooms, probeFresh)
	}
}

// TestRejoinWaitEndsWithContext: a bot waiting for Janus stops when its
// context ends (shutdown, lease lost).
func TestRejoinWaitEndsWithContext(t *testing.T) {
	f := &fakeJanus{now: time.Unix(0, 0), backAt: time.Unix(1<<40, 0)}
	r := newFakeReconnector(f)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan bool)
	go func() {
		_, ok := r.wait(ctx, 1)
		done <- ok
	}()
	cancel()
	select {
	case ok := <-done:
		if ok {
			t.Error("wait reported success after its context ended while Janus was down")
		}
	case <-time.After(time.Minute):
		t.Fatal("wait did not end with its context")
	}
}
