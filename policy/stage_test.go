package policy

import (
	"context"
	"testing"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/bustest"
)

func transcriptRecord(t *testing.T, first int64, text string, speech bool) bus.Message {
	t.Helper()
	return transcriptRecordBy(t, &event.Processing{Engine: "e", Model: "m"}, first, text, speech)
}

// transcriptRecordBy is transcriptRecord from the given processing.
func transcriptRecordBy(t *testing.T, proc *event.Processing, first int64, text string, speech bool) bus.Message {
	t.Helper()
	tl := event.Timeline{Track: "trk_t", FirstSample: first, LastSample: first + 3*event.SampleRate - 1,
		Origin: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC), Anchor: event.AnchorArrival}
	e, err := event.New(event.TypeTranscript, event.Producer{Name: "test"}, proc,
		"r1_room", "ses_s", "p1_spk", &tl, event.TranscriptSegment{Language: "en", AvgLogProb: -0.2, NoSpeechProb: 0.01, Speech: speech})
	if err != nil {
		t.Fatal(err)
	}
	e.Hops.Recorded = event.Stamp(time.Now())
	if err := e.Seal(context.Background(), testKeys, event.TranscriptSegmentData{Text: text}); err != nil {
		t.Fatal(err)
	}
	b, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return bus.Message{Topic: event.TopicTranscripts, Key: []byte("r1_room"), Value: b}
}

func TestStageRaisesAlerts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	threat := transcriptRecord(t, 0, "if anyone leaks this i will find you and hurt you", true)
	recs := []bus.Message{
		{Topic: event.TopicTranscripts, Key: []byte("r1_room"), Value: []byte("not json")},
		threat,
		transcriptRecord(t, 3*event.SampleRate, "the weather is lovely today", true),
		transcriptRecord(t, 6*event.SampleRate, "i will find you and hurt you", false), // no speech detected
		threat, // redelivered: same alert ID
		// A final revision is not evaluated: live transcripts raise alerts.
		transcriptRecordBy(t, &event.Processing{Engine: "e", Model: "m", Options: map[string]string{"pass": event.PassFinal, "replay": "1"}},
			300*event.SampleRate, "if anyone leaks this i will find you and hurt you", true),
		// Nor is a settled one.
		transcriptRecordBy(t, &event.Processing{Engine: "e", Model: "m", Options: map[string]string{"pass": event.PassSettled, "batch": "25s"}},
			600*event.SampleRate, "if anyone leaks this i will find you and hurt you", true),
	}
	brokers := bustest.Preload(t, ctx, event.TopicTranscripts, recs...)
	cons, err := bus.NewConsumer(bus.ConsumerConfig{Brokers: brokers, GroupID: "p", Topics: []string{event.TopicTranscripts}, StartOffset: bus.FirstOffset})
	if err != nil {
		t.Fatal(err)
	}
	p, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	out := &bustest.Capture{}
	st, err := NewStage(StageConfig{Consumer: cons, Sender: out, Policy: Fixed{P: p}, Producer: event.Producer{Name: "t"}, Keys: testKeys})
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- st.Run(sctx) }()
	deadline := time.Now().Add(60 * time.Second)
	for len(out.Topic(event.TopicDeadLetter)) < 1 || len(out.Topic(event.TopicAlerts)) < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("no alert or dead letter: %d records", len(out.All()))
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // let the rest of the records through
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	_ = st.Close()

	ids := map[string]bool{}
	for _, m := range out.Topic(event.TopicAlerts) {
		e, err := event.Decode(m.Value)
		if err != nil {
			t.Fatal(err)
		}
		var a event.Alert
		var data event.AlertData
		if err := e.DecodePayload(&a); err != nil {
			t.Fatal(err)
		}
		if err := e.Open(context.Background(), testKeys, &data); err != nil {
			t.Fatal(err)
		}
		if a.Category != "abuse.threat" || e.Speaker != "p1_spk" || e.Timeline.FirstSample != 0 {
			t.Fatalf("alert %+v on %+v", a, e.Timeline)
		}
		if len(data.Excerpt) == 0 || e.Hops.Alerted == nil || e.Hops.Recorded == nil || e.Processing.PolicyVersion != p.Version() {
			t.Fatalf("alert lacks excerpt, hops or policy version: %+v %+v", data, e.Hops)
		}
		ids[e.EventID] = true
	}
	if len(ids) != 1 {
		t.Fatalf("want exactly one distinct alert (the redelivered transcript must not make a new one, text without speech none, a final or settled revision none), got %d", len(ids))
	}
}
