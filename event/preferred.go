package event

import (
	"cmp"
	"slices"
	"sort"
	"time"
)

// PreferredTranscripts returns the transcript events a reader shows when
// each stretch of speech should have one text, in timeline order per
// track (tracks in order of their first event). A session's speech can be
// transcribed several times: live (each utterance as it ends), settled
// (batches while the room is live), final (the stored session replayed
// after it ended), or replayed by hand with another model. A segment is
// shown unless shown segments of revisions preferred to its own cover
// more than half of its range on the track's timeline. Revisions are
// preferred by pass (final, then settled, then the others), then by their
// newest event. So a stretch the settled pass never reached (a dropped
// batch, or one not done yet) keeps its live text, even when a settled
// segment next to it shares the overlap of an utterance cut; nothing is
// shown twice.
//
// Events that are not transcripts or have no timeline are left out. The
// input is not modified.
func PreferredTranscripts(es []*Envelope) []*Envelope {
	type revision struct {
		rank   int
		newest time.Time
		id     string
		events []*Envelope
	}
	type trackRevs struct {
		first int // input position of the track's first event
		revs  map[string]*revision
	}
	tracks := map[string]*trackRevs{}
	for i, e := range es {
		if e == nil || e.Type != TypeTranscript || e.Timeline == nil {
			continue
		}
		tr := tracks[e.Timeline.Track]
		if tr == nil {
			tr = &trackRevs{first: i, revs: map[string]*revision{}}
			tracks[e.Timeline.Track] = tr
		}
		r := tr.revs[e.Revision]
		if r == nil {
			r = &revision{rank: passRank(e.Processing), id: e.Revision}
			tr.revs[e.Revision] = r
		}
		r.events = append(r.events, e)
		if e.Time.After(r.newest) {
			r.newest = e.Time
		}
	}
	order := make([]*trackRevs, 0, len(tracks))
	for _, tr := range tracks {
		order = append(order, tr)
	}
	slices.SortFunc(order, func(a, b *trackRevs) int { return cmp.Compare(a.first, b.first) })

	var out []*Envelope
	for _, tr := range order {
		revs := make([]*revision, 0, len(tr.revs))
		for _, r := range tr.revs {
			revs = append(revs, r)
		}
		slices.SortFunc(revs, func(a, b *revision) int {
			if c := cmp.Compare(b.rank, a.rank); c != 0 {
				return c
			}
			if c := b.newest.Compare(a.newest); c != 0 {
				return c
			}
			return cmp.Compare(a.id, b.id)
		})
		var shown spans // ranges of the preferred revisions seen so far
		var kept []*Envelope
		for _, r := range revs {
			var add spans
			for _, e := range r.events {
				if first, last := e.Timeline.FirstSample, e.Timeline.LastSample; 2*shown.covered(first, last) <= last-first+1 {
					kept = append(kept, e)
					add = append(add, span{e.Timeline.FirstSample, e.Timeline.LastSample})
				}
			}
			// A revision's own segments may overlap one another (the
			// overlap kept at an utterance cut): they are checked only
			// against the revisions preferred to theirs.
			shown = shown.merge(add)
		}
		slices.SortStableFunc(kept, func(a, b *Envelope) int {
			return cmp.Compare(a.Timeline.FirstSample, b.Timeline.FirstSample)
		})
		out = append(out, kept...)
	}
	return out
}

// passRank orders revisions by how good a record of the speech they are.
func passRank(p *Processing) int {
	if p == nil {
		return 0
	}
	switch p.Options["pass"] {
	case PassFinal:
		return 2
	case PassSettled:
		return 1
	}
	return 0
}

// span is an inclusive range of timeline samples.
type span struct{ first, last int64 }

// spans is a sorted list of disjoint ranges.
type spans []span

// covered returns how many samples of [first, last] the ranges hold.
func (s spans) covered(first, last int64) int64 {
	var n int64
	for i := sort.Search(len(s), func(i int) bool { return s[i].last >= first }); i < len(s) && s[i].first <= last; i++ {
		n += min(s[i].last, last) - max(s[i].first, first) + 1
	}
	return n
}

// merge returns s with add's ranges, sorted and joined where they touch
// or overlap.
func (s spans) merge(add spans) spans {
	if len(add) == 0 {
		return s
	}
	all := append(slices.Clone(s), add...)
	slices.SortFunc(all, func(a, b span) int { return cmp.Compare(a.first, b.first) })
	out := all[:1]
	for _, x := range all[1:] {
		last := &out[len(out)-1]
		if x.first <= last.last+1 {
			last.last = max(last.last, x.last)
			continue
		}
		out = append(out, x)
	}
	return out
}
