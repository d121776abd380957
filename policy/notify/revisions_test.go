package notify

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/bustest"
	"github.com/earshot/earshot/policy"
	"github.com/earshot/earshot/storage/crypt"
)

// TestRevisionsExactlyOnceEmbedded runs the revisions scenario on the
// in-process broker.
func TestRevisionsExactlyOnceEmbedded(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	emb, err := bus.NewEmbedded(ctx, bus.EmbeddedConfig{Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	revisionsScenario(t, ctx, emb.Cluster(), "revisions-unit")
}

// TestIntegrationRevisionsExactlyOnce runs it on the test bed's Kafka.
func TestIntegrationRevisionsExactlyOnce(t *testing.T) {
	brokers := bustest.Kafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	revisionsScenario(t, ctx, brokers, "revisions-"+time.Now().UTC().Format("150405.000000"))
}

// revisionsScenario: live transcripts of three speakers go through a
// policy stage, which stops; a new one (same group, rebuilding from Kafka)
// gets the settled revision and then the final one. Speaker a's threat is
// heard in every revision: one alert. Speaker b's was misheard live and is
// heard by the settled revision: one alert, marked settled. Speaker c's
// live alert is not in the settled or final text: one alert.updated per
// pass. A webhook sink gets each alert exactly once and no update; the
// rate limiter (on, 60 s) holds nothing back, since each speaker said one
// thing.
func revisionsScenario(t *testing.T, ctx context.Context, brokers bus.Cluster, prefix string) {
	topics := policy.Topics{Transcripts: prefix + ".transcripts", Alerts: prefix + ".alerts", DeadLetter: prefix + ".deadletter"}
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
	mem := crypt.NewMemory()
	pol, err := policy.Default()
	if err != nil {
		t.Fatal(err)
	}
	origin := time.Now().Add(-time.Minute).UTC()
	line := func(pass, speaker string, at float64, text string) bus.Message {
		proc := &event.Processing{Engine: "e", Model: "tiny.en"}
		if pass != policy.PassLive {
			proc.Options = map[string]string{"pass": pass}
		}
		first := int64(at * event.SampleRate)
		tl := event.Timeline{Track: "trk_" + speaker, FirstSample: first, LastSample: first + 3*event.SampleRate - 1, Origin: origin, Anchor: event.AnchorArrival}
		e, err := event.New(event.TypeTranscript, event.Producer{Name: "test"}, proc, "r1_rev", "ses_rev", "p1_"+speaker, &tl,
			event.TranscriptSegment{Language: "en", AvgLogProb: -0.2, NoSpeechProb: 0.01, Speech: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Seal(ctx, mem, event.TranscriptSegmentData{Text: text}); err != nil {
			t.Fatal(err)
		}
		b, err := e.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return bus.Message{Topic: topics.Transcripts, Key: []byte("r1_rev"), Value: b}
	}
	tail := &policy.KafkaTail{Cluster: brokers}
	read := func() (alerts []policy.AlertPayload, ids []string, updates []event.AlertUpdated) {
		err := tail.Read(ctx, topics.Alerts, -1, time.Now().Add(-time.Hour), -1, func(m bus.Message) error {
			e, err := event.Decode(m.Value)
			if err != nil {
				t.Fatal(err)
			}
			switch e.Type {
			case event.TypeAlert:
				var p policy.AlertPayload
				if err := e.DecodePayload(&p); err != nil {
					t.Fatal(err)
				}
				alerts, ids = append(alerts, p), append(ids, e.EventID)
			case event.TypeAlertUpdated:
				var u event.AlertUpdated
				if err := e.DecodePayload(&u); err != nil {
					t.Fatal(err)
				}
				updates = append(updates, u)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	runPolicy := func(until func() bool) {
		cons, err := bus.NewConsumer(bus.ConsumerConfig{Cluster: brokers, GroupID: prefix + "-policy", Topics: []string{topics.Transcripts}, Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		st, err := policy.NewStage(policy.StageConfig{
			Consumer: cons, Sender: prod, Policy: policy.Fixed{P: pol}, Producer: event.Producer{Name: "t"}, Keys: mem,
			Logger: quiet(), Topics: topics, Rebuild: policy.RebuildConfig{Tail: tail},
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
				a, _, u := read()
				t.Fatalf("policy stage did not get there in 2 min: %d alerts, %d updates", len(a), len(u))
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
	count := func() (alerts, updates int) {
		a, _, u := read()
		return len(a), len(u)
	}

	// Live: a's threat, b's misheard, c's (not in the later revisions).
	if err := prod.Produce(ctx,
		line(policy.PassLive, "a", 0, "i will kill you"),
		line(policy.PassLive, "b", 0, "i will hurry you"),
		line(policy.PassLive, "c", 0, "i will kill you"),
	); err != nil {
		t.Fatal(err)
	}
	runPolicy(func() bool { a, _ := count(); return a >= 2 })

	// The restart: a new stage gets the settled revision, then the final.
	var later []bus.Message
	for _, pass := range []string{event.PassSettled, event.PassFinal} {
		later = append(later,
			line(pass, "a", 0.4, "i will kill you"),
			line(pass, "b", 0.2, "i will hurt you"),
			line(pass, "c", 0.3, "i will call you later"),
			line(pass, "c", 4, "see you at the game tonight"),
		)
	}
	if err := prod.Produce(ctx, later...); err != nil {
		t.Fatal(err)
	}
	runPolicy(func() bool { a, u := count(); return a >= 3 && u >= 2 })
	time.Sleep(2 * time.Second)
	alerts, ids, updates := read()
	byPass := map[string]int{}
	seen := map[string]bool{}
	for i, a := range alerts {
		byPass[a.Pass]++
		if seen[ids[i]] {
			t.Errorf("alert %s raised twice", ids[i])
		}
		seen[ids[i]] = true
		if a.Suppressed != 0 {
			t.Errorf("alert %s folds %d suppressed findings; nothing was over the limit", ids[i], a.Suppressed)
		}
	}
	if len(alerts) != 3 || byPass[policy.PassLive] != 2 || byPass[event.PassSettled] != 1 {
		t.Fatalf("alerts by pass %v (%d in all), want live 2, settled 1", byPass, len(alerts))
	}
	updPass := map[string]int{}
	for _, u := range updates {
		updPass[u.Pass]++
		if !seen[u.Alert] {
			t.Errorf("update of an alert not raised: %+v", u)
		}
	}
	if len(updates) != 2 || updPass[event.PassSettled] != 1 || updPass[event.PassFinal] != 1 {
		t.Fatalf("updates by pass %v, want one settled and one final", updPass)
	}

	// The sink: every alert once, no update.
	rcv := newReceiver(t)
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	key, err := ParseSecret(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	wh, err := NewWebhook(WebhookConfig{Name: "tns", URL: srv.URL, Secret: key})
	if err != nil {
		t.Fatal(err)
	}
	dl := &bustest.Capture{}
	cons, err := bus.NewConsumer(bus.ConsumerConfig{Cluster: brokers, GroupID: prefix + "-notify", Topics: []string{topics.Alerts}, StartOffset: bus.FirstOffset, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	ns, err := NewStage(StageConfig{Consumer: cons, Sender: dl, Routes: []Route{{Notifier: wh}}, Keys: mem, Logger: quiet(), DeadLetterTopic: topics.DeadLetter})
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- ns.Run(sctx) }()
	waitFor(t, func() bool { return rcv.calls.Load() >= 3 })
	time.Sleep(3 * time.Second) // anything more would come now
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	_ = ns.Close()
	bodies, got, bad := rcv.got()
	if len(bad) > 0 {
		t.Fatalf("bad requests: %v", bad)
	}
	if len(got) != 3 {
		t.Fatalf("webhook got %d requests, want the 3 alerts once each", len(got))
	}
	for i, id := range got {
		if !seen[id] {
			t.Errorf("webhook got %s, not an alert", id)
		}
		var body struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(bodies[i], &body); err != nil || body.Type != string(event.TypeAlert) {
			t.Errorf("webhook body type %q (%v)", body.Type, err)
		}
	}
	if n := len(dl.All()); n != 0 {
		t.Fatalf("%d dead letters", n)
	}
}
