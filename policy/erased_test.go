package policy

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/bustest"
)

// transcriptOf is a live transcript of speaker on track trk.
func transcriptOf(t *testing.T, speaker, trk string, first int64, text string) bus.Message {
	t.Helper()
	return transcriptMsg(t, transcriptSpec{speaker: speaker, track: trk, first: first, text: text})
}

// TestAlertWithErasedSpeakerInExcerpt: a speaker erased while their line
// sits in the room's window is left out of the next alert's excerpt; the
// alert is raised, not dropped. A transcript of an erased speaker is
// skipped and acked, not dead-lettered.
func TestAlertWithErasedSpeakerInExcerpt(t *testing.T) {
	st, feed, out := feedStage(t, StageConfig{})
	bustest.Start(t, st.Run)

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
	st, feed, out := feedStage(t, StageConfig{Keys: failingSeal{testKeys}})
	stop := bustest.Start(t, st.Run)
	feed.WaitAcked(t, feed.Push(transcriptOf(t, "p1_spk", "trk_t", 0, "if anyone leaks this i will find you and hurt you"))...)
	stop()
	dl := out.Topic(event.TopicDeadLetter)
	if len(dl) != 1 || len(out.Topic(event.TopicAlerts)) != 0 {
		t.Fatalf("%d dead letters and %d alerts, want 1 and 0", len(dl), len(out.Topic(event.TopicAlerts)))
	}
	if reason, _ := dl[0].Header(bus.HeaderDLQReason); !strings.Contains(string(reason), "key service unavailable") {
		t.Fatalf("dead letter reason %q", reason)
	}
}
