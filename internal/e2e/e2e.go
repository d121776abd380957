// Package e2e has the pieces end-to-end tests assemble on the test bed: a
// run's own Kafka topics (and a bus.Sender that writes the event package's
// topic names to them), a fresh bucket, a Janus VideoRoom created for the
// run, the ingest stage wired as `earshot ingest` wires it, and speaker
// bots whose publish logs are the ground truth.
//
// Everything a run creates is its own (topics, bucket, room, pseudonym
// secret), so runs of different packages on the shared test bed do not see
// each other's records.
package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/storage"
	"github.com/earshot/earshot/storage/storagetest"
)

// RandHex returns n random bytes in hex.
func RandHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Tail returns the last n lines of s.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// --- Topics ------------------------------------------------------------------

// Topics maps the event package's topic names to a run's own.
type Topics map[string]string

// NewTopics creates, on brokers, one topic per event topic named
// "<prefix>-<random>.<name without earshot.>", with the given partitions,
// and waits until they accept records. They are not deleted: Kafka's
// retention removes them.
func NewTopics(t testing.TB, brokers bus.Cluster, prefix string, partitions int) Topics {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run := prefix + "-" + RandHex(4)
	tp := Topics{}
	var specs []bus.TopicSpec
	for _, s := range event.Topics(partitions) {
		name := run + "." + strings.TrimPrefix(s.Name, "earshot.")
		tp[s.Name] = name
		specs = append(specs, bus.TopicSpec{Name: name, Partitions: s.Partitions, Compact: s.Compact, Retention: time.Hour})
	}
	if err := bus.EnsureTopics(ctx, brokers, specs...); err != nil {
		t.Fatalf("create topics: %v", err)
	}
	// A topic just created may answer "not leader" for a moment.
	for _, s := range specs {
		var err error
		for try := 0; try < 100; try++ {
			if _, err = EndOffsets(ctx, brokers, s.Name); err == nil {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("topic %s: %v", s.Name, err)
		}
	}
	return tp
}

// Of returns the run's name for an event topic (the name itself when it is
// not one).
func (tp Topics) Of(name string) string {
	if n, ok := tp[name]; ok {
		return n
	}
	return name
}

// Sender returns a bus.Sender that writes to the run's topics.
func (tp Topics) Sender(s bus.Sender) bus.Sender { return renamer{s: s, tp: tp} }

type renamer struct {
	s  bus.Sender
	tp Topics
}

func (r renamer) Produce(ctx context.Context, msgs ...bus.Message) error {
	out := make([]bus.Message, len(msgs))
	for i, m := range msgs {
		m.Topic = r.tp.Of(m.Topic)
		out[i] = m
	}
	return r.s.Produce(ctx, out...)
}

// --- Reading Kafka -------------------------------------------------------------

// Record is one record as stored.
type Record struct {
	Topic     string
	Partition int
	Offset    int64
	Time      time.Time // the producer's timestamp
	Key       []byte
	Value     []byte
	Headers   []bus.Header
}

// EndOffsets returns, per partition, the offset the next record of topic
// will get.
func EndOffsets(ctx context.Context, brokers bus.Cluster, topic string) (map[int]int64, error) {
	ranges, err := (bus.LogReader{Cluster: brokers, ClientID: "earshot-e2e"}).Offsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	out := map[int]int64{}
	for p, r := range ranges {
		out[p] = r.End
	}
	return out, nil
}

// ReadTopic reads topic from the offsets in from (0 for partitions not in
// it) to its current end.
func ReadTopic(ctx context.Context, brokers bus.Cluster, topic string, from map[int]int64) ([]Record, error) {
	msgs, err := (bus.LogReader{Cluster: brokers, ClientID: "earshot-e2e"}).ReadTopic(ctx, topic, from)
	if err != nil {
		return nil, err
	}
	out := make([]Record, len(msgs))
	for i, m := range msgs {
		out[i] = Record{Topic: topic, Partition: m.Partition, Offset: m.Offset, Time: m.Time, Key: m.Key, Value: m.Value, Headers: m.Headers}
	}
	return out, nil
}

// Events reads every event of a run topic, with the record's timestamp;
// records that are not valid events fail the test.
func Events(t testing.TB, brokers bus.Cluster, topic string) ([]*event.Envelope, []Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	recs, err := ReadTopic(ctx, brokers, topic, nil)
	if err != nil {
		t.Fatalf("read %s: %v", topic, err)
	}
	evs := make([]*event.Envelope, 0, len(recs))
	for _, r := range recs {
		e, err := event.Decode(r.Value)
		if err != nil {
			t.Fatalf("%s@%d/%d: invalid event: %v", topic, r.Partition, r.Offset, err)
		}
		evs = append(evs, e)
	}
	return evs, recs
}

// --- Object store ------------------------------------------------------------

// FreshBucket returns the configuration of a new bucket on versitygw,
// removed with its objects when the test ends.
func FreshBucket(t testing.TB, prefix string) storage.S3Config {
	t.Helper()
	return storagetest.S3Bucket(t, prefix)
}

// WaitFor polls cond until it holds, or fails the test after within.
func WaitFor(t testing.TB, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
