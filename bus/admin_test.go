package bus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// The topic admin, the Appender and ReadTopic run the same scenarios on
// the in-process broker and on the test bed's Kafka.

func TestEmbeddedTopicAdmin(t *testing.T) {
	scenarioTopicAdmin(t, newEmbedded(t, EmbeddedConfig{}).Cluster())
}

func TestKafkaTopicAdmin(t *testing.T) {
	t.Parallel()
	scenarioTopicAdmin(t, testKafka(t))
}

func TestEmbeddedAppender(t *testing.T) {
	scenarioAppender(t, newEmbedded(t, EmbeddedConfig{}).Cluster())
}

func TestKafkaAppender(t *testing.T) {
	t.Parallel()
	scenarioAppender(t, testKafka(t))
}

// scenarioTopicAdmin: partitions and configs read back as created; an
// incremental alter changes the named config and keeps the others; a
// missing topic is reported as ErrUnknownTopic; deleting removes the topic
// and tolerates a missing one.
func scenarioTopicAdmin(t *testing.T, brokers Cluster) {
	ctx := testContext(t)
	topic, missing := uniqueName("bus-admin"), uniqueName("bus-admin-missing")
	err := EnsureTopics(ctx, brokers, TopicSpec{Name: topic, Partitions: 2, Retention: time.Hour, Config: map[string]string{"max.message.bytes": "2000000"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = DeleteTopics(context.Background(), brokers, topic) })

	parts, err := TopicPartitions(ctx, brokers, topic)
	if err != nil || !slices.Equal(parts[topic], []int{0, 1}) {
		t.Fatalf("partitions of %s: %v, %v; want [0 1]", topic, parts, err)
	}
	all, err := TopicPartitions(ctx, brokers)
	if err != nil || len(all[topic]) != 2 {
		t.Fatalf("every topic's partitions: %s has %v (%v)", topic, all[topic], err)
	}
	if _, err := TopicPartitions(ctx, brokers, missing); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("partitions of a missing topic: %v, want ErrUnknownTopic", err)
	}

	want := func(name, value string) {
		t.Helper()
		cfgs, err := TopicConfigs(ctx, brokers, topic)
		if err != nil || cfgs[topic].Err != nil {
			t.Fatalf("configs of %s: %v %v", topic, err, cfgs[topic].Err)
		}
		if got := cfgs[topic].Configs[name]; got != value {
			t.Fatalf("%s of %s = %q, want %q", name, topic, got, value)
		}
	}
	want(ConfigRetentionMS, "3600000")
	want("max.message.bytes", "2000000")
	if err := AlterTopicConfigs(ctx, brokers, topic, map[string]string{ConfigRetentionMS: RetentionMS(3 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	want(ConfigRetentionMS, "10800000")
	want("max.message.bytes", "2000000")

	cfgs, err := TopicConfigs(ctx, brokers, topic, missing)
	if err != nil {
		t.Fatal(err)
	}
	if cfgs[topic].Err != nil || !errors.Is(cfgs[missing].Err, ErrUnknownTopic) {
		t.Fatalf("configs of an existing and a missing topic: errors %v, %v; want nil, ErrUnknownTopic", cfgs[topic].Err, cfgs[missing].Err)
	}
	if err := AlterTopicConfigs(ctx, brokers, missing, map[string]string{ConfigRetentionMS: "1000"}); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("altering a missing topic: %v, want ErrUnknownTopic", err)
	}

	if err := DeleteTopics(ctx, brokers, topic, missing); err != nil {
		t.Fatal(err)
	}
	// Deletion completes in the background on a real cluster.
	waitFor(t, "the deleted topic to be gone", func() bool {
		_, err := TopicPartitions(ctx, brokers, topic)
		return errors.Is(err, ErrUnknownTopic)
	})
}

// scenarioAppender: every appended record is found at the partition and
// offset Append returned, with its key, value and time; a key lands in the
// partition Producer puts it in; a nil value is a tombstone; ReadTopic
// starts where asked. A missing topic and a closed Appender fail clearly.
func scenarioAppender(t *testing.T, brokers Cluster) {
	ctx := testContext(t)
	topic := uniqueName("bus-appender")
	ensureTopic(t, ctx, brokers, topic, 3)
	t.Cleanup(func() { _ = DeleteTopics(context.Background(), brokers, topic) })
	a, err := NewAppender(AppenderConfig{Cluster: brokers, Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()

	type landed struct {
		key, value []byte
		partition  int
		offset     int64
	}
	var got []landed
	before := time.Now().Add(-time.Second)
	for i := range 30 {
		key, value := fmt.Appendf(nil, "key-%d", i%10), fmt.Appendf(nil, "value-%d", i)
		if i == 29 {
			value = nil
		}
		p, off, err := a.Append(ctx, key, value)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, landed{key, value, p, off})
	}
	lr := LogReader{Cluster: brokers}
	last := map[int]int64{}
	for i, l := range got {
		if prev, ok := last[l.partition]; ok && l.offset <= prev {
			t.Fatalf("record %d at %d/%d, after %d in the same partition", i, l.partition, l.offset, prev)
		}
		last[l.partition] = l.offset
		var read []Message
		if err := lr.ReadRange(ctx, topic, l.partition, l.offset, l.offset+1, func(m Message) error {
			read = append(read, m)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(read) != 1 || !bytes.Equal(read[0].Key, l.key) || !bytes.Equal(read[0].Value, l.value) || (read[0].Value == nil) != (l.value == nil) {
			t.Fatalf("record %d (%s=%q) not at %d/%d: read %+v", i, l.key, l.value, l.partition, l.offset, read)
		}
		if read[0].Time.Before(before) || read[0].Time.After(time.Now().Add(time.Second)) {
			t.Fatalf("record %d has time %v, written after %v", i, read[0].Time, before)
		}
	}

	// Producer and Appender agree on a key's partition.
	p := newTestProducer(t, brokers)
	for _, l := range got[:10] {
		if err := p.Produce(ctx, Message{Topic: topic, Key: l.key, Value: []byte("from-producer")}); err != nil {
			t.Fatal(err)
		}
	}
	from := map[int]int64{}
	for part, off := range last {
		from[part] = off + 1
	}
	msgs, err := lr.ReadTopic(ctx, topic, from)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 10 {
		t.Fatalf("ReadTopic after the appended records: %d records, want the producer's 10", len(msgs))
	}
	for _, m := range msgs {
		i := slices.IndexFunc(got, func(l landed) bool { return bytes.Equal(l.key, m.Key) })
		if string(m.Value) != "from-producer" || i < 0 || got[i].partition != m.Partition {
			t.Fatalf("producer put %s=%q in partition %d; the appender put that key in %d", m.Key, m.Value, m.Partition, got[i].partition)
		}
	}
	all, err := lr.ReadTopic(ctx, topic, nil)
	if err != nil || len(all) != 40 {
		t.Fatalf("ReadTopic from the start: %d records, %v; want 40", len(all), err)
	}

	b, err := NewAppender(AppenderConfig{Cluster: brokers, Topic: uniqueName("bus-appender-missing"), MaxAttempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, _, err := b.Append(ctx, []byte("k"), []byte("v")); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("append to a missing topic: %v, want ErrUnknownTopic", err)
	}
	_ = a.Close()
	if _, _, err := a.Append(ctx, []byte("k"), []byte("v")); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after Close: %v, want ErrClosed", err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestAppenderConfigValidation(t *testing.T) {
	for _, cfg := range []AppenderConfig{{}, {Cluster: Plain("127.0.0.1:1")}, {Topic: "t"}} {
		if _, err := NewAppender(cfg); err == nil {
			t.Errorf("NewAppender(%+v) succeeded", cfg)
		}
	}
}

func TestRetentionMS(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{-1, "-1"},
		{-time.Hour, "-1"},
		{0, "0"},
		{time.Millisecond, "1"},
		{1500 * time.Microsecond, "1"},
		{3 * time.Hour, "10800000"},
		{30 * 24 * time.Hour, "2592000000"},
	} {
		if got := RetentionMS(c.d); got != c.want {
			t.Errorf("RetentionMS(%v) = %q, want %q", c.d, got, c.want)
		}
	}
}

// TestClassify: the brokers' refusals match ErrNotAllowed, a missing topic
// ErrUnknownTopic, and the original error stays matchable.
func TestClassify(t *testing.T) {
	for _, c := range []struct {
		err                 error
		notAllowed, noTopic bool
	}{
		{kafka.TopicAuthorizationFailed, true, false},
		{kafka.ClusterAuthorizationFailed, true, false},
		{kafka.PolicyViolation, true, false},
		{kafka.UnsupportedVersion, true, false},
		{fmt.Errorf("wrapped: %w", kafka.InvalidRequest), true, false},
		{kafka.UnknownTopicOrPartition, false, true},
		{kafka.NotLeaderForPartition, false, false},
		{errors.New("connection refused"), false, false},
	} {
		got := classify(c.err)
		if errors.Is(got, ErrNotAllowed) != c.notAllowed || errors.Is(got, ErrUnknownTopic) != c.noTopic || !errors.Is(got, c.err) {
			t.Errorf("classify(%v) = %v: not allowed %v (want %v), unknown topic %v (want %v)", c.err, got, errors.Is(got, ErrNotAllowed), c.notAllowed, errors.Is(got, ErrUnknownTopic), c.noTopic)
		}
	}
	if classify(nil) != nil {
		t.Error("classify(nil) is not nil")
	}
}
