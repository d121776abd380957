package policy

import (
	"slices"
	"time"

	"github.com/earshot/earshot/event"
)

// WindowConfig sets a room's sliding context window.
type WindowConfig struct {
	// MaxSegments is how many recent segments are evaluated together
	// (default 4).
	MaxSegments int
	// MaxSpan drops segments that ended more than this before the newest
	// one ends (default 20 s).
	MaxSpan time.Duration
	// MaxGap is the longest pause across which a phrase or number still
	// joins up (default 3 s); a longer one is a barrier.
	MaxGap time.Duration
	// SameSpeakerOnly puts a barrier between different speakers. Off by
	// default: a number one speaker starts and another finishes is still
	// read out in the room.
	SameSpeakerOnly bool
	// Remember is how many reported findings are kept for dedupe (default
	// 4096).
	Remember int
}

func (c *WindowConfig) defaults() {
	if c.MaxSegments <= 0 {
		c.MaxSegments = 4
	}
	if c.MaxSpan <= 0 {
		c.MaxSpan = 20 * time.Second
	}
	if c.MaxGap <= 0 {
		c.MaxGap = 3 * time.Second
	}
	if c.Remember <= 0 {
		c.Remember = 4096
	}
}

// Window is one room's sliding context: the last few transcript segments
// of all its speakers in time order, evaluated together so a phrase or a
// phone number split across segments or speakers still matches, with a
// memory of what was reported so a match is reported once.
//
// A Window is plain state, not safe for concurrent use: the consumer owns
// one per room. After a restart the stage rebuilds a window with Replay,
// pushing the room's recent transcript records again from Kafka; Push is
// deterministic, so the rebuilt window reports the same things from then
// on, and alert IDs derived from content let the stage skip any it already
// raised.
type Window struct {
	cfg      WindowConfig
	segs     []*Segment
	reported []reported
	next     int
}

type reported struct {
	category string
	track    string
	first    int64
	last     int64
}

// NewWindow makes an empty window.
func NewWindow(cfg WindowConfig) *Window {
	cfg.defaults()
	return &Window{cfg: cfg}
}

// Len is the number of segments held.
func (w *Window) Len() int { return len(w.segs) }

// DropSpeaker removes a speaker's segments (they were erased): their
// words join no later finding and leave memory.
func (w *Window) DropSpeaker(speaker string) {
	w.segs = slices.DeleteFunc(w.segs, func(s *Segment) bool { return s.Speaker == speaker })
}

// Push adds a segment and returns the findings it completes that were not
// reported before: matches within the segment and matches that run into it
// from the segments before (or after, when it arrives late). A segment
// without detected speech is not added. A segment already in the window
// (same ID: a redelivered record) adds nothing.
func (w *Window) Push(p *Policy, s Segment) []Finding {
	out, _ := w.push(p, s, nil)
	return out
}

// pushAll is Push that also returns every finding the evaluation made
// that touches the segment, those reported before included: what the
// stage checks earlier revisions' alerts against.
func (w *Window) pushAll(p *Policy, s Segment) (fresh, all []Finding) {
	return w.push(p, s, nil)
}

// Replay adds a segment read back from Kafka after a restart: it
// evaluates like Push but remembers only the findings raised returns true
// for (those whose alerts are on the alerts topic), and returns every
// finding the evaluation made that touches the segment. A
// finding that was evaluated but never alerted (the stage stopped before
// producing it) is thus not remembered, and is reported when its
// transcript is delivered again.
func (w *Window) Replay(p *Policy, s Segment, raised func(Finding) bool) []Finding {
	_, all := w.push(p, s, raised)
	return all
}

func (w *Window) push(p *Policy, s Segment, keep func(Finding) bool) (out, all []Finding) {
	if !p.Speech(&s) {
		return nil, nil
	}
	for _, o := range w.segs {
		if s.ID != "" && o.ID == s.ID {
			return nil, nil
		}
	}
	seg := &s
	i, _ := slices.BinarySearchFunc(w.segs, seg, func(a, b *Segment) int { return a.Timeline.Start().Compare(b.Timeline.Start()) })
	w.segs = slices.Insert(w.segs, i, seg)
	w.evict()
	st := p.pool.Get().(*evalState)
	defer p.pool.Put(st)
	st.reset()
	touch := -1
	var prevEnd time.Time
	var prevSpeaker string
	for k, o := range w.segs {
		brk := k > 0 && (o.Timeline.Start().Sub(prevEnd) > w.cfg.MaxGap || w.cfg.SameSpeakerOnly && o.Speaker != prevSpeaker)
		st.add(o, brk)
		if o == seg {
			touch = k
		}
		if end := o.Timeline.End(); k == 0 || end.After(prevEnd) {
			prevEnd = end
		}
		prevSpeaker = o.Speaker
	}
	if touch < 0 {
		// Too old to stay: evaluate it on its own.
		st.reset()
		st.add(seg, false)
		touch = 0
	}
	st.doc.Finish()
	// Check all against earlier pushes before remembering any: findings of
	// one evaluation are distinct (overlaps of a category were merged),
	// even two in one segment without word timings.
	all = p.evaluate(st, touch)
	for _, f := range all {
		if !w.seen(f) {
			out = append(out, f)
		}
	}
	if keep == nil {
		for _, f := range out {
			w.remember(f)
		}
		return out, all
	}
	kept := out[:0:0]
	for _, f := range out {
		if keep(f) {
			w.remember(f)
			kept = append(kept, f)
		}
	}
	return kept, all
}

// evict keeps at most MaxSegments and drops those that ended more than
// MaxSpan before the latest end.
func (w *Window) evict() {
	if n := len(w.segs) - w.cfg.MaxSegments; n > 0 {
		clear(w.segs[:n])
		w.segs = w.segs[n:]
	}
	var latest time.Time
	for _, s := range w.segs {
		if e := s.Timeline.End(); e.After(latest) {
			latest = e
		}
	}
	k := 0
	for _, s := range w.segs {
		if latest.Sub(s.Timeline.End()) <= w.cfg.MaxSpan {
			w.segs[k] = s
			k++
		}
	}
	clear(w.segs[k:])
	w.segs = w.segs[:k]
}

// seen says a finding of the same category already covered any of these
// words: the same thing said, found again (a longer match, a redelivered
// segment, another rule of the category). Dedupe is by category and
// timeline position rather than rule ID so that two rules for one thing
// (a lexicon and a regex for threats) raise one alert.
func (w *Window) seen(f Finding) bool {
	for _, sp := range f.Spans {
		for _, r := range w.reported {
			if r.category == f.Category && r.track == sp.Timeline.Track && sp.Timeline.FirstSample <= r.last && r.first <= sp.Timeline.LastSample {
				return true
			}
		}
	}
	return false
}

func (w *Window) remember(f Finding) {
	for _, sp := range f.Spans {
		r := reported{category: f.Category, track: sp.Timeline.Track, first: sp.Timeline.FirstSample, last: sp.Timeline.LastSample}
		if len(w.reported) < w.cfg.Remember {
			w.reported = append(w.reported, r)
			continue
		}
		w.reported[w.next] = r
		w.next = (w.next + 1) % w.cfg.Remember
	}
}

// ExcerptLine is one segment's text in an excerpt.
type ExcerptLine struct {
	Segment  string
	Session  string
	Speaker  string
	Timeline event.Timeline
	Text     string
}

// Excerpt returns the window's segments that overlap the finding's time
// range widened by context on each side, in time order: the transcript
// excerpt of an alert.
func (w *Window) Excerpt(f Finding, context time.Duration) []ExcerptLine {
	if len(f.Spans) == 0 {
		return nil
	}
	from := f.Spans[0].Timeline.Start()
	to := f.Spans[0].Timeline.End()
	for _, sp := range f.Spans[1:] {
		if t := sp.Timeline.Start(); t.Before(from) {
			from = t
		}
		if t := sp.Timeline.End(); t.After(to) {
			to = t
		}
	}
	from, to = from.Add(-context), to.Add(context)
	var out []ExcerptLine
	for _, s := range w.segs {
		if s.Timeline.End().Before(from) || s.Timeline.Start().After(to) {
			continue
		}
		out = append(out, ExcerptLine{Segment: s.ID, Session: s.Session, Speaker: s.Speaker, Timeline: s.Timeline, Text: s.Text})
	}
	return out
}

// admit remembers a finding made outside the window's own evaluation (the
// external classifier) and reports whether it is new.
func (w *Window) admit(f Finding) bool {
	if w.seen(f) {
		return false
	}
	w.remember(f)
	return true
}
