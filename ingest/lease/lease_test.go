package lease

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

const (
	testTTL   = time.Second
	testRenew = 250 * time.Millisecond
)

func newMem(t *testing.T, log *MemoryLog, instance string) *Manager {
	t.Helper()
	m, err := NewMemory(log, Config{Instance: instance, TTL: testTTL, Renew: testRenew})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// acquireWithin retries Acquire until it succeeds or within passes.
func acquireWithin(t *testing.T, m *Manager, room string, within time.Duration) *Lease {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		l, err := m.Acquire(context.Background(), room)
		if err == nil {
			return l
		}
		if !errors.Is(err, ErrHeld) {
			t.Fatalf("acquire: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s could not acquire %s within %v", m.Holder(), room, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestOneHolderWhileRenewed(t *testing.T) {
	log := NewMemoryLog()
	a, b := newMem(t, log, "a"), newMem(t, log, "b")
	la, err := a.Acquire(context.Background(), "r1")
	if err != nil {
		t.Fatal(err)
	}
	// Several TTLs: a keeps renewing, b never gets the room.
	for end := time.Now().Add(3 * testTTL); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if _, err := b.Acquire(context.Background(), "r1"); !errors.Is(err, ErrHeld) {
			t.Fatalf("b acquired a renewed lease: %v", err)
		}
	}
	if closed(la.Lost()) {
		t.Fatal("a lost a lease it kept renewing")
	}
	// Other rooms are independent.
	if _, err := b.Acquire(context.Background(), "r2"); err != nil {
		t.Fatalf("b: other room: %v", err)
	}
}

func TestReleaseHandsOverAtOnce(t *testing.T) {
	log := NewMemoryLog()
	a, b := newMem(t, log, "a"), newMem(t, log, "b")
	la, err := a.Acquire(context.Background(), "r")
	if err != nil {
		t.Fatal(err)
	}
	if err := la.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Acquire(context.Background(), "r"); err != nil {
		t.Fatalf("b after release: %v", err)
	}
	if err := la.Release(context.Background()); err != nil {
		t.Fatalf("second release: %v", err)
	}
}

// TestCrashedHolderExpires: a holder that stops renewing (kill -9) loses
// the room to another instance once the TTL has passed, not before.
func TestCrashedHolderExpires(t *testing.T) {
	log := NewMemoryLog()
	a, b := newMem(t, log, "a"), newMem(t, log, "b")
	if _, err := a.Acquire(context.Background(), "r"); err != nil {
		t.Fatal(err)
	}
	_ = a.Close() // no release: as after kill -9
	crashed := time.Now()
	if _, err := b.Acquire(context.Background(), "r"); !errors.Is(err, ErrHeld) {
		t.Fatalf("b took the lease at once: %v", err)
	}
	acquireWithin(t, b, "r", 5*testTTL)
	if waited := time.Since(crashed); waited < testTTL-testRenew {
		t.Errorf("b took the lease %v after the crash; the lease lives %v after its last renewal", waited, testTTL)
	}
}

// TestRestartedInstanceTakesItsLeaseBack: the same instance name, a new
// process: no wait for the TTL, and a surviving old incarnation loses it.
func TestRestartedInstanceTakesItsLeaseBack(t *testing.T) {
	log := NewMemoryLog()
	old := newMem(t, log, "a")
	lo, err := old.Acquire(context.Background(), "r")
	if err != nil {
		t.Fatal(err)
	}
	restarted := newMem(t, log, "a")
	if _, err := restarted.Acquire(context.Background(), "r"); err != nil {
		t.Fatalf("restarted instance: %v", err)
	}
	select {
	case <-lo.Lost():
	case <-time.After(time.Second):
		t.Fatal("the old incarnation was not told it lost the lease")
	}
}

// TestUnrenewableHolderStopsFirst: when the holder cannot reach the log,
// its lease is lost before another instance can take the room.
func TestUnrenewableHolderStopsFirst(t *testing.T) {
	log := NewMemoryLog()
	a, b := newMem(t, log, "a"), newMem(t, log, "b")
	la, err := a.Acquire(context.Background(), "r")
	if err != nil {
		t.Fatal(err)
	}
	// a's renewals fail from now on, while b still reads the log; model
	// it as the whole log failing for writes, then b claims on recovery.
	log.SetDown(true)
	select {
	case <-la.Lost():
	case <-time.After(5 * testTTL):
		t.Fatal("a kept a lease it could not renew")
	}
	lostAt := time.Now()
	log.SetDown(false)
	lb := acquireWithin(t, b, "r", 5*testTTL)
	if !closed(la.Lost()) {
		t.Fatal("b holds the lease while a has not given it up")
	}
	_ = lb
	t.Logf("a gave up; b took over %v later", time.Since(lostAt).Round(time.Millisecond))
}

// TestFirstClaimWins applies racing claims directly: of two claims with the
// next epoch, the first in log order wins, on every instance.
func TestFirstClaimWins(t *testing.T) {
	enc := func(holder string, epoch int64, released bool) []byte {
		b, _ := json.Marshal(record{Holder: holder, Instance: holder, Epoch: epoch, TTLMS: 10000, Released: released})
		return b
	}
	tests := []struct {
		name string
		recs [][]byte
		want string
	}{
		{"first seen", [][]byte{enc("x", 7, false)}, "x"},
		{"renewal", [][]byte{enc("x", 1, false), enc("x", 1, false)}, "x"},
		{"race", [][]byte{enc("x", 1, false), enc("y", 2, false), enc("z", 2, false)}, "y"},
		{"stale epoch", [][]byte{enc("x", 3, false), enc("y", 3, false), enc("y", 2, false)}, "x"},
		{"skipped epoch", [][]byte{enc("x", 1, false), enc("y", 3, false)}, "x"},
		{"release then claim", [][]byte{enc("x", 1, false), enc("x", 1, true), enc("y", 2, false)}, "y"},
		{"loser renews", [][]byte{enc("x", 1, false), enc("y", 2, false), enc("x", 1, false)}, "y"},
		{"garbage", [][]byte{enc("x", 1, false), []byte("{"), []byte(`{"holder":"q"}`)}, "x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := newManager(Config{Instance: "me"})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range tc.recs {
				m.apply("lease/r", r, time.Now())
			}
			if got := m.leases["lease/r"].rec.Holder; got != tc.want {
				t.Errorf("holder %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSessionRecord(t *testing.T) {
	log := NewMemoryLog()
	a := newMem(t, log, "a")
	if _, ok := a.Session("r"); ok {
		t.Fatal("session before any was stored")
	}
	la, err := a.Acquire(context.Background(), "r")
	if err != nil {
		t.Fatal(err)
	}
	opened := time.Now().UTC()
	if err := a.PutSession(context.Background(), "r", Session{ID: "ses_1", Opened: opened}); err != nil {
		t.Fatal(err)
	}
	_ = a.Close()
	_ = la
	b := newMem(t, log, "b") // reads the log from the start
	s, ok := b.Session("r")
	if !ok || s.ID != "ses_1" || !s.Opened.Equal(opened) || s.Ended {
		t.Fatalf("session as b reads it: %+v %v", s, ok)
	}
	if s.Held.IsZero() || time.Since(s.Held) > time.Minute {
		t.Errorf("Held %v: want the time of a's last lease record", s.Held)
	}
	lb := acquireWithin(t, b, "r", 5*testTTL)
	defer lb.Release(context.Background())
	s2, _ := b.Session("r")
	if !s2.Held.Equal(s.Held) {
		t.Errorf("after b took the lease, Held is %v, want a's last record %v", s2.Held, s.Held)
	}
}

func TestConfigChecks(t *testing.T) {
	for _, c := range []Config{{}, {Instance: "a", TTL: 10 * time.Second, Renew: 5 * time.Second}, {Instance: "a", TTL: time.Millisecond}} {
		if _, err := newManager(c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}
