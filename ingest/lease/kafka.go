package lease

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// KafkaConfig configures a Manager on a Kafka topic.
type KafkaConfig struct {
	Config
	// Brokers are the bootstrap addresses. Required.
	Brokers []string
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
// Manager that keeps applying it. It uses franz-go rather than kafka-go
// (bus): it needs a group-less reader of every partition and the offset of
// each produced record, which kgo gives directly.
func NewKafka(ctx context.Context, cfg KafkaConfig) (*Manager, error) {
	if len(cfg.Brokers) == 0 || cfg.Topic == "" {
		return nil, errors.New("lease: kafka: Brokers and Topic are required")
	}
	if cfg.CatchUp <= 0 {
		cfg.CatchUp = 30 * time.Second
	}
	m, err := newManager(cfg.Config)
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID("earshot-lease"),
		kgo.ConsumeTopics(cfg.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(time.Second),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)), // murmur2, as bus and the Java client
		kgo.RecordRetries(3),
	)
	if err != nil {
		return nil, fmt.Errorf("lease: kafka client: %w", err)
	}
	be := &kafkaBackend{m: m, cl: cl, topic: cfg.Topic, applied: map[int32]int64{}, changed: make(chan struct{})}
	m.be = be
	lctx, cancel := context.WithTimeout(ctx, cfg.CatchUp)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(lctx, cfg.Topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		cl.Close()
		return nil, fmt.Errorf("lease: end offsets of %s: %w", cfg.Topic, err)
	}
	pollCtx, stop := context.WithCancel(context.Background())
	be.stop = stop
	be.wg.Add(1)
	go be.poll(pollCtx)
	var waits []position
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			waits = append(waits, position{partition: int(o.Partition), offset: o.Offset - 1})
		}
	})
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
	cl    *kgo.Client
	topic string
	stop  context.CancelFunc
	wg    sync.WaitGroup

	mu      sync.Mutex
	applied map[int32]int64 // next offset to apply, per partition
	changed chan struct{}   // closed and replaced when applied moves
}

func (b *kafkaBackend) poll(ctx context.Context) {
	defer b.wg.Done()
	for ctx.Err() == nil {
		fs := b.cl.PollFetches(ctx)
		if fs.IsClientClosed() {
			return
		}
		fs.EachError(func(t string, p int32, err error) {
			if ctx.Err() == nil && !errors.Is(err, context.Canceled) {
				b.m.log.Warn("state topic fetch failed", "partition", p, "error", err)
			}
		})
		fs.EachRecord(func(r *kgo.Record) {
			b.m.apply(string(r.Key), r.Value, r.Timestamp)
			b.mu.Lock()
			b.applied[r.Partition] = r.Offset + 1
			close(b.changed)
			b.changed = make(chan struct{})
			b.mu.Unlock()
		})
	}
}

func (b *kafkaBackend) append(ctx context.Context, key string, value []byte) (position, error) {
	r, err := b.cl.ProduceSync(ctx, &kgo.Record{Topic: b.topic, Key: []byte(key), Value: value}).First()
	if err != nil {
		return position{}, err
	}
	return position{partition: int(r.Partition), offset: r.Offset}, nil
}

func (b *kafkaBackend) waitApplied(ctx context.Context, pos position) error {
	for {
		b.mu.Lock()
		done := b.applied[int32(pos.partition)] > pos.offset
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
	b.cl.Close()
	b.wg.Wait()
	return nil
}

// DeleteTopic deletes a topic, best effort: tests use it to remove the
// state topics they create.
func DeleteTopic(brokers []string, topic string) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _ = kadm.NewClient(cl).DeleteTopics(ctx, topic)
}
