package bus

// Scenarios shared by the embedded-broker tests and the integration tests on
// the real Kafka: each takes the brokers to run against.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// waitLong bounds every wait in these tests: generous, since a first group
// join on Kafka includes group.initial.rebalance.delay.ms.
const waitLong = 90 * time.Second

func uniqueName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*waitLong)
	t.Cleanup(cancel)
	return ctx
}

func newTestProducer(t *testing.T, brokers Cluster) *Producer {
	t.Helper()
	p, err := NewProducer(ProducerConfig{Cluster: brokers})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func testConsumerConfig(brokers Cluster, group string, topics ...string) ConsumerConfig {
	return ConsumerConfig{
		Cluster:           brokers,
		GroupID:           group,
		Topics:            topics,
		SessionTimeout:    10 * time.Second,
		HeartbeatInterval: time.Second,
		RebalanceTimeout:  15 * time.Second,
		DrainTimeout:      500 * time.Millisecond,
		JoinGroupBackoff:  500 * time.Millisecond,
	}
}

// startConsumer builds a consumer from cfg and runs it with h in the
// background; stop closes it and returns Run's error (also done at cleanup).
func startConsumer(t *testing.T, cfg ConsumerConfig, h Handler) (c *Consumer, stop func() error) {
	t.Helper()
	c, err := NewConsumer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- c.Run(context.Background(), h) }()
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			_ = c.Close()
			runErr = <-errc
		})
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return c, stop
}

// collector is a handler that records and acknowledges every delivery.
type collector struct {
	mu   sync.Mutex
	recs []record
}

func (col *collector) handle(_ context.Context, d *Delivery) {
	col.mu.Lock()
	col.recs = append(col.recs, recordOf(d))
	col.mu.Unlock()
	d.Ack()
}

func (col *collector) len() int {
	col.mu.Lock()
	defer col.mu.Unlock()
	return len(col.recs)
}

func (col *collector) records() []record {
	col.mu.Lock()
	defer col.mu.Unlock()
	return slices.Clone(col.recs)
}

// ids returns the IDs seen, sorted.
func (col *collector) ids() []string {
	var ids []string
	for _, r := range col.records() {
		ids = append(ids, r.id)
	}
	slices.Sort(ids)
	return ids
}

// record is what a test handler saw.
type record struct {
	id        string
	partition int
	offset    int64
}

func recordOf(d *Delivery) record {
	return record{id: string(d.Value), partition: d.Partition, offset: d.Offset}
}

// produceIDs produces n records whose value is a unique event ID and whose
// key is one of 37 tracks, so every partition gets records of several keys.
func produceIDs(t *testing.T, ctx context.Context, p *Producer, topic, prefix string, n int) []string {
	t.Helper()
	ids := make([]string, n)
	batch := make([]Message, 0, 100)
	for i := range n {
		ids[i] = fmt.Sprintf("%s-%05d", prefix, i)
		batch = append(batch, Message{
			Topic:   topic,
			Key:     fmt.Appendf(nil, "track-%d", i%37),
			Value:   []byte(ids[i]),
			Headers: []Header{{Key: "event_id", Value: []byte(ids[i])}},
		})
		if len(batch) == cap(batch) || i == n-1 {
			if err := p.Produce(ctx, batch...); err != nil {
				t.Fatalf("produce: %v", err)
			}
			batch = batch[:0]
		}
	}
	return ids
}

func ensureTopic(t *testing.T, ctx context.Context, brokers Cluster, topic string, partitions int) {
	t.Helper()
	if err := EnsureTopics(ctx, brokers, TopicSpec{Name: topic, Partitions: partitions, Retention: time.Hour}); err != nil {
		t.Fatalf("ensure topic: %v", err)
	}
}

// committed reads the group's committed offsets for topic from the broker.
func committed(t *testing.T, ctx context.Context, brokers Cluster, group, topic string, partitions int) map[int]int64 {
	t.Helper()
	tr := brokers.transport("test", 0)
	defer tr.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(brokers.Brokers...), Transport: tr}
	ps := make([]int, partitions)
	for i := range ps {
		ps[i] = i
	}
	res, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: ps}})
	if err != nil {
		t.Fatalf("offset fetch: %v", err)
	}
	out := map[int]int64{}
	if errors.Is(res.Error, kafka.GroupIdNotFound) {
		// Polled before the group's first join: nothing is committed yet.
		for _, p := range ps {
			out[p] = -1
		}
		return out
	}
	if res.Error != nil {
		t.Fatalf("offset fetch: %v", res.Error)
	}
	for _, p := range res.Topics[topic] {
		if p.Error != nil {
			t.Fatalf("offset fetch partition %d: %v", p.Partition, p.Error)
		}
		out[p.Partition] = p.CommittedOffset
	}
	return out
}

// setup gives a test a context, a fresh topic with partitions, a fresh
// group name and a producer, on brokers.
func setup(t *testing.T, brokers Cluster, prefix string, partitions int) (ctx context.Context, topic, group string, p *Producer) {
	t.Helper()
	ctx = testContext(t)
	topic, group = uniqueName(prefix), uniqueName(prefix+"-group")
	ensureTopic(t, ctx, brokers, topic, partitions)
	return ctx, topic, group, newTestProducer(t, brokers)
}

// waitFor polls cond until it holds or waitLong passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitLong, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// scenarioProduceConsumeCommit: records produced with acks=all come back
// through a consumer group, the group's committed offsets reach the end of
// every partition, and a second member of the group started afterwards sees
// only records produced after that.
func scenarioProduceConsumeCommit(t *testing.T, brokers Cluster) {
	const parts, n = 3, 200
	ctx, topic, group, p := setup(t, brokers, "earshot-test-pcc", parts)
	want := produceIDs(t, ctx, p, topic, "first", n)

	var first collector
	c1, stop1 := startConsumer(t, testConsumerConfig(brokers, group, topic), first.handle)
	waitFor(t, "all records", func() bool { return first.len() >= n })
	// Lag reaches zero once the commits caught up with the ends.
	waitFor(t, "lag 0 on every partition", func() bool {
		lags, err := c1.Lag(ctx)
		if err != nil || len(lags) != parts {
			return false
		}
		for _, l := range lags {
			if l.Lag != 0 {
				return false
			}
		}
		return true
	})
	if err := stop1(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if ids := first.ids(); !slices.Equal(ids, want) {
		t.Fatalf("consumed %d records; want each of the %d produced exactly once", len(ids), n)
	}
	ends := map[int]int64{}
	for _, r := range first.records() {
		ends[r.partition] = max(ends[r.partition], r.offset+1)
	}
	if c := committed(t, ctx, brokers, group, topic, parts); !mapsEqual(c, ends) {
		t.Fatalf("committed offsets %v; want the partition ends %v", c, ends)
	}

	// A new member resumes after the commits: it sees only the new records.
	more := produceIDs(t, ctx, p, topic, "second", 20)
	var second collector
	_, stop2 := startConsumer(t, testConsumerConfig(brokers, group, topic), second.handle)
	waitFor(t, "the new records", func() bool { return second.len() >= len(more) })
	_ = stop2()
	if got := second.ids(); !slices.Equal(got, more) {
		t.Fatalf("second member consumed %v; want exactly the records produced after the commit %v", got, more)
	}
}

func mapsEqual(a, b map[int]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// scenarioRestartMidStream: n records across partitions; a first consumer
// acknowledges in random order from several goroutines and is stopped
// mid-stream with some records unacknowledged; a second member of the same
// group then consumes the rest. Every record is seen at least once, exactly
// once after dedupe, and the second member resumes exactly at the first one's
// oldest unacknowledged record of each partition: nothing in the finished
// prefix is delivered again.
func scenarioRestartMidStream(t *testing.T, brokers Cluster, n int) {
	const parts = 4
	ctx, topic, group, p := setup(t, brokers, "earshot-test-restart", parts)
	all := produceIDs(t, ctx, p, topic, "ev", n)

	// First consumer: a pool of workers acknowledges after random pauses,
	// so acknowledgements arrive out of order. When it is stopped, the
	// records still queued or in work are never acknowledged (lost in the
	// "crash").
	var mu sync.Mutex
	var delivered1 []record
	acked1 := map[record]bool{}
	crashed := false
	work := make(chan *Delivery, 1024)
	var workers sync.WaitGroup
	for range 16 {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for d := range work {
				time.Sleep(time.Duration(mrand.IntN(20_000)) * time.Microsecond)
				mu.Lock()
				if !crashed {
					acked1[recordOf(d)] = true
					d.Ack()
				}
				mu.Unlock()
			}
		}()
	}
	cfg := testConsumerConfig(brokers, group, topic)
	cfg.MaxInFlight = 64
	_, stop1 := startConsumer(t, cfg, func(_ context.Context, d *Delivery) {
		mu.Lock()
		delivered1 = append(delivered1, recordOf(d))
		mu.Unlock()
		work <- d
	})
	waitFor(t, "the first consumer to be mid-stream with records in work", func() bool {
		mu.Lock()
		defer mu.Unlock()
		// From here on nothing more is acknowledged.
		crashed = len(acked1) >= n/2 && len(delivered1) > len(acked1)
		return crashed
	})
	if err := stop1(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	close(work)
	workers.Wait()

	// Where the second member must resume, per partition: the oldest record
	// delivered and not acknowledged, or after the last delivered.
	resume := map[int]int64{}
	for _, r := range delivered1 {
		if _, ok := resume[r.partition]; !ok {
			resume[r.partition] = -1
		}
	}
	for part := range resume {
		lowest, last := int64(-1), int64(-1)
		for _, r := range delivered1 {
			if r.partition != part {
				continue
			}
			last = max(last, r.offset)
			if !acked1[r] && (lowest < 0 || r.offset < lowest) {
				lowest = r.offset
			}
		}
		if lowest < 0 {
			lowest = last + 1
		}
		resume[part] = lowest
	}
	unacked := len(delivered1) - len(acked1)
	if unacked == 0 {
		t.Fatal("test setup: the first consumer acknowledged everything it was given; the restart proves nothing")
	}
	t.Logf("first consumer: %d delivered, %d acknowledged, resume points %v", len(delivered1), len(acked1), resume)

	// Second member of the same group: acknowledges everything.
	var second collector
	_, stop2 := startConsumer(t, testConsumerConfig(brokers, group, topic), second.handle)
	need := map[string]bool{}
	for _, id := range all {
		need[id] = true
	}
	for r := range acked1 {
		delete(need, r.id)
	}
	waitFor(t, "the second consumer to see every record the first did not finish", func() bool {
		for _, r := range second.records() {
			delete(need, r.id)
		}
		return len(need) == 0
	})
	if err := stop2(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	delivered2 := second.records()

	// At least once: finished by the first or delivered to the second.
	// Exactly once after dedupe, in the order the work was done.
	dd := NewDedupe(0)
	count := map[string]int{}
	var finished []record
	for _, r := range delivered1 {
		if acked1[r] {
			finished = append(finished, r)
		}
	}
	for _, r := range append(finished, delivered2...) {
		if dd.Add(r.id) {
			count[r.id]++
		}
	}
	for _, id := range all {
		if count[id] != 1 {
			t.Fatalf("event %s processed %d times after dedupe; want exactly once", id, count[id])
		}
	}
	if len(count) != n {
		t.Fatalf("%d distinct events processed; want %d", len(count), n)
	}

	// Redelivery is bounded by what was unfinished: the second member starts
	// exactly at each partition's resume point, never inside the finished
	// prefix.
	first2 := map[int]int64{}
	redelivered := 0
	for _, r := range delivered2 {
		if o, ok := first2[r.partition]; !ok || r.offset < o {
			first2[r.partition] = r.offset
		}
		if acked1[r] {
			redelivered++
		}
	}
	for part, want := range resume {
		got, ok := first2[part]
		if !ok {
			// Nothing left on this partition for the second member: the
			// resume point must then be the end of what was produced.
			continue
		}
		if got != want {
			t.Errorf("partition %d: second member started at offset %d; want the first one's oldest unfinished offset %d", part, got, want)
		}
	}
	t.Logf("second consumer: %d delivered, %d of them redeliveries of finished records (out-of-order acks past a gap), %d unfinished by the first",
		len(delivered2), redelivered, unacked)
}

// scenarioRebalance starts a second member mid-stream: the group
// rebalances, the first member commits its finished prefix at the end of its
// generation, records produced afterwards reach both members, and together
// they cover every record.
func scenarioRebalance(t *testing.T, brokers Cluster) {
	const parts, n = 4, 400
	ctx, topic, group, p := setup(t, brokers, "rebalance", parts)
	all := produceIDs(t, ctx, p, topic, "ev", n/2)

	var mu sync.Mutex
	seenBy := map[string]map[string]int{"a": {}, "b": {}}
	handler := func(member string) Handler {
		return func(_ context.Context, d *Delivery) {
			mu.Lock()
			seenBy[member][string(d.Value)]++
			mu.Unlock()
			go func() {
				time.Sleep(time.Millisecond)
				d.Ack()
			}()
		}
	}
	union := func() int {
		mu.Lock()
		defer mu.Unlock()
		u := map[string]bool{}
		for _, m := range seenBy {
			for id := range m {
				u[id] = true
			}
		}
		return len(u)
	}
	ca, _ := startConsumer(t, testConsumerConfig(brokers, group, topic), handler("a"))
	waitFor(t, "member a to consume", func() bool { return union() >= n/4 })

	cb, _ := startConsumer(t, testConsumerConfig(brokers, group, topic), handler("b"))
	waitFor(t, "both members to have partitions", func() bool {
		la, _ := ca.Lag(ctx)
		lb, _ := cb.Lag(ctx)
		return len(la) > 0 && len(lb) > 0 && len(la)+len(lb) == parts
	})
	all = append(all, produceIDs(t, ctx, p, topic, "late", n/2)...)
	waitFor(t, "every record", func() bool { return union() == len(all) })
	mu.Lock()
	defer mu.Unlock()
	late := map[string]int{}
	for member, ids := range seenBy {
		for id := range ids {
			if strings.HasPrefix(id, "late") {
				late[member]++
			}
		}
	}
	if late["a"] == 0 || late["b"] == 0 {
		t.Fatalf("records produced after the rebalance went to a:%d b:%d; want both members to get some", late["a"], late["b"])
	}
}
