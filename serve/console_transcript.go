package serve

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/earshot/earshot/compliance/archive"
	"github.com/earshot/earshot/event"
)

// maxTranscriptReads bounds the archived transcript events one alert page
// reads (its speakers' transcripts of the session, every revision): past
// it the page shows the alert's own excerpt.
const maxTranscriptReads = 5000

// errTooManyTranscripts: the session's archive is too large to read for
// one page.
var errTooManyTranscripts = errors.New("too many archived transcript events for one page")

// passLive names a revision that is neither settled nor final.
const passLive = "live"

// preferredTranscript returns the transcript around an alert as a reader
// should see it: the archived transcript events (compliance archive,
// events/…) of the excerpt's speakers on the excerpt's tracks, over the
// stretch the excerpt covers on each, with one text per stretch of speech
// (event.PreferredTranscripts: final, else settled, else live). It returns
// no events when the archive holds none there (no archiving stage, or not
// archived yet): the caller then shows the excerpt.
func preferredTranscript(ctx context.Context, store archive.Reader, alert *event.Envelope, excerpt []event.ExcerptLine) ([]*event.Envelope, error) {
	type window struct{ first, last int64 }
	windows := map[string]window{} // by track
	var speakers []string
	for _, l := range excerpt {
		w, ok := windows[l.Track]
		if !ok {
			w = window{l.FirstSample, l.LastSample}
		}
		windows[l.Track] = window{min(w.first, l.FirstSample), max(w.last, l.LastSample)}
		if l.Speaker != "" && !slices.Contains(speakers, l.Speaker) {
			speakers = append(speakers, l.Speaker)
		}
	}
	var found []*event.Envelope
	reads := 0
	for _, spk := range speakers {
		for e, err := range archive.Events(ctx, store, archive.ScopePrefix(alert.Room, alert.Session, spk), event.TypeTranscript) {
			if err != nil {
				return nil, fmt.Errorf("alert page transcript: %w", err)
			}
			if reads++; reads > maxTranscriptReads {
				return nil, fmt.Errorf("alert page transcript: %w", errTooManyTranscripts)
			}
			if e.Timeline == nil || e.Room != alert.Room || e.Session != alert.Session {
				continue
			}
			w, ok := windows[e.Timeline.Track]
			if ok && e.Timeline.FirstSample <= w.last && e.Timeline.LastSample >= w.first {
				found = append(found, e)
			}
		}
	}
	return event.PreferredTranscripts(found), nil
}

// passOf names an event's transcription pass.
func passOf(e *event.Envelope) string {
	if e.Processing != nil {
		switch p := e.Processing.Options["pass"]; p {
		case event.PassFinal, event.PassSettled:
			return p
		}
	}
	return passLive
}
