package normalize

import (
	"strconv"
	"strings"
)

type numKind uint8

const (
	nkNone     numKind = iota
	nkDigits           // a token of ASCII digits
	nkODigits          // digits with the letter o among them ("O166", "5O5": a spoken "oh" as Whisper may write it)
	nkZero             // zero, صفر
	nkOh               // oh, o: zero only next to other numbers
	nkUnit             // 1-9
	nkTeen             // 10-19
	nkTens             // 20, 30, … 90
	nkHundred          // hundred, مية
	nkThousand         // thousand, الف
	nkRepeat           // double (2), triple (3)
	nkAnd              // and, و: joins parts of one number
	nkPlus             // plus, زائد: introduces an international number
)

type numWord struct {
	kind numKind
	val  int
}

// numWords are the number words, in normal form (see Fold): English, and
// Arabic 0–10, tens, hundred and thousand in the spellings transcripts use
// (MSA and common dialect forms).
var numWords = map[string]numWord{
	"zero": {nkZero, 0}, "oh": {nkOh, 0}, "o": {nkOh, 0},
	"one": {nkUnit, 1}, "two": {nkUnit, 2}, "three": {nkUnit, 3}, "four": {nkUnit, 4}, "five": {nkUnit, 5},
	"six": {nkUnit, 6}, "seven": {nkUnit, 7}, "eight": {nkUnit, 8}, "nine": {nkUnit, 9},
	"ten": {nkTeen, 10}, "eleven": {nkTeen, 11}, "twelve": {nkTeen, 12}, "thirteen": {nkTeen, 13},
	"fourteen": {nkTeen, 14}, "fifteen": {nkTeen, 15}, "sixteen": {nkTeen, 16}, "seventeen": {nkTeen, 17},
	"eighteen": {nkTeen, 18}, "nineteen": {nkTeen, 19},
	"twenty": {nkTens, 20}, "thirty": {nkTens, 30}, "forty": {nkTens, 40}, "fourty": {nkTens, 40}, "fifty": {nkTens, 50},
	"sixty": {nkTens, 60}, "seventy": {nkTens, 70}, "eighty": {nkTens, 80}, "ninety": {nkTens, 90},
	"hundred": {nkHundred, 100}, "thousand": {nkThousand, 1000},
	"double": {nkRepeat, 2}, "triple": {nkRepeat, 3},
	"and": {nkAnd, 0}, "plus": {nkPlus, 0},

	"صفر":  {nkZero, 0},
	"واحد": {nkUnit, 1}, "واحده": {nkUnit, 1},
	"اثنين": {nkUnit, 2}, "اثنان": {nkUnit, 2}, "اثنتين": {nkUnit, 2}, "اتنين": {nkUnit, 2}, "ثنين": {nkUnit, 2},
	"ثلاثه": {nkUnit, 3}, "ثلاث": {nkUnit, 3}, "تلاته": {nkUnit, 3}, "تلات": {nkUnit, 3},
	"اربعه": {nkUnit, 4}, "اربع": {nkUnit, 4},
	"خمسه": {nkUnit, 5}, "خمس": {nkUnit, 5},
	"سته": {nkUnit, 6}, "ست": {nkUnit, 6},
	"سبعه": {nkUnit, 7}, "سبع": {nkUnit, 7},
	"ثمانيه": {nkUnit, 8}, "ثماني": {nkUnit, 8}, "ثمان": {nkUnit, 8}, "تمانيه": {nkUnit, 8}, "تمنيه": {nkUnit, 8}, "تمان": {nkUnit, 8},
	"تسعه": {nkUnit, 9}, "تسع": {nkUnit, 9},
	"عشره": {nkTeen, 10}, "عشر": {nkTeen, 10},
	"عشرين": {nkTens, 20}, "عشرون": {nkTens, 20},
	"ثلاثين": {nkTens, 30}, "ثلاثون": {nkTens, 30}, "تلاتين": {nkTens, 30},
	"اربعين": {nkTens, 40}, "اربعون": {nkTens, 40},
	"خمسين": {nkTens, 50}, "خمسون": {nkTens, 50},
	"ستين": {nkTens, 60}, "ستون": {nkTens, 60},
	"سبعين": {nkTens, 70}, "سبعون": {nkTens, 70},
	"ثمانين": {nkTens, 80}, "ثمانون": {nkTens, 80}, "تمانين": {nkTens, 80},
	"تسعين": {nkTens, 90}, "تسعون": {nkTens, 90},
	"ميه": {nkHundred, 100}, "مايه": {nkHundred, 100}, "مئه": {nkHundred, 100},
	"الف": {nkThousand, 1000},
	"و":   {nkAnd, 0}, "زائد": {nkPlus, 0}, "زايد": {nkPlus, 0},
}

// look classifies token i as a number word. conj says an Arabic word came
// with the conjunction و attached ("وعشرين", "and twenty").
func (d *Doc) look(i int) (w numWord, conj bool) {
	if i < 0 || i >= len(d.Tokens) {
		return numWord{}, false
	}
	s := d.Norm(i)
	if isDigits(s) {
		return numWord{kind: nkDigits}, false
	}
	if isODigits(s) {
		return numWord{kind: nkODigits}, false
	}
	if w, ok := numWords[s]; ok {
		return w, false
	}
	if rest, ok := strings.CutPrefix(s, "و"); ok && rest != "" {
		if w, ok := numWords[rest]; ok && w.kind != nkAnd && w.kind != nkPlus {
			return w, true
		}
	}
	return numWord{}, false
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// isODigits says s is ASCII digits with one or more letters o among them
// and at least one digit.
func isODigits(s string) bool {
	digit, o := false, false
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] >= '0' && s[i] <= '9':
			digit = true
		case s[i] == 'o':
			o = true
		default:
			return false
		}
	}
	return digit && o
}

// StartsNumber says token i can open a number on its own (a digit token or
// a number word).
func (d *Doc) StartsNumber(i int) bool { return d.startsNumber(i) }

// startsNumber says token i can open or continue a number on its own.
func (d *Doc) startsNumber(i int) bool {
	w, _ := d.look(i)
	switch w.kind {
	case nkDigits, nkODigits, nkZero, nkUnit, nkTeen, nkTens, nkRepeat:
		return true
	case nkOh:
		n, _ := d.look(i + 1)
		return n.kind == nkDigits || n.kind == nkODigits || n.kind == nkZero || n.kind == nkUnit || n.kind == nkOh || n.kind == nkRepeat
	}
	return false
}

// NumberAt reads the number phrase that starts at token i ("555",
// "twenty three", "double five", "five hundred and two", "خمسه وعشرين").
// inRun says a number came just before, which lets "oh" stand for zero.
// It returns the digits and the index of the token after the phrase.
func (d *Doc) NumberAt(i int, inRun bool) (digits string, next int, ok bool) {
	mark := len(d.digits)
	next, ok = d.parseNumber(i, inRun)
	if !ok {
		d.digits = d.digits[:mark]
		return "", i, false
	}
	digits = string(d.digits[mark:])
	d.digits = d.digits[:mark]
	return digits, next, true
}

// parseNumber appends the digits of the phrase at token i to d.digits.
func (d *Doc) parseNumber(i int, inRun bool) (int, bool) {
	w, conj := d.look(i)
	if conj && !inRun {
		// "وخمسه" opens nothing: it continues a number.
		return i, false
	}
	switch w.kind {
	case nkDigits:
		d.digits = append(d.digits, d.Norm(i)...)
		return i + 1, true
	case nkODigits:
		for _, c := range []byte(d.Norm(i)) {
			if c == 'o' {
				c = '0'
			}
			d.digits = append(d.digits, c)
		}
		return i + 1, true
	case nkZero:
		d.digits = append(d.digits, '0')
		return i + 1, true
	case nkOh:
		if !inRun && !d.startsNumber(i) {
			return i, false
		}
		d.digits = append(d.digits, '0')
		return i + 1, true
	case nkRepeat:
		n, nconj := d.look(i + 1)
		var digit byte
		switch {
		case nconj || d.brokenBefore(i+1):
			return i, false
		case n.kind == nkUnit:
			digit = byte('0' + n.val)
		case n.kind == nkZero || n.kind == nkOh:
			digit = '0'
		case n.kind == nkDigits && d.Tokens[i+1].Len == 1:
			digit = d.Norm(i + 1)[0]
		default:
			return i, false
		}
		for range w.val {
			d.digits = append(d.digits, digit)
		}
		return i + 2, true
	case nkUnit:
		n, nconj := d.look(i + 1)
		if !d.brokenBefore(i + 1) {
			switch {
			case n.kind == nkHundred && !nconj:
				v, j := d.below100(i+2, true)
				return d.appendInt(w.val*100+v, j)
			case n.kind == nkThousand && !nconj:
				v, j := d.belowThousand(i + 2)
				return d.appendInt(w.val*1000+v, j)
			case n.kind == nkTens && nconj:
				// Arabic reads units first: "خمسه وعشرين" is 25.
				return d.appendInt(n.val+w.val, i+2)
			case n.kind == nkAnd && isArabic(d.Norm(i+1)):
				if t, _ := d.look(i + 2); t.kind == nkTens && !d.brokenBefore(i+2) {
					return d.appendInt(t.val+w.val, i+3)
				}
			}
		}
		d.digits = append(d.digits, byte('0'+w.val))
		return i + 1, true
	case nkTeen:
		return d.appendInt(w.val, i+1)
	case nkTens:
		if n, nconj := d.look(i + 1); n.kind == nkUnit && !nconj && !isArabic(d.Norm(i+1)) && !d.brokenBefore(i+1) {
			return d.appendInt(w.val+n.val, i+2)
		}
		return d.appendInt(w.val, i+1)
	case nkHundred:
		v, j := d.below100(i+1, true)
		return d.appendInt(100+v, j)
	case nkThousand:
		v, j := d.belowThousand(i + 1)
		return d.appendInt(1000+v, j)
	}
	return i, false
}

// below100 reads the optional rest after "hundred": "and five", "twenty
// three", "fifteen", Arabic "وخمسين". A bare unit is not taken ("eight
// hundred five five five" is 800 555, as phone numbers are read).
func (d *Doc) below100(j int, _ bool) (int, int) {
	if d.brokenBefore(j) {
		return 0, j
	}
	and := false
	if w, _ := d.look(j); w.kind == nkAnd {
		if d.brokenBefore(j + 1) {
			return 0, j
		}
		and = true
		j++
	}
	w, conj := d.look(j)
	and = and || conj
	switch w.kind {
	case nkTeen:
		return w.val, j + 1
	case nkTens:
		if n, nconj := d.look(j + 1); n.kind == nkUnit && !nconj && !isArabic(d.Norm(j+1)) && !d.brokenBefore(j+1) {
			return w.val + n.val, j + 2
		}
		return w.val, j + 1
	case nkUnit:
		if and {
			return w.val, j + 1
		}
	}
	if and {
		return 0, j - 1
	}
	return 0, j
}

// belowThousand reads the optional rest after "thousand".
func (d *Doc) belowThousand(j int) (int, int) {
	if d.brokenBefore(j) {
		return 0, j
	}
	k := j
	if w, _ := d.look(k); w.kind == nkAnd {
		k++
	}
	w, _ := d.look(k)
	if w.kind == nkUnit {
		if h, hconj := d.look(k + 1); h.kind == nkHundred && !hconj {
			v, e := d.below100(k+2, true)
			return w.val*100 + v, e
		}
	}
	return d.below100(j, true)
}

func (d *Doc) appendInt(v, next int) (int, bool) {
	d.digits = strconv.AppendInt(d.digits, int64(v), 10)
	return next, true
}

// brokenBefore says a barrier sits before token j (or there is none).
func (d *Doc) brokenBefore(j int) bool {
	return j >= len(d.Tokens) || d.Tokens[j].Break
}

func isArabic(s string) bool {
	for _, r := range s {
		return r >= 0x0600 && r <= 0x06FF
	}
	return false
}

// findRuns groups consecutive number phrases into runs.
func (d *Doc) findRuns() {
	n := len(d.Tokens)
	for i := 0; i < n; {
		if !d.startsNumber(i) {
			i++
			continue
		}
		run := Run{}
		first := len(d.groups)
		gap := d.Gap(i)
		prevPlus := false
		if w, _ := d.look(i - 1); w.kind == nkPlus && !d.Tokens[i].Break {
			prevPlus = true
		}
		run.Plus = strings.Contains(gap, "+") || prevPlus
		run.Quantity = strings.ContainsAny(gap, "$£€¥%")
		j := i
		for {
			start := len(d.digits)
			next, ok := d.parseNumber(j, j > i)
			if !ok {
				break
			}
			d.groups = append(d.groups, Group{Start: int32(start), End: int32(len(d.digits)), First: int32(j), Last: int32(next - 1)})
			j = next
			if j >= n || d.Tokens[j].Break {
				break
			}
			g := d.Gap(j)
			if strings.ContainsAny(g, ":/") {
				break
			}
			if strings.ContainsAny(g, "%") {
				run.Quantity = true
				break
			}
			if strings.ContainsAny(g, "$£€¥") {
				break
			}
			if g == "," && d.Tokens[j].Len == 3 && isDigits(d.Norm(j)) && isDigits(d.Norm(j-1)) && d.Tokens[j-1].Len <= 3 {
				run.Quantity = true // 1,234,567
			}
			if w, conj := d.look(j); conj || w.kind == nkAnd || w.kind == nkPlus || w.kind == nkHundred || w.kind == nkThousand {
				break
			}
		}
		if len(d.groups) == first {
			i++
			continue
		}
		if rest := d.orig[d.Tokens[j-1].End:]; len(rest) > 0 {
			rest = bytesTrimLeft(rest)
			if len(rest) > 0 && rest[0] == '%' {
				run.Quantity = true
			}
		}
		run.Groups = d.groups[first:len(d.groups):len(d.groups)]
		d.Runs = append(d.Runs, run)
		i = j
	}
}

func bytesTrimLeft(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}
