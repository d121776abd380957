package fingerprint

import (
	"fmt"
	"math"
	"math/bits"
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

// maxSpeeds bounds the speed hypotheses: each costs a lookup per landmark,
// and a candidate keeps its hypothesis in a byte.
const maxSpeeds = 64

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
	if len(c.Speeds) > maxSpeeds {
		errs = append(errs, fmt.Sprintf("%d speed hypotheses, at most %d", len(c.Speeds), maxSpeeds))
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

// rawHit is a hit before it is judged: key packs the reference track and
// the speed hypothesis (ref*len(Speeds)+hyp, above bit 24) and the offset
// cell plus offBias (24 bits), so that the key's varying bits are few and
// low (radixSort sorts only those) and neighbouring offsets of one
// candidate are neighbouring keys.
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
const (
	offBinShift = 2
	offBin      = 1 << offBinShift
)

// tqFrac is the fixed-point scale of a query time mapped by a speed
// hypothesis (T*r): offsets are computed in integers from it.
const tqFrac = 8

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
	pending   []rawHit
	scratch   []rawHit
	cell, now int32
	// allowCache says per room number whether the room pair may be
	// compared (1), not (2), or is not known yet (0).
	allowCache []uint8
	// rCells and tqScale are per hypothesis: ln r in log-frequency
	// cells, and r in tqFrac fixed point.
	rCells  []float64
	tqScale []float64
	// npairs counts the query's pairs per frame, from frame base on.
	base    int32
	npairs  []uint16
	reports map[uint32]*Match // by reference track: one match each
	touched []candKey
	groups  []group
	// evalHits is evaluate's scratch.
	evalHits []hit
	lastGC   int32
}

// group is a run of equal keys in a sorted second of hits.
type group struct {
	key        uint64
	start, end int
}

// NewMatcher returns a matcher for track self of idx.
func NewMatcher(cfg MatcherConfig, idx *Index, self uint32) (*Matcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if int(self) >= len(idx.tracks) {
		return nil, fmt.Errorf("%w: %d", ErrUnknownTrack, self)
	}
	m := &Matcher{cfg: cfg, idx: idx, self: self, cands: map[candKey][]hit{},
		reports: map[uint32]*Match{}, cell: -1}
	for _, r := range cfg.Speeds {
		m.rCells = append(m.rCells, math.Log(r)/lnStep)
		m.tqScale = append(m.tqScale, r*(1<<tqFrac))
	}
	return m, nil
}

// Push looks up pairs (the query's next pairs, in order). The query's
// frame levels must be in the index (Index.AddLevels) before its pairs
// arrive. Hits are judged a second of the query at a time, once the pairs
// of a later second arrive (or at Flush). It returns the matches that
// reached the thresholds in this call, each once per reference track;
// later calls extend them (see Matches).
func (m *Matcher) Push(pairs []Pair) []Match {
	selfRoom := m.idx.tracks[m.self].room
	tracks := m.idx.tracks
	nhyp := uint64(len(m.cfg.Speeds))
	var out []Match
	var hashes [maxSpeeds]uint32
	var tqs [maxSpeeds]int64
	var valid [maxSpeeds]bool
	pend := m.pending
	for _, p := range pairs {
		if cell := p.T * FrameMS / 1000; cell != m.cell {
			m.pending = pend
			out = m.flushCell(out)
			pend = m.pending
			m.cell = cell
			// Allowances can end (an allow list entry's end time): asked
			// again each second of the query.
			clear(m.allowCache)
		}
		m.now = p.T
		m.countPair(p.T)
		cells, qd, ok := pairCells(p)
		if !ok {
			continue
		}
		for hi, r := range m.cfg.Speeds {
			hashes[hi], valid[hi] = hashAt(cells, qd, p.DT, r, m.rCells[hi])
			// The offset cell floor((t_ref - T*r) / offBin) is computed
			// in fixed point: an arithmetic shift is a floor division.
			tqs[hi] = int64(math.Round(float64(p.T) * m.tqScale[hi]))
		}
		// Neighbouring hypotheses often map a pair to the same hash: its
		// slot is read once for all of them. Hits of one key still
		// arrive in slot order, as the judgement's stable sort needs.
		for hi := 0; hi < len(m.cfg.Speeds); {
			if !valid[hi] {
				hi++
				continue
			}
			hj := hi + 1
			for hj < len(m.cfg.Speeds) && valid[hj] && hashes[hj] == hashes[hi] {
				hj++
			}
			slot := m.idx.slots[hashes[hi]]
			if len(slot) > m.cfg.MaxSlot {
				// A landmark this common says little (as a stop word in
				// text search) and would cost a long scan.
				hi = hj
				continue
			}
			for _, e := range slot {
				ts := &tracks[e.track]
				if ts.room == selfRoom || ts.dead || !m.comparable(ts) {
					continue
				}
				for k := hi; k < hj; k++ {
					off := (int64(e.t)<<tqFrac-tqs[k])>>(tqFrac+offBinShift) + offBias
					if off < 0 || off >= 1<<24 {
						continue
					}
					pend = append(pend, rawHit{
						key: (uint64(e.track)*nhyp+uint64(k))<<24 | uint64(off),
						hit: hit{tq: p.T, tr: e.t},
					})
				}
			}
			hi = hj
		}
	}
	m.pending = pend
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
	if int(ts.room) >= len(m.allowCache) {
		m.allowCache = append(m.allowCache, make([]uint8, int(ts.room)+1-len(m.allowCache))...)
	}
	if m.allowCache[ts.room] == 0 {
		m.allowCache[ts.room] = 2
		if !m.cfg.Allowed(ts.info.Room, m.idx.tracks[m.self].info.Room) {
			m.allowCache[ts.room] = 1
		}
	}
	return m.allowCache[ts.room] == 1
}

// flushCell keeps the current second's hits that, with their neighbouring
// offsets, reach minHitsPerSecond (nothing else can count towards a
// match), adds them to their candidates and evaluates those.
func (m *Matcher) flushCell(out []Match) []Match {
	if len(m.pending) == 0 {
		return out
	}
	p := m.pending
	touched := m.touched[:0]
	if len(p) > 0 {
		p = m.radixSort(p)
		m.groups = consistent(p, m.groups[:0])
		nhyp := uint64(len(m.cfg.Speeds))
		for _, g := range m.groups {
			rh := g.key >> 24
			k := candKey{ref: uint32(rh / nhyp), hyp: uint8(rh % nhyp), off: int32(g.key&(1<<24-1)) - offBias}
			hs := m.cands[k]
			for _, h := range p[g.start:g.end] {
				if len(hs) < maxHitsPerCand {
					hs = append(hs, h.hit)
				}
			}
			m.cands[k] = hs
			touched = append(touched, k)
		}
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

// consistent appends to groups the runs of equal keys of sorted hits p
// that, with the runs of the neighbouring offset cells, hold at least
// minHitsPerSecond hits. One pass: a run is judged when the next one is
// known.
func consistent(p []rawHit, groups []group) []group {
	var prev, cur group // prev: the run before cur; end == 0: none
	judge := func(next group) {
		if cur.end == 0 {
			return
		}
		n := cur.end - cur.start
		if prev.end != 0 && prev.key == cur.key-1 {
			n += prev.end - prev.start
		}
		if next.end != 0 && next.key == cur.key+1 {
			n += next.end - next.start
		}
		if n >= minHitsPerSecond {
			groups = append(groups, cur)
		}
	}
	for i := 0; i < len(p); {
		j := i + 1
		for j < len(p) && p[j].key == p[i].key {
			j++
		}
		next := group{p[i].key, i, j}
		judge(next)
		prev, cur = cur, next
		i = j
	}
	judge(group{})
	return groups
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
	var cells [3][]hit
	n := 0
	for d := range cells {
		cells[d] = m.cands[candKey{ref: k.ref, hyp: k.hyp, off: k.off + int32(d) - 1}]
		n += len(cells[d])
	}
	if n < m.cfg.MinHits {
		return Match{}, false // most candidates: nothing to copy or sort
	}
	hs := m.evalHits[:0]
	for _, c := range cells {
		hs = append(hs, c...)
	}
	m.evalHits = hs
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
// which stays the order within a key), in digits of up to 12 bits over the
// key's varying bits only: a second of hits is tens of thousands of mostly
// unrelated keys whose varying bits are the offset cell's low 16 or so and
// a few of reference and hypothesis, so two passes of a 4096-bucket count
// (in L1 cache) order them, several times faster than a comparison sort.
// It returns the sorted slice, which is p or the matcher's scratch buffer.
func (m *Matcher) radixSort(p []rawHit) []rawHit {
	const maxDigit = 12
	if cap(m.scratch) < len(p) {
		m.scratch = make([]rawHit, len(p))
	}
	src, dst := p, m.scratch[:len(p)]
	var diff uint64
	first := p[0].key
	for _, h := range p {
		diff |= h.key ^ first
	}
	if diff == 0 {
		return src
	}
	lo := uint(bits.TrailingZeros64(diff))
	width := uint(bits.Len64(diff)) - lo
	passes := (width + maxDigit - 1) / maxDigit
	digit := (width + passes - 1) / passes
	mask := uint64(1)<<digit - 1
	var count [1<<maxDigit + 1]uint32
	for shift := lo; shift < lo+width; shift += digit {
		c := count[:mask+2]
		clear(c)
		for _, h := range src {
			c[(h.key>>shift)&mask+1]++
		}
		for i := 1; i < len(c); i++ {
			c[i] += c[i-1]
		}
		for _, h := range src {
			b := (h.key >> shift) & mask
			dst[c[b]] = h
			c[b]++
		}
		src, dst = dst, src
	}
	return src
}
