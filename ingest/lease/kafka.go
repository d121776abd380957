package lease

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/earshot/earshot/bus"
)

// KafkaConfig configures a Manager on a Kafka topic.
type KafkaConfig struct {
	Config
	// Cluster is where the brokers are and how to reach them. Required.
	Cluster bus.Cluster
	// Topic is the compacted state topic (event.TopicState). Required; it
	// must exist.
	Topic string
	// CatchUp bounds the initial read of the topic (default 30 s): Acquire
	// is not answered before it ends, so a new instance never claims a room
	// without knowing who holds it.
	CatchUp time.Duration
}

// NewKafka reads the state topic from the start (all partitions, no
// consumer group) until it has caught up with the end, and returns a
// Manager that keeps applying it. Claims are written with a bus.Appender,
// which says at which offset each landed, so the writer can wait until it
// has read its own claim back. The topic's partition count must not change
// while instances run: a key's partition follows from it.
func NewKafka(ctx context.Context, cfg KafkaConfig) (*Manager, error) {
	if len(cfg.Cluster.Brokers) == 0 || cfg.Topic == "" {
		return nil, errors.New("lease: kafka: Cluster and Topic are required")
	}
	if cfg.CatchUp <= 0 {
		cfg.CatchUp = 30 * time.Second
	}
	m, err := newManager(cfg.Config)
	if err != nil {
		return nil, err
	}
	app, err := bus.NewAppender(bus.AppenderConfig{Cluster: cfg.Cluster, Topic: cfg.Topic, ClientID: "earshot-lease"})
	if err != nil {
		return nil, fmt.Errorf("lease: kafka: %w", err)
	}
	lr := bus.LogReader{Cluster: cfg.Cluster, ClientID: "earshot-lease"}
	lctx, cancel := context.WithTimeout(ctx, cfg.CatchUp)
	defer cancel()
	ranges, err := lr.Offsets(lctx, cfg.Topic)
	if err != nil {
		_ = app.Close()
		return nil, fmt.Errorf("lease: end offsets of %s: %w", cfg.Topic, err)
	}
	be := &kafkaBackend{m: m, app: app, lr: lr, topic: cfg.Topic, applied: map[int]int64{}, changed: make(chan struct{})}
	m.be = be
	pollCtx, stop := context.WithCancel(context.Background())
	be.stop = stop
	var waits []position
	for p, r := range ranges {
		be.wg.Add(1)
		go be.follow(pollCtx, p, r.First)
		if r.End > r.First {
			waits = append(waits, position{partition: p, offset: r.End - 1})
		}
	}
	for _, p := range waits {
		if err := be.waitApplied(lctx, p); err != nil {
			// A compacted-away tail (a deleted tombstone) leaves nothing to
			// read at end-1: go on with what was read.
			m.log.Warn("state topic not fully read at start-up; going on", "partition", p.partition, "error", err)
			break
		}
	}
	return m, nil
}

type kafkaBackend struct {
	m     *Manager
	app   *bus.Appender
	lr    bus.LogReader
	topic string
	stop  context.CancelFunc
	wg    sync.WaitGroup

	mu      sync.Mutex
	applied map[int]int64 // next offset to apply, per partition
	changed chan struct{} // closed and replaced when applied moves
}

// Bounds of the wait before a failed partition reader starts again.
const (
	refollowMin = 500 * time.Millisecond
	refollowMax = 5 * time.Second
)

// follow applies partition's records from offset from on until ctx ends,
// starting again after a failed fetch where it stopped.
func (b *kafkaBackend) follow(ctx context.Context, partition int, from int64) {
	defer b.wg.Done()
	next, wait := from, refollowMin
	for {
		err := b.lr.Follow(ctx, b.topic, partition, next, func(r bus.Message) error {
			b.m.apply(string(r.Key), r.Value, r.Time)
			b.mu.Lock()
			b.applied[partition] = r.Offset + 1
			close(b.changed)
			b.changed = make(chan struct{})
			b.mu.Unlock()
			next, wait = r.Offset+1, refollowMin
			return nil
		})
		if ctx.Err() != nil {
			return
		}
		b.m.log.Warn("state topic fetch failed", "partition", partition, "offset", next, "retry_in", wait, "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, refollowMax)
		// Retention may have removed the records from next on.
		if ranges, err := b.lr.Offsets(ctx, b.topic); err == nil && ranges[partition].First > next {
			next = ranges[partition].First
		}
	}
}

func (b *kafkaBackend) append(ctx context.Context, key string, value []byte) (position, error) {
	p, off, err := b.app.Append(ctx, []byte(key), value)
	if err != nil {
		return position{}, err
	}
	return position{partition: p, offset: off}, nil
}

func (b *kafkaBackend) waitApplied(ctx context.Context, pos position) error {
	for {
		b.mu.Lock()
		done := b.applied[pos.partition] > pos.offset
		ch := b.changed
		b.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("reading back %d@%d: %w", pos.partition, pos.offset, ctx.Err())
		}
	}
}

func (b *kafkaBackend) close() error {
	b.stop()
	b.wg.Wait()
	return b.app.Close()
}
