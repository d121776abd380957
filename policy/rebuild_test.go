package policy

import (
	"context"
	"testing"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/bustest"
	"github.com/earshot/earshot/storage/crypt"
)

// TestRebuildEmbedded runs the restart scenario on the in-process broker.
func TestRebuildEmbedded(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	emb, err := bus.NewEmbedded(ctx, bus.EmbeddedConfig{Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	restartScenario(t, ctx, emb.Cluster(), "policy-rebuild-unit")
}

// TestIntegrationRebuildAfterRestart runs it on the test bed's Kafka.
func TestIntegrationRebuildAfterRestart(t *testing.T) {
	brokers := bustest.Kafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	restartScenario(t, ctx, brokers, "policy-helper-rebuild-"+time.Now().UTC().Format("150405.000000"))
}

// restartScenario: half a phone number, then a threat, go through one
// stage; it stops; a new stage (same group) gets the other half of the
// number and a re-transcription of the threat. The number must be found
// across the restart, the threat not alerted again.
func restartScenario(t *testing.T, ctx context.Context, brokers bus.Cluster, prefix string) {
	topics := Topics{Transcripts: prefix + ".transcripts", Alerts: prefix + ".alerts", DeadLetter: prefix + ".deadletter"}
	if err := bus.EnsureTopics(ctx, brokers,
		bus.TopicSpec{Name: topics.Transcripts, Partitions: 2, Retention: time.Hour},
		bus.TopicSpec{Name: topics.Alerts, Partitions: 2, Retention: time.Hour},
		bus.TopicSpec{Name: topics.DeadLetter, Partitions: 1, Retention: time.Hour}); err != nil {
		t.Fatal(err)
	}
	prod, err := bus.NewProducer(bus.ProducerConfig{Cluster: brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	keys := crypt.NewMemory()
	rec := func(s Segment, model string) bus.Message {
		m := transcript(t, keys, s, model)
		m.Topic = topics.Transcripts
		return m
	}
	tail := &KafkaTail{Cluster: brokers}
	alerts := func() []*event.Envelope {
		var out []*event.Envelope
		err := tail.Read(ctx, topics.Alerts, -1, time.Now().Add(-time.Hour), -1, func(m bus.Message) error {
			e, err := event.Decode(m.Value)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, e)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	run := func(until func() bool) {
		cons, err := bus.NewConsumer(bus.ConsumerConfig{Cluster: brokers, GroupID: prefix + "-policy", Topics: []string{topics.Transcripts}, Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		st, err := NewStage(StageConfig{
			Consumer: cons, Sender: prod, Policy: Fixed{P: mustDefault(t)}, Producer: event.Producer{Name: "t"}, Keys: keys,
			Logger: quiet(), Topics: topics, Rebuild: RebuildConfig{Tail: tail},
		})
		if err != nil {
			t.Fatal(err)
		}
		sctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- st.Run(sctx) }()
		deadline := time.Now().Add(2 * time.Minute)
		for !until() {
			if time.Now().After(deadline) {
				t.Fatalf("stage did not get there in 2 min; alerts so far: %d", len(alerts()))
			}
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(time.Second) // past a commit
		stop()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		_ = st.Close()
	}
	count := func(cat string) int {
		n := 0
		for _, e := range alerts() {
			var a event.Alert
			if err := e.DecodePayload(&a); err != nil {
				t.Fatal(err)
			}
			if a.Category == cat {
				n++
			}
		}
		return n
	}

	half := seg("", "p1_x", "trk_x", 0, "write down two oh two five five five", 0.9)
	threat := seg("", "p1_y", "trk_y", 5, "i will kill you", 0.9)
	if err := prod.Produce(ctx, rec(half, "tiny.en"), rec(threat, "tiny.en")); err != nil {
		t.Fatal(err)
	}
	run(func() bool { return count("abuse.threat") == 1 })
	if n := count("pii.phone"); n != 0 {
		t.Fatalf("half a number alerted: %d", n)
	}

	rest := seg("", "p1_x", "trk_x", 3, "oh one four three", 0.9)
	retranscribed := shifted(threat, "", 960)
	if err := prod.Produce(ctx, rec(rest, "tiny.en"), rec(retranscribed, "small.en")); err != nil {
		t.Fatal(err)
	}
	run(func() bool { return count("pii.phone") == 1 })
	time.Sleep(2 * time.Second)
	if n := count("abuse.threat"); n != 1 {
		t.Fatalf("after the restart the re-transcribed threat made %d alerts in all, want 1", n)
	}
	ids := map[string]bool{}
	for _, e := range alerts() {
		if ids[e.EventID] {
			t.Fatalf("alert %s raised twice", e.EventID)
		}
		ids[e.EventID] = true
	}
}
