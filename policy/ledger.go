package policy

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/earshot/earshot/event"
)

// PassLive names the live revision of a transcript (no "pass" option);
// event.PassSettled and event.PassFinal name the later ones.
const PassLive = "live"

// passOf is the revision pass of a transcript's processing.
func passOf(p *event.Processing) string {
	if p != nil {
		switch p.Options["pass"] {
		case event.PassSettled:
			return event.PassSettled
		case event.PassFinal:
			return event.PassFinal
		}
	}
	return PassLive
}

// passRank orders passes by how late (and how good) a revision they are.
func passRank(pass string) int {
	switch pass {
	case event.PassSettled:
		return 1
	case event.PassFinal:
		return 2
	}
	return 0
}

// LedgerConfig bounds the stage's memory of the findings it alerted on,
// per session: what recognises a finding heard again in a later revision.
type LedgerConfig struct {
	// Idle drops a session's memory once its final revision has been seen
	// and no transcript of the session came for this long (default 15 min:
	// the final pass replays a session in one go).
	Idle time.Duration
	// MaxAge drops a session's memory when no transcript of it came for
	// this long, final revision or not (default 24 h: deployments without
	// a final pass, sessions whose final pass failed).
	MaxAge time.Duration
	// MaxSessions bounds the sessions remembered (default 50,000); past it
	// the least recently used goes.
	MaxSessions int
	// MaxFindings bounds one session's findings (default 10,000); past it
	// the oldest go.
	MaxFindings int
}

func (c *LedgerConfig) defaults() {
	if c.Idle <= 0 {
		c.Idle = 15 * time.Minute
	}
	if c.MaxAge <= 0 {
		c.MaxAge = 24 * time.Hour
	}
	if c.MaxSessions <= 0 {
		c.MaxSessions = 50_000
	}
	if c.MaxFindings <= 0 {
		c.MaxFindings = 10_000
	}
}

// trackRange is an inclusive range of samples on one track.
type trackRange struct {
	track       string
	first, last int64
}

// ledgerEntry is one finding the stage decided on: alerted (id set) or
// held back by the rate limit (id empty).
type ledgerEntry struct {
	id                     string
	room, session, speaker string
	category               string
	policyVersion          string
	timeline               event.Timeline // the first span's, as on the alert
	spans                  []trackRange
	pass                   string          // the revision that raised it
	found                  map[string]bool // later passes that found it again
	updated                map[string]bool // passes an alert.updated was written for
}

// sessionLedger is one session's findings and what the later revisions
// have covered of its tracks.
type sessionLedger struct {
	entries   []*ledgerEntry
	covered   map[string]map[string][]trackRange // pass → track → sorted, merged ranges
	reached   map[string]map[string]int64        // pass → track → latest first sample seen
	finalSeen bool
	used      time.Time
}

// ledger remembers, per session, every finding alerted (or rate-limited)
// from any revision until the session's final revision is done. It is
// what makes an alert once per thing said across revisions: a finding of
// the same session and category on an overlapping stretch of a track is
// the same thing (category rather than rule: rules of one category for one
// thing merge, and which wins depends on word probabilities). It does not
// depend on the room windows or their eviction, and the stage rebuilds it
// from the alerts topic after a restart. Safe for concurrent use.
type ledger struct {
	cfg       LedgerConfig
	mu        sync.Mutex
	sessions  map[string]*sessionLedger
	byID      map[string]*ledgerEntry
	lastSweep time.Time
}

func newLedger(cfg LedgerConfig) *ledger {
	cfg.defaults()
	return &ledger{cfg: cfg, sessions: map[string]*sessionLedger{}, byID: map[string]*ledgerEntry{}}
}

func spansOf(f Finding) []trackRange {
	out := make([]trackRange, 0, len(f.Spans))
	for _, sp := range f.Spans {
		out = append(out, trackRange{sp.Timeline.Track, sp.Timeline.FirstSample, sp.Timeline.LastSample})
	}
	return out
}

func overlapping(a, b []trackRange) bool {
	for _, x := range a {
		for _, y := range b {
			if x.track == y.track && x.first <= y.last && y.first <= x.last {
				return true
			}
		}
	}
	return false
}

// session returns a session's ledger, made when missing (under l.mu).
func (l *ledger) session(id string, now time.Time) *sessionLedger {
	s, ok := l.sessions[id]
	if !ok {
		if len(l.sessions) >= l.cfg.MaxSessions {
			l.dropOldest()
		}
		s = &sessionLedger{covered: map[string]map[string][]trackRange{}, reached: map[string]map[string]int64{}}
		l.sessions[id] = s
	}
	if now.After(s.used) {
		s.used = now
	}
	return s
}

// match returns the entry a finding is the same thing as, or nil.
func (l *ledger) match(f Finding) *ledgerEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.sessions[f.Session]
	if !ok {
		return nil
	}
	spans := spansOf(f)
	for _, e := range s.entries {
		if e.category == f.Category && overlapping(e.spans, spans) {
			return e
		}
	}
	return nil
}

// supportSlack is how far apart on the track a later revision's finding
// and an alert's words may be and still be the same thing said, for
// support only (not for de-duplication): Whisper's word times in a long
// batch drift by a second or so, and calling a real alert "not in settled
// text" is worse than missing an update.
const supportSlack = event.SampleRate

// found records that pass found f: every alert of its session and
// category whose words are on a track f covers, within supportSlack, is
// supported by pass.
func (l *ledger) found(f Finding, pass string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.sessions[f.Session]
	if !ok {
		return
	}
	wide := spansOf(f)
	for i := range wide {
		wide[i].first -= supportSlack
		wide[i].last += supportSlack
	}
	for _, e := range s.entries {
		if e.category == f.Category && e.pass != pass && overlapping(e.spans, wide) {
			e.found[pass] = true
		}
	}
}

// add remembers a finding decided on: alerted under id, or held back
// (id ""). An ID already known is not added again.
func (l *ledger) add(f Finding, id, pass string, now time.Time) {
	if len(f.Spans) == 0 {
		return
	}
	l.insert(&ledgerEntry{
		id: id, room: f.Room, session: f.Session, speaker: f.Spans[0].Speaker, category: f.Category,
		policyVersion: f.PolicyVersion, timeline: f.Spans[0].Timeline, spans: spansOf(f), pass: pass,
	}, now)
}

func (l *ledger) insert(e *ledgerEntry, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e.id != "" {
		if _, ok := l.byID[e.id]; ok {
			return
		}
		l.byID[e.id] = e
	}
	e.found, e.updated = map[string]bool{}, map[string]bool{}
	s := l.session(e.session, now)
	s.entries = append(s.entries, e)
	if n := len(s.entries) - l.cfg.MaxFindings; n > 0 {
		for _, old := range s.entries[:n] {
			delete(l.byID, old.id)
		}
		s.entries = slices.Delete(s.entries, 0, n)
	}
}

// markUpdated records that an alert.updated was written for e from pass.
func (l *ledger) markUpdated(id, pass string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.byID[id]; ok {
		e.updated[pass] = true
	}
}

// cover records that pass transcribed tl (a segment with speech) and
// returns the entries of the session that pass no longer supports: alerted
// from an earlier pass, not found again by this one, not updated for it
// yet, and for each of their spans this pass has covered at least half of
// it and moved on past its end on the track (a segment that starts after
// it has been evaluated, so a match this pass could only complete with the
// next segment had its chance). A stretch the pass never reached (a
// dropped batch) keeps its alert without an update.
func (l *ledger) cover(session, pass string, tl event.Timeline, now time.Time) []*ledgerEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.sessions[session]; !ok && pass == PassLive {
		return nil // nothing to keep for a session without findings
	}
	s := l.session(session, now)
	if pass == event.PassFinal {
		s.finalSeen = true
	}
	if pass == PassLive {
		return nil
	}
	tracks := s.covered[pass]
	if tracks == nil {
		tracks = map[string][]trackRange{}
		s.covered[pass] = tracks
		s.reached[pass] = map[string]int64{}
	}
	tracks[tl.Track] = mergeRange(tracks[tl.Track], trackRange{tl.Track, tl.FirstSample, tl.LastSample})
	if r, ok := s.reached[pass][tl.Track]; !ok || tl.FirstSample > r {
		s.reached[pass][tl.Track] = tl.FirstSample
	}
	var out []*ledgerEntry
	for _, e := range s.entries {
		if e.id == "" || passRank(pass) <= passRank(e.pass) || e.found[pass] || e.updated[pass] {
			continue
		}
		done := true
		for _, sp := range e.spans {
			r, ok := s.reached[pass][sp.track]
			if !ok || r <= sp.last || 2*covered(tracks[sp.track], sp.first, sp.last) < sp.last-sp.first+1 {
				done = false
				break
			}
		}
		if done {
			out = append(out, e)
		}
	}
	return out
}

// mergeRange adds r to sorted, merged ranges.
func mergeRange(rs []trackRange, r trackRange) []trackRange {
	i, _ := slices.BinarySearchFunc(rs, r.first, func(x trackRange, first int64) int { return cmp.Compare(x.first, first) })
	rs = slices.Insert(rs, i, r)
	out := rs[:1]
	for _, x := range rs[1:] {
		last := &out[len(out)-1]
		if x.first <= last.last+1 {
			last.last = max(last.last, x.last)
			continue
		}
		out = append(out, x)
	}
	return out
}

// covered is how many samples of [first, last] the ranges hold.
func covered(rs []trackRange, first, last int64) int64 {
	var n int64
	for _, r := range rs {
		if r.last < first || r.first > last {
			continue
		}
		n += min(r.last, last) - max(r.first, first) + 1
	}
	return n
}

// sweep drops the sessions whose final revision is done (seen, then quiet
// for Idle) and those quiet for MaxAge; at most once a minute.
func (l *ledger) sweep(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) < time.Minute {
		return
	}
	l.lastSweep = now
	for id, s := range l.sessions {
		idle := now.Sub(s.used)
		if s.finalSeen && idle > l.cfg.Idle || idle > l.cfg.MaxAge {
			l.drop(id)
		}
	}
}

// Sessions is how many sessions the ledger remembers.
func (l *ledger) Sessions() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.sessions)
}

func (l *ledger) dropOldest() {
	var oldest string
	var at time.Time
	for id, s := range l.sessions {
		if oldest == "" || s.used.Before(at) {
			oldest, at = id, s.used
		}
	}
	if oldest != "" {
		l.drop(oldest)
	}
}

func (l *ledger) drop(id string) {
	for _, e := range l.sessions[id].entries {
		delete(l.byID, e.id)
	}
	delete(l.sessions, id)
}
