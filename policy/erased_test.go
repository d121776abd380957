package policy

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/bustest"
)

// transcriptOf is a live transcript of speaker on track trk.
func transcriptOf(t *testing.T, speaker, trk string, first int64, text string) bus.Message {
	t.Helper()
	tl := event.Timeline{Track: trk, FirstSample: first, LastSample: first + 3*event.SampleRate - 1,
		Origin: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC), Anchor: event.AnchorArrival}
	e, err := event.New(event.TypeTranscript, event.Producer{Name: "test"}, &event.Processing{Engine: "e", Model: "m"},
		"r1_room", "ses_s", speaker, &tl, event.TranscriptSegment{Language: "en", AvgLogProb: -0.2, NoSpeechProb: 0.01, Speech: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Seal(context.Background(), testKeys, event.TranscriptSegmentData{Text: text}); err != nil {
		t.Fatal(err)
	}
	b, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return bus.Message{Topic: event.TopicTranscripts, Key: []byte("r1_room"), Value: b}
}

// TestAlertWithErasedSpeakerInExcerpt: a speaker erased while their line
// sits in the room's window is left out of the next alert's excerpt; the
// alert is raised, not dropped. A transcript of an erased speaker is
// skipped and acked, not dead-lettered.
func TestAlertWithErasedSpeakerInExcerpt(t *testing.T) {
	feed := bustest.NewFeed()
	out := &bustest.Capture{}
	p, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	st, err := NewStage(StageConfig{Consumer: feed, Sender: out, Policy: Fixed{P: p}, Producer: event.Producer{Name: "t"}, Keys: testKeys})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
		_ = st.Close()
	}()

	const erased, speaker = "p1_erased", "p1_spk"
	feed.WaitAcked(t, feed.Push(transcriptOf(t, erased, "trk_e", 0, "has anyone seen the new schedule"))...)
	gone := transcriptOf(t, erased, "trk_e", 3*event.SampleRate, "it is on the board")
	testKeys.Shred(event.KeyID("ses_s", erased))
	feed.WaitAcked(t, feed.Push(gone, transcriptOf(t, speaker, "trk_t", 4*event.SampleRate, "if anyone leaks this i will find you and hurt you"))...)

	if dl := out.Topic(event.TopicDeadLetter); len(dl) != 0 {
		t.Fatalf("%d dead letters; an erased speaker's transcript is skipped, not dead-lettered", len(dl))
	}
	alerts := out.Topic(event.TopicAlerts)
	if len(alerts) != 1 {
		t.Fatalf("%d alerts, want the threat's", len(alerts))
	}
	e, err := event.Decode(alerts[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	var data event.AlertData
	if err := e.Open(context.Background(), testKeys, &data); err != nil {
		t.Fatal(err)
	}
	if len(data.Excerpt) == 0 {
		t.Fatal("the alert has no excerpt")
	}
	for _, l := range data.Excerpt {
		if l.Speaker == erased {
			t.Fatalf("the erased speaker's line is in the excerpt: %+v", l)
		}
	}
}

// failingSeal is testKeys whose Seal fails with a fault that is not
// erasure.
type failingSeal struct{ event.Keys }

func (failingSeal) Seal(context.Context, event.KeyRef, []byte, []byte) ([]byte, error) {
	return nil, errors.New("key service unavailable")
}

// TestAlertNotBuiltIsDeadLettered: an alert that cannot be built for any
// reason but erasure sends its transcript to the dead letters with the
// reason, instead of acking it in silence.
func TestAlertNotBuiltIsDeadLettered(t *testing.T) {
	feed := bustest.NewFeed()
	out := &bustest.Capture{}
	p, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	st, err := NewStage(StageConfig{Consumer: feed, Sender: out, Policy: Fixed{P: p}, Producer: event.Producer{Name: "t"}, Keys: failingSeal{testKeys}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()
	feed.WaitAcked(t, feed.Push(transcriptOf(t, "p1_spk", "trk_t", 0, "if anyone leaks this i will find you and hurt you"))...)
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	_ = st.Close()
	dl := out.Topic(event.TopicDeadLetter)
	if len(dl) != 1 || len(out.Topic(event.TopicAlerts)) != 0 {
		t.Fatalf("%d dead letters and %d alerts, want 1 and 0", len(dl), len(out.Topic(event.TopicAlerts)))
	}
	if reason, _ := dl[0].Header(bus.HeaderDLQReason); !strings.Contains(string(reason), "key service unavailable") {
		t.Fatalf("dead letter reason %q", reason)
	}
}
