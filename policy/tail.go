package policy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/earshot/earshot/bus"
)

// Tail reads back the recent records of a topic: what the stage rebuilds
// its windows and de-duplication state from after a restart.
type Tail interface {
	// Read calls fn, in offset order per partition, for each record of the
	// topic's partition (every partition when partition < 0) whose
	// timestamp is at or after since and whose offset is below before
	// (before < 0: up to the end of the log when Read was called).
	Read(ctx context.Context, topic string, partition int, since time.Time, before int64, fn func(bus.Message) error) error
}

// KafkaTail is a Tail on Kafka brokers.
type KafkaTail struct {
	// Cluster is where the brokers are and how to reach them.
	Cluster bus.Cluster
	// ClientID names the client in the broker's logs (default
	// "earshot-policy-rebuild").
	ClientID string
}

var _ Tail = (*KafkaTail)(nil)

// Read implements Tail.
func (t *KafkaTail) Read(ctx context.Context, topic string, partition int, since time.Time, before int64, fn func(bus.Message) error) error {
	if len(t.Cluster.Brokers) == 0 {
		return errors.New("policy: tail: no brokers")
	}
	id := t.ClientID
	if id == "" {
		id = "earshot-policy-rebuild"
	}
	lr := bus.LogReader{Cluster: t.Cluster, ClientID: id}
	ranges, err := lr.Offsets(ctx, topic)
	if errors.Is(err, bus.ErrUnknownTopic) {
		return nil // nothing written yet
	}
	if err != nil {
		return fmt.Errorf("policy: tail: %w", err)
	}
	parts := []int{partition}
	if partition < 0 {
		parts = slices.Sorted(maps.Keys(ranges))
	}
	for _, p := range parts {
		r, ok := ranges[p]
		if !ok {
			return fmt.Errorf("policy: tail %s: no partition %d", topic, p)
		}
		from, err := lr.OffsetAt(ctx, topic, p, since)
		if err != nil {
			return fmt.Errorf("policy: tail: %w", err)
		}
		end := r.End
		if before >= 0 && before < end {
			end = before
		}
		if err := lr.ReadRange(ctx, topic, p, max(from, r.First), end, fn); err != nil {
			return fmt.Errorf("policy: tail: %w", err)
		}
	}
	return nil
}
