package policy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/earshot/earshot/policy/detect"
)

// Candidate statuses: what became of a rule's match (Policy.Explain).
const (
	StatusFired      = "fired"       // a finding: it alerts
	StatusMerged     = "merged"      // folded into an overlapping finding of its category
	StatusLowScore   = "below_score" // strength × confidence under min_score
	StatusSuppressed = "suppressed"  // a context term of the rule is near it
	StatusNoContext  = "no_context"  // a near: rule with nothing of its categories near it
	StatusSignal     = "signal"      // a signal rule: context only
)

// Candidate is one rule's match in a text and what became of it.
type Candidate struct {
	RuleID   string `json:"rule_id"`
	Category string `json:"category"`
	// Text is the matched stretch of the original text; First and Last
	// index the normalised tokens.
	Text        string  `json:"text"`
	First, Last int     `json:"-"`
	Score       float64 `json:"score,omitempty"`
	Confidence  float64 `json:"confidence,omitempty"`
	Status      string  `json:"status"`
	Why         string  `json:"why,omitempty"`
}

// Explanation is what Explain makes of a text.
type Explanation struct {
	// Normalised is the text as the rules see it (lower case, punctuation
	// gone, Arabic letters unified).
	Normalised string `json:"normalised"`
	// Numbers are the numeric runs found, as digits (spoken numbers
	// included), what the PII detectors look at.
	Numbers []string `json:"numbers,omitempty"`
	// Candidates are every rule match, fired or not, in text order.
	Candidates []Candidate `json:"candidates"`
	// NearMisses are numeric runs long enough to be an identifier that no
	// PII detector accepted, with why.
	NearMisses []string `json:"near_misses,omitempty"`
}

// Fired returns the candidates that are findings.
func (x *Explanation) Fired() []Candidate {
	var out []Candidate
	for _, c := range x.Candidates {
		if c.Status == StatusFired {
			out = append(out, c)
		}
	}
	return out
}

// note records a candidate when tracing.
func (st *evalState) note(p *Policy, r *rule, m detect.Match, conf, score float64, status, why string) {
	if st.trace == nil {
		return
	}
	*st.trace = append(*st.trace, Candidate{
		RuleID: r.ID, Category: r.Category, Text: st.doc.Span(m.First, m.Last), First: m.First, Last: m.Last,
		Score: score, Confidence: conf, Status: status, Why: why,
	})
}

// suppressor is the context term that suppressed m (for explanations).
func (p *Policy) suppressor(st *evalState, r *rule, m detect.Match) string {
	for _, h := range st.supp {
		if p.keys[h.Key].rule == r && distance(m, detect.Match{First: h.First, Last: h.Last}) < r.within {
			return st.doc.Span(h.First, h.Last)
		}
	}
	return ""
}

// Explain evaluates text as one clean transcript segment (speech
// detected, every word sure) and says what every rule made of it: the
// normalised view, each match with its span and score, fired or not and
// why, and numbers no PII detector accepted. For rule authors
// (`earshot rules explain`); the stage uses Evaluate.
func (p *Policy) Explain(text, lang string) Explanation {
	return p.ExplainSegments([]Segment{{ID: "explain", Text: text, Speech: true, Language: lang}})
}

// ExplainSegments is Explain on transcript segments as the engine gave
// them (word probabilities, no-speech probability), evaluated together as
// one window of consecutive segments with no barrier between them; segments
// that fail Policy.Speech are left out, as the stage leaves them out. For
// tools that score what an engine heard.
func (p *Policy) ExplainSegments(segs []Segment) Explanation {
	st := new(evalState)
	var trace []Candidate
	st.trace = &trace
	for i := range segs {
		if p.Speech(&segs[i]) {
			st.add(&segs[i], false)
		}
	}
	st.doc.Finish()
	if len(st.segs) == 0 {
		return Explanation{}
	}
	p.evaluate(st, -1)
	d := &st.doc
	x := Explanation{Normalised: strings.TrimSpace(d.Text), Candidates: trace}
	slices.SortStableFunc(x.Candidates, func(a, b Candidate) int { return a.First - b.First })
	for i := range d.Runs {
		r := &d.Runs[i]
		if len(r.Groups) == 0 {
			continue
		}
		digits := d.DigitsOf(r, 0, len(r.Groups)-1)
		x.Numbers = append(x.Numbers, digits)
		if len(digits) < 7 {
			continue
		}
		first, last := int(r.Groups[0].First), int(r.Groups[len(r.Groups)-1].Last)
		taken := false
		for _, c := range trace {
			if strings.HasPrefix(c.Category, "pii.") && c.First <= last && first <= c.Last {
				taken = true
				break
			}
		}
		if !taken {
			why := "not a valid phone number for the policy's regions, nor a card number (Luhn) or IBAN (mod-97)"
			if r.Quantity {
				why = "read as an amount (currency, percent or thousands separators next to it)"
			}
			x.NearMisses = append(x.NearMisses, fmt.Sprintf("%q → %s (%d digits): %s", d.Span(first, last), digits, len(digits), why))
		}
	}
	return x
}
