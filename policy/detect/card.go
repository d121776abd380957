package detect

import (
	"github.com/earshot/earshot/policy/normalize"
)

// Card finds payment card numbers: 12–19 digits in a numeric run (at group
// boundaries) that pass the Luhn check and fall in an issuer's range with
// that issuer's length (see CardNetwork). Luhn alone accepts one random
// number in ten; the issuer ranges reject IMEIs (15 digits from "35", which
// only JCB issues, at 16–19) and most order numbers.
type Card struct{ rule *Rule }

var _ Detector = (*Card)(nil)

// NewCard makes a card detector.
func NewCard(rule *Rule) *Card { return &Card{rule: rule} }

// Detect implements Detector.
func (c *Card) Detect(d *normalize.Doc, out []Match) []Match {
	for ri := range d.Runs {
		run := &d.Runs[ri]
		if run.Quantity {
			continue
		}
		g := run.Groups
		if len(d.DigitsOf(run, 0, len(g)-1)) < 12 {
			continue
		}
		for a := 0; a < len(g); {
			found := false
			for b := len(g) - 1; b >= a; b-- {
				digits := d.DigitsOf(run, a, b)
				if len(digits) < 12 {
					break
				}
				if len(digits) > 19 {
					continue
				}
				if network, ok := CardNetwork(digits); ok && Luhn(digits) {
					out = append(out, Match{Rule: c.rule, First: int(g[a].First), Last: int(g[b].Last), Value: network + " " + digits[len(digits)-4:]})
					a, found = b+1, true
					break
				}
			}
			if !found {
				a++
			}
		}
	}
	return out
}

// Luhn reports whether the digit string passes the Luhn (mod 10) check.
func Luhn(digits string) bool {
	if len(digits) < 2 {
		return false
	}
	sum := 0
	for i := range len(digits) {
		c := digits[len(digits)-1-i]
		if c < '0' || c > '9' {
			return false
		}
		n := int(c - '0')
		if i%2 == 1 {
			n *= 2
			if n > 9 {
				n -= 9
			}
		}
		sum += n
	}
	return sum%10 == 0
}

type cardRange struct {
	network  string
	lo, hi   int // inclusive prefix range
	digits   int // prefix length
	min, max int // card number length
}

// cardRanges are the issuer identification ranges of the major networks
// (published by each network; lengths as issued).
var cardRanges = []cardRange{
	{"amex", 34, 34, 2, 15, 15}, {"amex", 37, 37, 2, 15, 15},
	{"visa", 4, 4, 1, 13, 13}, {"visa", 4, 4, 1, 16, 16}, {"visa", 4, 4, 1, 19, 19},
	{"mastercard", 51, 55, 2, 16, 16}, {"mastercard", 2221, 2720, 4, 16, 16},
	{"discover", 6011, 6011, 4, 16, 19}, {"discover", 644, 649, 3, 16, 19}, {"discover", 65, 65, 2, 16, 19},
	{"jcb", 3528, 3589, 4, 16, 19},
	{"diners", 300, 305, 3, 14, 19}, {"diners", 36, 36, 2, 14, 19}, {"diners", 38, 39, 2, 16, 19},
	{"unionpay", 62, 62, 2, 16, 19},
	{"mir", 2200, 2204, 4, 16, 19},
	{"maestro", 5018, 5018, 4, 12, 19}, {"maestro", 5020, 5020, 4, 12, 19}, {"maestro", 5038, 5038, 4, 12, 19},
	{"maestro", 5893, 5893, 4, 12, 19}, {"maestro", 6304, 6304, 4, 12, 19}, {"maestro", 6759, 6759, 4, 12, 19},
	{"maestro", 6761, 6763, 4, 12, 19},
	{"rupay", 60, 60, 2, 16, 16}, {"rupay", 81, 82, 2, 16, 16},
}

// CardNetwork names the network whose issuer range and length the digits
// fit; ok is false when none does.
func CardNetwork(digits string) (string, bool) {
	n := len(digits)
	for _, r := range cardRanges {
		if n < r.min || n > r.max || n < r.digits {
			continue
		}
		p := 0
		for i := range r.digits {
			p = p*10 + int(digits[i]-'0')
		}
		if p >= r.lo && p <= r.hi {
			return r.network, true
		}
	}
	return "", false
}
