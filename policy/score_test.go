package policy

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
)

// labelled is one line of testdata/labelled/labelled.jsonl.
type labelled struct {
	ID     string   `json:"id"`
	Lang   string   `json:"lang"`
	Text   string   `json:"text"`
	Labels []string `json:"labels"`
	Split  string   `json:"split"`
	Tag    string   `json:"tag"`
}

func loadLabelled(tb testing.TB) []labelled {
	tb.Helper()
	f, err := os.Open("testdata/labelled/labelled.jsonl")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out []labelled
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e labelled
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			tb.Fatalf("labelled set: %v", err)
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

// counts are per-category true positives, false positives and false
// negatives, counted per (line, category).
type counts struct{ tp, fp, fn int }

func (c counts) precision() float64 {
	if c.tp+c.fp == 0 {
		return 1
	}
	return float64(c.tp) / float64(c.tp+c.fp)
}

func (c counts) recall() float64 {
	if c.tp+c.fn == 0 {
		return 1
	}
	return float64(c.tp) / float64(c.tp+c.fn)
}

type scoreResult struct {
	byCat   map[string]*counts
	byGroup map[string]*counts
	errors  []string
	lines   int
}

// predicted returns the categories the policy alerts on for one line, read
// as a clean transcript (speech detected, full confidence).
func predicted(p *Policy, e labelled) []string {
	seg := Segment{ID: e.ID, Text: e.Text, Speech: true, Language: e.Lang}
	var cats []string
	for _, f := range p.Evaluate(&seg) {
		if !slices.Contains(cats, f.Category) {
			cats = append(cats, f.Category)
		}
	}
	sort.Strings(cats)
	return cats
}

// score evaluates one split. It only counts: nothing here adjusts the
// policy, so scoring the held-out half cannot tune on it.
func score(p *Policy, set []labelled, split string) scoreResult {
	r := scoreResult{byCat: map[string]*counts{}, byGroup: map[string]*counts{}}
	get := func(m map[string]*counts, k string) *counts {
		if m[k] == nil {
			m[k] = &counts{}
		}
		return m[k]
	}
	for _, e := range set {
		if e.Split != split {
			continue
		}
		r.lines++
		got := predicted(p, e)
		want := e.Labels
		for _, c := range got {
			if slices.Contains(want, c) {
				get(r.byCat, c).tp++
			} else {
				get(r.byCat, c).fp++
				r.errors = append(r.errors, fmt.Sprintf("FP %-18s %s %q", c, e.ID, e.Text))
			}
		}
		for _, c := range want {
			if !slices.Contains(got, c) {
				get(r.byCat, c).fn++
				r.errors = append(r.errors, fmt.Sprintf("FN %-18s %s %q", c, e.ID, e.Text))
			}
		}
	}
	for cat, c := range r.byCat {
		g := get(r.byGroup, strings.SplitN(cat, ".", 2)[0])
		g.tp += c.tp
		g.fp += c.fp
		g.fn += c.fn
	}
	return r
}

func (r scoreResult) table() string {
	var b strings.Builder
	write := func(m map[string]*counts) {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			c := m[k]
			fmt.Fprintf(&b, "  %-18s precision %.3f  recall %.3f  (tp %d, fp %d, fn %d)\n", k, c.precision(), c.recall(), c.tp, c.fp, c.fn)
		}
	}
	fmt.Fprintf(&b, "%d lines\n", r.lines)
	write(r.byCat)
	b.WriteString("  --\n")
	write(r.byGroup)
	return b.String()
}

// TestHeldOutScores is the must-show: precision and recall per category on
// the held-out half of the labelled set, with PII precision ≥ 0.9 and
// recall ≥ 0.8. Only aggregate figures are printed; the lines it gets wrong
// stay unseen, so the held-out half is never used for tuning.
func TestHeldOutScores(t *testing.T) {
	p := mustDefault(t)
	set := loadLabelled(t)
	r := score(p, set, "heldout")
	t.Logf("held-out scores, policy %s:\n%s", p.Version(), r.table())
	pii := r.byGroup["pii"]
	if pii == nil {
		t.Fatal("no PII lines in the held-out half")
	}
	if pii.precision() < 0.9 || pii.recall() < 0.8 {
		t.Errorf("PII on held-out: precision %.3f (want ≥ 0.9), recall %.3f (want ≥ 0.8)", pii.precision(), pii.recall())
	}
}

// TestTuneScores scores the tuning half and, with EARSHOT_TUNE=1, lists
// every line it gets wrong: this is the half detectors are tuned on.
func TestTuneScores(t *testing.T) {
	p := mustDefault(t)
	r := score(p, loadLabelled(t), "tune")
	t.Logf("tune scores:\n%s", r.table())
	if os.Getenv("EARSHOT_TUNE") == "1" {
		for _, e := range r.errors {
			t.Log(e)
		}
	}
}

// TestLabelledSet checks the set's shape: ≥ 300 lines, both languages,
// every category, halves of equal size per stratum (within one line).
func TestLabelledSet(t *testing.T) {
	set := loadLabelled(t)
	if len(set) < 300 {
		t.Fatalf("labelled set has %d lines, want ≥ 300", len(set))
	}
	type key struct{ lang, stratum string }
	halves := map[key][2]int{}
	ids := map[string]bool{}
	for _, e := range set {
		if ids[e.ID] {
			t.Errorf("duplicate id %s", e.ID)
		}
		ids[e.ID] = true
		for _, l := range e.Labels {
			if _, ok := Categories[l]; !ok {
				t.Errorf("%s: unknown label %q", e.ID, l)
			}
		}
		s := "none"
		if len(e.Labels) > 0 {
			s = e.Labels[0]
		} else if strings.HasPrefix(e.Tag, "hard") {
			s = "hard"
		}
		h := halves[key{e.Lang, s}]
		switch e.Split {
		case "tune":
			h[0]++
		case "heldout":
			h[1]++
		default:
			t.Errorf("%s: split %q", e.ID, e.Split)
		}
		halves[key{e.Lang, s}] = h
	}
	for _, lang := range []string{"en", "ar"} {
		for cat := range Categories {
			if cat == "pii.address" {
				continue
			}
			if h := halves[key{lang, cat}]; h[0]+h[1] == 0 {
				t.Errorf("no %s lines for %s", lang, cat)
			}
		}
		if h := halves[key{lang, "hard"}]; h[0]+h[1] < 10 {
			t.Errorf("%s: %d hard negatives, want ≥ 10", lang, h[0]+h[1])
		}
	}
	for k, h := range halves {
		if d := h[0] - h[1]; d < 0 || d > 1 {
			t.Errorf("stratum %v: %d tune, %d held out", k, h[0], h[1])
		}
	}
}

func mustDefault(tb testing.TB) *Policy {
	tb.Helper()
	p, err := Default()
	if err != nil {
		tb.Fatalf("default policy: %v", err)
	}
	return p
}
