package detect

import (
	"regexp/syntax"
	"slices"
	"strings"
	"testing"

	"github.com/earshot/earshot/policy/normalize"
)

func doc(text string) *normalize.Doc {
	var d normalize.Doc
	d.AddPiece(text, nil, false)
	d.Finish()
	return &d
}

// found runs a detector and returns "value@matched text" per match.
func found(det Detector, text string) []string {
	d := doc(text)
	var out []string
	for _, m := range det.Detect(d, nil) {
		out = append(out, m.Value+"@"+d.Span(m.First, m.Last))
	}
	return out
}

var testRule = &Rule{ID: "t", Category: "test", Severity: SeverityHigh, Strength: 1}

func TestSeverity(t *testing.T) {
	for _, s := range []Severity{SeverityLow, SeverityMedium, SeverityHigh, SeverityCritical} {
		b, _ := s.MarshalText()
		var back Severity
		if err := back.UnmarshalText(b); err != nil || back != s {
			t.Errorf("%v: round trip %q → %v, %v", s, b, back, err)
		}
	}
	if _, err := ParseSeverity("urgent"); err == nil {
		t.Error("ParseSeverity(urgent) ok")
	}
}

// TestArabicLexiconMatching is the Arabic must-show: lexicon entries and
// transcript text written with different alef, yaa, taa-marbuta,
// diacritic, tatweel and digit forms match each other, also behind an
// attached proclitic, and only on word boundaries.
func TestArabicLexiconMatching(t *testing.T) {
	det, err := NewLexiconDetector([]LexiconEntry{
		{Rule: &Rule{ID: "threat"}, Terms: []string{"سأقتلك", "أعرف أين تسكن"}},
		{Rule: &Rule{ID: "nda"}, Terms: []string{"اتفاقية عدم إفصاح"}},
		{Rule: &Rule{ID: "hospital"}, Terms: []string{"مستشفى"}},
		{Rule: &Rule{ID: "room"}, Terms: []string{"غرفة ١٠٤"}},
		{Rule: &Rule{ID: "secret"}, Terms: []string{"سِرِّيّ جداً"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		text string
		want []string // rule IDs
	}{
		{"سأقتلك", []string{"threat"}},
		{"ساقتلك", []string{"threat"}},                  // alef without hamza
		{"سَأَقْتُلُكَ يا", []string{"threat"}},         // harakat
		{"سـأقـتـلك", []string{"threat"}},               // tatweel
		{"والله ساقتلك", []string{"threat"}},            // separate words
		{"وسأقتلك", []string{"threat"}},                 // proclitic و
		{"انا اعرف اين تسكن", []string{"threat"}},       // alef forms inside a phrase
		{"وقعت على اتفاقيه عدم افصاح", []string{"nda"}}, // taa marbuta as haa, alef
		{"في المستشفي", []string{"hospital"}},           // article, yaa for alef maqsura
		{"في مستشفى", []string{"hospital"}},
		{"الغرفه ١٠٤", []string{"room"}}, // Arabic-Indic digits in both
		{"الغرفة 104", []string{"room"}},
		{"غرفه ۱۰۴", []string{"room"}},      // Eastern Arabic-Indic digits
		{"هذا سري جدا", []string{"secret"}}, // entry had diacritics, text none
		{"هذا سري جدًا", []string{"secret"}},
		{"مستشفيات", nil},  // longer word: no match
		{"ساقتلكم", nil},   // the term is not a prefix of a word
		{"غرفه 1045", nil}, // digits are word-bounded too
		{"مسأقتلك", nil},   // "م" is not a proclitic
	}
	for _, tt := range tests {
		var got []string
		for _, m := range det.Detect(doc(tt.text), nil) {
			got = append(got, m.Rule.ID)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%q: matched %v, want %v", tt.text, got, tt.want)
		}
	}
}

func TestLexiconEnglish(t *testing.T) {
	lex, err := NewLexicon([]TermSet{
		{Key: 1, Terms: []string{"kill you", "I'll kill you", "off the record"}},
		{Key: 2, Terms: []string{"you"}},
		{Key: 3, Terms: []string{"ill k"}, Substring: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		text string
		want []Hit
	}{
		{"I'll KILL you!", []Hit{{1, 0, 2}, {1, 1, 2}, {2, 2, 2}, {3, 0, 1}}},
		{"this skill you learn", []Hit{{2, 2, 2}}}, // "kill" inside "skill" is no word
		{"Off-the-record, ok", []Hit{{1, 0, 2}}},
		{"youth", nil},
	}
	for _, tt := range tests {
		got := lex.Find(doc(tt.text), nil)
		slices.SortFunc(got, func(a, b Hit) int {
			if a.Key != b.Key {
				return a.Key - b.Key
			}
			return a.First - b.First
		})
		if !slices.Equal(got, tt.want) {
			t.Errorf("%q: %v, want %v", tt.text, got, tt.want)
		}
	}
	if _, err := NewLexicon([]TermSet{{Key: 1, Terms: []string{"..."}}}); err == nil {
		t.Error("a term without letters was accepted")
	}
	empty, err := NewLexicon(nil)
	if err != nil || len(empty.Find(doc("anything"), nil)) != 0 {
		t.Errorf("empty lexicon: %v", err)
	}
}

func TestLuhnAndNetworks(t *testing.T) {
	tests := []struct {
		digits  string
		luhn    bool
		network string
	}{
		{"4111111111111111", true, "visa"},
		{"4111111111111112", false, "visa"},
		{"5500000000000004", true, "mastercard"},
		{"2223000048400011", true, "mastercard"},
		{"378282246310005", true, "amex"},
		{"6011111111111117", true, "discover"},
		{"3530111333300000", true, "jcb"},
		{"490154203237518", true, ""},  // an IMEI from 49: Visa issues 13, 16 and 19 digits only
		{"356938035643809", true, ""},  // an IMEI from 35: 15 digits, JCB issues 16–19
		{"9906737763494716", true, ""}, // no network issues 99
	}
	for _, tt := range tests {
		if got := Luhn(tt.digits); got != tt.luhn {
			t.Errorf("Luhn(%s) = %v", tt.digits, got)
		}
		n, ok := CardNetwork(tt.digits)
		if n != tt.network || ok != (tt.network != "") {
			t.Errorf("CardNetwork(%s) = %q, %v; want %q", tt.digits, n, ok, tt.network)
		}
	}
	if Luhn("1") || Luhn("12a4") {
		t.Error("Luhn accepted a malformed string")
	}
}

func TestCard(t *testing.T) {
	c := NewCard(testRule)
	tests := []struct {
		text string
		want []string
	}{
		{"my card is 4111 1111 1111 1111 thanks", []string{"visa 1111@4111 1111 1111 1111"}},
		{"four one one one one one one one one one one one one one one one", []string{"visa 1111@four one one one one one one one one one one one one one one one"}},
		{"amex 3782 822463 10005 expiry twelve twenty seven", []string{"amex 0005@3782 822463 10005"}},
		{"5.5.0.0, 0.0.0.0, 0.0.0.0, 0.0.0.4", []string{"mastercard 0004@5.5.0.0, 0.0.0.0, 0.0.0.0, 0.0.0.4"}},
		{"٤١١١ ١١١١ ١١١١ ١١١١", []string{"visa 1111@٤١١١ ١١١١ ١١١١ ١١١١"}},
		{"4111 1111 1111 1112", nil},  // Luhn fails
		{"imei 356938035643809", nil}, // IIN/length rules out an IMEI
		{"it costs $4111,1111", nil},  // quantity
		{"4111 1111 1111 1111 2222 3333", []string{"visa 1111@4111 1111 1111 1111"}},
	}
	for _, tt := range tests {
		if got := found(c, tt.text); !slices.Equal(got, tt.want) {
			t.Errorf("%q: %q, want %q", tt.text, got, tt.want)
		}
	}
}

func TestIBAN(t *testing.T) {
	if !IBANValid("GB82WEST12345698765432") || IBANValid("GB82WEST12345698765433") || IBANValid("XX82WEST12345698765432") || IBANValid("GB82WEST1234569876543") {
		t.Error("IBANValid")
	}
	b := NewIBAN(testRule)
	tests := []struct {
		text string
		want []string
	}{
		{"send it to GB82 WEST 1234 5698 7654 32 please", []string{"GB82WEST12345698765432@GB82 WEST 1234 5698 7654 32"}},
		{"gb82west12345698765432", []string{"GB82WEST12345698765432@gb82west12345698765432"}},
		{"g b eight two w e s t one two three four five six nine eight seven six five four three two", []string{"GB82WEST12345698765432@g b eight two w e s t one two three four five six nine eight seven six five four three two"}},
		{"الايبان SA03 8000 0000 6080 1016 7519", []string{"SA0380000000608010167519@SA03 8000 0000 6080 1016 7519"}},
		{"الايبان sa٠٣ ٨٠٠٠ ٠٠٠٠ ٦٠٨٠ ١٠١٦ ٧٥١٩", []string{"SA0380000000608010167519@sa٠٣ ٨٠٠٠ ٠٠٠٠ ٦٠٨٠ ١٠١٦ ٧٥١٩"}},
		{"GB82 WEST 1234 5698 7654 33", nil}, // mod 97 fails
		{"gb is a country", nil},
	}
	for _, tt := range tests {
		if got := found(b, tt.text); !slices.Equal(got, tt.want) {
			t.Errorf("%q: %q, want %q", tt.text, got, tt.want)
		}
	}
}

func TestEmail(t *testing.T) {
	e := NewEmail(testRule)
	tests := []struct {
		text string
		want []string
	}{
		{"send it to jane.doe@example.org please", []string{"jane.doe@example.org@jane.doe@example.org"}},
		{"my email is john dot smith at example dot com", []string{"john.smith@example.com@john dot smith at example dot com"}},
		{"it's k dot patel at company dot co dot uk", []string{"k.patel@company.co.uk@k dot patel at company dot co dot uk"}},
		{"email is a l e x at proton dot me", []string{"alex@proton.me@a l e x at proton dot me"}},
		{"sarah underscore lee at gmail dot com", []string{"sarah_lee@gmail.com@sarah underscore lee at gmail dot com"}},
		{"big dot dave eighty at gmail dot com", []string{"big.dave80@gmail.com@big dot dave eighty at gmail dot com"}},
		{"ops-team@acme-corp.io", []string{"ops-team@acme-corp.io@ops-team@acme-corp.io"}},
		{"john.smith at example.com", []string{"john.smith@example.com@john.smith at example.com"}},
		{"بريدي محمد نقطة حسن ات جيميل نقطة كوم", []string{"محمد.حسن@gmail.com@محمد نقطة حسن ات جيميل نقطة كوم"}},
		{"meet me at the cafe dot com place", nil},
		{"we're at the office", nil},
		{"i saw it on example dot com", nil},
		{"meet me at home dot zzz", nil}, // spoken: unknown TLD
		{"version 1.2@3", nil},
	}
	for _, tt := range tests {
		if got := found(e, tt.text); !slices.Equal(got, tt.want) {
			t.Errorf("%q: %q, want %q", tt.text, got, tt.want)
		}
	}
}

func TestPhone(t *testing.T) {
	p := NewPhone(testRule, []string{"US", "GB", "AE", "SA", "EG"})
	tests := []struct {
		text string
		want []string // E.164 values
	}{
		{"my number is two oh two five five five oh one four three", []string{"+12025550143"}},
		{"call (202) 555-0143 tonight", []string{"+12025550143"}},
		{"it's 2.0.2, 5.5.5, 0.1.4.3", []string{"+12025550143"}},
		{"text me on +44 20 7946 0053", []string{"+442079460053"}},
		{"plus four four seven nine one one one two three four five six", []string{"+447911123456"}},
		{"four four seven nine one one one two three four five six", []string{"+447911123456"}},
		// One digit too many (misheard, or an extension): the number in it is
		// still reported.
		{"oh seven nine one one double one two three four five six", []string{"+447911112345"}},
		{"oh seven nine one one one two three four five six", []string{"+447911123456"}},
		{"0044 7911 123456", []string{"+447911123456"}},
		{"call one eight hundred five five five oh one nine nine", []string{"+18005550199"}},
		{"رقمي صفر خمسة صفر واحد اثنين ثلاثة أربعة خمسة ستة سبعة", []string{"+971501234567"}},
		{"اتصل على ٠١٠ ١٢٣٤ ٥٦٧٨", []string{"+201012345678"}},
		{"202 555 0143 and 202 555 0199", []string{"+12025550143", "+12025550199"}},
		{"2025550143 2025550199", []string{"+12025550143", "+12025550199"}},
		{"five five five one two three four", nil}, // no area code: reaches nobody
		{"the price is $2025550143", nil},
		{"at 3:30 on 12/25/2024", nil},
		{"4614 4661 2101 2201", nil}, // a 16-digit number is no phone, even if 8 of its digits are
	}
	for _, tt := range tests {
		var got []string
		for _, m := range p.Detect(doc(tt.text), nil) {
			got = append(got, m.Value)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%q: %q, want %q", tt.text, got, tt.want)
		}
	}
	if !ValidRegion("GB") || ValidRegion("XX") {
		t.Error("ValidRegion")
	}
}

func TestRegex(t *testing.T) {
	r, err := NewRegex(testRule, `(i will|ill) (kill|hurt) (you|him)`, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Factors(); !slices.Equal(got, []string{"kill", "hurt"}) && !slices.Equal(got, []string{"i will", "ill"}) {
		t.Errorf("factors %q", got)
	}
	if got := found(r, "I'll KILL you, I will hurt him"); !slices.Equal(got, []string{"@I'll KILL you", "@I will hurt him"}) {
		t.Errorf("matches %q", got)
	}
	if got := found(r, "skill you"); got != nil {
		t.Errorf("matched inside a word: %q", got)
	}
	ar, err := NewRegex(testRule, `شارع( [^ \n]+){1,2}`, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := found(ar, "ساكن في شارع الملك فهد"); !slices.Equal(got, []string{"@شارع الملك فهد"}) {
		t.Errorf("arabic: %q", got)
	}
	if got := found(ar, "والشارع الكبير"); !slices.Equal(got, []string{"@والشارع الكبير"}) {
		t.Errorf("arabic after a proclitic: %q", got)
	}
	if got := found(ar, "مشارع كبيره"); got != nil {
		t.Errorf("arabic inside a word: %q", got)
	}
	dv, err := NewRegex(testRule, `[0-9]+ [a-z]+ street`, true)
	if err != nil {
		t.Fatal(err)
	}
	if got := found(dv, "she lives at forty two elm street"); !slices.Equal(got, []string{"@forty two elm street"}) {
		t.Errorf("digits view: %q", got)
	}
}

func TestCheckRegex(t *testing.T) {
	tests := []struct {
		pattern string
		want    string // substring of the error, "" for none
	}{
		{`kill (you|him)`, ""},
		{`(?i)KILL you`, ""},
		{`Kill you`, `write "kill"`},
		{`سأقتلك`, `write "ساقتلك"`},
		{`you're`, `write "youre"`},
		{`kill (you`, "missing closing )"},
		{`a[`, "missing closing ]"},
	}
	for _, tt := range tests {
		err := CheckRegex(tt.pattern)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%q: %v", tt.pattern, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%q: error %v, want %q", tt.pattern, err, tt.want)
		}
	}
}

func TestFactors(t *testing.T) {
	tests := []struct {
		pattern string
		want    []string
	}{
		{`kill you`, []string{"kill you"}},
		{`(kill|hurt) you`, []string{"kill", "hurt"}},
		{`[0-9]+ street`, []string{"street"}},
		{`(a|street)`, nil}, // "a" is too short to prefilter on
		{`x*`, nil},
		{`(?:road)+`, []string{"road"}},
	}
	for _, tt := range tests {
		re, err := syntax.Parse(tt.pattern, syntax.Perl)
		if err != nil {
			t.Fatal(err)
		}
		got := Factors(re.Simplify())
		slices.Sort(got)
		want := slices.Clone(tt.want)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("Factors(%q) = %q, want %q", tt.pattern, got, tt.want)
		}
	}
}

// FuzzDetectors runs every detector over arbitrary text: no panics, and
// every match inside the Doc.
func FuzzDetectors(f *testing.F) {
	for _, s := range []string{"john dot smith at example dot com", "gb82 west 1234 5698 7654 32", "4111 1111 1111 1111", "plus four four 20 7946 0053", "ات جيميل نقطه كوم", "@.@", "g b"} {
		f.Add(s)
	}
	lex, _ := NewLexiconDetector([]LexiconEntry{{Rule: testRule, Terms: []string{"kill you", "اقتلك"}}})
	re, _ := NewRegex(testRule, `[0-9]+ [a-z]+ street`, true)
	dets := []Detector{NewPhone(testRule, []string{"US", "GB"}), NewEmail(testRule), NewCard(testRule), NewIBAN(testRule), lex, re}
	f.Fuzz(func(t *testing.T, text string) {
		d := doc(text)
		for _, det := range dets {
			for _, m := range det.Detect(d, nil) {
				if m.First < 0 || m.Last < m.First || m.Last >= len(d.Tokens) {
					t.Fatalf("%T: match %d..%d of %d tokens in %q", det, m.First, m.Last, len(d.Tokens), text)
				}
			}
		}
	})
}
