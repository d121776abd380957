package bus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// AppenderConfig configures an Appender.
type AppenderConfig struct {
	// Cluster is where the brokers are and how to reach them. Required.
	Cluster Cluster
	// Topic is the one topic appended to. Required; it must exist.
	Topic string
	// ClientID names the client in the brokers' logs (default
	// "earshot-appender").
	ClientID string
	// MaxAttempts is how often one record is tried before Append fails
	// (default 3). The caller's context bounds the whole call regardless.
	MaxAttempts int
}

// Appender writes one record at a time to a topic and says where it
// landed: for state kept in a compacted topic, whose writer reads its own
// record back (with [LogReader.Follow]) before acting on it, as the room
// leases do. Keys map to partitions with murmur2, as with [Producer], so
// both agree on a key's partition; writes are acknowledged by every replica
// in sync (acks=all). Use Producer for throughput. Safe for concurrent use.
type Appender struct {
	cfg    AppenderConfig
	client *kafka.Client
	tr     *kafka.Transport
	bal    kafka.Murmur2Balancer

	mu     sync.Mutex
	parts  []int // the topic's partitions, sorted; nil until looked up
	closed bool
}

// NewAppender builds an Appender. It does not contact the brokers: the
// first Append does.
func NewAppender(cfg AppenderConfig) (*Appender, error) {
	if cfg.Topic == "" {
		return nil, errors.New("bus: appender: Topic is required")
	}
	if err := cfg.Cluster.check(); err != nil {
		return nil, fmt.Errorf("bus: appender: %w", err)
	}
	if cfg.ClientID == "" {
		cfg.ClientID = "earshot-appender"
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 3
	}
	tr := cfg.Cluster.transport(cfg.ClientID, time.Second)
	return &Appender{
		cfg:    cfg,
		tr:     tr,
		client: &kafka.Client{Addr: kafka.TCP(cfg.Cluster.Brokers...), Timeout: 30 * time.Second, Transport: tr},
	}, nil
}

// Append writes one record (a nil value is a tombstone) and returns its
// partition and offset once every replica in sync has it. A failed attempt
// is retried; when an attempt's outcome is unknown (a timeout), the record
// may be written twice, so readers must apply records idempotently.
func (a *Appender) Append(ctx context.Context, key, value []byte) (partition int, offset int64, err error) {
	for attempt := 1; ; attempt++ {
		partition, offset, err = a.try(ctx, key, value)
		if err == nil || errors.Is(err, ErrClosed) || attempt >= a.cfg.MaxAttempts || ctx.Err() != nil || !retriable(err) {
			break
		}
		a.forget()
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(attempt) * 100 * time.Millisecond):
		}
	}
	if err != nil {
		return 0, 0, fmt.Errorf("bus: append to %s via brokers %s: %w", a.cfg.Topic, a.cfg.Cluster, a.cfg.Cluster.refused(err, "write to", a.cfg.Topic))
	}
	return partition, offset, nil
}

func (a *Appender) try(ctx context.Context, key, value []byte) (int, int64, error) {
	parts, err := a.partitions(ctx)
	if err != nil {
		return 0, 0, err
	}
	p := a.bal.Balance(kafka.Message{Key: key}, parts...)
	res, err := a.client.Produce(ctx, &kafka.ProduceRequest{
		Topic:        a.cfg.Topic,
		Partition:    p,
		RequiredAcks: kafka.RequireAll,
		Records:      kafka.NewRecordReader(kafka.Record{Time: time.Now(), Key: kafka.NewBytes(key), Value: kafka.NewBytes(value)}),
	})
	if err != nil {
		return 0, 0, err
	}
	if res.Error != nil {
		return 0, 0, fmt.Errorf("partition %d: %w", p, res.Error)
	}
	return p, res.BaseOffset, nil
}

// partitions returns the topic's partitions, looking them up once.
func (a *Appender) partitions(ctx context.Context) ([]int, error) {
	a.mu.Lock()
	parts, closed := a.parts, a.closed
	a.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if parts != nil {
		return parts, nil
	}
	md, err := a.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{a.cfg.Topic}})
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	for _, t := range md.Topics {
		if t.Name != a.cfg.Topic {
			continue
		}
		if errors.Is(t.Error, kafka.UnknownTopicOrPartition) {
			return nil, fmt.Errorf("%w %s", ErrUnknownTopic, t.Name)
		}
		if t.Error != nil {
			return nil, t.Error
		}
		for _, p := range t.Partitions {
			parts = append(parts, p.ID)
		}
	}
	if len(parts) == 0 {
		return nil, fmt.Errorf("%w %s (no partitions)", ErrUnknownTopic, a.cfg.Topic)
	}
	slices.Sort(parts)
	a.mu.Lock()
	a.parts = parts
	a.mu.Unlock()
	return parts, nil
}

// forget drops the partition list, so the next attempt looks it up again
// (a leader moved, or partitions were added).
func (a *Appender) forget() {
	a.mu.Lock()
	a.parts = nil
	a.mu.Unlock()
}

// Close releases the connections; later Appends fail with ErrClosed. It is
// idempotent.
func (a *Appender) Close() error {
	a.mu.Lock()
	a.closed = true
	a.mu.Unlock()
	a.tr.CloseIdleConnections()
	return nil
}

// retriable tells errors worth another attempt: the brokers' temporary
// errors (a leader election) and the network's.
func retriable(err error) bool {
	var ke kafka.Error
	if errors.As(err, &ke) {
		return ke.Temporary()
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, ErrUnknownTopic)
}
