package policy

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/earshot/earshot/policy/detect"
	"github.com/earshot/earshot/policy/normalize"
)

// evalState is the scratch space of one evaluation, pooled so that the
// steady state allocates little.
type evalState struct {
	doc     normalize.Doc
	segs    []*Segment
	words   []string
	hits    []detect.Hit
	supp    []detect.Hit
	factor  []bool
	matches []detect.Match
	scored  []scored
	// trace, when set, records every candidate match and why it did or
	// did not become a finding (Policy.Explain); nil on the hot path.
	trace *[]Candidate
}

type scored struct {
	m     detect.Match
	r     *rule
	conf  float64
	score float64
}

func (st *evalState) reset() {
	st.doc.Reset()
	clear(st.segs)
	st.segs = st.segs[:0]
}

// add appends a segment as the Doc's next piece.
func (st *evalState) add(s *Segment, brk bool) {
	st.words = st.words[:0]
	for i := range s.Words {
		st.words = append(st.words, s.Words[i].Text)
	}
	st.doc.AddPiece(s.Text, st.words, brk)
	st.segs = append(st.segs, s)
}

// evaluate runs the policy over the finished Doc in st and returns the
// findings that cover piece touch (all findings when touch < 0).
func (p *Policy) evaluate(st *evalState, touch int) []Finding {
	d := &st.doc
	if len(d.Tokens) == 0 {
		return nil
	}
	st.hits = p.lex.Find(d, st.hits[:0])
	st.factor = slices.Grow(st.factor[:0], len(p.keys))[:len(p.keys)]
	clear(st.factor)
	ms := st.matches[:0]
	st.supp = st.supp[:0]
	for _, h := range st.hits {
		k := p.keys[h.Key]
		switch k.kind {
		case keyLexicon:
			ms = append(ms, detect.Match{Rule: &k.rule.Rule, First: h.First, Last: h.Last})
		case keySuppress:
			st.supp = append(st.supp, h)
		case keyFactor:
			st.factor[h.Key] = true
		}
	}
	for _, rx := range p.regexes {
		if rx.factorKey < 0 || st.factor[rx.factorKey] {
			ms = rx.re.Detect(d, ms)
		}
	}
	nPII := len(ms)
	for _, det := range p.pii {
		ms = det.Detect(d, ms)
	}
	ms = resolvePII(d, ms, nPII)
	// Context suppression.
	keep := ms[:0]
	for _, m := range ms {
		r := p.byDetect[m.Rule]
		if r.suppress && p.suppressed(st, r, m) {
			st.note(p, r, m, 0, 0, StatusSuppressed, fmt.Sprintf("a context term of the rule (%q) is within %d words", p.suppressor(st, r, m), r.within))
			continue
		}
		keep = append(keep, m)
	}
	ms = keep
	// Cue rules that need a match of some category near them.
	if p.hasNear {
		n := len(ms)
		for i := range n {
			r := p.byDetect[ms[i].Rule]
			if r.near == nil {
				continue
			}
			best := -1
			for j := range n {
				if j == i || ms[j].Rule == nil {
					continue
				}
				o := p.byDetect[ms[j].Rule]
				if o.near != nil || !r.near[o.Category] || distance(ms[i], ms[j]) > r.nearDist {
					continue
				}
				if best < 0 || distance(ms[i], ms[j]) < distance(ms[i], ms[best]) {
					best = j
				}
			}
			if best < 0 {
				st.note(p, r, ms[i], 0, 0, StatusNoContext, fmt.Sprintf("needs a match of %s within %d words; there is none", strings.Join(slices.Sorted(maps.Keys(r.near)), " or "), r.nearDist))
				ms[i].Rule = nil // dropped below
				continue
			}
			ms[i].First = min(ms[i].First, ms[best].First)
			ms[i].Last = max(ms[i].Last, ms[best].Last)
		}
	}
	st.matches = ms
	sc := st.scored[:0]
	for _, m := range ms {
		if m.Rule == nil {
			continue
		}
		r := p.byDetect[m.Rule]
		if r.signal {
			st.note(p, r, m, 0, 0, StatusSignal, "a signal: context for other rules (near:), never an alert on its own")
			continue
		}
		conf := st.confidence(m.First, m.Last, r.validated)
		score := r.Strength * conf
		if score < r.minScore {
			st.note(p, r, m, conf, score, StatusLowScore, fmt.Sprintf("score %.2f (strength %.2f × confidence %.2f) is below min_score %.2f", score, r.Strength, conf, r.minScore))
			continue
		}
		sc = append(sc, scored{m: m, r: r, conf: conf, score: score})
	}
	if st.trace != nil {
		before := append([]scored(nil), sc...)
		sc = mergeCategory(sc)
		for _, b := range before {
			status, why := StatusFired, ""
			for _, w := range sc {
				if w.r == b.r && w.m.First <= b.m.First && b.m.Last <= w.m.Last {
					break
				}
				if w.r.Category == b.r.Category && b.m.First <= w.m.Last && w.m.First <= b.m.Last {
					status, why = StatusMerged, fmt.Sprintf("overlaps %s (same category, higher score): one alert", w.r.ID)
					break
				}
			}
			st.note(p, b.r, b.m, b.conf, b.score, status, why)
		}
	} else {
		sc = mergeCategory(sc)
	}
	st.scored = sc
	var out []Finding
	for _, s := range sc {
		if touch >= 0 && !(int(d.Tokens[s.m.First].Piece) <= touch && touch <= int(d.Tokens[s.m.Last].Piece)) {
			continue
		}
		out = append(out, st.finding(p, s))
	}
	slices.SortStableFunc(out, func(a, b Finding) int { return cmp.Compare(b.Score, a.Score) })
	return out
}

// resolvePII drops PII matches inside a longer PII match of another rule
// (a phone number inside an IBAN or a card number), and phone numbers in
// the same run of digits as a card number or an IBAN: the rest of a card
// read out in pairs and partly misheard ("41, 11, 11, … 12, 11") is not a
// phone number someone gave. ms[from:] are PII.
func resolvePII(d *normalize.Doc, ms []detect.Match, from int) []detect.Match {
	pii := ms[from:]
	if len(pii) < 2 {
		return ms
	}
	slices.SortStableFunc(pii, func(a, b detect.Match) int {
		return cmp.Compare(b.Last-b.First, a.Last-a.First)
	})
	keep := pii[:0]
	for _, m := range pii {
		shadowed := false
		for _, k := range keep {
			if k.Rule != m.Rule && m.First <= k.Last && k.First <= m.Last {
				shadowed = true
				break
			}
		}
		if !shadowed {
			keep = append(keep, m)
		}
	}
	var numbers []int // first tokens of the cards and IBANs
	for _, k := range keep {
		if k.Rule.Category == "pii.card" || k.Rule.Category == "pii.iban" {
			numbers = append(numbers, k.First)
		}
	}
	if len(numbers) > 0 {
		keep = slices.DeleteFunc(keep, func(m detect.Match) bool {
			if m.Rule.Category != "pii.phone" {
				return false
			}
			first, last, ok := runAround(d, m.First)
			return ok && slices.ContainsFunc(numbers, func(k int) bool { return first <= k && k <= last })
		})
	}
	return ms[:from+len(keep)]
}

// runAround returns the tokens of the run of digits that token i is in.
func runAround(d *normalize.Doc, i int) (first, last int, ok bool) {
	for ri := range d.Runs {
		g := d.Runs[ri].Groups
		if len(g) > 0 && int(g[0].First) <= i && i <= int(g[len(g)-1].Last) {
			return int(g[0].First), int(g[len(g)-1].Last), true
		}
	}
	return 0, 0, false
}

// distance is the number of tokens between two matches (0 when they
// overlap or touch).
func distance(a, b detect.Match) int {
	switch {
	case a.Last < b.First:
		return b.First - a.Last - 1
	case b.Last < a.First:
		return a.First - b.Last - 1
	}
	return 0
}

func (p *Policy) suppressed(st *evalState, r *rule, m detect.Match) bool {
	for _, h := range st.supp {
		if p.keys[h.Key].rule != r {
			continue
		}
		if distance(m, detect.Match{First: h.First, Last: h.Last}) < r.within {
			return true
		}
	}
	return false
}

// mergeCategory merges overlapping findings of one category into the
// highest-scoring one, covering both: one alert per thing said.
func mergeCategory(sc []scored) []scored {
	if len(sc) < 2 {
		return sc
	}
	slices.SortStableFunc(sc, func(a, b scored) int { return cmp.Compare(b.score, a.score) })
	out := sc[:0]
	for _, s := range sc {
		merged := false
		for i := range out {
			o := &out[i]
			if o.r.Category == s.r.Category && s.m.First <= o.m.Last && o.m.First <= s.m.Last {
				o.m.First = min(o.m.First, s.m.First)
				o.m.Last = max(o.m.Last, s.m.Last)
				if o.m.Value == "" {
					o.m.Value = s.m.Value
				}
				merged = true
				break
			}
		}
		if !merged {
			out = append(out, s)
		}
	}
	return out
}

// confidence is the transcript's confidence in tokens [first, last]:
// (1 − no-speech probability) × (0.5 + 0.5 q), where q is the mean
// probability of the matched words when the engine gave word
// probabilities, else exp(avg_logprob) of the segment (Whisper's mean token
// log-probability). A garbled match keeps half its weight: ASR confidence
// lowers a finding's score but does not veto it on its own.
//
// A validated identifier (validated: a phone number valid for a region, a
// card number passing Luhn, an IBAN passing mod-97) takes q = 1: the
// validator has checked the digits, and Whisper's probability on a digit
// string mostly measures how to write it down ("530 9", "5309",
// "-53009"), not whether it was heard. With q, a number read out slowly
// (tiny.en: "415 867 530 9", word probabilities 0.27–0.64, no-speech 0.31)
// scored 0.47 and was never alerted.
func (st *evalState) confidence(first, last int, validated bool) float64 {
	d := &st.doc
	noSpeech, logp := 0.0, 0.0
	sum, n := 0.0, 0
	lastPiece, lastWord := int32(-1), int32(-1)
	for i := first; i <= last; i++ {
		t := &d.Tokens[i]
		s := st.segs[t.Piece]
		if t.Piece != lastPiece {
			noSpeech = max(noSpeech, s.NoSpeechProb)
			logp = min(logp, s.AvgLogProb)
			lastWord = -1
		}
		if t.Word >= 0 && t.Word != lastWord && int(t.Word) < len(s.Words) {
			if pr := s.Words[t.Word].Probability; pr > 0 {
				sum += min(pr, 1)
				n++
			}
		}
		lastPiece, lastWord = t.Piece, t.Word
	}
	q := math.Exp(logp)
	if n > 0 {
		q = sum / float64(n)
	}
	if validated {
		q = 1
	}
	q = min(max(q, 0), 1)
	return min(max(1-noSpeech, 0), 1) * (0.5 + 0.5*q)
}

func (st *evalState) finding(p *Policy, s scored) Finding {
	d := &st.doc
	f := Finding{
		RuleID: s.r.ID, Category: s.r.Category, Severity: s.r.Severity, PolicyVersion: p.version,
		Strength: s.r.Strength, Confidence: s.conf, Score: s.score,
		Value: s.m.Value, Text: d.Span(s.m.First, s.m.Last),
	}
	if first := st.segs[d.Tokens[s.m.First].Piece]; first != nil {
		f.Room, f.Session = first.Room, first.Session
	}
	for i := s.m.First; i <= s.m.Last; {
		piece := d.Tokens[i].Piece
		j := i
		for j+1 <= s.m.Last && d.Tokens[j+1].Piece == piece {
			j++
		}
		seg := st.segs[piece]
		k := i
		for k > 0 && d.Tokens[k-1].Piece == piece {
			k--
		}
		sp := Span{FirstToken: i - k, Segment: seg.ID, Speaker: seg.Speaker, Timeline: seg.Timeline, SegmentTimeline: seg.Timeline, FirstWord: -1, LastWord: -1}
		if a, b := d.Tokens[i].Word, d.Tokens[j].Word; a >= 0 && b >= 0 && int(b) < len(seg.Words) {
			sp.FirstWord, sp.LastWord = int(a), int(b)
			sp.Timeline = seg.Timeline.Sub(seg.Words[a].FirstSample, seg.Words[b].LastSample)
		}
		f.Spans = append(f.Spans, sp)
		i = j + 1
	}
	return f
}
