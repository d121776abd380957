package bus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

func TestEmbeddedOffsetsAndReadRange(t *testing.T) {
	scenarioOffsetsAndReadRange(t, newEmbedded(t, EmbeddedConfig{}).Cluster())
}

func TestKafkaOffsetsAndReadRange(t *testing.T) {
	t.Parallel()
	scenarioOffsetsAndReadRange(t, testKafka(t))
}

// scenarioOffsetsAndReadRange: Offsets reports each partition's retained
// range, ReadRange yields exactly the records of a sub-range in order
// (keys, values, headers intact), OffsetAt finds records by time, and an
// unknown topic is ErrUnknownTopic.
func scenarioOffsetsAndReadRange(t *testing.T, brokers Cluster) {
	ctx := testContext(t)
	topic := uniqueName("earshot.test.offsets")
	if err := EnsureTopics(ctx, brokers, TopicSpec{Name: topic, Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	p := newTestProducer(t, brokers)
	// Keys "a" (5 records) and "b" (3): the balancer puts each key on one
	// partition, which one is its business.
	var msgs []Message
	for i := range 8 {
		key := "a"
		if i >= 5 {
			key = "b"
		}
		msgs = append(msgs, Message{Topic: topic, Key: []byte(key), Value: []byte(fmt.Sprint(i)), Headers: []Header{{Key: "n", Value: []byte(fmt.Sprint(i))}}})
	}
	if err := p.Produce(ctx, msgs[:4]...); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // so that the later records have later timestamps
	mark := time.Now()
	time.Sleep(20 * time.Millisecond)
	if err := p.Produce(ctx, msgs[4:]...); err != nil {
		t.Fatal(err)
	}
	lr := LogReader{Cluster: brokers}
	ranges, err := lr.Offsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if len(ranges) != 2 {
		t.Fatalf("Offsets: %v, want 2 partitions", ranges)
	}
	read := func(part int, from, end int64) []string {
		t.Helper()
		var got []string
		err := lr.ReadRange(ctx, topic, part, from, end, func(m Message) error {
			if n, _ := m.Header("n"); string(n) != string(m.Value) || m.Partition != part || m.Topic != topic {
				t.Errorf("record %+v: header or coordinates wrong", m)
			}
			got = append(got, string(m.Key)+string(m.Value))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	var all []string
	for part, r := range ranges {
		if r.First != 0 {
			t.Errorf("partition %d: first %d, want 0", part, r.First)
		}
		full := read(part, r.First, r.End)
		if int64(len(full)) != r.End {
			t.Fatalf("partition %d: %d records in [0, %d)", part, len(full), r.End)
		}
		all = append(all, full...)
		if r.End > 2 {
			if got, want := read(part, 1, r.End-1), full[1:r.End-1]; fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("partition %d: ReadRange [1, %d) = %v, want %v", part, r.End-1, got, want)
			}
		}
		// OffsetAt(mark): the first record produced after mark (values 4-7).
		wantAt := r.End
		for i, v := range full {
			if v[1:] >= "4" {
				wantAt = int64(i)
				break
			}
		}
		if at, err := lr.OffsetAt(ctx, topic, part, mark); err != nil || at != wantAt {
			t.Errorf("partition %d (%v): OffsetAt(mark) = %d, %v; want %d", part, full, at, err, wantAt)
		}
		if at, err := lr.OffsetAt(ctx, topic, part, time.Now().Add(time.Hour)); err != nil || at != r.End {
			t.Errorf("partition %d: OffsetAt(future) = %d, %v; want the end %d", part, at, err, r.End)
		}
	}
	slices.Sort(all)
	if want := []string{"a0", "a1", "a2", "a3", "a4", "b5", "b6", "b7"}; !slices.Equal(all, want) {
		t.Fatalf("every partition read whole: %v, want %v", all, want)
	}
	stop := errors.New("stop")
	n := 0
	if err := lr.ReadRange(ctx, topic, 0, 0, ranges[0].End, func(Message) error { n++; return stop }); ranges[0].End > 0 && (!errors.Is(err, stop) || n != 1) {
		t.Errorf("ReadRange with a failing fn: %v after %d records; want fn's error after 1", err, n)
	}
	if _, err := lr.Offsets(ctx, uniqueName("earshot.test.never")); !errors.Is(err, ErrUnknownTopic) {
		t.Errorf("Offsets of an unknown topic: %v, want ErrUnknownTopic", err)
	}
}

func TestEmbeddedFollow(t *testing.T) { scenarioFollow(t, newEmbedded(t, EmbeddedConfig{}).Cluster()) }

func TestKafkaFollow(t *testing.T) {
	t.Parallel()
	scenarioFollow(t, testKafka(t))
}

// scenarioFollow: Follow yields what is there, then what is written while
// it waits, in order, and returns ctx's error when stopped.
func scenarioFollow(t *testing.T, brokers Cluster) {
	ctx := testContext(t)
	topic := uniqueName("earshot.test.follow")
	if err := EnsureTopics(ctx, brokers, TopicSpec{Name: topic, Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	p := newTestProducer(t, brokers)
	produce := func(vals ...string) {
		t.Helper()
		for _, v := range vals {
			if err := p.Produce(ctx, Message{Topic: topic, Key: []byte("k"), Value: []byte(v)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	produce("0", "1")
	fctx, stop := context.WithCancel(ctx)
	got := make(chan Message, 16)
	done := make(chan error, 1)
	go func() {
		done <- LogReader{Cluster: brokers}.Follow(fctx, topic, 0, 1, func(m Message) error { got <- m; return nil })
	}()
	next := func() Message {
		t.Helper()
		select {
		case m := <-got:
			return m
		case <-time.After(30 * time.Second):
			t.Fatal("Follow gave nothing in 30 s")
			return Message{}
		}
	}
	if m := next(); string(m.Value) != "1" || m.Offset != 1 {
		t.Fatalf("first record %q at %d, want \"1\" at 1", m.Value, m.Offset)
	}
	produce("2", "3")
	for _, want := range []string{"2", "3"} {
		if m := next(); string(m.Value) != want {
			t.Fatalf("followed %q, want %q", m.Value, want)
		}
	}
	stop()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Follow stopped with %v, want context.Canceled", err)
	}
}
