package wer

import (
	"math"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestNormalize(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"case and punctuation", "Hello, World! How are you?", "hello world how are you"},
		{"apostrophes stay inside words", "Don't stop – it’s fine.", "dont stop its fine"},
		{"hyphenated number", "twenty-five", "25"},
		{"tens and units", "I have twenty five apples", "i have 25 apples"},
		{"hundred and", "one hundred and three", "103"},
		{"whisper's hundred and", "100 and 3 oranges", "103 oranges"},
		{"thousand and", "2000 and 15", "2015"},
		{"and after a non-round number stays", "25 and 3", "25 and 3"},
		{"hundred without and", "three hundred twenty", "320"},
		{"a hundred", "a hundred people", "100 people"},
		{"a thousand", "a thousand and one nights", "1001 nights"},
		{"scales", "two million three hundred thousand and five", "2300005"},
		{"numeral before scale", "2 million", "2000000"},
		{"year", "nineteen eighty four", "1984"},
		{"digit string", "five five five one two three four", "5551234"},
		{"written phone number", "555-1234", "5551234"},
		{"phone number with oh", "five five five oh one two three", "5550123"},
		{"oh oh seven", "oh oh seven", "007"},
		{"zero digits", "zero zero seven", "007"},
		{"oh alone is a word", "oh no, oh well", "oh no oh well"},
		{"and between digits stays", "one and two", "1 and 2"},
		{"thousands separator", "1,000 people", "1000 people"},
		{"decimal point", "3.5 percent", "3.5 percent"},
		{"percent sign", "25% off", "25 percent off"},
		{"ampersand", "salt & pepper", "salt and pepper"},
		{"arabic-indic digits", "رقم ١٢٣", "رقم 123"},
		{"eastern arabic-indic digits", "۴۵۶", "456"},
		{"arabic punctuation and harakat", "مَرْحَبًا، كيف حالك؟", "مرحبا كيف حالك"},
		{"tatweel", "مـــرحبا", "مرحبا"},
		{"full-width digits", "１２３", "123"},
		{"whitespace", "  spaced\tout\nwords  ", "spaced out words"},
		{"empty", "", ""},
		{"only punctuation", "...!?", ""},
		{"number words mixed with digits", "twenty 5", "205"},
		{"teen after tens is a new group", "twenty twelve", "2012"},
		{"ordinals are words", "the first of may", "the first of may"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Normalize(tc.in); got != tc.want {
				t.Errorf("Normalize(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestMeasure(t *testing.T) {
	tests := []struct {
		name          string
		ref, hyp      string
		sub, del, ins int
		wer           float64
	}{
		{"identical", "the cat sat", "the cat sat", 0, 0, 0, 0},
		{"normalisation hides form", "I have twenty-five apples.", "i have 25 apples", 0, 0, 0, 0},
		{"one substitution", "the cat sat", "the bat sat", 1, 0, 0, 1.0 / 3},
		{"one deletion", "the cat sat", "the sat", 0, 1, 0, 1.0 / 3},
		{"one insertion", "the cat sat", "the fat cat sat", 0, 0, 1, 1.0 / 3},
		{"all wrong", "a b", "c d e", 2, 0, 1, 1.5},
		{"empty hypothesis", "three little words", "", 0, 3, 0, 1},
		{"empty both", "", "", 0, 0, 0, 0},
		{"empty reference", "", "noise", 0, 0, 1, 1},
		{"phone number either way", "call five five five one two three four", "Call 555-1234.", 0, 0, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := Measure(tc.ref, tc.hyp)
			if r.Substitutions != tc.sub || r.Deletions != tc.del || r.Insertions != tc.ins {
				t.Errorf("Measure(%q, %q) = %+v, want sub=%d del=%d ins=%d", tc.ref, tc.hyp, r, tc.sub, tc.del, tc.ins)
			}
			if got := WER(tc.ref, tc.hyp); math.Abs(got-tc.wer) > 1e-9 {
				t.Errorf("WER(%q, %q) = %v, want %v", tc.ref, tc.hyp, got, tc.wer)
			}
		})
	}
}

func TestAlignIsSymmetricInCost(t *testing.T) {
	a := strings.Fields("the quick brown fox jumps over the lazy dog")
	b := strings.Fields("a quick brown dog jumped over lazy dogs today")
	ab, ba := Align(a, b), Align(b, a)
	if ab.Errors() != ba.Errors() {
		t.Fatalf("edit distance not symmetric: %d vs %d", ab.Errors(), ba.Errors())
	}
	if ab.Deletions != ba.Insertions || ab.Insertions != ba.Deletions {
		t.Errorf("deletions and insertions should swap: %+v vs %+v", ab, ba)
	}
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{
		"Hello, World!", "twenty-five", "one hundred and three", "oh oh seven",
		"five five five oh one", "1,000.5%", "رقم ١٢٣ ۴۵۶", "a thousand and one",
		"nineteen eighty four", "oh a hundred", "İstanbul", "2 million 3 thousand",
		"zero oh zero", "&&%%", "o 1 o",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := Normalize(s)
		if !utf8.ValidString(n) && utf8.ValidString(s) {
			t.Fatalf("Normalize(%q) = %q: invalid UTF-8", s, n)
		}
		if again := Normalize(n); again != n {
			t.Fatalf("not idempotent: Normalize(%q) = %q, then %q", s, n, again)
		}
		if strings.Contains(n, "  ") || strings.TrimSpace(n) != n {
			t.Fatalf("Normalize(%q) = %q: spacing not normalised", s, n)
		}
		for i, r := range n {
			if r == '.' && i > 0 && i+1 < len(n) && isASCIIDigit(rune(n[i-1])) && isASCIIDigit(rune(n[i+1])) {
				continue // decimal point
			}
			if unicode.IsUpper(r) || unicode.IsPunct(r) || unicode.IsSymbol(r) {
				t.Fatalf("Normalize(%q) = %q: kept %q", s, n, r)
			}
		}
		// A text always matches itself.
		if w := WER(s, s); w != 0 {
			t.Fatalf("WER(%q, itself) = %v", s, w)
		}
	})
}
