package bus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// ErrClosed is returned by Produce after Close, and by Consumer.Run after
// Close.
var ErrClosed = errors.New("bus: closed")

// Sender is what needs to publish records: the dead-letter helper, and stages
// that want a fake in unit tests.
type Sender interface {
	Produce(ctx context.Context, msgs ...Message) error
}

var _ Sender = (*Producer)(nil)

// ProducerConfig configures a Producer. Zero values take the defaults named
// on each field.
type ProducerConfig struct {
	// Cluster is where the brokers are and how to reach them. Required.
	Cluster Cluster
	// BatchTimeout is how long a partially filled batch waits for more
	// records before it is sent. Default 5 ms: kafka-go's own default of
	// 1 s would be paid on every hop of the pipeline.
	BatchTimeout time.Duration
	// BatchSize is the number of records that sends a batch at once.
	// Default 100.
	BatchSize int
	// BatchBytes caps a batch's size; a single larger record is refused.
	// Default 1 MiB, which is also the broker's default message.max.bytes.
	BatchBytes int64
	// WriteTimeout bounds one produce request to the broker. Default 10 s.
	WriteTimeout time.Duration
	// MaxAttempts is how often a batch is tried before Produce fails.
	// Default 5. The caller's context bounds the whole call regardless.
	MaxAttempts int
	// MetadataTTL is how long kafka-go trusts its cached cluster metadata.
	// A topic created after this producer first looked (by EnsureTopics or
	// anyone else) is unknown to it until the next refresh, so Produce
	// retries an unknown topic for up to MetadataTTL before failing.
	// Default 5 s.
	MetadataTTL time.Duration
	// ClientID names this client in the broker's logs and quotas.
	// Default "earshot".
	ClientID string
	// Logger receives kafka-go's retry reports. Default slog.Default().
	Logger *slog.Logger
}

// Producer publishes records synchronously: Produce returns once all
// in-sync replicas have them (acks=all). Keys are mapped to partitions with
// murmur2 like the Java client's default partitioner, so other Kafka tools
// agree on which partition holds a key. Records without a key go to a random
// partition. Safe for concurrent use; concurrent calls share batches.
type Producer struct {
	w                *kafka.Writer
	cluster          Cluster
	unknownTopicWait time.Duration
	once             sync.Once
}

// NewProducer builds a Producer. It does not contact the brokers: the first
// Produce does, and reports an unreachable cluster.
func NewProducer(cfg ProducerConfig) (*Producer, error) {
	if err := cfg.Cluster.check(); err != nil {
		return nil, fmt.Errorf("bus: producer: %w", err)
	}
	if cfg.BatchTimeout <= 0 {
		cfg.BatchTimeout = 5 * time.Millisecond
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 100
	}
	if cfg.BatchBytes <= 0 {
		cfg.BatchBytes = 1 << 20
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
	}
	if cfg.MetadataTTL <= 0 {
		cfg.MetadataTTL = 5 * time.Second
	}
	if cfg.ClientID == "" {
		cfg.ClientID = "earshot"
	}
	info, errs := kafkaLoggers(orDefault(cfg.Logger), "bus.producer")
	w := &kafka.Writer{
		Addr:         kafka.TCP(cfg.Cluster.Brokers...),
		Balancer:     &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: cfg.BatchTimeout,
		BatchSize:    cfg.BatchSize,
		BatchBytes:   cfg.BatchBytes,
		WriteTimeout: cfg.WriteTimeout,
		ReadTimeout:  cfg.WriteTimeout,
		MaxAttempts:  cfg.MaxAttempts,
		// An own transport, so Close releases this producer's connections
		// and not those of every kafka-go user in the process.
		Transport:   cfg.Cluster.transport(cfg.ClientID, cfg.MetadataTTL),
		Logger:      info,
		ErrorLogger: errs,
	}
	return &Producer{w: w, cluster: cfg.Cluster, unknownTopicWait: cfg.MetadataTTL}, nil
}

// Produce writes msgs and returns when the brokers have acknowledged every
// one of them (acks=all), or with an error naming the topics and brokers.
// When it fails, some of the records may have been written anyway (the
// outcome of a timed-out request is unknown): retrying is at least once,
// which consumers absorb by deduplicating on the event ID. ctx bounds the
// whole call, including retries and metadata look-ups.
func (p *Producer) Produce(ctx context.Context, msgs ...Message) error {
	if len(msgs) == 0 {
		return nil
	}
	kms := make([]kafka.Message, len(msgs))
	for i := range msgs {
		if msgs[i].Topic == "" {
			return fmt.Errorf("bus: produce: record %d has no topic", i)
		}
		kms[i] = msgs[i].toKafka()
	}
	err := p.writeWaitingForTopics(ctx, kms)
	if err == nil {
		return nil
	}
	if errors.Is(err, io.ErrClosedPipe) {
		return fmt.Errorf("bus: produce: %w", ErrClosed)
	}
	return fmt.Errorf("bus: produce %d record(s) to %s via brokers %s: %w",
		len(msgs), topicList(msgs), p.cluster, p.cluster.refused(flattenWriteErrors(err), "write to", topicList(msgs)))
}

// writeWaitingForTopics writes kms, retrying while a topic is missing from
// kafka-go's metadata cache, which refreshes only every MetadataTTL. kafka-go
// reports that before batching anything, so the retry cannot duplicate.
func (p *Producer) writeWaitingForTopics(ctx context.Context, kms []kafka.Message) error {
	give := time.Now().Add(p.unknownTopicWait)
	for {
		err := p.w.WriteMessages(ctx, kms...)
		var kerr kafka.Error
		if err == nil || !errors.As(err, &kerr) || kerr != kafka.UnknownTopicOrPartition || time.Now().After(give) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Close sends what in-flight Produce calls have batched, waits for them to
// return, and releases the connections. Later calls fail with ErrClosed.
// It is idempotent.
func (p *Producer) Close() error {
	p.once.Do(func() { _ = p.w.Close() })
	return nil
}

func topicList(msgs []Message) string {
	var ts []string
	for i := range msgs {
		if !slices.Contains(ts, msgs[i].Topic) {
			ts = append(ts, msgs[i].Topic)
		}
	}
	return strings.Join(ts, ",")
}

// flattenWriteErrors turns kafka-go's per-record WriteErrors (which has no
// Unwrap) into a join of its distinct causes, so errors.Is works on the
// result (for example with kafka.UnknownTopicOrPartition).
func flattenWriteErrors(err error) error {
	var we kafka.WriteErrors
	if !errors.As(err, &we) {
		return err
	}
	var distinct []error
	seen := map[string]bool{}
	for _, e := range we {
		if e == nil || seen[e.Error()] {
			continue
		}
		seen[e.Error()] = true
		distinct = append(distinct, e)
	}
	if len(distinct) == 0 {
		return err
	}
	return fmt.Errorf("%d of %d record(s) failed: %w", we.Count(), len(we), errors.Join(distinct...))
}
