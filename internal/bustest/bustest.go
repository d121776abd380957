// Package bustest has test doubles for the bus package's interfaces.
package bustest

import (
	"context"
	"sync"
	"testing"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/internal/testbed"
)

// Kafka is the test bed's Kafka broker as the admin super user (TLS and
// SCRAM-SHA-512 when the test bed's broker has them), or ends the test as
// testbed.Require does.
func Kafka(tb testing.TB) bus.Cluster {
	tb.Helper()
	return Cluster(tb, testbed.KafkaServer(tb))
}

// Cluster turns a test bed endpoint into a bus.Cluster with its admin
// credentials.
func Cluster(tb testing.TB, e testbed.KafkaEndpoint) bus.Cluster {
	tb.Helper()
	c := bus.Plain(e.Brokers...)
	if e.CAFile == "" {
		return c
	}
	tlsCfg, err := bus.LoadTLS(e.CAFile, "", "", "")
	if err != nil {
		tb.Fatal(err)
	}
	c.TLS = tlsCfg
	return c.As(e.AdminUser, e.AdminPassword)
}

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
// single-partition topic holding msgs, and returns the broker.
func Preload(t testing.TB, ctx context.Context, topic string, msgs ...bus.Message) bus.Cluster {
	t.Helper()
	emb, err := bus.NewEmbedded(ctx, bus.EmbeddedConfig{Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emb.Close() })
	if err := bus.EnsureTopics(ctx, emb.Cluster(), bus.TopicSpec{Name: topic, Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	prod, err := bus.NewProducer(bus.ProducerConfig{Cluster: emb.Cluster()})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if err := prod.Produce(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	return emb.Cluster()
}
