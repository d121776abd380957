package detect

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/coregx/ahocorasick"

	"github.com/earshot/earshot/policy/normalize"
)

// TermSet is a group of lexicon terms reported under one key.
type TermSet struct {
	Key   int
	Terms []string
	// Substring matches the terms anywhere in the normalised text (for
	// regex prefilter factors); otherwise a term must cover whole tokens.
	Substring bool
}

// Hit is one term found in a Doc.
type Hit struct {
	Key int
	// First and Last are the Doc tokens the term covers (inclusive).
	First, Last int
}

type termRef struct {
	key       int
	substring bool
	arabic    bool
}

// Lexicon matches many term sets in one pass over a Doc's normalised text
// with an Aho-Corasick automaton (github.com/coregx/ahocorasick: a compiled
// DFA, no dependencies). Terms are folded like the text (normalize.Fold),
// so "I'm", "im" and "IM" are one entry, and Arabic entries match in any
// alef, yaa, taa-marbuta, diacritic and digit form.
//
// Word boundaries: the text is " tok tok ", and every whole-token term is
// stored with a trailing space, so it can only end at a token's end; its
// start is checked to be a token's start. Arabic terms may also start after
// a proclitic attached to the word (و ف ب ل ك س and the article: "واقتلك"
// matches "اقتلك"), since Arabic writes those as one word.
type Lexicon struct {
	ac   *ahocorasick.Automaton
	refs [][]termRef
	n    int
}

// NewLexicon compiles term sets. A term that folds to nothing is an error.
func NewLexicon(sets []TermSet) (*Lexicon, error) {
	l := &Lexicon{}
	index := map[string]int{}
	var patterns []string
	for _, s := range sets {
		for _, t := range s.Terms {
			f := normalize.Fold(t)
			if s.Substring {
				f = t
			}
			if f == "" {
				return nil, fmt.Errorf("lexicon: term %q has no letters or digits", t)
			}
			p := f
			if !s.Substring {
				p += " "
			}
			id, ok := index[p]
			if !ok {
				id = len(patterns)
				index[p] = id
				patterns = append(patterns, p)
				l.refs = append(l.refs, nil)
			}
			r, _ := utf8.DecodeRuneInString(f)
			ref := termRef{key: s.Key, substring: s.Substring, arabic: isArabicRune(r)}
			dup := false
			for _, old := range l.refs[id] {
				dup = dup || old == ref
			}
			if !dup {
				l.refs[id] = append(l.refs[id], ref)
			}
		}
	}
	l.n = len(patterns)
	if len(patterns) == 0 {
		return l, nil
	}
	ac, err := ahocorasick.NewBuilder().AddStrings(patterns).Build()
	if err != nil {
		return nil, fmt.Errorf("lexicon: build automaton: %w", err)
	}
	l.ac = ac
	return l, nil
}

// Len is the number of distinct patterns.
func (l *Lexicon) Len() int { return l.n }

// Find appends every term occurrence in d to out (overlapping occurrences
// included).
func (l *Lexicon) Find(d *normalize.Doc, out []Hit) []Hit {
	if l.ac == nil {
		return out
	}
	text := d.Text
	for _, m := range l.ac.FindAllOverlapping(d.TextBytes()) {
		for _, ref := range l.refs[m.PatternID] {
			end := m.End
			if !ref.substring {
				end-- // the trailing space
				if !startOK(text, m.Start, ref.arabic) {
					continue
				}
			}
			first := d.TokenAt(m.Start)
			last := d.TokenAt(end - 1)
			if first >= len(d.Tokens) || last < first {
				continue
			}
			out = append(out, Hit{Key: ref.key, First: first, Last: last})
		}
	}
	return out
}

// proclitics may stand before an Arabic lexicon term inside one written
// word: conjunctions, prepositions, the future prefix and the article.
var proclitics = map[string]bool{}

func init() {
	for _, p := range strings.Fields("و ف ب ل ك س ال وال فال بال كال لل ولل فلل وب ول وك وس فب فل فك فس") {
		proclitics[p] = true
	}
}

// startOK says a whole-token term may start at byte s of text.
func startOK(text string, s int, arabic bool) bool {
	if s == 0 || text[s-1] == ' ' || text[s-1] == '\n' {
		return true
	}
	if !arabic {
		return false
	}
	w := strings.LastIndexByte(text[:s], ' ')
	return proclitics[text[w+1:s]]
}

// endOK says a whole-token match may end at byte e of text.
func endOK(text string, e int) bool {
	return e >= len(text) || text[e] == ' ' || text[e] == '\n'
}

func isArabicRune(r rune) bool { return r >= 0x0600 && r <= 0x06FF }

// LexiconEntry is one rule's terms for NewLexiconDetector.
type LexiconEntry struct {
	Rule  *Rule
	Terms []string
}

// LexiconDetector reports every lexicon term as a match of its rule.
type LexiconDetector struct {
	lex   *Lexicon
	rules []*Rule
	hits  []Hit
}

var _ Detector = (*LexiconDetector)(nil)

// NewLexiconDetector compiles the entries into one automaton.
func NewLexiconDetector(entries []LexiconEntry) (*LexiconDetector, error) {
	sets := make([]TermSet, len(entries))
	rules := make([]*Rule, len(entries))
	for i, e := range entries {
		sets[i] = TermSet{Key: i, Terms: e.Terms}
		rules[i] = e.Rule
	}
	lex, err := NewLexicon(sets)
	if err != nil {
		return nil, err
	}
	return &LexiconDetector{lex: lex, rules: rules}, nil
}

// Detect implements Detector. It is not safe for concurrent use (it reuses
// a buffer); the policy engine uses Lexicon directly.
func (l *LexiconDetector) Detect(d *normalize.Doc, out []Match) []Match {
	l.hits = l.lex.Find(d, l.hits[:0])
	for _, h := range l.hits {
		out = append(out, Match{Rule: l.rules[h.Key], First: h.First, Last: h.Last})
	}
	return out
}
