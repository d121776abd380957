// Package policy is the detection core of Earshot's policy engine: it reads
// a versioned YAML policy, compiles its rules into detectors (lexicons,
// regular expressions, PII validators), and evaluates transcript segments
// against it, one at a time (Policy.Evaluate) or in a per-room sliding
// window that catches phrases and numbers split across segments and
// speakers (Window). Everything here is synchronous and allocation-light:
// the Kafka consumer, alert sinks and evidence endpoint call into it.
//
// Confidence: a finding's score is the rule's strength times the
// transcript's confidence in the words that matched (their word
// probabilities, else the segment's average log-probability) times the
// probability that there was speech at all. Text from audio without
// detected speech (payload speech false, or no-speech probability above the
// policy's limit) is never evaluated.
//
// Every rule applies to every segment whatever its detected language:
// rooms switch languages mid-sentence, Whisper's language guess on a short
// segment is often wrong, and English and Arabic lexicons cannot match each
// other's script, so filtering by language would only lose matches.
package policy

import (
	"embed"
	"fmt"
	"math"
	"strings"
	"sync"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/policy/detect"
)

//go:embed default.yaml
var defaultPolicy []byte

//go:embed lexicons
var builtinLexicons embed.FS

// Severity orders alerts; see detect.Severity.
type Severity = detect.Severity

// Segment is one transcript segment (a transcript.segment event) as the
// policy engine needs it.
type Segment struct {
	// ID is the transcript event's event_id.
	ID string
	// Room, Session and Speaker are the event's pseudonyms.
	Room, Session, Speaker string
	// Timeline is the segment's place on its track.
	Timeline event.Timeline
	// Language, AvgLogProb, NoSpeechProb and Speech are the event's payload.
	Language     string
	AvgLogProb   float64
	NoSpeechProb float64
	Speech       bool
	// Text and Words are the event's protected data.
	Text  string
	Words []Word
}

// Word is one transcript word on the segment's track.
type Word struct {
	Text                    string
	FirstSample, LastSample int64
	Probability             float64
}

// Finding is one rule matched in the transcript: what an alert is made of.
type Finding struct {
	// Room and Session are the segments' (a window holds one room).
	Room, Session string
	RuleID        string
	Category      string
	Severity      Severity
	PolicyVersion string
	// Strength is the rule's; Confidence the transcript's confidence in the
	// matched words; Score = Strength × Confidence.
	Strength, Confidence, Score float64
	// Value is the canonical form of a PII match (E.164 phone number,
	// e-mail address, IBAN, card network and last four digits).
	Value string
	// Text is the matched stretch of the original transcript. Value and
	// Text are personal data: they belong in an event's protected part.
	Text string
	// Spans are the matched words per segment, in time order (more than one
	// when a match runs across segments or speakers).
	Spans []Span
}

// Span is the part of one segment a finding covers.
type Span struct {
	Segment string
	Speaker string
	// Timeline is the sub-range of the segment's timeline from the first
	// matched word's first sample to the last one's last sample (the whole
	// segment when it has no word timings).
	Timeline event.Timeline
	// SegmentTimeline is the whole segment's timeline: utterance
	// boundaries, which do not move when another model re-transcribes the
	// same audio, while word timings may.
	SegmentTimeline event.Timeline
	// FirstWord and LastWord index Segment.Words (-1 without words).
	FirstWord, LastWord int
	// FirstToken is the position of the first matched token in the
	// segment's normalised text: where the match starts when the segment
	// has no word timings.
	FirstToken int
}

// Policy is a compiled policy. It is immutable and safe for concurrent use.
type Policy struct {
	version     string
	minScore    float64
	maxNoSpeech float64
	rules       []*rule
	byDetect    map[*detect.Rule]*rule
	lex         *detect.Lexicon
	keys        []keyRef
	regexes     []regexRef
	pii         []detect.Detector
	hasNear     bool
	pool        sync.Pool
}

type ruleKind uint8

const (
	kindLexicon ruleKind = iota + 1
	kindRegex
	kindDetector
)

type rule struct {
	detect.Rule
	index    int
	kind     ruleKind
	signal   bool
	minScore float64
	pii      bool
	// validated says the detector checks what it matched (libphonenumber
	// validity, Luhn, mod-97): see evalState.confidence.
	validated bool
	// context suppression: a suppress term within `within` tokens drops
	// the match.
	suppress bool
	within   int
	near     map[string]bool
	nearDist int
}

type keyKind uint8

const (
	keyLexicon keyKind = iota + 1
	keySuppress
	keyFactor
)

type keyRef struct {
	kind keyKind
	rule *rule
}

type regexRef struct {
	re        *detect.Regex
	rule      *rule
	factorKey int // -1: always run
}

// Version is the policy's version string (an alert's policy_version).
func (p *Policy) Version() string { return p.version }

// Rules returns the IDs of the policy's rules in file order.
func (p *Policy) Rules() []string {
	ids := make([]string, len(p.rules))
	for i, r := range p.rules {
		ids[i] = r.ID
	}
	return ids
}

// Default returns the policy embedded in Earshot (policy/default.yaml with
// the builtin lexicons).
func Default() (*Policy, error) {
	return Parse(defaultPolicy, Source{Name: "builtin:default.yaml"})
}

// DefaultYAML returns the embedded default policy file, a starting point
// for a deployment's own.
func DefaultYAML() []byte { return append([]byte(nil), defaultPolicy...) }

// Default thresholds.
const (
	defaultMinScore    = 0.5
	defaultMaxNoSpeech = 0.6
	defaultWithin      = 4
	maxWithin          = 50
)

// compile validates the decoded file and builds the Policy; problems are
// collected in c.
func (c *checker) compile(doc *fileDoc) *Policy {
	p := &Policy{version: strings.TrimSpace(doc.Version), minScore: defaultMinScore, maxNoSpeech: defaultMaxNoSpeech, byDetect: map[*detect.Rule]*rule{}}
	if p.version == "" {
		c.add(0, "version", "the policy has no version", `add a line like version: "2026-11-25.1"; it becomes each alert's policy_version`)
	}
	if s := doc.Scoring.MinScore; s != nil {
		if *s < 0 || *s > 1 {
			c.add(0, "scoring.min_score", fmt.Sprintf("%v is outside [0, 1]", *s), "use a score between 0 and 1 (default 0.5)")
		}
		p.minScore = *s
	}
	if s := doc.Scoring.MaxNoSpeechProb; s != nil {
		if *s < 0 || *s > 1 {
			c.add(0, "scoring.max_no_speech_prob", fmt.Sprintf("%v is outside [0, 1]", *s), "use a probability between 0 and 1 (default 0.6, Whisper's own)")
		}
		p.maxNoSpeech = *s
	}
	var regions []string
	for i, r := range doc.PhoneRegions {
		if !detect.ValidRegion(strings.ToUpper(r)) {
			c.add(0, fmt.Sprintf("phone_regions[%d]", i), fmt.Sprintf("unknown region %q", r), "use an ISO 3166-1 alpha-2 code such as US, GB, AE, SA, EG")
			continue
		}
		regions = append(regions, strings.ToUpper(r))
	}
	var sets []detect.TermSet
	addKey := func(k keyKind, r *rule) int {
		p.keys = append(p.keys, keyRef{kind: k, rule: r})
		return len(p.keys) - 1
	}
	ids := map[string]int{}
	produced := map[string]bool{}
	type nearCheck struct {
		line  int
		where string
		cats  []string
	}
	var nears []nearCheck
	if len(doc.Rules) == 0 {
		c.add(0, "rules", "the policy has no rules", "add rules (see the embedded default policy for examples)")
	}
	for i := range doc.Rules {
		fr := &doc.Rules[i]
		line := c.ruleLine(i)
		where := fmt.Sprintf("rules[%d]", i)
		if fr.ID != "" {
			where += " (" + fr.ID + ")"
		}
		r := &rule{index: i, within: defaultWithin, minScore: p.minScore, signal: fr.Signal}
		r.ID = fr.ID
		switch {
		case fr.ID == "":
			c.add(line, where, "the rule has no id", "add id: <unique name>, e.g. abuse.threat.en")
		case !ruleID.MatchString(fr.ID):
			c.add(line, where, fmt.Sprintf("id %q has characters other than a-z, 0-9, '.', '_' and '-'", fr.ID), "use a lower-case id such as abuse.threat.en")
		default:
			if prev, dup := ids[fr.ID]; dup {
				c.add(line, where, fmt.Sprintf("duplicate rule id %q (also rules[%d])", fr.ID, prev), "give every rule its own id: alerts and their dedupe keys use it")
			} else {
				ids[fr.ID] = i
			}
		}
		r.Category = fr.Category
		if !knownCategory(fr.Category) {
			what := fmt.Sprintf("unknown category %q", fr.Category)
			if fr.Category == "" {
				what = "the rule has no category"
			}
			c.add(line, where+".category", what, "use one of "+categoryList())
		}
		produced[fr.Category] = true
		sev := fr.Severity
		if sev == "" && fr.Signal {
			sev = "low"
		}
		if s, err := detect.ParseSeverity(sev); err != nil {
			what := fmt.Sprintf("bad severity %q", fr.Severity)
			if sev == "" {
				what = "the rule has no severity"
			}
			c.add(line, where+".severity", what, "use low, medium, high or critical")
		} else {
			r.Severity = s
		}
		r.Strength = 0.8
		if fr.Strength != nil {
			if *fr.Strength <= 0 || *fr.Strength > 1 {
				c.add(line, where+".strength", fmt.Sprintf("strength %v is outside (0, 1]", *fr.Strength), "use how sure a match is a violation, e.g. 0.9 for a validated number, 0.6 for a loose phrase")
			}
			r.Strength = *fr.Strength
		}
		if fr.MinScore != nil {
			if *fr.MinScore < 0 || *fr.MinScore > 1 {
				c.add(line, where+".min_score", fmt.Sprintf("%v is outside [0, 1]", *fr.MinScore), "use a score between 0 and 1, or leave it out for scoring.min_score")
			}
			r.minScore = *fr.MinScore
		}
		kinds := 0
		if fr.Detector != "" {
			kinds++
		}
		if fr.Lexicon != nil {
			kinds++
		}
		if fr.Regex != nil {
			kinds++
		}
		if kinds != 1 {
			c.add(line, where, fmt.Sprintf("the rule has %d of detector, lexicon and regex", kinds), "give each rule exactly one of detector:, lexicon: or regex: (split it into several rules)")
		}
		switch {
		case fr.Detector != "":
			r.kind = kindDetector
			r.pii = true
			var d detect.Detector
			switch fr.Detector {
			case "phone", "card", "iban":
				r.validated = true
			}
			switch fr.Detector {
			case "phone":
				if len(regions) == 0 && len(doc.PhoneRegions) == 0 {
					c.add(line, where+".detector", "the phone detector needs region hints", "add phone_regions: [US, GB, …] at the top level")
				}
				d = detect.NewPhone(&r.Rule, regions)
			case "email":
				d = detect.NewEmail(&r.Rule)
			case "card":
				d = detect.NewCard(&r.Rule)
			case "iban":
				d = detect.NewIBAN(&r.Rule)
			default:
				c.add(line, where+".detector", fmt.Sprintf("unknown detector %q", fr.Detector), "use one of "+strings.Join(detectorNames, ", "))
			}
			if d != nil {
				p.pii = append(p.pii, d)
			}
		case fr.Lexicon != nil:
			r.kind = kindLexicon
			terms := append([]string(nil), fr.Lexicon.Terms...)
			for j, f := range fr.Lexicon.Files {
				terms = append(terms, c.readList(line, fmt.Sprintf("%s.lexicon.files[%d]", where, j), f)...)
			}
			terms = c.checkTerms(line, where+".lexicon.terms", terms)
			if len(terms) == 0 && len(fr.Lexicon.Files) == 0 {
				c.add(line, where+".lexicon", "the lexicon has no terms", "add terms: [...] or files: [builtin:en/threats.txt, my_terms.txt]")
			}
			sets = append(sets, detect.TermSet{Key: addKey(keyLexicon, r), Terms: terms})
		case fr.Regex != nil:
			r.kind = kindRegex
			digits := false
			switch fr.Regex.View {
			case "", "text":
			case "digits":
				digits = true
			default:
				c.add(line, where+".regex.view", fmt.Sprintf("unknown view %q", fr.Regex.View), "use text (normalised words) or digits (numbers as digit strings)")
			}
			if len(fr.Regex.Patterns) == 0 {
				c.add(line, where+".regex", "the rule has no patterns", "add patterns: ['...'] (Go RE2 syntax, on lower-case normalised text)")
			}
			for j, pat := range fr.Regex.Patterns {
				re, err := detect.NewRegex(&r.Rule, pat, digits)
				if err != nil {
					c.add(line, fmt.Sprintf("%s.regex.patterns[%d]", where, j), fmt.Sprintf("bad pattern %q: %v", pat, err), "write Go RE2 syntax (https://pkg.go.dev/regexp/syntax) for lower-case normalised text; quote it with single quotes in YAML")
					continue
				}
				ref := regexRef{re: re, rule: r, factorKey: -1}
				factors := re.Factors()
				if digits && strings.ContainsAny(strings.Join(factors, ""), "0123456789") {
					// Digit literals in the digits view may come from spoken
					// numbers, which the text view spells out.
					factors = nil
				}
				if factors != nil {
					ref.factorKey = addKey(keyFactor, r)
					sets = append(sets, detect.TermSet{Key: ref.factorKey, Terms: factors, Substring: true})
				}
				p.regexes = append(p.regexes, ref)
			}
		}
		if ctx := fr.Context; ctx != nil {
			if ctx.Within < 0 || ctx.Within > maxWithin {
				c.add(line, where+".context.within", fmt.Sprintf("%d is outside [1, %d]", ctx.Within, maxWithin), "give the distance in words (default 4)")
			}
			if ctx.Within > 0 {
				r.within = ctx.Within
			}
			terms := append([]string(nil), ctx.Suppress...)
			for j, f := range ctx.SuppressFiles {
				terms = append(terms, c.readList(line, fmt.Sprintf("%s.context.suppress_files[%d]", where, j), f)...)
			}
			terms = c.checkTerms(line, where+".context.suppress", terms)
			if len(terms) > 0 {
				r.suppress = true
				sets = append(sets, detect.TermSet{Key: addKey(keySuppress, r), Terms: terms})
			}
		}
		if n := fr.Near; n != nil {
			if len(n.Categories) == 0 {
				c.add(line, where+".near", "near has no categories", "list the categories a match must be near, e.g. [pii.phone, pii.address]")
			}
			r.near = map[string]bool{}
			for _, cat := range n.Categories {
				r.near[cat] = true
			}
			r.nearDist = n.Within
			if n.Within <= 0 || n.Within > maxWithin {
				c.add(line, where+".near.within", fmt.Sprintf("%d is outside [1, %d]", n.Within, maxWithin), "give the distance in words, e.g. within: 10")
			}
			if fr.Detector != "" {
				c.add(line, where+".near", "near applies to lexicon and regex rules", "move near: to the cue rule that needs the PII match")
			}
			nears = append(nears, nearCheck{line, where, n.Categories})
			p.hasNear = true
		}
		p.rules = append(p.rules, r)
		p.byDetect[&r.Rule] = r
	}
	for _, n := range nears {
		for j, cat := range n.cats {
			if !knownCategory(cat) {
				c.add(n.line, fmt.Sprintf("%s.near.categories[%d]", n.where, j), fmt.Sprintf("unknown category %q", cat), "use one of "+categoryList())
			} else if !produced[cat] {
				c.add(n.line, fmt.Sprintf("%s.near.categories[%d]", n.where, j), fmt.Sprintf("no rule reports category %q", cat), "add a rule for it (signal: true if it should not alert on its own) or remove it here")
			}
		}
	}
	if len(c.problems) > 0 {
		return nil
	}
	lex, err := detect.NewLexicon(sets)
	if err != nil {
		c.add(0, "lexicons", err.Error(), "remove the term")
		return nil
	}
	p.lex = lex
	p.pool.New = func() any { return new(evalState) }
	return p
}

// MinScore is the policy's default alert threshold.
func (p *Policy) MinScore() float64 { return p.minScore }

// Speech says a segment may be evaluated: voice activity was detected and
// the engine's no-speech probability is within the policy's limit. Text of
// a segment that fails this is never matched, since Whisper invents text
// for silence and noise.
func (p *Policy) Speech(s *Segment) bool {
	return s.Speech && s.NoSpeechProb <= p.maxNoSpeech && !math.IsNaN(s.NoSpeechProb)
}

// Evaluate checks one segment on its own and returns its findings, highest
// score first. Use a Window to also catch matches across segments.
func (p *Policy) Evaluate(s *Segment) []Finding {
	if !p.Speech(s) {
		return nil
	}
	st := p.pool.Get().(*evalState)
	defer p.pool.Put(st)
	st.reset()
	st.add(s, false)
	st.doc.Finish()
	return p.evaluate(st, 0)
}
