package fingerprint

import (
	"fmt"
	"math"
	"slices"
)

// MatcherConfig holds the thresholds every comparison uses: the live stage,
// the recall cases and the false-alarm test share DefaultMatcherConfig.
type MatcherConfig struct {
	// Speeds are the speed hypotheses: a replay played faster or slower by
	// up to a few percent (or resampled) shifts every frequency, which
	// would change every hash; each hypothesis maps the query back.
	Speeds []float64
	// MinSeconds is how many distinct seconds of the query must hold a
	// time-consistent hit before a match is reported.
	MinSeconds int
	// MinHits is the least number of time-consistent hits.
	MinHits int
	// MaxGapFrames is the longest run of frames without a consistent hit
	// inside one matched span.
	MaxGapFrames int32
	// MaxSlot skips landmarks that more than this many indexed landmarks
	// share.
	MaxSlot int
	// MinConfidence is the least share of the query's landmarks in the
	// matched span that hit the reference at the span's offset.
	MinConfidence float64
	// Allowed reports whether two rooms may carry the same audio (a
	// consented simulcast); nil allows no pair. Such pairs are never
	// compared; the answer is asked again each second of the query, so it
	// may change over time. Same-room matches are never reported.
	Allowed func(roomA, roomB string) bool
}

// DefaultMatcherConfig is the shipped configuration.
func DefaultMatcherConfig() MatcherConfig {
	return MatcherConfig{
		Speeds:        []float64{0.97, 0.98, 0.99, 1, 1.01, 1.02, 1.03},
		MinSeconds:    5,
		MinHits:       20,
		MaxGapFrames:  2 * 1000 / FrameMS,
		MinConfidence: 0.02,
		MaxSlot:       1024,
	}
}

// Validate lists every problem of c.
func (c MatcherConfig) Validate() error {
	var errs []string
	if len(c.Speeds) == 0 {
		errs = append(errs, "no speed hypotheses")
	}
	for _, s := range c.Speeds {
		if s < 0.8 || s > 1.25 {
			errs = append(errs, fmt.Sprintf("speed hypothesis %v outside 0.8..1.25", s))
		}
	}
	if c.MinSeconds < 2 {
		errs = append(errs, "min seconds below 2")
	}
	if c.MinHits < 5 {
		errs = append(errs, "min hits below 5")
	}
	if c.MaxGapFrames < 1 {
		errs = append(errs, "max gap below one frame")
	}
	if c.MaxSlot < 16 {
		errs = append(errs, "max slot below 16")
	}
	if c.MinConfidence < 0 || c.MinConfidence > 1 {
		errs = append(errs, "min confidence outside 0..1")
	}
	if len(errs) > 0 {
		return fmt.Errorf("fingerprint: matcher config: %v", errs)
	}
	return nil
}

// Match is audio of one track (the query) found in another (the
// reference) at one time offset.
type Match struct {
	Query, Ref TrackInfo
	// QueryFrames and RefFrames are the matched spans [first, last] in
	// each track's frames.
	QueryFrames, RefFrames [2]int32
	// Seconds is how many distinct seconds of the query span hold a
	// consistent hit; Hits counts those hits.
	Seconds, Hits int
	// Confidence is the share of the query's landmarks in the span that
	// hit the reference at the span's offset (0..1): near 1 for a clean
	// copy, 0.1–0.3 for a copy through a loudspeaker and microphone, and
	// below 0.01 for unrelated audio.
	Confidence float64
	// Speed is the hypothesis that matched: the query plays at this speed
	// relative to the reference.
	Speed float64
	// Speech reports whether the query span sounds like speech (syllabic
	// level changes and pauses) rather than music or steady sound.
	Speech bool
}

// QueryMS and RefMS are the matched spans in wall-clock milliseconds.
func (m Match) QueryMS() [2]int64 {
	return [2]int64{endMS(m.Query, m.QueryFrames[0]), endMS(m.Query, m.QueryFrames[1]+1)}
}

// RefMS is the reference's matched span in wall-clock milliseconds.
func (m Match) RefMS() [2]int64 {
	return [2]int64{endMS(m.Ref, m.RefFrames[0]), endMS(m.Ref, m.RefFrames[1]+1)}
}

// DurationMS is the query span's length.
func (m Match) DurationMS() int64 { q := m.QueryMS(); return q[1] - q[0] }

type candKey struct {
	ref uint32
	hyp uint8
	off int32 // offset bin
}

type hit struct{ tq, tr int32 }

// rawHit is a hit before it is judged: key packs the reference track (32
// bits), the speed hypothesis (8) and the offset cell plus offBias (24).
type rawHit struct {
	key uint64
	hit
}

// offBias makes offset cells non-negative in a rawHit key.
const offBias = 1 << 23

// offBin is the width of an offset cell in frames; a match sums three
// neighbouring cells, so offsets may wander ±1.5 cells
// (about 100 ms) within a span: what a residual speed error of half a
// hypothesis step accumulates over 20 s.
const offBin = 4

// maxHitsPerCand bounds memory per candidate.
const maxHitsPerCand = 4096

// minHitsPerSecond is what makes a second of the query part of a match.
const minHitsPerSecond = 3

// Matcher compares one track's landmarks, as they arrive, with an Index.
// It is not safe for concurrent use.
type Matcher struct {
	cfg   MatcherConfig
	idx   *Index
	self  uint32
	cands map[candKey][]hit
	// pending are the hits of the current second (cell) of the query.
	pending    []rawHit
	scratch    []rawHit
	cell, now  int32
	allowCache map[uint32]bool
	// npairs counts the query's pairs per frame, from frame base on.
	base    int32
	npairs  []uint16
	reports map[uint32]*Match // by reference track: one match each
	touched []candKey
	lastGC  int32
}

// NewMatcher returns a matcher for track self of idx.
func NewMatcher(cfg MatcherConfig, idx *Index, self uint32) (*Matcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if int(self) >= len(idx.tracks) {
		return nil, fmt.Errorf("%w: %d", ErrUnknownTrack, self)
	}
	return &Matcher{cfg: cfg, idx: idx, self: self, cands: map[candKey][]hit{},
		reports: map[uint32]*Match{}, allowCache: map[uint32]bool{}, cell: -1}, nil
}

// Push looks up pairs (the query's next pairs, in order). The query's
// frame levels must be in the index (Index.AddLevels) before its pairs
// arrive. Hits are judged a second of the query at a time, once the pairs
// of a later second arrive (or at Flush). It returns the matches that
// reached the thresholds in this call, each once per reference track;
// later calls extend them (see Matches).
func (m *Matcher) Push(pairs []Pair) []Match {
	self := &m.idx.tracks[m.self]
	var out []Match
	for _, p := range pairs {
		if cell := p.T * FrameMS / 1000; cell != m.cell {
			out = m.flushCell(out)
			m.cell = cell
			// Allowances can end (an allow list entry's end time): asked
			// again each second of the query.
			clear(m.allowCache)
		}
		m.now = p.T
		m.countPair(p.T)
		for hi, r := range m.cfg.Speeds {
			h, ok := Hash(p, r)
			if !ok {
				continue
			}
			tq := float64(p.T) * r
			slot := m.idx.slots[h]
			if len(slot) > m.cfg.MaxSlot {
				// A landmark this common says little (as a stop word in
				// text search) and would cost a long scan.
				continue
			}
			for _, e := range slot {
				ts := &m.idx.tracks[e.track]
				if ts.room == self.room || ts.dead || !m.comparable(ts) {
					continue
				}
				off := int64(math.Floor((float64(e.t)-tq)/offBin)) + offBias
				if off < 0 || off >= 1<<24 {
					continue
				}
				m.pending = append(m.pending, rawHit{
					key: uint64(e.track)<<32 | uint64(hi)<<24 | uint64(off),
					hit: hit{tq: p.T, tr: e.t},
				})
			}
		}
	}
	if m.now-m.lastGC > 1000/FrameMS {
		m.gc(m.now)
		m.lastGC = m.now
	}
	return out
}

// Flush judges the hits of the last second (end of the track).
func (m *Matcher) Flush() []Match { return m.flushCell(nil) }

// comparable reports whether the query may be compared with a track of
// another room: not when the room pair is allow-listed. Cached per room
// for the current second.
func (m *Matcher) comparable(ts *trackState) bool {
	if m.cfg.Allowed == nil {
		return true
	}
	ok, seen := m.allowCache[ts.room]
	if !seen {
		ok = !m.cfg.Allowed(ts.info.Room, m.idx.tracks[m.self].info.Room)
		m.allowCache[ts.room] = ok
	}
	return ok
}

// flushCell keeps the current second's hits that, with their neighbouring
// offsets, reach minHitsPerSecond (nothing else can count towards a
// match), adds them to their candidates and evaluates those.
func (m *Matcher) flushCell(out []Match) []Match {
	if len(m.pending) == 0 {
		return out
	}
	p := m.radixSort(m.pending)
	// Group boundaries, then a window over neighbouring offsets.
	type group struct {
		key        uint64
		start, end int
	}
	var groups []group
	for i := 0; i < len(p); {
		j := i + 1
		for j < len(p) && p[j].key == p[i].key {
			j++
		}
		groups = append(groups, group{p[i].key, i, j})
		i = j
	}
	touched := m.touched[:0]
	for gi, g := range groups {
		n := g.end - g.start
		if gi > 0 && groups[gi-1].key == g.key-1 {
			n += groups[gi-1].end - groups[gi-1].start
		}
		if gi+1 < len(groups) && groups[gi+1].key == g.key+1 {
			n += groups[gi+1].end - groups[gi+1].start
		}
		if n < minHitsPerSecond {
			continue
		}
		k := candKey{ref: uint32(g.key >> 32), hyp: uint8(g.key >> 24), off: int32(g.key&(1<<24-1)) - offBias}
		hs := m.cands[k]
		for _, h := range p[g.start:g.end] {
			if len(hs) < maxHitsPerCand {
				hs = append(hs, h.hit)
			}
		}
		m.cands[k] = hs
		touched = append(touched, k)
	}
	m.pending = m.pending[:0]
	for _, k := range touched {
		if mt, first := m.evaluate(k); first {
			out = append(out, mt)
		}
	}
	m.touched = touched[:0]
	return out
}

// Matches returns every match found so far, with its span as extended
// since it was first reported.
func (m *Matcher) Matches() []Match {
	out := make([]Match, 0, len(m.reports))
	for _, r := range m.reports {
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b Match) int { return int(a.QueryFrames[0] - b.QueryFrames[0]) })
	return out
}

func (m *Matcher) countPair(t int32) {
	for int(t-m.base) >= len(m.npairs) {
		m.npairs = append(m.npairs, 0)
	}
	if i := t - m.base; i >= 0 && m.npairs[i] < math.MaxUint16 {
		m.npairs[i]++
	}
}

// evaluate checks the candidate around k. It returns the match and true
// when the reference track is reported for the first time.
func (m *Matcher) evaluate(k candKey) (Match, bool) {
	var hs []hit
	for d := int32(-1); d <= 1; d++ {
		hs = append(hs, m.cands[candKey{ref: k.ref, hyp: k.hyp, off: k.off + d}]...)
	}
	if len(hs) < m.cfg.MinHits {
		return Match{}, false
	}
	slices.SortFunc(hs, func(a, b hit) int { return int(a.tq - b.tq) })
	// Only seconds holding minHitsPerSecond consistent hits count: a
	// chance hit at the same offset is rare, and a word that both rooms
	// happen to say gives one or two, so neither extends a span nor
	// bridges its gaps.
	type sec struct {
		s, first, last int // indexes into hs
	}
	var secs []sec
	for i, h := range hs {
		s := int(h.tq * FrameMS / 1000)
		if n := len(secs); n > 0 && secs[n-1].s == s {
			secs[n-1].last = i
			continue
		}
		secs = append(secs, sec{s: s, first: i, last: i})
	}
	secs = slices.DeleteFunc(secs, func(x sec) bool { return x.last-x.first+1 < minHitsPerSecond })
	if len(secs) < m.cfg.MinSeconds {
		return Match{}, false
	}
	// The run of matched seconds ending at the latest, with no gap above
	// the limit: a match is contiguous audio.
	start := len(secs) - 1
	for start > 0 && hs[secs[start].first].tq-hs[secs[start-1].last].tq <= m.cfg.MaxGapFrames {
		start--
	}
	run := secs[start:]
	if len(run) < m.cfg.MinSeconds {
		return Match{}, false
	}
	q := [2]int32{hs[run[0].first].tq, hs[run[len(run)-1].last].tq}
	r := [2]int32{hs[run[0].first].tr, hs[run[0].first].tr}
	hits := 0
	for _, x := range run {
		for _, h := range hs[x.first : x.last+1] {
			r[0], r[1] = min(r[0], h.tr), max(r[1], h.tr)
			hits++
		}
	}
	if hits < m.cfg.MinHits {
		return Match{}, false
	}
	total := 0
	for t := q[0]; t <= q[1]; t++ {
		if i := t - m.base; i >= 0 && int(i) < len(m.npairs) {
			total += int(m.npairs[i])
		}
	}
	conf := 0.0
	if total > 0 {
		conf = min(float64(hits)/float64(total), 1)
	}
	if conf < m.cfg.MinConfidence {
		return Match{}, false
	}
	mt := Match{
		Query: m.idx.tracks[m.self].info, Ref: m.idx.tracks[k.ref].info,
		QueryFrames: q, RefFrames: r, Seconds: len(run), Hits: hits,
		Confidence: conf, Speed: m.cfg.Speeds[k.hyp],
		// The original's levels decide first: a replay through a noisy
		// room fills the pauses that mark speech.
		Speech: speechLike(m.idx.levelsOf(k.ref, r[0], r[1])) || speechLike(m.idx.levelsOf(m.self, q[0], q[1])),
	}
	prev, seen := m.reports[k.ref]
	if seen {
		// Keep the strongest evidence for this reference.
		if mt.Hits > prev.Hits {
			*prev = mt
		}
		return Match{}, false
	}
	m.reports[k.ref] = &mt
	return mt, true
}

// speechLike judges levels (one per frame): speech pauses between words
// and syllables (deep dips below its loud frames) and its level rises
// again several times a second; held notes, hums and steady music do
// neither.
func speechLike(levels []int8) bool {
	if len(levels) < 10 {
		return false
	}
	sorted := slices.Clone(levels)
	slices.Sort(sorted)
	p90 := int(sorted[len(sorted)*9/10])
	dips, rises := 0, 0
	for i, v := range levels {
		if int(v) < p90-15 {
			dips++
		}
		if i >= 2 && int(v)-int(levels[i-2]) >= 10 && int(v) >= p90-10 {
			rises++
		}
	}
	secs := float64(len(levels)) * FrameMS / 1000
	return float64(dips)/float64(len(levels)) >= 0.1 && float64(rises)/secs >= 1
}

// gc drops candidates that cannot grow any more and history older than
// any live candidate needs.
func (m *Matcher) gc(now int32) {
	horizon := now - m.cfg.MaxGapFrames - 1
	for k, hs := range m.cands {
		if hs[len(hs)-1].tq < horizon {
			delete(m.cands, k)
		}
	}
	// Keep the history a span starting at the oldest live candidate needs.
	oldest := now
	for _, hs := range m.cands {
		oldest = min(oldest, hs[0].tq)
	}
	if cut := oldest - m.base; cut > 0 && int(cut) <= len(m.npairs) {
		m.npairs = m.npairs[cut:]
		m.base = oldest
	}
}

// radixSort orders hits by key, stably (hits arrive in query time order,
// which stays the order within a key), by bytes from the least
// significant, skipping bytes all keys share: a second of hits is tens of
// thousands of mostly unrelated keys, and this is several times faster
// than a comparison sort on them. It returns the sorted slice, which is
// p or the matcher's scratch buffer.
func (m *Matcher) radixSort(p []rawHit) []rawHit {
	if cap(m.scratch) < len(p) {
		m.scratch = make([]rawHit, len(p))
	}
	src, dst := p, m.scratch[:len(p)]
	var same uint64 = ^uint64(0)
	first := p[0].key
	for _, h := range p {
		same &^= h.key ^ first
	}
	for shift := uint(0); shift < 64; shift += 8 {
		if (same>>shift)&0xff == 0xff {
			continue // every key has the same byte here
		}
		var count [257]int
		for _, h := range src {
			count[(h.key>>shift)&0xff+1]++
		}
		for i := 1; i < 257; i++ {
			count[i] += count[i-1]
		}
		for _, h := range src {
			b := (h.key >> shift) & 0xff
			dst[count[b]] = h
			count[b]++
		}
		src, dst = dst, src
	}
	return src
}
