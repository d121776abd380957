package wer

import (
	"slices"
	"strconv"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// Normalize puts a transcript or a script into the form WER compares:
//
//   - Unicode NFKC, lower case; combining marks (Arabic harakat and the
//     like) and the Arabic tatweel dropped;
//   - Arabic-Indic (٠-٩) and Eastern Arabic-Indic (۰-۹) digits as ASCII;
//   - punctuation and symbols removed ("%" becomes "percent", "&" "and");
//     apostrophes vanish inside words ("don't" → "dont"); a comma between
//     digits is a thousands separator ("1,000" → "1000") and a point between
//     digits stays ("3.5");
//   - English number words written as digits: "twenty five" → "25", "one
//     hundred and three" → "103", "a thousand" → "1000", "oh" next to other
//     digits → "0";
//   - runs of digit groups joined, so a number spoken digit by digit and the
//     same number written any way compare equal: "five five five one two
//     three four", "555-1234" and "5551234" all become "5551234", and
//     "nineteen eighty four" becomes "1984".
//
// Words are separated by single spaces. Normalize is idempotent.
func Normalize(text string) string {
	// Invalid bytes would stop NFKC from composing what follows them; lower
	// casing can undo NFKC (and NFKC can make capitals), so both ways round.
	text = strings.ToValidUTF8(text, " ")
	text = norm.NFKC.String(strings.ToLower(norm.NFKC.String(text)))
	text = strings.ToLower(text)
	words := strings.Fields(stripPunct(text))
	words = numbersToDigits(words)
	// Each rewrite can enable another ("1 00 and 1" → "100 and 1" → "101");
	// each shortens the text or turns an "oh" into a digit, so this ends.
	for {
		next := joinDigitRuns(ohToZero(hundredAnd(joinDigitRuns(words))))
		if slices.Equal(next, words) {
			break
		}
		words = next
	}
	return strings.Join(words, " ")
}

func isASCIIDigit(r rune) bool { return r >= '0' && r <= '9' }

// asciiDigit maps the Arabic-Indic digit sets to ASCII.
func asciiDigit(r rune) rune {
	switch {
	case r >= '\u0660' && r <= '\u0669':
		return '0' + (r - '\u0660')
	case r >= '\u06f0' && r <= '\u06f9':
		return '0' + (r - '\u06f0')
	}
	return r
}

func isApostrophe(r rune) bool {
	switch r {
	case '\'', '\u2019', '\u2018', '\u02bc', '`', '\u00b4':
		return true
	}
	return false
}

func stripPunct(s string) string {
	rs := []rune(s)
	for i, r := range rs {
		rs[i] = asciiDigit(r)
	}
	var b strings.Builder
	b.Grow(len(s))
	for i, r := range rs {
		digitsAround := i > 0 && i+1 < len(rs) && isASCIIDigit(rs[i-1]) && isASCIIDigit(rs[i+1])
		switch {
		case r == ',' && digitsAround:
			// thousands separator: drop
		case r == '.' && digitsAround:
			b.WriteRune(r)
		case isApostrophe(r):
			// inside a word: drop without a break
		case r == '%':
			b.WriteString(" percent ")
		case r == '&':
			b.WriteString(" and ")
		case r == '\u0640' || unicode.Is(unicode.Mn, r):
			// tatweel and combining marks
		case unicode.IsPunct(r) || unicode.IsSymbol(r) || unicode.IsControl(r) || unicode.Is(unicode.Me, r):
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

type numKind int

const (
	kNone numKind = iota
	kUnit         // 0-9
	kTeen         // 10-19
	kTens         // 20, 30, ... 90
	kHundred
	kScale   // thousand, million, billion
	kNumeral // a digit token standing before a scale word: "2 million"
)

var numberWords = map[string]struct {
	kind numKind
	val  int64
}{
	"zero": {kUnit, 0}, "one": {kUnit, 1}, "two": {kUnit, 2}, "three": {kUnit, 3},
	"four": {kUnit, 4}, "five": {kUnit, 5}, "six": {kUnit, 6}, "seven": {kUnit, 7},
	"eight": {kUnit, 8}, "nine": {kUnit, 9},
	"ten": {kTeen, 10}, "eleven": {kTeen, 11}, "twelve": {kTeen, 12}, "thirteen": {kTeen, 13},
	"fourteen": {kTeen, 14}, "fifteen": {kTeen, 15}, "sixteen": {kTeen, 16},
	"seventeen": {kTeen, 17}, "eighteen": {kTeen, 18}, "nineteen": {kTeen, 19},
	"twenty": {kTens, 20}, "thirty": {kTens, 30}, "forty": {kTens, 40}, "fifty": {kTens, 50},
	"sixty": {kTens, 60}, "seventy": {kTens, 70}, "eighty": {kTens, 80}, "ninety": {kTens, 90},
	"hundred":  {kHundred, 100},
	"thousand": {kScale, 1e3}, "million": {kScale, 1e6}, "billion": {kScale, 1e9},
}

func isDigits(w string) bool {
	if w == "" {
		return false
	}
	for i := 0; i < len(w); i++ {
		if !isASCIIDigit(rune(w[i])) {
			return false
		}
	}
	return true
}

func isScaleWord(w string) bool {
	nw, ok := numberWords[w]
	return ok && (nw.kind == kHundred || nw.kind == kScale)
}

// classify marks the words that belong to numbers. "a" and "and" are decided
// in numbersToDigits, by their neighbours; "oh" in ohToZero.
func classify(words []string) []numKind {
	kinds := make([]numKind, len(words))
	for i, w := range words {
		if nw, ok := numberWords[w]; ok {
			kinds[i] = nw.kind
		}
	}
	// A numeral before a scale word: "2 million".
	for i, w := range words {
		if kinds[i] == kNone && i+1 < len(words) && isScaleWord(words[i+1]) && isDigits(w) && len(w) <= 3 {
			kinds[i] = kNumeral
		}
	}
	return kinds
}

// numbersToDigits rewrites runs of number words as digit groups.
func numbersToDigits(words []string) []string {
	kinds := classify(words)
	out := make([]string, 0, len(words))
	var n numberBuilder
	flush := func() {
		if s, ok := n.finish(); ok {
			out = append(out, s)
		}
	}
	for i := 0; i < len(words); i++ {
		w, k := words[i], kinds[i]
		next := kNone
		if i+1 < len(words) {
			next = kinds[i+1]
		}
		switch {
		case k != kNone:
			var v int64
			if k == kNumeral {
				v, _ = strconv.ParseInt(w, 10, 64)
			} else {
				v = numberWords[w].val
			}
			if !n.add(k, v) {
				flush()
				n.add(k, v)
			}
		case w == "a" && !n.active() && (next == kHundred || next == kScale):
			n.add(kUnit, 1)
		case w == "and" && (n.last == kHundred || n.last == kScale) &&
			(next == kUnit || next == kTeen || next == kTens) && !(i+1 < len(words) && words[i+1] == "oh"):
			// "one hundred and three": part of the number
		default:
			flush()
			out = append(out, w)
		}
	}
	flush()
	return out
}

// numberBuilder accumulates one cardinal number, word by word.
type numberBuilder struct {
	total, cur int64
	last       numKind
	lastScale  int64 // the last thousand/million/billion, 0 when none yet
	zero       bool  // the number is a lone "zero"
}

func (n *numberBuilder) active() bool { return n.last != kNone }

// add appends a word; false means it cannot continue this number (the
// caller finishes it and starts a new one).
func (n *numberBuilder) add(k numKind, v int64) bool {
	if n.zero {
		return false // "zero" stands alone: "zero five" is two digits
	}
	switch k {
	case kUnit, kTeen, kTens:
		switch {
		case n.last == kNone:
			n.cur = v
			n.zero = v == 0
		case v == 0:
			return false
		case n.last == kTens && k == kUnit:
			n.cur += v
		case n.last == kHundred || n.last == kScale:
			n.cur += v
		default:
			return false
		}
	case kNumeral:
		if n.last != kNone {
			return false
		}
		n.cur = v
	case kHundred:
		switch {
		case n.last == kNone || n.last == kScale:
			n.cur = 100
		case n.cur >= 1 && n.cur <= 99:
			n.cur *= 100
		default:
			return false
		}
	case kScale:
		if n.lastScale != 0 && v >= n.lastScale {
			return false
		}
		if n.last == kScale {
			return false // "million thousand"
		}
		if n.last == kNone {
			n.cur = 1
		}
		n.total += n.cur * v
		n.cur = 0
		n.lastScale = v
	}
	n.last = k
	return true
}

func (n *numberBuilder) finish() (string, bool) {
	if !n.active() {
		return "", false
	}
	s := strconv.FormatInt(n.total+n.cur, 10)
	*n = numberBuilder{}
	return s, true
}

// hundredAnd reads "100 and 3" as 103 and "2000 and 5" as 2005: how
// Whisper writes "one hundred and three" when it keeps the "and".
func hundredAnd(words []string) []string {
	out := make([]string, 0, len(words))
	for i := 0; i < len(words); i++ {
		if i+2 < len(words) && words[i+1] == "and" && isRound(words[i]) && isDigits(words[i+2]) &&
			words[i+2][0] != '0' && len(words[i+2]) <= 2 {
			// len ≤ 2 < the trailing zeros of a round number: the sum
			// just fills them in.
			w := words[i]
			out = append(out, w[:len(w)-len(words[i+2])]+words[i+2])
			i += 2
			continue
		}
		out = append(out, words[i])
	}
	return out
}

// isRound: digits without a leading zero, ending in at least two zeros.
func isRound(w string) bool {
	return isDigits(w) && len(w) >= 3 && w[0] != '0' && strings.HasSuffix(w, "00")
}

// ohToZero reads "oh" as a zero when it stands beside digits, or beside
// another such "oh" ("oh oh seven"). It runs after numbersToDigits, so that
// the neighbours are already digits however they were spelt.
func ohToZero(words []string) []string {
	isOh := func(w string) bool { return w == "oh" || w == "o" }
	// One sweep each way carries a zero along a chain of "oh"s in both
	// directions.
	for i := 1; i < len(words); i++ {
		if isOh(words[i]) && isDigits(words[i-1]) {
			words[i] = "0"
		}
	}
	for i := len(words) - 2; i >= 0; i-- {
		if isOh(words[i]) && isDigits(words[i+1]) {
			words[i] = "0"
		}
	}
	return words
}

// joinDigitRuns joins neighbouring all-digit words into one.
func joinDigitRuns(words []string) []string {
	out := make([]string, 0, len(words))
	for i := 0; i < len(words); {
		j := i + 1
		if isDigits(words[i]) {
			for j < len(words) && isDigits(words[j]) {
				j++
			}
		}
		out = append(out, strings.Join(words[i:j], ""))
		i = j
	}
	return out
}
