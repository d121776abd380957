package bus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"
)

// ErrUnknownTopic is returned by Offsets for a topic the brokers do not
// know (nothing was written to it yet, or it was deleted).
var ErrUnknownTopic = errors.New("bus: unknown topic")

// LogReader reads a topic's log directly, without a consumer group or
// commits: for stages that rebuild state from what a topic retains, and
// for tests that check what was written.
type LogReader struct {
	// Cluster is where the brokers are and how to reach them.
	Cluster Cluster
	// ClientID names the client in the brokers' logs (default
	// "earshot-log-reader").
	ClientID string
}

// PartitionRange is what one partition retains: First is the offset of its
// oldest retained record, End the offset its next record will get (First
// == End: nothing retained).
type PartitionRange struct {
	First, End int64
}

// Offsets returns the retained range of every partition of topic, by
// partition: what readers that rebuild state from a topic (no consumer
// group) start from and stop at. A partition whose leader is still being
// settled (a topic created moments ago, a broker restarting) is asked
// again for up to 5 s.
func (l LogReader) Offsets(ctx context.Context, topic string) (map[int]PartitionRange, error) {
	give := time.Now().Add(5 * time.Second)
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		out, err := l.offsets(ctx, topic)
		if err == nil || !leaderMoving(err) || time.Now().Add(wait).After(give) {
			return out, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(wait):
		}
	}
}

// leaderMoving tells the errors a partition answers while its leadership
// is being settled.
func leaderMoving(err error) bool {
	return errors.Is(err, kafka.NotLeaderForPartition) || errors.Is(err, kafka.LeaderNotAvailable) ||
		errors.Is(err, kafka.FencedLeaderEpoch) || errors.Is(err, kafka.UnknownLeaderEpoch) || errors.Is(err, kafka.OffsetNotAvailable)
}

func (l LogReader) offsets(ctx context.Context, topic string) (map[int]PartitionRange, error) {
	c, done := l.client()
	defer done()
	md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("bus: offsets of %s: metadata: %w", topic, l.Cluster.refused(err, "describe", "topic "+topic))
	}
	var reqs []kafka.OffsetRequest
	for _, tp := range md.Topics {
		if tp.Name != topic {
			continue
		}
		if errors.Is(tp.Error, kafka.UnknownTopicOrPartition) {
			return nil, fmt.Errorf("%w %s", ErrUnknownTopic, topic)
		}
		if tp.Error != nil {
			return nil, fmt.Errorf("bus: offsets of %s: %w", topic, l.Cluster.refused(tp.Error, "describe", "topic "+topic))
		}
		for _, p := range tp.Partitions {
			reqs = append(reqs, kafka.FirstOffsetOf(p.ID), kafka.LastOffsetOf(p.ID))
		}
	}
	if len(reqs) == 0 {
		return nil, fmt.Errorf("%w %s (no partitions)", ErrUnknownTopic, topic)
	}
	res, err := c.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("bus: offsets of %s: %w", topic, err)
	}
	out := map[int]PartitionRange{}
	for _, po := range res.Topics[topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("bus: offsets of %s/%d: %w", topic, po.Partition, po.Error)
		}
		out[po.Partition] = PartitionRange{First: po.FirstOffset, End: po.LastOffset}
	}
	return out, nil
}

// OffsetAt returns the offset of the first record of topic/partition whose
// timestamp is at or after t, or the partition's end when there is none.
func (l LogReader) OffsetAt(ctx context.Context, topic string, partition int, t time.Time) (int64, error) {
	c, done := l.client()
	defer done()
	// Separate requests: a broker refuses one partition twice in one
	// ListOffsets request.
	ask := func(r kafka.OffsetRequest) (kafka.PartitionOffsets, error) {
		res, err := c.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: {r}}})
		if err != nil {
			return kafka.PartitionOffsets{}, fmt.Errorf("bus: offset of %s/%d: %w", topic, partition, err)
		}
		for _, po := range res.Topics[topic] {
			if po.Partition == partition {
				if po.Error != nil {
					return po, fmt.Errorf("bus: offset of %s/%d: %w", topic, partition, po.Error)
				}
				return po, nil
			}
		}
		return kafka.PartitionOffsets{}, fmt.Errorf("bus: offset of %s/%d: no offsets in the answer", topic, partition)
	}
	at, err := ask(kafka.TimeOffsetOf(partition, t))
	if err != nil {
		return 0, err
	}
	for off := range at.Offsets {
		if off >= 0 {
			return off, nil
		}
	}
	last, err := ask(kafka.LastOffsetOf(partition))
	if err != nil {
		return 0, err
	}
	return last.LastOffset, nil
}

// ReadRange calls fn, in offset order, for every record of topic/partition
// whose offset is in [from, end), and returns once it has passed end-1 or
// fn fails. Offsets may have holes (compaction, transaction markers).
// It fetches directly, without a consumer group or commits.
func (l LogReader) ReadRange(ctx context.Context, topic string, partition int, from, end int64, fn func(Message) error) error {
	return l.read(ctx, topic, partition, from, end, false, fn)
}

// ReadTopic returns the records of every partition of topic, in partition
// then offset order, from the offsets in from (a partition not in it, or
// an offset before the oldest retained record, starts at the oldest) up
// to the end each partition had when ReadTopic was called: for checking
// what a topic holds.
func (l LogReader) ReadTopic(ctx context.Context, topic string, from map[int]int64) ([]Message, error) {
	ranges, err := l.Offsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	var out []Message
	for _, p := range slices.Sorted(maps.Keys(ranges)) {
		r := ranges[p]
		err := l.ReadRange(ctx, topic, p, max(from[p], r.First), r.End, func(m Message) error {
			out = append(out, m)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Follow calls fn, in offset order, for every record of topic/partition
// from offset from on, waiting for new ones, until ctx ends (it then
// returns ctx's error), a fetch fails or fn fails. A caller that must keep
// following restarts it from the offset after the last record it was
// given.
func (l LogReader) Follow(ctx context.Context, topic string, partition int, from int64, fn func(Message) error) error {
	err := l.read(ctx, topic, partition, from, math.MaxInt64, true, fn)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// read is ReadRange; with follow it waits at the log's end for more.
func (l LogReader) read(ctx context.Context, topic string, partition int, from, end int64, follow bool, fn func(Message) error) error {
	c, done := l.client()
	defer done()
	off := from
	for off < end {
		res, err := c.Fetch(ctx, &kafka.FetchRequest{Topic: topic, Partition: partition, Offset: off, MinBytes: 1, MaxBytes: 16 << 20, MaxWait: time.Second})
		if err == nil {
			err = res.Error
		}
		if err != nil {
			return fmt.Errorf("bus: fetch %s/%d at %d of [%d, %d): %w", topic, partition, off, from, end, l.Cluster.refused(err, "read", "topic "+topic))
		}
		before := off
		for off < end {
			r, err := res.Records.ReadRecord()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("bus: read %s/%d at %d: %w", topic, partition, off, err)
			}
			if r.Offset < off {
				continue // a batch starts before the offset asked for
			}
			if r.Offset >= end {
				return nil
			}
			m := Message{Topic: topic, Partition: partition, Offset: r.Offset, Time: r.Time}
			if r.Key != nil {
				if m.Key, err = kafka.ReadAll(r.Key); err != nil {
					return fmt.Errorf("bus: read %s/%d at %d: %w", topic, partition, r.Offset, err)
				}
			}
			if r.Value != nil {
				if m.Value, err = kafka.ReadAll(r.Value); err != nil {
					return fmt.Errorf("bus: read %s/%d at %d: %w", topic, partition, r.Offset, err)
				}
			}
			for _, h := range r.Headers {
				m.Headers = append(m.Headers, Header{Key: h.Key, Value: h.Value})
			}
			if err := fn(m); err != nil {
				return err
			}
			off = r.Offset + 1
		}
		if off == before {
			if res.HighWatermark > off {
				off++ // a hole: no record at this offset
				continue
			}
			if follow {
				continue // at the end: the fetch waited; ask again
			}
			return fmt.Errorf("bus: fetch %s/%d: stuck at %d of [%d, %d) (high watermark %d)", topic, partition, off, from, end, res.HighWatermark)
		}
	}
	return nil
}

// client is a plain client for metadata, offsets and fetches, with its
// own transport: kafka-go's default transport answers metadata from a
// cache shared by the whole process, which can predate a topic's creation.
// The caller calls done when finished.
//
// kafka-go's transport answers every request only after its own first
// metadata request, which it gives MetadataTTL to finish and whose failure
// it then returns to every call. So the TTL is the client's timeout: a
// TTL of 1 s failed every call while a loaded broker took longer than that
// to answer. A fresh transport per call means its cache is never older
// than the call anyway.
func (l LogReader) client() (c *kafka.Client, done func()) {
	id := l.ClientID
	if id == "" {
		id = "earshot-log-reader"
	}
	const timeout = 30 * time.Second
	tr := l.Cluster.transport(id, timeout)
	return &kafka.Client{Addr: kafka.TCP(l.Cluster.Brokers...), Timeout: timeout, Transport: tr}, tr.CloseIdleConnections
}
