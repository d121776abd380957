package policy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

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
	// Brokers are the bootstrap addresses.
	Brokers []string
	// ClientID names the client in the broker's logs (default
	// "earshot-policy-rebuild").
	ClientID string
}

var _ Tail = (*KafkaTail)(nil)

// Read implements Tail.
func (t *KafkaTail) Read(ctx context.Context, topic string, partition int, since time.Time, before int64, fn func(bus.Message) error) error {
	if len(t.Brokers) == 0 {
		return errors.New("policy: tail: no brokers")
	}
	id := t.ClientID
	if id == "" {
		id = "earshot-policy-rebuild"
	}
	tr := &kafka.Transport{ClientID: id, DialTimeout: 5 * time.Second, MetadataTTL: time.Second}
	defer tr.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(t.Brokers...), Transport: tr}
	parts := []int{partition}
	if partition < 0 {
		md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
		if err != nil {
			return fmt.Errorf("policy: tail %s: metadata: %w", topic, err)
		}
		parts = parts[:0]
		for _, tp := range md.Topics {
			if tp.Name != topic {
				continue
			}
			if tp.Error != nil {
				if errors.Is(tp.Error, kafka.UnknownTopicOrPartition) {
					return nil // nothing written yet
				}
				return fmt.Errorf("policy: tail %s: %w", topic, tp.Error)
			}
			for _, p := range tp.Partitions {
				parts = append(parts, p.ID)
			}
		}
	}
	for _, p := range parts {
		from, end, err := t.bounds(ctx, client, topic, p, since)
		if err != nil {
			return err
		}
		if before >= 0 && before < end {
			end = before
		}
		if from >= end {
			continue
		}
		if err := t.readRange(ctx, topic, p, from, end, fn); err != nil {
			return err
		}
	}
	return nil
}

// bounds returns the first offset at or after since and the end of the
// log. Separate requests: a broker refuses one partition twice in one
// ListOffsets request.
func (t *KafkaTail) bounds(ctx context.Context, client *kafka.Client, topic string, p int, since time.Time) (from, end int64, err error) {
	ask := func(r kafka.OffsetRequest) (kafka.PartitionOffsets, error) {
		res, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: {r}}})
		if err != nil {
			return kafka.PartitionOffsets{}, fmt.Errorf("policy: tail %s/%d: list offsets: %w", topic, p, err)
		}
		for _, po := range res.Topics[topic] {
			if po.Partition == p {
				if po.Error != nil {
					return po, fmt.Errorf("policy: tail %s/%d: list offsets: %w", topic, p, po.Error)
				}
				return po, nil
			}
		}
		return kafka.PartitionOffsets{}, fmt.Errorf("policy: tail %s/%d: no offsets in the answer", topic, p)
	}
	last, err := ask(kafka.LastOffsetOf(p))
	if err != nil {
		return 0, 0, err
	}
	end = last.LastOffset
	at, err := ask(kafka.TimeOffsetOf(p, since))
	if err != nil {
		return 0, 0, err
	}
	from = end // no record at or after since
	for off := range at.Offsets {
		if off >= 0 {
			from = off
		}
	}
	return from, end, nil
}

func (t *KafkaTail) readRange(ctx context.Context, topic string, p int, from, end int64, fn func(bus.Message) error) error {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: t.Brokers, Topic: topic, Partition: p,
		MinBytes: 1, MaxBytes: 4 << 20, MaxWait: time.Second, ReadLagInterval: -1,
	})
	defer r.Close()
	if err := r.SetOffset(from); err != nil {
		return fmt.Errorf("policy: tail %s/%d: %w", topic, p, err)
	}
	for {
		km, err := r.FetchMessage(ctx)
		if err != nil {
			return fmt.Errorf("policy: tail %s/%d at %d of [%d, %d): %w", topic, p, from, from, end, err)
		}
		if km.Offset >= end {
			return nil
		}
		m := bus.Message{Topic: km.Topic, Key: km.Key, Value: km.Value, Partition: km.Partition, Offset: km.Offset, Time: km.Time}
		for _, h := range km.Headers {
			m.Headers = append(m.Headers, bus.Header{Key: h.Key, Value: h.Value})
		}
		if err := fn(m); err != nil {
			return err
		}
		if km.Offset >= end-1 {
			return nil
		}
		from = km.Offset + 1
	}
}
