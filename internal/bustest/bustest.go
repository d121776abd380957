// Package bustest has test doubles for the bus package's interfaces.
package bustest

import (
	"context"
	"sync"
	"testing"

	"github.com/earshot/earshot/bus"
)

// Capture is a bus.Sender that keeps every record it is given.
type Capture struct {
	mu   sync.Mutex
	msgs []bus.Message
}

var _ bus.Sender = (*Capture)(nil)

// Produce implements bus.Sender.
func (c *Capture) Produce(_ context.Context, msgs ...bus.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, msgs...)
	return nil
}

// All returns every record so far.
func (c *Capture) All() []bus.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]bus.Message(nil), c.msgs...)
}

// Topic returns the records sent to one topic, in order.
func (c *Capture) Topic(name string) []bus.Message {
	var out []bus.Message
	for _, m := range c.All() {
		if m.Topic == name {
			out = append(out, m)
		}
	}
	return out
}

// Preload starts an in-process broker (stopped when the test ends) with one
// single-partition topic holding msgs, and returns its brokers.
func Preload(t testing.TB, ctx context.Context, topic string, msgs ...bus.Message) []string {
	t.Helper()
	emb, err := bus.NewEmbedded(ctx, bus.EmbeddedConfig{Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emb.Close() })
	if err := bus.EnsureTopics(ctx, emb.Brokers(), bus.TopicSpec{Name: topic, Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	prod, err := bus.NewProducer(bus.ProducerConfig{Brokers: emb.Brokers()})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if err := prod.Produce(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	return emb.Brokers()
}
