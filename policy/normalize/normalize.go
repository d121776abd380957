// Package normalize turns transcript text into the form the policy
// detectors match on, and keeps the way back: every normalised token knows
// the bytes of the original text it came from and the transcript word it
// belongs to, so a match can be shown as an excerpt and placed on the
// timeline.
//
// The normal form is: Unicode NFKC, lower case, apostrophes dropped inside
// words ("I'm" → "im"), everything that is not a letter, digit or mark a
// token separator. For Arabic: diacritics (harakat, tanween, shadda, sukun,
// superscript alef, Quranic marks) and tatweel removed; alef variants
// (أ إ آ ٱ) → ا; alef maqsura and Farsi yeh (ى ی) → ي; taa marbuta (ة) → ه;
// hamza carriers ؤ → و and ئ → ي; Farsi kaf ک → ك. Arabic-Indic (٠-٩) and
// Eastern Arabic-Indic (۰-۹) digits become ASCII digits, which NFKC leaves
// alone.
//
// On top of the tokens, a Doc finds numeric runs: consecutive tokens that
// read as numbers, written or spoken ("five five five", "oh", "double
// five", "twenty three", "eight hundred", Arabic number words), each turned
// into its digits, for the PII detectors.
package normalize

import (
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Token is one normalised word.
type Token struct {
	// Start and End are the token's bytes in Doc.Orig.
	Start, End int32
	// GapStart is where the text between the previous token of the same
	// piece and this one starts in Doc.Orig (== Start for a piece's first
	// token), so Doc.Gap can tell "john.smith" from "john smith".
	GapStart int32
	// Pos and Len locate the token's normal form in Doc.Text.
	Pos, Len int32
	// Piece is the index of the piece (transcript segment) the token came
	// from; Word the index of the transcript word in that piece, or -1 when
	// the piece was added as plain text.
	Piece, Word int32
	// Break says a barrier precedes the token: no phrase or number may run
	// across it (a long pause, another speaker when that is not allowed).
	Break bool
}

// Piece records where one added piece sits in the Doc.
type Piece struct {
	// OrigStart and OrigEnd are the piece's bytes in Doc.Orig.
	OrigStart, OrigEnd int32
	// FirstToken and EndToken are the piece's tokens [FirstToken, EndToken).
	FirstToken, EndToken int32
	// WordStarts are the offsets in Doc.Orig of each transcript word (nil
	// for plain text).
	WordStarts []int32
}

// Doc is normalised text built from one or more pieces (transcript
// segments). A Doc is reused with Reset to avoid allocation; it is not safe
// for concurrent use.
type Doc struct {
	// Orig is the original text of all pieces, pieces separated by "\n" and
	// a piece's words by one space.
	Orig string
	// Text is the normal form: " tok tok tok ", every token preceded and
	// followed by one space, a barrier written as "\n " so that nothing
	// matches across it.
	Text string
	// Tokens in text order.
	Tokens []Token
	// Pieces in the order they were added.
	Pieces []Piece
	// Runs are the numeric runs, in order.
	Runs []Run
	// Digits holds the digits of every numeric group; Group.Start/End index
	// into it, and the groups of one run are contiguous.
	Digits string

	orig, text, digits []byte
	groups             []Group
	wordStarts         []int32
	finished           bool
	digitsView         *View
	// dv and scratch are reused buffers: the digits view, and the text
	// before barriers are written into it.
	dv      View
	dvBuf   []byte
	scratch []byte
}

// Group is one number said or written as a unit ("555", "five", "twenty
// three", "double five").
type Group struct {
	// Start and End index the group's digits in Doc.Digits.
	Start, End int32
	// First and Last are the tokens the group covers (inclusive).
	First, Last int32
}

// Run is a sequence of numeric groups with nothing but separators between
// them: a candidate phone, card or account number.
type Run struct {
	Groups []Group
	// Plus says the run was introduced by "+" or the word "plus" (an
	// international number).
	Plus bool
	// Quantity says the run reads as an amount rather than an identifier: a
	// currency sign or percent next to it, or thousands separators.
	Quantity bool
}

// DigitsOf returns the digits of groups [a, b] of the run.
func (d *Doc) DigitsOf(r *Run, a, b int) string {
	return d.Digits[r.Groups[a].Start:r.Groups[b].End]
}

// Reset empties the Doc for reuse.
func (d *Doc) Reset() {
	d.Orig, d.Text, d.Digits = "", "", ""
	d.Tokens = d.Tokens[:0]
	d.Pieces = d.Pieces[:0]
	d.Runs = d.Runs[:0]
	d.orig = d.orig[:0]
	d.text = d.text[:0]
	d.digits = d.digits[:0]
	d.groups = d.groups[:0]
	d.wordStarts = d.wordStarts[:0]
	d.finished = false
	d.digitsView = nil
}

// AddPiece appends one transcript segment. When words is non-empty the
// piece's original text is the words joined by spaces and every token
// records its word index; otherwise text is used and Word is -1. A word
// that text writes right after the one before it, with no space (Whisper's
// ".com" after "outlook", "-25" after "2"), is joined without one, so the
// punctuation between tokens reads as it was written. brk puts a barrier
// before the piece. AddPiece returns the piece's index.
func (d *Doc) AddPiece(text string, words []string, brk bool) int {
	if d.finished {
		panic("normalize: AddPiece after Finish")
	}
	if len(d.Pieces) > 0 {
		d.orig = append(d.orig, '\n')
	}
	p := Piece{OrigStart: int32(len(d.orig)), FirstToken: int32(len(d.Tokens))}
	idx := int32(len(d.Pieces))
	if len(words) == 0 {
		d.addUnit(text, idx, -1, true)
	} else {
		ws := len(d.wordStarts)
		pos := 0 // where the previous word ended in text; -1 when lost
		for i, w := range words {
			attached := false
			if pos >= 0 && w != "" {
				at := strings.Index(text[pos:], w)
				attached = at == 0 && i > 0
				if at < 0 {
					pos = -1
				} else {
					pos += at + len(w)
				}
			}
			if i > 0 && !attached {
				d.orig = append(d.orig, ' ')
			}
			d.wordStarts = append(d.wordStarts, int32(len(d.orig)))
			d.addUnit(w, idx, int32(i), i == 0)
		}
		p.WordStarts = d.wordStarts[ws:len(d.wordStarts):len(d.wordStarts)]
	}
	if brk && len(d.Pieces) > 0 && int(p.FirstToken) < len(d.Tokens) {
		d.Tokens[p.FirstToken].Break = true
	}
	p.OrigEnd = int32(len(d.orig))
	p.EndToken = int32(len(d.Tokens))
	d.Pieces = append(d.Pieces, p)
	return int(idx)
}

// addUnit appends one word (or a whole plain-text piece) to orig and
// tokenises it. pieceStart says the unit starts a piece, so the gap before
// its first token does not reach into the previous piece.
func (d *Doc) addUnit(s string, piece, word int32, pieceStart bool) {
	base := int32(len(d.orig))
	d.orig = append(d.orig, s...)
	// gapStart is where the current gap began: the end of the previous
	// token of this piece, or the unit's start for a piece's first token.
	gapStart := base
	if !pieceStart && len(d.Tokens) > 0 && d.Tokens[len(d.Tokens)-1].Piece == piece {
		gapStart = d.Tokens[len(d.Tokens)-1].End
	}
	in := false
	var cur Token
	emit := func(r rune, start, end int32) {
		switch {
		case r < 0: // dropped (diacritic, tatweel, apostrophe inside a word)
			if in {
				cur.End = end
			}
			return
		case isTokenRune(r):
			if !in {
				in = true
				cur = Token{Start: start, End: end, GapStart: gapStart, Piece: piece, Word: word}
				d.text = append(d.text, ' ')
				cur.Pos = int32(len(d.text))
			}
			d.text = utf8.AppendRune(d.text, r)
			cur.End = end
		default:
			if in {
				d.endToken(&cur)
				in = false
				gapStart = cur.End
			}
		}
	}
	if isASCII(s) {
		for i := 0; i < len(s); i++ {
			r := rune(s[i])
			if 'A' <= r && r <= 'Z' {
				r += 'a' - 'A'
			}
			if r == '\'' || r == '`' {
				if in {
					r = -1
				}
			}
			emit(r, base+int32(i), base+int32(i)+1)
		}
	} else {
		var it norm.Iter
		it.InitString(norm.NFKC, s)
		for !it.Done() {
			start := base + int32(it.Pos())
			seg := it.Next()
			end := base + int32(it.Pos())
			for len(seg) > 0 {
				r, n := utf8.DecodeRune(seg)
				seg = seg[n:]
				emit(foldRune(r, in), start, end)
			}
		}
	}
	if in {
		d.endToken(&cur)
	}
}

func (d *Doc) endToken(t *Token) {
	t.Len = int32(len(d.text)) - t.Pos
	d.Tokens = append(d.Tokens, *t)
}

// Finish completes the Doc after the last AddPiece: it writes Text and
// finds the numeric runs.
func (d *Doc) Finish() {
	if d.finished {
		return
	}
	d.finished = true
	// Rebuild text with barriers: tokens were written as " tok" each; insert
	// "\n " before a token with Break (a rare case, so a second pass is
	// cheap).
	hasBreak := false
	for i := range d.Tokens {
		if d.Tokens[i].Break && i > 0 {
			hasBreak = true
			break
		}
	}
	if hasBreak {
		d.scratch = append(d.scratch[:0], d.text...)
		old := d.scratch
		d.text = d.text[:0]
		for i := range d.Tokens {
			t := &d.Tokens[i]
			if t.Break && i > 0 {
				d.text = append(d.text, " \n"...)
			}
			d.text = append(d.text, ' ')
			pos := int32(len(d.text))
			d.text = append(d.text, old[t.Pos:t.Pos+t.Len]...)
			t.Pos = pos
		}
	}
	d.text = append(d.text, ' ')
	if len(d.Tokens) == 0 {
		d.text = d.text[:0]
		d.text = append(d.text, ' ')
	}
	d.Text = string(d.text)
	d.Orig = string(d.orig)
	d.findRuns()
	d.Digits = string(d.digits)
}

// TextBytes returns Text as bytes for matchers that take []byte. The
// slice is the Doc's own buffer: read it, never change it, and do not keep
// it past Reset.
func (d *Doc) TextBytes() []byte { return d.text }

// Norm returns token i's normal form.
func (d *Doc) Norm(i int) string {
	t := &d.Tokens[i]
	return d.Text[t.Pos : t.Pos+t.Len]
}

// Gap returns the original text between token i-1 and token i when both
// belong to the same piece, else "".
func (d *Doc) Gap(i int) string {
	t := &d.Tokens[i]
	return d.Orig[t.GapStart:t.Start]
}

// TokenAt returns the index of the token whose normal form contains byte
// offset off of Text, or of the first token after off.
func (d *Doc) TokenAt(off int) int {
	return sort.Search(len(d.Tokens), func(i int) bool {
		t := &d.Tokens[i]
		return int(t.Pos+t.Len) > off
	})
}

// Span returns the original text of tokens [first, last], pieces joined
// by " / ".
func (d *Doc) Span(first, last int) string {
	s := d.Orig[d.Tokens[first].Start:d.Tokens[last].End]
	if strings.IndexByte(s, '\n') >= 0 {
		s = strings.ReplaceAll(s, "\n", " / ")
	}
	return s
}

// Fold returns s in normal form: its tokens joined by single spaces. Use it
// for lexicon entries, which then match text in any of the folded
// spellings.
func Fold(s string) string {
	var d Doc
	d.AddPiece(s, nil, false)
	d.Finish()
	return strings.TrimSpace(d.Text)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func isTokenRune(r rune) bool {
	if r < utf8.RuneSelf {
		return 'a' <= r && r <= 'z' || '0' <= r && r <= '9'
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)
}

// foldRune maps one NFKC rune to its normal form, or -1 to drop it.
// inWord says a token is open, which turns apostrophes into nothing rather
// than separators.
func foldRune(r rune, inWord bool) rune {
	switch {
	case r >= 0x064B && r <= 0x065F, r == 0x0670, r >= 0x06D6 && r <= 0x06ED, r == 0x0640:
		// Harakat, tanween, shadda, sukun, hamza marks, superscript alef,
		// Quranic annotation marks; tatweel.
		return -1
	case r == 'أ', r == 'إ', r == 'آ', r == 'ٱ', r == 0x0672, r == 0x0673:
		return 'ا'
	case r == 'ى', r == 'ی':
		return 'ي'
	case r == 'ة':
		return 'ه'
	case r == 'ؤ':
		return 'و'
	case r == 'ئ':
		return 'ي'
	case r == 'ک':
		return 'ك'
	case r >= '٠' && r <= '٩':
		return '0' + (r - '٠')
	case r >= '۰' && r <= '۹':
		return '0' + (r - '۰')
	case r == '\'' || r == '’' || r == 'ʼ' || r == '‘' || r == '`':
		if inWord {
			return -1
		}
		return ' '
	case r == 0x200C || r == 0x200D || r == 0x200E || r == 0x200F || r == 0xFEFF:
		// Zero-width joiners and direction marks carry no letters.
		return -1
	}
	return unicode.ToLower(r)
}
