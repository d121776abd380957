package policy

import "testing"

// Validated identifiers are not vetoed by Whisper's word probabilities on
// digit strings; other rules still are. The phone row is what tiny.en
// made of a number read out slowly (words and probabilities as the
// fixture gave them); with those probabilities in the score it came to
// 0.47, below min_score, and no alert was raised.
func TestConfidenceValidatedIdentifiers(t *testing.T) {
	p := mustDefault(t)
	tests := []struct {
		name     string
		text     string
		probs    []float64
		noSpeech float64
		want     string // category expected, "" for none
	}{
		{"phone read out slowly", "It's 415 867 530 9", []float64{.46, .59, .5, .27, .64}, 0.31, "pii.phone"},
		{"card with unsure digits", "card 4111 1111 1111 1111", []float64{.9, .2, .15, .2, .1}, 0.3, "pii.card"},
		{"invalid number stays unflagged", "It's 415 867 530", []float64{.9, .9, .9, .9}, 0.01, ""},
		{"garbled threat still vetoed", "i will kill you", []float64{.1, .1, .1, .1}, 0.31, ""},
		{"clear threat", "i will kill you", []float64{.9, .9, .9, .9}, 0.01, "abuse.threat"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := seg("x", "p1", "trk", 0, tc.text, 0.9)
			if len(s.Words) != len(tc.probs) {
				t.Fatalf("%d words, %d probabilities", len(s.Words), len(tc.probs))
			}
			for i, pr := range tc.probs {
				s.Words[i].Probability = pr
			}
			s.NoSpeechProb = tc.noSpeech
			got := ""
			for _, f := range p.Evaluate(&s) {
				if f.Category == tc.want || got == "" {
					got = f.Category
				}
				if f.Score < p.MinScore() {
					t.Errorf("finding %s with score %.2f below min_score", f.Category, f.Score)
				}
			}
			if got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}
