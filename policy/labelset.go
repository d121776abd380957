package policy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
)

// LabelledLine is one line of a labelled set: a JSONL file, one object per
// utterance (docs/alerts.md, "Labelled sets"):
//
//	{"id":"en-001","lang":"en","text":"my number is …","labels":["pii.phone"],"split":"tune","tag":"spoken"}
type LabelledLine struct {
	// ID names the line in reports (required, unique).
	ID string `json:"id"`
	// Lang is the language spoken (ISO 639-1); rules apply whatever it is.
	Lang string `json:"lang"`
	// Text is the utterance as a transcript would have it (required).
	Text string `json:"text"`
	// Labels are the categories a moderator should be alerted to for this
	// line alone; empty for none.
	Labels []string `json:"labels"`
	// Split is "tune" (rules may be adjusted looking at it), "heldout"
	// (only ever scored in aggregate) or empty.
	Split string `json:"split,omitempty"`
	// Tag says how the line was written (free text, ignored by scoring).
	Tag string `json:"tag,omitempty"`
}

// maxLabelledLine bounds one JSONL line (64 KiB).
const maxLabelledLine = 64 << 10

// ReadLabelled reads a labelled set. Unknown fields, unknown categories,
// missing IDs or text and repeated IDs are errors, all of them reported
// with their line numbers.
func ReadLabelled(r io.Reader) ([]LabelledLine, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLabelledLine)
	var (
		out  []LabelledLine
		errs []error
		ids  = map[string]int{}
	)
	for n := 1; sc.Scan(); n++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		var l LabelledLine
		if err := dec.Decode(&l); err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w", n, err))
			continue
		}
		if dec.More() {
			errs = append(errs, fmt.Errorf("line %d: more than one JSON value", n))
			continue
		}
		switch {
		case l.ID == "":
			errs = append(errs, fmt.Errorf("line %d: no id", n))
		case ids[l.ID] > 0:
			errs = append(errs, fmt.Errorf("line %d: id %q already on line %d", n, l.ID, ids[l.ID]))
		default:
			ids[l.ID] = n
		}
		if strings.TrimSpace(l.Text) == "" {
			errs = append(errs, fmt.Errorf("line %d (%s): no text", n, l.ID))
		}
		for _, c := range l.Labels {
			if !knownCategory(c) {
				errs = append(errs, fmt.Errorf("line %d (%s): unknown category %q (use one of %s)", n, l.ID, c, categoryList()))
			}
		}
		if l.Split != "" && l.Split != "tune" && l.Split != "heldout" {
			errs = append(errs, fmt.Errorf("line %d (%s): split %q is not tune or heldout", n, l.ID, l.Split))
		}
		out = append(out, l)
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("labelled set: %w", err))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// Counts are true positives, false positives and false negatives, counted
// per (line, category).
type Counts struct {
	TP int `json:"tp"`
	FP int `json:"fp"`
	FN int `json:"fn"`
}

// Precision is TP / (TP + FP); 1 with nothing predicted.
func (c Counts) Precision() float64 {
	if c.TP+c.FP == 0 {
		return 1
	}
	return float64(c.TP) / float64(c.TP+c.FP)
}

// Recall is TP / (TP + FN); 1 with nothing to find.
func (c Counts) Recall() float64 {
	if c.TP+c.FN == 0 {
		return 1
	}
	return float64(c.TP) / float64(c.TP+c.FN)
}

// Outcome is one line a policy got wrong for one category.
type Outcome struct {
	ID       string `json:"id"`
	Category string `json:"category"`
	Text     string `json:"text"`
	Split    string `json:"split,omitempty"`
	// Rules are the rules that fired (a false alarm), or the candidates of
	// the category that did not fire, with why (a miss).
	Rules []string `json:"rules,omitempty"`
}

// Report is a policy scored on a labelled set.
type Report struct {
	PolicyVersion string `json:"policy_version"`
	Lines         int    `json:"lines"`
	// ByCategory counts per category.
	ByCategory map[string]Counts `json:"by_category"`
	// ByRule counts per rule: TP and FP over the lines where the rule
	// matched and scored (fired or merged into its category's finding), FN
	// over the lines labelled with its category where it did not: its
	// share of the category.
	ByRule      map[string]Counts `json:"by_rule"`
	Misses      []Outcome         `json:"misses"`
	FalseAlarms []Outcome         `json:"false_alarms"`
}

// Score evaluates every line of set whose split is in splits (all lines
// when splits is empty), each as one clean transcript segment.
func (p *Policy) Score(set []LabelledLine, splits ...string) Report {
	r := Report{PolicyVersion: p.version, ByCategory: map[string]Counts{}, ByRule: map[string]Counts{}}
	ruleCat := map[string]string{}
	for _, ru := range p.rules {
		if !ru.signal {
			ruleCat[ru.ID] = ru.Category
		}
	}
	add := func(m map[string]Counts, k string, tp, fp, fn int) {
		c := m[k]
		c.TP, c.FP, c.FN = c.TP+tp, c.FP+fp, c.FN+fn
		m[k] = c
	}
	for _, l := range set {
		if len(splits) > 0 && !slices.Contains(splits, l.Split) {
			continue
		}
		r.Lines++
		x := p.Explain(l.Text, l.Lang)
		got := map[string][]string{} // category → rules that fired
		scored := map[string]bool{}  // rules that matched and scored
		for _, c := range x.Candidates {
			if c.Status == StatusFired || c.Status == StatusMerged {
				scored[c.RuleID] = true
			}
			if c.Status == StatusFired && !slices.Contains(got[c.Category], c.RuleID) {
				got[c.Category] = append(got[c.Category], c.RuleID)
			}
		}
		for cat, rules := range got {
			if slices.Contains(l.Labels, cat) {
				add(r.ByCategory, cat, 1, 0, 0)
				continue
			}
			add(r.ByCategory, cat, 0, 1, 0)
			r.FalseAlarms = append(r.FalseAlarms, Outcome{ID: l.ID, Category: cat, Text: l.Text, Split: l.Split, Rules: rules})
		}
		for _, cat := range l.Labels {
			if _, ok := got[cat]; ok {
				continue
			}
			add(r.ByCategory, cat, 0, 0, 1)
			var why []string
			for _, c := range x.Candidates {
				if c.Category == cat {
					why = append(why, fmt.Sprintf("%s %s: %s", c.RuleID, c.Status, c.Why))
				}
			}
			r.Misses = append(r.Misses, Outcome{ID: l.ID, Category: cat, Text: l.Text, Split: l.Split, Rules: why})
		}
		for id, cat := range ruleCat {
			labelled := slices.Contains(l.Labels, cat)
			switch {
			case scored[id] && labelled:
				add(r.ByRule, id, 1, 0, 0)
			case scored[id]:
				add(r.ByRule, id, 0, 1, 0)
			case labelled:
				add(r.ByRule, id, 0, 0, 1)
			}
		}
	}
	return r
}

// Regression is a category that scores worse than in a baseline report.
type Regression struct {
	Category                    string
	Precision, BasePrecision    float64
	Recall, BaseRecall          float64
	FalseAlarms, BaseFalseAlarm int
	Misses, BaseMisses          int
}

func (g Regression) String() string {
	return fmt.Sprintf("%s: precision %.3f (baseline %.3f), recall %.3f (baseline %.3f); %d false alarms (baseline %d), %d misses (baseline %d)",
		g.Category, g.Precision, g.BasePrecision, g.Recall, g.BaseRecall, g.FalseAlarms, g.BaseFalseAlarm, g.Misses, g.BaseMisses)
}

// Regressions lists the categories whose precision or recall is lower
// than in base, which must score the same lines.
func (r Report) Regressions(base Report) []Regression {
	cats := map[string]bool{}
	for c := range r.ByCategory {
		cats[c] = true
	}
	for c := range base.ByCategory {
		cats[c] = true
	}
	var out []Regression
	for _, c := range mapsKeys(cats) {
		now, was := r.ByCategory[c], base.ByCategory[c]
		const eps = 1e-9
		if now.Precision() < was.Precision()-eps || now.Recall() < was.Recall()-eps {
			out = append(out, Regression{Category: c, Precision: now.Precision(), BasePrecision: was.Precision(),
				Recall: now.Recall(), BaseRecall: was.Recall(), FalseAlarms: now.FP, BaseFalseAlarm: was.FP, Misses: now.FN, BaseMisses: was.FN})
		}
	}
	return out
}

func mapsKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
