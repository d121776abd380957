package lease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/internal/bustest"
	"github.com/earshot/earshot/internal/testbed"
)

// stateTopic creates a compacted topic of its own for one test.
func stateTopic(t *testing.T, brokers bus.Cluster) string {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := "earshot-lease-test-" + hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := bus.EnsureTopics(ctx, brokers, bus.TopicSpec{Name: name, Partitions: 3, Compact: true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = bus.DeleteTopics(ctx, brokers, name)
	})
	return name
}

func newKafka(t *testing.T, brokers bus.Cluster, topic, instance string) *Manager {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err := NewKafka(ctx, KafkaConfig{Config: Config{Instance: instance, TTL: 2 * time.Second, Renew: 500 * time.Millisecond}, Cluster: brokers, Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// TestKafkaLease runs the lease protocol on the test bed's Kafka: one
// holder at a time, takeover after a crash, and a restarted instance that
// takes its lease back at once; the session record survives in the topic.
func TestKafkaLease(t *testing.T) { leaseScenario(t, bustest.Kafka(t)) }

// TestEmbeddedKafkaLease runs the same protocol on the in-process broker
// that `earshot run` uses by default.
func TestEmbeddedKafkaLease(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e, err := bus.NewEmbedded(ctx, bus.EmbeddedConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	leaseScenario(t, e.Cluster())
}

func leaseScenario(t *testing.T, brokers bus.Cluster) {
	topic := stateTopic(t, brokers)
	ctx := context.Background()
	a := newKafka(t, brokers, topic, "inst-a")
	b := newKafka(t, brokers, topic, "inst-b")

	la, err := a.Acquire(ctx, "room1")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.PutSession(ctx, "room1", Session{ID: "ses_x", Opened: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	// b sees a's claim once it has read it; until a stops, b never wins.
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if _, err := b.Acquire(ctx, "room1"); !errors.Is(err, ErrHeld) {
			t.Fatalf("b acquired a lease a renews: %v", err)
		}
	}
	if closed(la.Lost()) {
		t.Fatal("a lost its lease while renewing")
	}
	s, ok := b.Session("room1")
	if !ok || s.ID != "ses_x" {
		t.Fatalf("b reads session %+v, %v", s, ok)
	}

	// a dies without releasing: b takes over after the TTL.
	_ = a.Close()
	lb := acquireWithin(t, b, "room1", 20*time.Second)

	// b restarts (a new process, same instance name): it takes the lease
	// back at once and the old incarnation is told.
	b2 := newKafka(t, brokers, topic, "inst-b")
	lb2, err := b2.Acquire(ctx, "room1")
	if err != nil {
		t.Fatalf("restarted b: %v", err)
	}
	select {
	case <-lb.Lost():
	case <-time.After(10 * time.Second):
		t.Fatal("b's old incarnation still believes it holds the lease")
	}
	// A clean release lets a third instance in at once.
	if err := lb2.Release(ctx); err != nil {
		t.Fatal(err)
	}
	c := newKafka(t, brokers, topic, "inst-c")
	if _, err := c.Acquire(ctx, "room1"); err != nil {
		t.Fatalf("c after release: %v", err)
	}
}

// TestKafkaLeaseFollowsAcrossBrokerRestart: when the broker goes away and
// comes back (same address and data), a running Manager keeps reading the
// state topic: it sees a claim made after the restart.
func TestKafkaLeaseFollowsAcrossBrokerRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := bus.EmbeddedConfig{Port: testbed.FreePort(t), DataDir: t.TempDir()}
	e1, err := bus.NewEmbedded(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	topic := stateTopic(t, e1.Cluster())
	a := newKafka(t, e1.Cluster(), topic, "inst-a")
	if _, err := a.Acquire(ctx, "room1"); err != nil {
		t.Fatal(err)
	}
	_ = e1.Close()
	e2, err := bus.NewEmbedded(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e2.Close() })

	b := newKafka(t, e2.Cluster(), topic, "inst-b")
	if _, err := b.Acquire(ctx, "room1"); !errors.Is(err, ErrHeld) {
		t.Fatalf("b acquired room1, held by a before the restart: %v", err)
	}
	if _, err := b.Acquire(ctx, "room2"); err != nil {
		t.Fatal(err)
	}
	// a's readers failed while the broker was away; once they are back, a
	// sees b's claim.
	deadline := time.Now().Add(30 * time.Second)
	for {
		actx, acancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := a.Acquire(actx, "room2")
		acancel()
		if errors.Is(err, ErrHeld) {
			break
		}
		if err == nil {
			t.Fatal("a acquired room2, which b holds: a no longer reads the state topic")
		}
		if time.Now().After(deadline) {
			t.Fatalf("a does not see b's claim on room2 30 s after the broker came back: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
