package policy

import (
	"cmp"
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
	return transcriptMsg(t, transcriptSpec{proc: proc, first: first, text: text, noSpeech: !speech})
}

// transcriptSpec describes a 3 s live transcript; zero fields take the
// tests' usual room, session, speaker and track.
type transcriptSpec struct {
	room, session, speaker, track string
	proc                          *event.Processing
	first                         int64
	text                          string
	noSpeech                      bool
}

// transcriptMsg is the transcript record s describes, sealed under
// testKeys and keyed by its room.
func transcriptMsg(t *testing.T, s transcriptSpec) bus.Message {
	t.Helper()
	s.room, s.session, s.speaker, s.track = cmp.Or(s.room, "r1_room"), cmp.Or(s.session, "ses_s"), cmp.Or(s.speaker, "p1_spk"), cmp.Or(s.track, "trk_t")
	if s.proc == nil {
		s.proc = &event.Processing{Engine: "e", Model: "m"}
	}
	tl := event.Timeline{Track: s.track, FirstSample: s.first, LastSample: s.first + 3*event.SampleRate - 1,
		Origin: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC), Anchor: event.AnchorArrival}
	e, err := event.New(event.TypeTranscript, event.Producer{Name: "test"}, s.proc,
		s.room, s.session, s.speaker, &tl, event.TranscriptSegment{Language: "en", AvgLogProb: -0.2, NoSpeechProb: 0.01, Speech: !s.noSpeech})
	if err != nil {
		t.Fatal(err)
	}
	e.Hops.Recorded = event.Stamp(time.Now())
	if err := e.Seal(context.Background(), testKeys, event.TranscriptSegmentData{Text: s.text}); err != nil {
		t.Fatal(err)
	}
	b, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return bus.Message{Topic: event.TopicTranscripts, Key: []byte(s.room), Value: b}
}

// feedStage is a policy stage with the default policy on a stand-in
// consumer, running until the test ends; its output is captured.
func feedStage(t *testing.T, cfg StageConfig) (*Stage, *bustest.Feed, *bustest.Capture) {
	t.Helper()
	p, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	feed, out := bustest.NewFeed(), &bustest.Capture{}
	cfg.Consumer, cfg.Sender, cfg.Policy, cfg.Producer = feed, out, Fixed{P: p}, event.Producer{Name: "t"}
	if cfg.Keys == nil {
		cfg.Keys = testKeys
	}
	st, err := NewStage(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st, feed, out
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
		// A final and a settled revision of the same speech (cut
		// elsewhere) are evaluated and recognised: no new alert.
		transcriptRecordBy(t, &event.Processing{Engine: "e", Model: "m", Options: map[string]string{"pass": event.PassFinal, "replay": "1"}},
			event.SampleRate/2, "if anyone leaks this i will find you and hurt you", true),
		transcriptRecordBy(t, &event.Processing{Engine: "e", Model: "m", Options: map[string]string{"pass": event.PassSettled, "batch": "25s"}},
			event.SampleRate/4, "if anyone leaks this i will find you and hurt you", true),
	}
	brokers := bustest.Preload(t, ctx, event.TopicTranscripts, recs...)
	cons, err := bus.NewConsumer(bus.ConsumerConfig{Cluster: brokers, GroupID: "p", Topics: []string{event.TopicTranscripts}, StartOffset: bus.FirstOffset})
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
		t.Fatalf("want exactly one distinct alert (the redelivered transcript must not make a new one, text without speech none, a final or settled revision of the same speech none; TestRevisionsAlertOncePerThingSaid checks that without the rate limit), got %d", len(ids))
	}
}
