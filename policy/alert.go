package policy

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/earshot/earshot/event"
)

// AlertPayload is the readable payload of an alert.raised event as the
// policy stage writes it: event.Alert plus what the rate limiter folded into
// it. Readers that decode into event.Alert ignore the extra field (fields
// may be added within a schema version).
type AlertPayload struct {
	event.Alert
	// Suppressed counts findings of the same room, rule and speaker that
	// the rate limiter held back since the previous alert of that key: this
	// alert stands for them too.
	Suppressed int `json:"suppressed,omitempty"`
	// Pass is the transcript revision that raised the alert: "live",
	// "settled" or "final" (a later revision heard what the live text
	// missed).
	Pass string `json:"pass,omitempty"`
	// DelayS is the time in seconds from the end of the matched speech to
	// the alert being built (how late a later revision's alert is).
	DelayS float64 `json:"delay_s,omitempty"`
	// Spans are the matched stretches per track: what the stage
	// recognises a later revision's finding by after a restart.
	Spans []AlertSpan `json:"spans,omitempty"`
}

// AlertSpan is one stretch of a track an alert's words cover (inclusive
// samples on the track's timeline).
type AlertSpan struct {
	Track       string `json:"track"`
	FirstSample int64  `json:"first_sample"`
	LastSample  int64  `json:"last_sample"`
}

// AlertID is the event ID of the alert a finding raises. It derives from
// what was said where, never from which transcript revision said it:
//
//   - the policy version (as the event's revision: a new policy is a new
//     judgement, so it may alert again);
//   - room, session and the speaker of the first matched words;
//   - the category (a category's overlapping matches merge into one
//     finding, whichever rule scored highest, so the rule could change with
//     word probabilities while the category cannot);
//   - the first matched segment's whole timeline (utterance boundaries come
//     from the audio, not from the engine's word timings) and the position
//     of the first matched token in it.
//
// The transcript event IDs are not in it: they change with every engine or
// model revision (event.New derives them from the Processing digest), so a
// re-transcription of the same audio that produces the same text yields the
// same alert IDs, and the stage skips those it already raised.
func AlertID(f Finding) string {
	if len(f.Spans) == 0 {
		return ""
	}
	first := f.Spans[0]
	seg := first.SegmentTimeline
	if seg.Track == "" {
		seg = first.Timeline
	}
	rev := (&event.Processing{PolicyVersion: f.PolicyVersion}).Revision()
	return event.EventID(event.TypeAlert, rev, &seg, f.Room, f.Session, first.Speaker, f.Category, strconv.Itoa(first.FirstToken))
}

// excerptAAD binds a sealed excerpt line to its alert and its place in the
// excerpt, so that a line cannot be moved to another alert or reordered.
func excerptAAD(alertID string, i int) []byte {
	return []byte("earshot.alert.excerpt\x00" + alertID + "\x00" + strconv.Itoa(i))
}

// excerptKeyRef is the data key of one speaker's lines in an alert's
// session.
func excerptKeyRef(alert *event.Envelope, speaker string) event.KeyRef {
	return event.KeyRef{ID: event.KeyID(alert.Session, speaker), Room: alert.Room, Session: alert.Session, Speaker: speaker}
}

// sealExcerpt turns window lines into an alert's excerpt, leaving out the
// lines of speakers erased since they were said. The alert's own
// speaker's lines stay as text (the alert's protected data is sealed under
// that speaker's key as a whole); every other speaker's line is sealed
// under that speaker's data key, so erasing one speaker (shredding their
// key) leaves none of their words readable in anyone else's alert. Lines
// of another session than the alert's are left out: the excerpt names keys
// by the alert's session.
func sealExcerpt(ctx context.Context, k event.Keys, alert *event.Envelope, lines []ExcerptLine) ([]event.ExcerptLine, error) {
	out := make([]event.ExcerptLine, 0, len(lines))
	for _, l := range lines {
		if l.Session != "" && l.Session != alert.Session {
			continue
		}
		el := event.ExcerptLine{Speaker: l.Speaker, Track: l.Timeline.Track, FirstSample: l.Timeline.FirstSample, LastSample: l.Timeline.LastSample}
		if l.Speaker == alert.Speaker {
			el.Text = l.Text
			out = append(out, el)
			continue
		}
		if k == nil {
			return nil, fmt.Errorf("policy: seal excerpt of %s: no keys configured", alert.EventID)
		}
		ref := excerptKeyRef(alert, l.Speaker)
		ct, err := k.Seal(ctx, ref, []byte(l.Text), excerptAAD(alert.EventID, len(out)))
		if errors.Is(err, event.ErrKeyDestroyed) {
			continue // the speaker was erased since: their line goes
		}
		if err != nil {
			return nil, fmt.Errorf("policy: seal excerpt line of %s: %w", alert.EventID, err)
		}
		el.KeyID, el.Sealed = ref.ID, ct
		out = append(out, el)
	}
	return out, nil
}

// OpenExcerpt decrypts the sealed lines of an alert's excerpt in place
// (lines is AlertData.Excerpt of the alert event). A line whose speaker's
// key was destroyed stays without text and counts in unreadable: that is
// erasure working, not an error. Other failures (a line that names a key
// of another session, altered bytes) also leave the line without text and
// are returned, joined.
func OpenExcerpt(ctx context.Context, k event.Keys, alert *event.Envelope, lines []event.ExcerptLine) (unreadable int, err error) {
	var errs []error
	for i := range lines {
		l := &lines[i]
		if len(l.Sealed) == 0 {
			continue
		}
		ref := excerptKeyRef(alert, l.Speaker)
		if l.KeyID != ref.ID {
			unreadable++
			errs = append(errs, fmt.Errorf("policy: excerpt line %d of %s: key %s is not its speaker's in the alert's session", i, alert.EventID, l.KeyID))
			continue
		}
		if k == nil {
			unreadable++
			errs = append(errs, fmt.Errorf("policy: excerpt line %d of %s: %w", i, alert.EventID, event.ErrSealed))
			continue
		}
		pt, oerr := k.Open(ctx, ref, l.Sealed, excerptAAD(alert.EventID, i))
		if oerr != nil {
			unreadable++
			if !errors.Is(oerr, event.ErrKeyDestroyed) {
				errs = append(errs, fmt.Errorf("policy: excerpt line %d of %s: %w", i, alert.EventID, oerr))
			}
			continue
		}
		l.Text = string(pt)
	}
	return unreadable, errors.Join(errs...)
}
