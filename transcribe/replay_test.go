package transcribe

import (
	"context"
	"testing"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/bustest"
)

// TestReplay re-transcribes a stored session: the transcripts are a new
// revision (the live worker's processing plus the replay marker), placed
// on the stored timeline, and a second replay reproduces the same IDs.
func TestReplay(t *testing.T) {
	ctx := context.Background()
	// Two segments of one track (the same audio twice: 2 sentences), and
	// an object that is not a segment.
	fs := newFoxSession(t, "ses_s", 2)
	fs.putSegments(t, append(fs.keys, "audio/r1_room/ses_s/trk_a/notes.txt")...)
	store, n, origin := fs.store, fs.n, fs.origin
	replay := func() (ReplayStats, []*event.Envelope) { return replayEvents(t, store, &fakeEngine{}, "ses_s", 0) }
	st, evs := replay()
	if st.Tracks != 1 || st.Segments != 2 || st.Utterances != 2 || len(evs) != 2 {
		t.Fatalf("stats %+v, %d events: want 1 track, 2 segments, 2 utterances, 2 transcripts", st, len(evs))
	}
	live := Processing(&fakeEngine{}, "en").Revision()
	for i, e := range evs {
		if e.Revision == live || e.Revision != st.Revision || e.Processing.Options[ReplayMarker] != "1" {
			t.Fatalf("event %d: revision %s (live %s), processing %+v", i, e.Revision, live, e.Processing)
		}
		if e.Timeline.Track != "trk_a" || !e.Timeline.Origin.Equal(origin) || e.Room != "r1_room" || e.Session != "ses_s" {
			t.Fatalf("event %d: %+v", i, e)
		}
	}
	// The second sentence is in the second segment.
	if evs[1].Timeline.FirstSample < n {
		t.Fatalf("second transcript at %d, before the second segment (%d)", evs[1].Timeline.FirstSample, n)
	}
	_, again := replay()
	for i := range evs {
		if again[i].EventID != evs[i].EventID {
			t.Fatal("a second replay made other event IDs")
		}
	}
	if _, err := Replay(ctx, ReplayConfig{Store: store, Engine: &fakeEngine{}, Sender: &bustest.Capture{}}, "r1_room", "ses_none"); err == nil {
		t.Fatal("replay of a session with no segments succeeded")
	}
}
