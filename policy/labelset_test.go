package policy

import (
	"os"
	"strings"
	"testing"
)

// TestScoreAgreesWithTheScoringTests: the rule authors' scoring
// (Policy.Score, what `earshot rules test` prints) counts the project's
// labelled set per category exactly as the scoring tests' own counter
// does, on each split.
func TestScoreAgreesWithTheScoringTests(t *testing.T) {
	p := mustDefault(t)
	f, err := os.Open("testdata/labelled/labelled.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	set, err := ReadLabelled(f)
	if err != nil {
		t.Fatal(err)
	}
	own := loadLabelled(t)
	if len(set) != len(own) {
		t.Fatalf("ReadLabelled read %d lines, the tests' reader %d", len(set), len(own))
	}
	for _, split := range []string{"tune", "heldout"} {
		want := score(p, own, split)
		got := p.Score(set, split)
		if got.Lines != want.lines {
			t.Errorf("%s: %d lines, want %d", split, got.Lines, want.lines)
		}
		for cat, c := range want.byCat {
			g := got.ByCategory[cat]
			if g.TP != c.tp || g.FP != c.fp || g.FN != c.fn {
				t.Errorf("%s %s: %+v, the tests count %+v", split, cat, g, *c)
			}
		}
		if len(got.ByCategory) != len(want.byCat) {
			t.Errorf("%s: %d categories, the tests count %d", split, len(got.ByCategory), len(want.byCat))
		}
	}
}

func TestReadLabelledProblems(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string // in the error; none: no error
	}{
		{"good", `{"id":"a","lang":"en","text":"hi","labels":[]}` + "\n\n" + `{"id":"b","text":"call me","labels":["pii.phone"],"split":"tune"}`, nil},
		{"unknown field", `{"id":"a","text":"hi","labelz":[]}`, []string{"line 1", "labelz"}},
		{"unknown category and split", `{"id":"a","text":"hi","labels":["pii.nope"],"split":"train"}`, []string{"pii.nope", `split "train"`}},
		{"repeated id, no text", `{"id":"a","text":"hi"}` + "\n" + `{"id":"a","text":" "}`, []string{`line 2: id "a" already on line 1`, "line 2 (a): no text"}},
		{"not JSON", `{"id":`, []string{"line 1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadLabelled(strings.NewReader(tc.in))
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
		})
	}
}

func FuzzReadLabelled(f *testing.F) {
	f.Add(`{"id":"a","lang":"en","text":"my number is 202 555 0143","labels":["pii.phone"],"split":"tune","tag":"x"}`)
	f.Add(`{"id":"b","text":"i will kill you","labels":["abuse.threat"]}` + "\n" + `{"id":"c","text":"hello"}`)
	f.Add(`{"id":1}`)
	p := mustDefault(f)
	f.Fuzz(func(t *testing.T, in string) {
		set, err := ReadLabelled(strings.NewReader(in))
		if err != nil {
			return
		}
		ids := map[string]bool{}
		for _, l := range set {
			if l.ID == "" || strings.TrimSpace(l.Text) == "" || ids[l.ID] {
				t.Fatalf("accepted line %+v", l)
			}
			ids[l.ID] = true
			for _, c := range l.Labels {
				if !knownCategory(c) {
					t.Fatalf("accepted category %q", c)
				}
			}
		}
		r := p.Score(set)
		if r.Lines != len(set) {
			t.Fatalf("scored %d of %d lines", r.Lines, len(set))
		}
	})
}

func FuzzExplain(f *testing.F) {
	f.Add("my order number is 415 867 5309")
	f.Add("she lives at forty two elm street")
	f.Add("I will find you and hurt you")
	p := mustDefault(f)
	f.Fuzz(func(t *testing.T, text string) {
		x := p.Explain(text, "")
		s := seg("x", "p1", "trk", 0, "", 0.9)
		s.Text, s.Words = text, nil
		if got, want := len(x.Fired()), len(p.Evaluate(&s)); got != want {
			t.Fatalf("Explain fires %d, Evaluate finds %d in %q", got, want, text)
		}
	})
}

// TestSpokenSetShape checks the spoken alert-quality set: at least 120
// utterances, at least five positives and five look-alike negatives per
// alerting category, halves of equal size per stratum.
func TestSpokenSetShape(t *testing.T) {
	f, err := os.Open("testdata/spoken/spoken.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	set, err := ReadLabelled(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(set) < 120 {
		t.Fatalf("%d utterances, want ≥ 120", len(set))
	}
	pos, neg := map[string]int{}, map[string]int{}
	halves := map[string][2]int{}
	for _, l := range set {
		stratum := "neg-" + strings.TrimPrefix(l.Tag, "lookalike-")
		if len(l.Labels) > 0 {
			stratum = l.Labels[0]
			for _, c := range l.Labels {
				pos[c]++
			}
		} else {
			if !strings.HasPrefix(l.Tag, "lookalike-") {
				t.Errorf("%s: a negative without its look-alike category", l.ID)
			}
			neg[strings.TrimPrefix(l.Tag, "lookalike-")]++
		}
		h := halves[stratum]
		switch l.Split {
		case "tune":
			h[0]++
		case "heldout":
			h[1]++
		default:
			t.Errorf("%s: split %q", l.ID, l.Split)
		}
		halves[stratum] = h
	}
	for cat := range Categories {
		if cat == "pii.address" {
			continue // a signal, never alerted on its own
		}
		if pos[cat] < 5 || neg[cat] < 5 {
			t.Errorf("%s: %d positives, %d look-alike negatives; want ≥ 5 of each", cat, pos[cat], neg[cat])
		}
	}
	for k, h := range halves {
		if d := h[0] - h[1]; d < 0 || d > 1 {
			t.Errorf("stratum %s: %d tune, %d held out", k, h[0], h[1])
		}
	}
}
