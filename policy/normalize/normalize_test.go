package normalize

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestFold(t *testing.T) {
	tests := []struct{ in, want string }{
		{"I'm GOING to Kill you!", "im going to kill you"},
		{"you’re dead", "youre dead"},
		{"  off-the-record,  ok? ", "off the record ok"},
		{"ﬁle Ｆｕｌｌ", "file full"}, // NFKC: ligature and full-width letters
		{"Straße", "straße"},
		// Arabic: diacritics, tatweel, alef, yaa, taa marbuta, hamza carriers.
		{"سَأَقْتُلُكَ", "ساقتلك"},
		{"ســري", "سري"},
		{"إفصاح آمن ٱلله أحمد", "افصاح امن الله احمد"},
		{"مستشفى على", "مستشفي علي"},
		{"مدرسة سرّية", "مدرسه سريه"},
		{"مسؤول مسئول", "مسوول مسيول"},
		{"رقم ٠١٢٣٤٥٦٧٨٩ و ۰۱۲۳۴۵۶۷۸۹", "رقم 0123456789 و 0123456789"},
		{"ﻻ", "لا"}, // presentation form, by NFKC
		{"كتاب ی ک", "كتاب ي ك"},
		{"‏مرحبا‎", "مرحبا"}, // direction marks
		{"", ""},
		{"...!!!", ""},
	}
	for _, tt := range tests {
		if got := Fold(tt.in); got != tt.want {
			t.Errorf("Fold(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestArabicVariantsFoldTogether: spellings of one word in different
// alef, yaa, taa-marbuta, diacritic, tatweel and digit forms fold to one
// form (the lexicon side of the Arabic must-show; the matching side is in
// package detect).
func TestArabicVariantsFoldTogether(t *testing.T) {
	groups := [][]string{
		{"سأقتلك", "ساقتلك", "سَأَقْتُلُكَ", "سـأقـتـلك"},
		{"إفصاح", "افصاح", "أفصاح", "إِفْصَاح"},
		{"مستشفى", "مستشفي", "مُسْتَشْفَى"},
		{"سرية", "سريه", "سِرِّيَّة"},
		{"آيبان", "ايبان", "أيبان"},
		{"٠٥٠١٢٣٤٥٦٧", "۰۵۰۱۲۳۴۵۶۷", "0501234567"},
	}
	for _, g := range groups {
		want := Fold(g[0])
		for _, v := range g[1:] {
			if got := Fold(v); got != want {
				t.Errorf("Fold(%q) = %q, want %q like %q", v, got, want, g[0])
			}
		}
	}
}

func TestTokensMapBack(t *testing.T) {
	var d Doc
	words := []string{"Call", "me:", "555-1234,", "سَأَقْتُلُكَ"}
	d.AddPiece("ignored when words are given", words, false)
	d.AddPiece("second piece, plain", nil, false)
	d.Finish()
	want := []struct {
		norm, orig  string
		piece, word int32
	}{
		{"call", "Call", 0, 0}, {"me", "me", 0, 1}, {"555", "555", 0, 2}, {"1234", "1234", 0, 2},
		{"ساقتلك", "سَأَقْتُلُكَ", 0, 3},
		{"second", "second", 1, -1}, {"piece", "piece", 1, -1}, {"plain", "plain", 1, -1},
	}
	if len(d.Tokens) != len(want) {
		t.Fatalf("got %d tokens, want %d: %q", len(d.Tokens), len(want), d.Text)
	}
	for i, w := range want {
		tok := d.Tokens[i]
		if got := d.Norm(i); got != w.norm {
			t.Errorf("token %d: norm %q, want %q", i, got, w.norm)
		}
		if got := d.Orig[tok.Start:tok.End]; got != w.orig {
			t.Errorf("token %d: orig %q, want %q", i, got, w.orig)
		}
		if tok.Piece != w.piece || tok.Word != w.word {
			t.Errorf("token %d: piece/word %d/%d, want %d/%d", i, tok.Piece, tok.Word, w.piece, w.word)
		}
		if got := d.TokenAt(int(tok.Pos)); got != i {
			t.Errorf("TokenAt(%d) = %d, want %d", tok.Pos, got, i)
		}
	}
	if g := d.Gap(3); g != "-" {
		t.Errorf("gap before 1234 = %q, want \"-\"", g)
	}
	if g := d.Gap(5); g != "" {
		t.Errorf("gap at a piece start = %q, want empty", g)
	}
	if got := d.Span(2, 6); got != "555-1234, سَأَقْتُلُكَ / second piece" {
		t.Errorf("Span = %q", got)
	}
	if got := d.Pieces[0].WordStarts; len(got) != 4 || d.Orig[got[2]:got[2]+9] != "555-1234," {
		t.Errorf("word starts %v", got)
	}
}

func runs(d *Doc) []string {
	var out []string
	for i := range d.Runs {
		r := &d.Runs[i]
		s := d.DigitsOf(r, 0, len(r.Groups)-1)
		if r.Plus {
			s = "+" + s
		}
		if r.Quantity {
			s = "$" + s
		}
		out = append(out, s)
	}
	return out
}

func TestNumbers(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"five five five one two three four", []string{"5551234"}},
		{"my number is 555-1234", []string{"5551234"}},
		{"yeah it's 6.1.7, 5.5.5, 0.1.0.3", []string{"6175550103"}},
		{"oh two oh seven nine four six oh eight oh five", []string{"02079460805"}},
		{"double five triple seven oh", []string{"557770"}},
		{"four one five five five five oh one fifty nine", []string{"4155550159"}},
		{"twenty three", []string{"23"}},
		{"one eight hundred five five five oh one nine nine", []string{"18005550199"}},
		{"five hundred and twenty", []string{"520"}},
		{"two thousand and five", []string{"2005"}},
		{"nineteen eighty seven", []string{"1987"}},
		{"text me on +44 20 7946 0053", []string{"+442079460053"}},
		{"plus nine seven one five five", []string{"+97155"}},
		{"oh my god", nil},
		{"it costs $1,250 or 15%", []string{"$1250", "$15"}},
		{"we sold 1,234,567 units", []string{"$1234567"}},
		{"at 3:30 on 12/25", []string{"3", "30", "12", "25"}},
		{"the one at nine", []string{"1", "9"}},
		// A spoken "oh" written as the letter O inside or before digits.
		{"My cell is 415-555-O166.", []string{"4155550166"}},
		{"It's 5O5 1234", []string{"5051234"}},
		{"call me on oh O1 23", []string{"00123"}},
		{"the O2 arena", []string{"02"}},
		{"go on or oo", nil},
		// Arabic number words, with و attached, units before tens, dialect
		// spellings, and Arabic-Indic digits.
		{"صفر خمسة صفر واحد اثنين ثلاثة", []string{"050123"}},
		{"صفر واحد صفر اتنين تلاتة تمانية", []string{"010238"}},
		{"خمسة وعشرين", []string{"25"}},
		{"ثلاثة و عشرين", []string{"23"}},
		{"٠٥٠ ١٢٣ ٤٥٦٧", []string{"0501234567"}},
		{"زائد ٩٧١ ٥٠", []string{"+97150"}},
		{"عشرة", []string{"10"}},
	}
	for _, tt := range tests {
		var d Doc
		d.AddPiece(tt.in, nil, false)
		d.Finish()
		got := runs(&d)
		if strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("%q: runs %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestNumberAt(t *testing.T) {
	var d Doc
	d.AddPiece("gb eight two double oh seven", nil, false)
	d.Finish()
	if digits, next, ok := d.NumberAt(1, false); !ok || digits != "8" || next != 2 {
		t.Errorf("NumberAt(1) = %q, %d, %v", digits, next, ok)
	}
	if digits, next, ok := d.NumberAt(3, true); !ok || digits != "00" || next != 5 {
		t.Errorf("NumberAt(3) = %q, %d, %v", digits, next, ok)
	}
	if _, _, ok := d.NumberAt(0, false); ok {
		t.Error("NumberAt(gb) ok")
	}
}

func TestBarrier(t *testing.T) {
	var d Doc
	d.AddPiece("call two oh two five five five", nil, false)
	d.AddPiece("oh one four three", nil, false)
	d.AddPiece("kill", nil, true)
	d.AddPiece("you", nil, true)
	d.Finish()
	if got := strings.Join(runs(&d), "|"); got != "20255501 43" && got != "2025550143" {
		t.Errorf("runs across pieces: %q, want 2025550143", got)
	}
	if !strings.Contains(d.Text, " kill \n you ") {
		t.Errorf("barrier missing: %q", d.Text)
	}
	d.Reset()
	d.AddPiece("two oh two five five five", nil, false)
	d.AddPiece("oh one four three", nil, true)
	d.Finish()
	if got := runs(&d); len(got) != 2 {
		t.Errorf("runs across a barrier: %q, want two", got)
	}
}

func TestDigitsView(t *testing.T) {
	var d Doc
	d.AddPiece("she lives at forty two elm street flat 3", nil, false)
	d.Finish()
	v := d.DigitsView()
	if v.Text != " she lives at 42 elm street flat 3 " {
		t.Fatalf("digits view %q", v.Text)
	}
	s := strings.Index(v.Text, "42")
	e := strings.Index(v.Text, "street") + len("street")
	first, last, ok := v.Locate(s, e)
	if !ok || d.Norm(first) != "forty" || d.Norm(last) != "street" {
		t.Errorf("Locate = %d..%d %v", first, last, ok)
	}
}

// FuzzNormalize checks the Doc's invariants on arbitrary text: tokens map
// back into the original, Text holds each token where it says, Fold is
// idempotent, numeric groups stay within their tokens.
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"I'm five five five, 1.2.3", "سَأَقْتُلُكَ ٠٥٠", "a\u0301b", "double", "plus", "\xff\xfe", "و وعشرين"} {
		f.Add(s, "word two", false)
	}
	f.Add("read at outlook.com.", "read at outlook .com.", false)
	f.Add("is 2-25-5", "is 2 -25 -5", true)
	f.Fuzz(func(t *testing.T, text, words string, brk bool) {
		var d Doc
		d.AddPiece(text, nil, false)
		d.AddPiece("", strings.Fields(words), brk)
		d.AddPiece(text, strings.Fields(words), brk) // words the text may write attached
		d.Finish()
		for i, tok := range d.Tokens {
			if tok.Start > tok.End || int(tok.End) > len(d.Orig) || tok.GapStart > tok.Start {
				t.Fatalf("token %d: bad range %+v in %q", i, tok, d.Orig)
			}
			n := d.Norm(i)
			if n == "" || strings.ContainsAny(n, " \n") {
				t.Fatalf("token %d: norm %q", i, n)
			}
			if d.Text[tok.Pos-1] != ' ' || d.Text[tok.Pos+tok.Len] != ' ' {
				t.Fatalf("token %d not space-delimited in %q", i, d.Text)
			}
			if d.TokenAt(int(tok.Pos)) != i {
				t.Fatalf("TokenAt(%d) != %d", tok.Pos, i)
			}
		}
		if utf8.ValidString(text) {
			if f1 := Fold(text); Fold(f1) != f1 {
				t.Fatalf("Fold not idempotent: %q → %q → %q", text, f1, Fold(f1))
			}
		}
		for _, r := range d.Runs {
			for _, g := range r.Groups {
				if g.First > g.Last || int(g.Last) >= len(d.Tokens) || g.Start >= g.End || int(g.End) > len(d.Digits) {
					t.Fatalf("bad group %+v", g)
				}
			}
		}
		d.DigitsView()
	})
}

// Words that the segment's text writes with no space before them (Whisper
// splits "outlook.com." into "outlook" and ".com.") are joined without
// one, so the punctuation between tokens is what was written; words the
// text does not hold in order are joined with a space.
func TestAddPieceAttachedWords(t *testing.T) {
	tests := []struct {
		text  string
		words []string
		orig  string
	}{
		{"read at outlook.com.", []string{"read", "at", "outlook", ".com."}, "read at outlook.com."},
		{"My number is 2-25-5-0143", []string{"My", "number", "is", "2", "-25", "-5", "-0143"}, "My number is 2-25-5-0143"},
		{"is 415 -867 -5", []string{"is", "415", "-867", "-5"}, "is 415 -867 -5"},
		{"41, 11, 12.", []string{"41,", "11,", "12."}, "41, 11, 12."},
		{"I I", []string{"I", "I"}, "I I"},
		{"text that does not match", []string{"other", "words"}, "other words"},
		{"men at garage.net", []string{"men", "at", "garage", "oops", ".net"}, "men at garage oops .net"},
	}
	for _, tt := range tests {
		var d Doc
		d.AddPiece(tt.text, tt.words, false)
		d.Finish()
		if d.Orig != tt.orig {
			t.Errorf("%q %q: Orig %q, want %q", tt.text, tt.words, d.Orig, tt.orig)
		}
	}
}
