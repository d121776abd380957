package detect

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
	"unicode/utf8"

	"github.com/earshot/earshot/policy/normalize"
)

// Regex reports the matches of one regular expression (Go RE2 syntax) over
// a Doc's normalised text, or over its digits view (numbers spoken or
// written as one token of digits) for rules about numbers.
//
// Matches must begin and end at token boundaries (Arabic: after a
// proclitic too), like lexicon terms: `\b` is ASCII-only in Go, so this is
// what makes a pattern respect Arabic word boundaries.
type Regex struct {
	rule    *Rule
	re      *regexp.Regexp
	digits  bool
	factors []string
}

var _ Detector = (*Regex)(nil)

// NewRegex compiles pattern for rule. digitsView selects the digits view.
// The pattern is checked with CheckRegex.
func NewRegex(rule *Rule, pattern string, digitsView bool) (*Regex, error) {
	if err := CheckRegex(pattern); err != nil {
		return nil, err
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, err
	}
	parsed, _ := syntax.Parse(pattern, syntax.Perl)
	return &Regex{rule: rule, re: re, digits: digitsView, factors: Factors(parsed.Simplify())}, nil
}

// Factors are literals one of which every match contains (nil when there
// is no such set). The policy engine finds them with its lexicon pass and
// runs the regex only on text that has one: most regexes never run on
// most segments.
func (r *Regex) Factors() []string { return r.factors }

// DigitsView says the regex runs on the digits view.
func (r *Regex) DigitsView() bool { return r.digits }

// Detect implements Detector.
func (r *Regex) Detect(d *normalize.Doc, out []Match) []Match {
	var v *normalize.View
	text := d.Text
	if r.digits {
		v = d.DigitsView()
		text = v.Text
	}
	for _, loc := range r.re.FindAllStringIndex(text, -1) {
		s, e := loc[0], loc[1]
		for s < e && (text[s] == ' ' || text[s] == '\n') {
			s++
		}
		for e > s && (text[e-1] == ' ' || text[e-1] == '\n') {
			e--
		}
		if s == e {
			continue
		}
		r0, _ := utf8.DecodeRuneInString(text[s:])
		if !startOK(text, s, isArabicRune(r0)) || !endOK(text, e) {
			continue
		}
		var first, last int
		if v != nil {
			var ok bool
			if first, last, ok = v.Locate(s, e); !ok {
				continue
			}
		} else {
			first, last = d.TokenAt(s), d.TokenAt(e-1)
		}
		out = append(out, Match{Rule: r.rule, First: first, Last: last})
	}
	return out
}

// CheckRegex compiles pattern and checks that its literals can occur in
// normalised text: lower case, no diacritics, unified Arabic letters,
// ASCII digits, no punctuation but spaces. A literal that cannot occur
// would make the rule silently match nothing, so it is an error that says
// what to write instead.
func CheckRegex(pattern string) error {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return err
	}
	var problems []string
	seen := map[string]bool{}
	var walk func(*syntax.Regexp)
	walk = func(re *syntax.Regexp) {
		if re.Op == syntax.OpLiteral {
			lit := string(re.Rune)
			if re.Flags&syntax.FoldCase != 0 {
				lit = strings.ToLower(lit)
			}
			for _, word := range strings.Fields(lit) {
				if f := normalize.Fold(word); f != word && !seen[word] {
					seen[word] = true
					if f == "" {
						problems = append(problems, fmt.Sprintf("literal %q never occurs in normalised text (punctuation is removed); drop it or use a space", word))
					} else {
						problems = append(problems, fmt.Sprintf("literal %q never occurs in normalised text; write %q", word, f))
					}
				}
			}
		}
		for _, s := range re.Sub {
			walk(s)
		}
	}
	walk(re)
	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return nil
}

// minFactor is the shortest literal worth prefiltering on: a one-byte
// factor is in nearly every text.
const minFactor = 3

// Factors returns literals one of which every match of re contains, or nil
// when no such set of literals of at least minFactor bytes is found.
func Factors(re *syntax.Regexp) []string {
	switch re.Op {
	case syntax.OpLiteral:
		lit := string(re.Rune)
		if re.Flags&syntax.FoldCase != 0 {
			lit = strings.ToLower(lit)
		}
		lit = strings.TrimSpace(lit)
		if len(lit) < minFactor {
			return nil
		}
		return []string{lit}
	case syntax.OpCapture:
		return Factors(re.Sub[0])
	case syntax.OpPlus:
		return Factors(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return Factors(re.Sub[0])
		}
		return nil
	case syntax.OpConcat:
		var best []string
		bestLen := 0
		for _, s := range re.Sub {
			f := Factors(s)
			if f == nil {
				continue
			}
			shortest := len(f[0])
			for _, x := range f {
				shortest = min(shortest, len(x))
			}
			// Prefer longer literals (rarer), then fewer alternatives.
			if shortest > bestLen || shortest == bestLen && len(f) < len(best) {
				best, bestLen = f, shortest
			}
		}
		return best
	case syntax.OpAlternate:
		var all []string
		for _, s := range re.Sub {
			f := Factors(s)
			if f == nil {
				return nil
			}
			all = append(all, f...)
		}
		return all
	}
	return nil
}
