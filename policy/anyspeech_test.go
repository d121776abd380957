package policy

import (
	"testing"

	"github.com/earshot/earshot/internal/e2e"
)

// The end-to-end tests' any-speech rule flags every transcribed line with
// a word, however unsure the engine was, once per line, and nothing
// without one; the default rules keep working beside it.
func TestAnySpeechRule(t *testing.T) {
	p, err := Parse(append(DefaultYAML(), e2e.AnySpeechRule...), Source{Name: "default + any speech"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		text     string
		prob     float64
		noSpeech float64
		want     int // any-speech findings
	}{
		{"the weather is lovely today", 0.9, 0.01, 1},
		{"I am going to kill you if you come back here.", 0.05, 0.5, 1},
		{"Uh, third you.", 0.1, 0.6, 1},
		{"415 867 5309", 0.9, 0.01, 0},
		{"...", 0.9, 0.01, 0},
		{"some words", 0.9, 0.7, 0}, // over max_no_speech_prob: not evaluated at all
	}
	for _, tc := range tests {
		w := NewWindow(WindowConfig{})
		s := seg("evt_a", "p1_a", "trk_a", 0, tc.text, tc.prob)
		s.NoSpeechProb = tc.noSpeech
		n := 0
		for _, f := range w.Push(p, s) {
			if f.Category == e2e.AnySpeechCategory {
				n++
			}
		}
		if n != tc.want {
			t.Errorf("%q (word probability %.2f, no-speech %.2f): %d any-speech findings, want %d", tc.text, tc.prob, tc.noSpeech, n, tc.want)
		}
	}
	// The default rules still fire beside it.
	s := seg("evt_b", "p1_a", "trk_a", 0, "i will kill you", 0.9)
	cats := categories(p.Evaluate(&s))
	if len(cats) != 2 {
		t.Errorf("a threat gives %v, want the threat and the any-speech finding", cats)
	}
}
