package e2etest

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/bustest"
	"github.com/earshot/earshot/internal/e2e"
	"github.com/earshot/earshot/internal/wer"
	"github.com/earshot/earshot/transcribe"
)

// What the pipeline owns, checked without trusting the words a small
// speech model hears (they move between machines): the transcripts of a
// revision are compared with what the same engine hears, with the same
// decoding settings, in the same recorded audio replayed off the live path
// (transcribe.Replay over the stored session: utterance by utterance for
// the live revision, in the settled pass's batches for the settled one).
// The engine's mistakes are the same on both sides and cancel out; a
// difference is the pipeline's: audio lost, transcribed twice, misplaced on
// the timeline, or different audio behind the same place.

// replayed re-transcribes the run's stored session (ingest is stopped
// first, which drains its spool into the bucket) with the run's engine,
// utterance by utterance when batch is 0 or in batches of up to batch of
// speech, and returns its stats and transcripts in time order. The replay
// must be a new revision with new event IDs: live holds the live
// transcripts it must not repeat.
func replayed(t testing.TB, r *e2eRun, ing *e2e.Ingest, live []transcript, batch time.Duration) (transcribe.ReplayStats, []transcript) {
	t.Helper()
	if len(live) == 0 {
		t.Fatal("replay: no live transcript names the session")
	}
	ing.Stop()
	room, session := live[0].e.Room, live[0].e.Session
	out := &bustest.Capture{}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	st, err := transcribe.Replay(ctx, transcribe.ReplayConfig{
		Store: ing.Store, Engine: r.eng, Sender: out, Producer: event.Producer{Name: "earshot-replay", Version: "e2e"},
		Keys: r.keys, Language: "en", Topic: "replay", Batch: batch,
		Logger: slog.New(slog.NewJSONHandler(r.logs, nil)).With("replay", batch.String()),
	}, room, session)
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	seen := map[string]bool{}
	for _, tr := range live {
		seen[tr.e.EventID] = true
	}
	var trs []transcript
	for _, m := range out.Topic("replay") {
		e, err := event.Decode(m.Value)
		if err != nil {
			t.Fatal(err)
		}
		if seen[e.EventID] || e.Revision == live[0].e.Revision {
			t.Fatalf("replayed transcript %s has the live revision or ID", e.EventID)
		}
		var d event.TranscriptSegmentData
		if err := e.Open(ctx, r.keys, &d); err != nil {
			t.Fatal(err)
		}
		trs = append(trs, transcript{e: e, text: d.Text, start: e.Timeline.Start(), end: e.Timeline.End()})
	}
	slices.SortStableFunc(trs, func(a, b transcript) int { return a.start.Compare(b.start) })
	return st, trs
}

// place is a transcript's place on the timeline: its track and inclusive
// sample range.
type place struct {
	track       string
	first, last int64
}

func placeOf(tr transcript) place {
	return place{tr.e.Timeline.Track, tr.e.Timeline.FirstSample, tr.e.Timeline.LastSample}
}

// sameAsOffline checks that got, one revision's transcripts as the
// pipeline wrote them (deduplicated by event ID), are offline's one to one:
// the same places, and at each the same text once both are normalised
// (wer.Normalize: case, punctuation, digits and number words). It returns
// how many places agree.
func sameAsOffline(t testing.TB, what string, got, offline []transcript) int {
	t.Helper()
	at := map[place][]transcript{}
	for _, tr := range got {
		at[placeOf(tr)] = append(at[placeOf(tr)], tr)
	}
	agree := 0
	for _, o := range offline {
		p := placeOf(o)
		g := at[p]
		delete(at, p)
		switch {
		case len(g) == 0:
			t.Errorf("%s: no transcript of %s, where the same engine offline hears %q: audio lost or misplaced", what, p, o.text)
		case len(g) > 1:
			t.Errorf("%s: %d transcripts (different event IDs) of %s: audio transcribed twice", what, len(g), p)
		case wer.Normalize(g[0].text) != wer.Normalize(o.text):
			t.Errorf("%s: %s heard as %q, offline as %q in the same audio: the pipeline's audio differs", what, p, g[0].text, o.text)
		default:
			agree++
		}
	}
	for p, g := range at {
		for _, tr := range g {
			t.Errorf("%s: transcript %q of %s (by %s), where offline has none: audio transcribed twice or misplaced", what, tr.text, p, tr.e.Producer.Instance)
		}
	}
	return agree
}

func (p place) String() string {
	return fmt.Sprintf("%s samples %d-%d", p.track, p.first, p.last)
}

// transcribedOnce checks that no two transcripts of one revision share a
// sample of a track: no audio was transcribed twice.
func transcribedOnce(t testing.TB, what string, trs []transcript) {
	t.Helper()
	for i := range trs {
		for j := i + 1; j < len(trs); j++ {
			if trs[i].e.Timeline.Overlaps(*trs[j].e.Timeline) {
				t.Errorf("%s: audio transcribed twice: %q (%s, by %s) and %q (%s, by %s)", what, trs[i].text, placeOf(trs[i]), trs[i].e.Producer.Instance,
					trs[j].text, placeOf(trs[j]), trs[j].e.Producer.Instance)
			}
		}
	}
}
