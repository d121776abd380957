package speech_test

import (
	"context"
	"testing"
	"time"

	"github.com/earshot/earshot/internal/speech"
)

func TestConversationSharesOneTimeline(t *testing.T) {
	tl := tools(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	lines := []speech.Line{
		{Speaker: "alice", Text: "Good morning everyone."},
		{Speaker: "bob", Text: "Morning, shall we start?"},
		{Speaker: "alice", Text: "Yes, let us begin."},
	}
	clips, err := tl.Conversation(ctx, lines, 400, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a, b := clips["alice"], clips["bob"]
	if len(clips) != 2 || a.Path == "" || b.Path == "" {
		t.Fatalf("clips = %+v", clips)
	}
	// Both files cover the whole conversation.
	if d := a.Samples - b.Samples; d > speech.SampleRate/50 || d < -speech.SampleRate/50 {
		t.Fatalf("alice %d samples, bob %d: not one timeline", a.Samples, b.Samples)
	}
	var turns []speech.Cue
	for _, c := range append(a.CueSheet.Cues, b.CueSheet.Cues...) {
		if c.Kind == speech.KindSpeech {
			turns = append(turns, c)
		}
	}
	if len(turns) != len(lines) {
		t.Fatalf("%d speech cues for %d lines", len(turns), len(lines))
	}
	// No two turns overlap, and bob speaks after alice's first line.
	for i := range turns {
		for j := i + 1; j < len(turns); j++ {
			if turns[i].StartMS < turns[j].EndMS && turns[j].StartMS < turns[i].EndMS {
				t.Fatalf("turns overlap: %+v and %+v", turns[i], turns[j])
			}
		}
	}
	if b.CueSheet.Cues[0].Kind != speech.KindPause || b.CueSheet.Speech() != "Morning, shall we start?" {
		t.Fatalf("bob's sheet: %+v", b.CueSheet)
	}
}
