package serve

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/testbed"
)

// TestTailRestartsAFailedReader: when the broker goes away, the alert
// index's partition reader fails; Health says so (and /healthz with it)
// and the reader is restarted from where it stopped, so the alert written
// once the broker is back reaches the index.
func TestTailRestartsAFailedReader(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir, port := t.TempDir(), testbed.FreePort(t)
	start := func() *bus.Embedded {
		t.Helper()
		b, err := bus.NewEmbedded(ctx, bus.EmbeddedConfig{Port: port, DataDir: dir, Partitions: 1})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b := start()
	if err := bus.EnsureTopics(ctx, b.Cluster(), bus.TopicSpec{Name: event.TopicAlerts, Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	produce := func(first int64) string {
		t.Helper()
		tl := event.Timeline{Track: "trk_t", FirstSample: first, LastSample: first + 100, Origin: time.Now(), Anchor: event.AnchorArrival}
		e, err := event.New(event.TypeAlert, event.Producer{Name: "t"}, nil, "r1_room", "ses_s", "p1_spk", &tl, event.Alert{Severity: "high", Category: "abuse.threat"}, "rule")
		if err != nil {
			t.Fatal(err)
		}
		v, err := e.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		p, err := bus.NewProducer(bus.ProducerConfig{Cluster: b.Cluster()})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		if err := p.Produce(ctx, bus.Message{Topic: event.TopicAlerts, Key: []byte("r1_room"), Value: v}); err != nil {
			t.Fatal(err)
		}
		return e.EventID
	}
	first := produce(0)
	var (
		mu   sync.Mutex
		seen = map[string]bool{}
	)
	tail := &Tail{Cluster: b.Cluster(), Topics: []string{event.TopicAlerts}, RetryMin: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond,
		Apply: func(e *event.Envelope) { mu.Lock(); defer mu.Unlock(); seen[e.EventID] = true }}
	tctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- tail.Run(tctx) }()
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within a minute", what)
			}
		}
	}
	has := func(id string) func() bool { return func() bool { mu.Lock(); defer mu.Unlock(); return seen[id] } }
	waitUntil("the first alert indexed", has(first))
	if err := tail.Health(); err != nil {
		t.Fatalf("health while reading: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	waitUntil("Health reporting the failed reader", func() bool { return tail.Health() != nil })
	b = start()
	defer b.Close()
	second := produce(1000)
	waitUntil("the alert written after the broker came back indexed", has(second))
	waitUntil("Health clear again", func() bool { return tail.Health() == nil })
	stop()
	if err := <-done; err != context.Canceled {
		t.Fatalf("Run: %v", err)
	}
}
