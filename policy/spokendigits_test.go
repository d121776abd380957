package policy

import (
	"testing"
)

// spokenPhone is the number the spoken-number tests read out, in E.164.
const spokenPhone = "+14158675309"

// TestSpokenDigitSpellings: the ways a speech engine writes "four one
// five, eight six seven, five three oh nine" (digit words, digits, "oh"
// and "o" for zero, teens and tens for pairs, punctuation between groups,
// the number cut in two segments) all read as that phone number, so a
// test that speaks it relies on the normaliser, not on one spelling.
func TestSpokenDigitSpellings(t *testing.T) {
	p := mustDefault(t)
	tests := []struct {
		name  string
		lines []string // consecutive segments of one speaker
	}{
		{"digit words", []string{"my phone number is four one five eight six seven five three oh nine"}},
		{"digit words with commas", []string{"is four one five, eight six seven, five three oh nine."}},
		{"digit words as sentences", []string{"is four one five. eight six seven. five. three. oh. nine."}},
		{"zero for oh", []string{"four one five eight six seven five three zero nine"}},
		{"letter o for oh", []string{"four one five eight six seven five three o nine"}},
		{"capitalised", []string{"Four one five, eight six seven, five three oh nine."}},
		{"teens and tens", []string{"four fifteen, eight sixty seven, fifty three oh nine"}},
		{"digits spaced", []string{"is 4 1 5 8 6 7 5 3 0 9"}},
		{"digits as sentences", []string{"is 4 1 5. 8 6 7. 5. 3. 0. 9."}},
		{"digits with commas", []string{"is 415, 867, 5, 3, 0, 9."}},
		{"dashed groups", []string{"415-867-5309"}},
		{"dashed digits", []string{"4-1-5-8-6-7-5-3-0-9"}},
		{"dash-led groups", []string{"is 415 -867 -5 -3 -0 -9."}},
		{"area code in brackets", []string{"(415) 867-5309"}},
		{"mixed words and digits", []string{"four 1 five 867 five three oh 9"}},
		{"cut after the lead", []string{"My phone number is", "is 415 -867 -5 -3 -0 -9."}},
		{"cut inside the number", []string{"My phone number is four one five", "eight six seven five three oh nine"}},
		{"cut inside, digits", []string{"My phone number is 415", "867 5309."}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := NewWindow(WindowConfig{})
			var got []string
			for i, text := range tc.lines {
				s := seg("evt_"+string(rune('a'+i)), "p1_num", "trk_num", 4*float64(i), text, 0.9)
				for _, f := range append(p.Evaluate(&s), w.Push(p, s)...) {
					if f.Category == "pii.phone" {
						got = append(got, f.Value)
					}
				}
			}
			ok := false
			for _, v := range got {
				ok = ok || v == spokenPhone
			}
			if !ok {
				t.Errorf("%q: phone findings %q, want %s", tc.lines, got, spokenPhone)
			}
		})
	}
}
