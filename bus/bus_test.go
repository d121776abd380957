package bus

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"
)

func newEmbedded(t *testing.T, cfg EmbeddedConfig) *Embedded {
	t.Helper()
	e, err := NewEmbedded(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

func TestEmbeddedProduceConsumeCommit(t *testing.T) {
	t.Parallel()
	scenarioProduceConsumeCommit(t, newEmbedded(t, EmbeddedConfig{}).Cluster())
}

func TestEmbeddedRestartMidStream(t *testing.T) {
	t.Parallel()
	scenarioRestartMidStream(t, newEmbedded(t, EmbeddedConfig{}).Cluster(), 1000)
}

// TestOutOfOrderAcksCommitOnlyPrefix acknowledges a chosen subset of one
// partition's records and checks the group commits exactly up to the oldest
// unacknowledged one, and that a restarted member resumes there.
func TestOutOfOrderAcksCommitOnlyPrefix(t *testing.T) {
	t.Parallel()
	e := newEmbedded(t, EmbeddedConfig{})
	ctx, topic, group, p := setup(t, e.Cluster(), "ooo", 1)
	produceIDs(t, ctx, p, topic, "ev", 10)

	ackNow := map[int64]bool{0: true, 1: true, 2: true, 4: true, 5: true, 7: true, 9: true}
	var mu sync.Mutex
	var held []*Delivery
	var seen int
	_, stop1 := startConsumer(t, testConsumerConfig(e.Cluster(), group, topic), func(_ context.Context, d *Delivery) {
		mu.Lock()
		defer mu.Unlock()
		seen++
		if ackNow[d.Offset] {
			go d.Ack() // from another goroutine, as real handlers do
			return
		}
		held = append(held, d)
	})
	waitFor(t, "commit at offset 3", func() bool {
		return committed(t, ctx, e.Cluster(), group, topic, 1)[0] == 3
	})
	// Finishing 3 lets the commit jump over the finished 4 and 5 to 6.
	mu.Lock()
	held[0].Ack()
	mu.Unlock()
	waitFor(t, "commit at offset 6", func() bool {
		return committed(t, ctx, e.Cluster(), group, topic, 1)[0] == 6
	})
	if err := stop1(); err != nil {
		t.Fatal(err)
	}
	if got := committed(t, ctx, e.Cluster(), group, topic, 1)[0]; got != 6 {
		t.Fatalf("committed %d after close; want 6 (6 and 8 never finished)", got)
	}

	var again collector
	_, stop2 := startConsumer(t, testConsumerConfig(e.Cluster(), group, topic), again.handle)
	waitFor(t, "redelivery", func() bool { return again.len() >= 4 })
	_ = stop2()
	var offsets []int64
	for _, r := range again.records() {
		offsets = append(offsets, r.offset)
	}
	if want := []int64{6, 7, 8, 9}; !slices.Equal(offsets, want) {
		t.Fatalf("restarted member got offsets %v; want %v", offsets, want)
	}
}

// TestMaxInFlightBoundsUnacked checks that the handler never holds more
// unacknowledged records than MaxInFlight, and that fetching resumes as
// records are acknowledged.
func TestMaxInFlightBoundsUnacked(t *testing.T) {
	t.Parallel()
	e := newEmbedded(t, EmbeddedConfig{})
	ctx, topic, group, p := setup(t, e.Cluster(), "inflight", 3)
	const n, bound = 300, 5
	produceIDs(t, ctx, p, topic, "ev", n)

	var inflight, peak, total atomic.Int64
	release := make(chan *Delivery, n)
	cfg := testConsumerConfig(e.Cluster(), group, topic)
	cfg.MaxInFlight = bound
	_, stop := startConsumer(t, cfg, func(_ context.Context, d *Delivery) {
		now := inflight.Add(1)
		for {
			old := peak.Load()
			if now <= old || peak.CompareAndSwap(old, now) {
				break
			}
		}
		total.Add(1)
		release <- d
	})
	// Hold everything until the bound is reached, then acknowledge one at a
	// time: each acknowledgement lets exactly one more record in.
	waitFor(t, "the bound to fill", func() bool { return total.Load() == bound })
	for acked := 0; acked < n; acked++ {
		d := <-release
		inflight.Add(-1)
		d.Ack()
	}
	_ = stop()
	if peak.Load() > bound {
		t.Fatalf("peak unacknowledged records %d; want at most MaxInFlight %d", peak.Load(), bound)
	}
	if total.Load() != n {
		t.Fatalf("handled %d records; want %d", total.Load(), n)
	}
}

func TestRebalanceBetweenTwoMembers(t *testing.T) {
	t.Parallel()
	scenarioRebalance(t, newEmbedded(t, EmbeddedConfig{}).Cluster())
}

// TestAbandonedRecordsFreeTheirSlots: records never acknowledged when their
// generation ends must not keep holding MaxInFlight slots, or a member would
// stall for good after a rebalance.
func TestAbandonedRecordsFreeTheirSlots(t *testing.T) {
	t.Parallel()
	e := newEmbedded(t, EmbeddedConfig{})
	ctx, topic, group, p := setup(t, e.Cluster(), "abandon", 1)
	produceIDs(t, ctx, p, topic, "before", 5)

	// generation and partitions of a member's current generation (0 between
	// generations).
	generation := func(c *Consumer) (id int32, parts int) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.current == nil {
			return 0, 0
		}
		return c.current.id, len(c.current.parts)
	}
	var mu sync.Mutex
	var calls int
	after := map[string]bool{}
	cfg := testConsumerConfig(e.Cluster(), group, topic)
	cfg.MaxInFlight = 2
	c1, _ := startConsumer(t, cfg, func(_ context.Context, d *Delivery) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls <= 2 {
			return // abandoned: never acknowledged, and the handler does not keep it
		}
		if strings.HasPrefix(string(d.Value), "after") {
			after[string(d.Value)] = true
		}
		d.Ack()
	})
	waitFor(t, "the first member to fill its two slots", func() bool { mu.Lock(); defer mu.Unlock(); return calls == 2 })
	joined, _ := generation(c1)

	// A second member joins and leaves: two rebalances.
	var other collector
	c2, stop2 := startConsumer(t, testConsumerConfig(e.Cluster(), group, topic), other.handle)
	waitFor(t, "a rebalance", func() bool { g, _ := generation(c2); return g > joined })
	_ = stop2()
	waitFor(t, "the first member to get the partition back", func() bool {
		g, parts := generation(c1)
		return g > joined && parts == 1
	})

	want := produceIDs(t, ctx, p, topic, "after", 3)
	waitFor(t, "the first member to consume records produced after the rebalances", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(after) == len(want)
	})
}

// TestCloseCancelsBlockedHandler: a handler that waits on its context does
// not hang Close; the record it held is not committed.
func TestCloseCancelsBlockedHandler(t *testing.T) {
	t.Parallel()
	e := newEmbedded(t, EmbeddedConfig{})
	ctx, topic, group, p := setup(t, e.Cluster(), "blocked", 1)
	produceIDs(t, ctx, p, topic, "ev", 3)
	entered := make(chan struct{}, 3)
	_, stop := startConsumer(t, testConsumerConfig(e.Cluster(), group, topic), func(ctx context.Context, d *Delivery) {
		entered <- struct{}{}
		<-ctx.Done() // never acknowledges
	})
	select {
	case <-entered:
	case <-time.After(waitLong):
		t.Fatal("handler never called")
	}
	closed := make(chan error, 1)
	go func() { closed <- stop() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(waitLong):
		t.Fatal("Close hung on a handler blocked on its context")
	}
	// 0 (or nothing) is the position of the first record: it is delivered
	// again, since it never finished.
	if got := committed(t, ctx, e.Cluster(), group, topic, 1)[0]; got > 0 {
		t.Fatalf("committed offset %d; want 0 or none, the first record never finished", got)
	}
}

func TestDeadLetterRoundTrip(t *testing.T) {
	t.Parallel()
	e := newEmbedded(t, EmbeddedConfig{})
	ctx := testContext(t)
	src, dlq, group := uniqueName("src"), uniqueName("dlq"), uniqueName("g")
	ensureTopic(t, ctx, e.Cluster(), src, 2)
	ensureTopic(t, ctx, e.Cluster(), dlq, 1)
	p := newTestProducer(t, e.Cluster())
	orig := Message{Topic: src, Key: []byte("room-1"), Value: []byte(`{"event_id":"x"}`), Headers: []Header{{Key: "event_id", Value: []byte("x")}}}
	if err := p.Produce(ctx, orig); err != nil {
		t.Fatal(err)
	}

	got := make(chan Message, 2)
	startConsumer(t, testConsumerConfig(e.Cluster(), group, src, dlq), func(ctx context.Context, d *Delivery) {
		if d.Topic == src {
			if err := DeadLetter(ctx, p, dlq, d.Message, "policy: schema_version unsupported"); err != nil {
				t.Errorf("DeadLetter: %v", err)
				return
			}
		}
		d.Ack()
		got <- d.Message
	})
	var srcMsg, dead Message
	for range 2 {
		select {
		case m := <-got:
			if m.Topic == src {
				srcMsg = m
			} else {
				dead = m
			}
		case <-time.After(waitLong):
			t.Fatal("timed out waiting for the record and its dead letter")
		}
	}
	if string(dead.Key) != "room-1" || string(dead.Value) != string(orig.Value) {
		t.Fatalf("dead letter key/value %q/%q; want the original's", dead.Key, dead.Value)
	}
	want := map[string]string{
		"event_id":         "x",
		HeaderDLQReason:    "policy: schema_version unsupported",
		HeaderDLQTopic:     src,
		HeaderDLQPartition: strconv.Itoa(srcMsg.Partition),
		HeaderDLQOffset:    strconv.FormatInt(srcMsg.Offset, 10),
	}
	for k, v := range want {
		if got, ok := dead.Header(k); !ok || string(got) != v {
			t.Errorf("dead letter header %s = %q (present %v); want %q", k, got, ok, v)
		}
	}
	if ts, ok := dead.Header(HeaderDLQTime); !ok {
		t.Error("dead letter has no time header")
	} else if _, err := time.Parse(time.RFC3339Nano, string(ts)); err != nil {
		t.Errorf("dead letter time header: %v", err)
	}
}

// fakeSender records what it is asked to produce, or fails.
type fakeSender struct {
	msgs []Message
	err  error
}

func (f *fakeSender) Produce(_ context.Context, msgs ...Message) error {
	if f.err != nil {
		return f.err
	}
	f.msgs = append(f.msgs, msgs...)
	return nil
}

func TestDeadLetterKeepsOriginalAndReportsFailure(t *testing.T) {
	orig := Message{Topic: "t", Partition: 3, Offset: 42, Key: []byte("k"), Value: []byte("v"),
		Headers: []Header{{Key: "a", Value: []byte("1")}, {Key: HeaderDLQReason, Value: []byte("older hop")}}}
	f := &fakeSender{}
	if err := DeadLetter(t.Context(), f, "dlq", orig, "new reason"); err != nil {
		t.Fatal(err)
	}
	if len(f.msgs) != 1 {
		t.Fatalf("produced %d records; want 1", len(f.msgs))
	}
	dl := f.msgs[0]
	if dl.Topic != "dlq" || string(dl.Key) != "k" || string(dl.Value) != "v" {
		t.Fatalf("dead letter %+v; want topic dlq with the original key and value", dl)
	}
	if !slices.EqualFunc(dl.Headers[:2], orig.Headers, func(a, b Header) bool {
		return a.Key == b.Key && string(a.Value) == string(b.Value)
	}) {
		t.Fatalf("original headers not kept first: %+v", dl.Headers)
	}
	if r, _ := dl.Header(HeaderDLQReason); string(r) != "new reason" {
		t.Fatalf("reason header %q; want the newest reason to win", r)
	}
	if o, _ := dl.Header(HeaderDLQOffset); string(o) != "42" {
		t.Fatalf("offset header %q; want 42", o)
	}

	boom := errors.New("broker gone")
	err := DeadLetter(t.Context(), &fakeSender{err: boom}, "dlq", orig, "x")
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "t/3@42") {
		t.Fatalf("error %v; want it to wrap the cause and name the source record", err)
	}
	if err := DeadLetter(t.Context(), f, "", orig, "x"); err == nil {
		t.Fatal("DeadLetter to an empty topic succeeded")
	}
}

func TestEnsureTopicsIsIdempotentAndConfigures(t *testing.T) {
	t.Parallel()
	e := newEmbedded(t, EmbeddedConfig{})
	scenarioEnsureTopics(t, e.Cluster())
}

func scenarioEnsureTopics(t *testing.T, brokers Cluster) {
	ctx := testContext(t)
	state, events := uniqueName("state"), uniqueName("events")
	specs := []TopicSpec{
		{Name: state, Partitions: 2, Compact: true},
		{Name: events, Partitions: 5, Retention: 36 * time.Hour, Config: map[string]string{"max.message.bytes": "2097152"}},
	}
	for range 2 {
		if err := EnsureTopics(ctx, brokers, specs...); err != nil {
			t.Fatalf("EnsureTopics: %v", err)
		}
	}
	tr := brokers.transport("test", 0)
	defer tr.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(brokers.Brokers...), Transport: tr}
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{state, events}})
	if err != nil {
		t.Fatal(err)
	}
	parts := map[string]int{}
	for _, tp := range md.Topics {
		parts[tp.Name] = len(tp.Partitions)
	}
	if parts[state] != 2 || parts[events] != 5 {
		t.Fatalf("partitions %v; want %s:2 %s:5", parts, state, events)
	}
	res, err := client.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{
		{ResourceType: kafka.ResourceTypeTopic, ResourceName: state, ConfigNames: []string{"cleanup.policy"}},
		{ResourceType: kafka.ResourceTypeTopic, ResourceName: events, ConfigNames: []string{"retention.ms", "max.message.bytes"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range res.Resources {
		if r.Error != nil {
			t.Fatalf("describe %s: %v", r.ResourceName, r.Error)
		}
		for _, c := range r.ConfigEntries {
			got[r.ResourceName+" "+c.ConfigName] = c.ConfigValue
		}
	}
	want := map[string]string{
		state + " cleanup.policy":     "compact",
		events + " retention.ms":      strconv.FormatInt((36 * time.Hour).Milliseconds(), 10),
		events + " max.message.bytes": "2097152",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("config %s = %q; want %q", k, got[k], v)
		}
	}
}

func TestEnsureTopicsRejectsBadSpecs(t *testing.T) {
	ctx := t.Context()
	if err := EnsureTopics(ctx, Cluster{}, TopicSpec{Name: "x"}); err == nil {
		t.Error("no brokers: want an error")
	}
	if err := EnsureTopics(ctx, Plain("127.0.0.1:1"), TopicSpec{}); err == nil {
		t.Error("unnamed topic: want an error")
	}
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// silentBroker accepts connections and never answers, like a hung broker.
func silentBroker(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().String()
}

// TestDeadBrokerFailsClearly: nothing listens at the broker address, or a
// listener never answers; Produce and EnsureTopics must fail by the
// context's deadline with an error naming the broker.
func TestDeadBrokerFailsClearly(t *testing.T) {
	t.Parallel()
	for name, addr := range map[string]string{"closed port": closedPort(t), "silent broker": silentBroker(t)} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p, err := NewProducer(ProducerConfig{Cluster: Plain(addr)})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			checks := map[string]func(context.Context) error{
				"Produce": func(ctx context.Context) error {
					return p.Produce(ctx, Message{Topic: "t", Value: []byte("v")})
				},
				"EnsureTopics": func(ctx context.Context) error {
					return EnsureTopics(ctx, Plain(addr), TopicSpec{Name: "t"})
				},
			}
			for call, fn := range checks {
				ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
				done := make(chan error, 1)
				go func() { done <- fn(ctx) }()
				select {
				case err := <-done:
					if err == nil {
						t.Errorf("%s to a dead broker succeeded", call)
					} else if !strings.Contains(err.Error(), addr) {
						t.Errorf("%s error %q does not name the broker %s", call, err, addr)
					} else {
						t.Logf("%s: %v", call, err)
					}
				case <-time.After(waitLong):
					t.Fatalf("%s to a dead broker did not return long after its context deadline", call)
				}
				cancel()
			}
		})
	}
}

func TestProduceToUnknownTopicFails(t *testing.T) {
	t.Parallel()
	e := newEmbedded(t, EmbeddedConfig{})
	p, err := NewProducer(ProducerConfig{Cluster: e.Cluster(), MetadataTTL: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	err = p.Produce(ctx, Message{Topic: "no-such-topic", Value: []byte("v")})
	if !errors.Is(err, kafka.UnknownTopicOrPartition) || !strings.Contains(err.Error(), "no-such-topic") {
		t.Fatalf("error %v; want UnknownTopicOrPartition naming the topic", err)
	}
}

// TestProduceToTopicCreatedLater: kafka-go serves metadata from a cache, so
// a producer that looked before a topic existed does not see it until a
// refresh; Produce waits for that instead of failing.
func TestProduceToTopicCreatedLater(t *testing.T) {
	t.Parallel()
	e := newEmbedded(t, EmbeddedConfig{})
	ctx := testContext(t)
	early, late := uniqueName("early"), uniqueName("late")
	ensureTopic(t, ctx, e.Cluster(), early, 1)
	p := newTestProducer(t, e.Cluster())
	if err := p.Produce(ctx, Message{Topic: early, Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	ensureTopic(t, ctx, e.Cluster(), late, 1)
	if err := p.Produce(ctx, Message{Topic: late, Value: []byte("v")}); err != nil {
		t.Fatalf("Produce to a topic created after the producer's first metadata: %v", err)
	}
}

func TestProducerValidationAndClose(t *testing.T) {
	if _, err := NewProducer(ProducerConfig{}); err == nil {
		t.Error("NewProducer without brokers succeeded")
	}
	e := newEmbedded(t, EmbeddedConfig{})
	p := newTestProducer(t, e.Cluster())
	if err := p.Produce(t.Context(), Message{Value: []byte("v")}); err == nil {
		t.Error("Produce without a topic succeeded")
	}
	if err := p.Produce(t.Context()); err != nil {
		t.Errorf("Produce of nothing: %v", err)
	}
	_ = p.Close()
	_ = p.Close()
	if err := p.Produce(t.Context(), Message{Topic: "t", Value: []byte("v")}); !errors.Is(err, ErrClosed) {
		t.Errorf("Produce after Close: %v; want ErrClosed", err)
	}
}

// TestKeyPartitioningMatchesJavaClient checks keys land where the Java
// client's default partitioner (murmur2) puts them, using franz-go's
// implementation of it as the reference.
func TestKeyPartitioningMatchesJavaClient(t *testing.T) {
	t.Parallel()
	e := newEmbedded(t, EmbeddedConfig{})
	const parts, n = 7, 70
	ctx, topic, group, p := setup(t, e.Cluster(), "keys", parts)
	var msgs []Message
	for i := range n {
		key := fmt.Appendf(nil, "track-%d", i)
		msgs = append(msgs, Message{Topic: topic, Key: key, Value: key})
	}
	if err := p.Produce(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	ref := kgo.StickyKeyPartitioner(nil).ForTopic(topic)
	var col collector
	startConsumer(t, testConsumerConfig(e.Cluster(), group, topic), col.handle)
	waitFor(t, "all keys", func() bool { return col.len() == n })
	got := map[string]int{}
	for _, r := range col.records() {
		got[r.id] = r.partition // the value is the key
	}
	used := map[int]bool{}
	for key, part := range got {
		want := ref.Partition(&kgo.Record{Key: []byte(key)}, parts)
		if part != want {
			t.Errorf("key %s on partition %d; the Java partitioner says %d", key, part, want)
		}
		used[part] = true
	}
	if len(used) < 2 {
		t.Errorf("all keys on %d partition(s): the check is vacuous", len(used))
	}
}

func TestConsumerConfigValidation(t *testing.T) {
	ok := ConsumerConfig{Cluster: Plain("127.0.0.1:1"), GroupID: "g", Topics: []string{"t"}}
	tests := []struct {
		name   string
		mutate func(*ConsumerConfig)
		want   string
	}{
		{"valid", func(*ConsumerConfig) {}, ""},
		{"no brokers", func(c *ConsumerConfig) { c.Cluster = Cluster{} }, "no brokers"},
		{"no group", func(c *ConsumerConfig) { c.GroupID = "" }, "no group"},
		{"no topics", func(c *ConsumerConfig) { c.Topics = nil }, "no topics"},
		{"bad start", func(c *ConsumerConfig) { c.StartOffset = 5 }, "StartOffset"},
		{"drain too long", func(c *ConsumerConfig) { c.DrainTimeout = time.Minute }, "DrainTimeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.mutate(&cfg)
			_, err := NewConsumer(cfg)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("NewConsumer: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("NewConsumer error %v; want one mentioning %q", err, tt.want)
			}
		})
	}
}

func TestConsumerRunAndCloseContract(t *testing.T) {
	t.Parallel()
	e := newEmbedded(t, EmbeddedConfig{})
	c, err := NewConsumer(testConsumerConfig(e.Cluster(), uniqueName("g"), "t"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Run(t.Context(), nil); err == nil {
		t.Error("Run with a nil handler succeeded")
	}
	// Run returns nil when its context ends.
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx, func(context.Context, *Delivery) {}) }()
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
	case <-time.After(waitLong):
		t.Fatal("Run did not return after its context was cancelled")
	}
	_ = c.Close()
	_ = c.Close()
	if err := c.Run(t.Context(), func(context.Context, *Delivery) {}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Run after Close: %v; want ErrClosed", err)
	}
}

// TestEmbeddedDataDirSurvivesRestart: with DataDir, records and committed
// offsets survive closing and reopening the broker on the same folder.
func TestEmbeddedDataDirSurvivesRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := testContext(t)
	topic := uniqueName("persist")
	e1 := newEmbedded(t, EmbeddedConfig{DataDir: dir})
	ensureTopic(t, ctx, e1.Cluster(), topic, 1)
	p := newTestProducer(t, e1.Cluster())
	want := produceIDs(t, ctx, p, topic, "ev", 5)
	_ = p.Close()
	_ = e1.Close()

	e2 := newEmbedded(t, EmbeddedConfig{DataDir: dir})
	var col collector
	startConsumer(t, testConsumerConfig(e2.Cluster(), uniqueName("g"), topic), col.handle)
	waitFor(t, "the persisted records", func() bool { return col.len() >= len(want) })
	if got := col.ids(); !slices.Equal(got, want) {
		t.Fatalf("after restart consumed %v; want %v", got, want)
	}
}

// TestDeadLetterBoundsHugeRecords: a record as large as the broker takes
// is dead-lettered with the start of its value and the whole value's size
// and SHA-256, so the dead letter (headers added) still fits.
func TestDeadLetterBoundsHugeRecords(t *testing.T) {
	huge := bytes.Repeat([]byte("x"), 1<<20)
	huge[len(huge)-1] = 'y'
	f := &fakeSender{}
	if err := DeadLetter(t.Context(), f, "dlq", Message{Topic: "t", Value: huge}, strings.Repeat("r", 10_000)); err != nil {
		t.Fatal(err)
	}
	dl := f.msgs[0]
	sum := sha256.Sum256(huge)
	size, _ := dl.Header(HeaderDLQValueSize)
	sha, _ := dl.Header(HeaderDLQValueSHA256)
	reason, _ := dl.Header(HeaderDLQReason)
	if len(dl.Value) != MaxDeadLetterValue || !bytes.Equal(dl.Value, huge[:MaxDeadLetterValue]) || string(size) != "1048576" || string(sha) != hex.EncodeToString(sum[:]) || len(reason) > 1024 {
		t.Fatalf("dead letter of a 1 MiB record: %d value bytes, size %q, sha %q, reason %d bytes", len(dl.Value), size, sha, len(reason))
	}
	small := Message{Topic: "t", Value: []byte("v")}
	if err := DeadLetter(t.Context(), f, "dlq", small, "r"); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.msgs[1].Header(HeaderDLQValueSHA256); ok || string(f.msgs[1].Value) != "v" {
		t.Fatalf("a small record's dead letter was changed: %+v", f.msgs[1])
	}
}
