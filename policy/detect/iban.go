package detect

import (
	"strings"

	"github.com/earshot/earshot/policy/normalize"
)

// IBAN finds international bank account numbers: a country code, two check
// digits and the country's fixed-length account part, written ("gb82 west
// 1234 …"), spelled ("g b eight two w e s t …") or mixed, that pass the
// ISO 13616 mod-97 check.
type IBAN struct{ rule *Rule }

var _ Detector = (*IBAN)(nil)

// NewIBAN makes an IBAN detector.
func NewIBAN(rule *Rule) *IBAN { return &IBAN{rule: rule} }

// ibanLengths is the IBAN length per country (SWIFT IBAN registry).
var ibanLengths = map[string]int{
	"AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
	"BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
	"EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
	"GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
	"IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21,
	"LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28,
	"NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22,
	"RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25,
	"SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}

// Detect implements Detector.
func (b *IBAN) Detect(d *normalize.Doc, out []Match) []Match {
	var buf []byte
	for i := 0; i < len(d.Tokens); i++ {
		s := d.Norm(i)
		var cc string
		j := i + 1
		switch {
		case len(s) >= 2 && isLower(s[0]) && isLower(s[1]):
			// Check digits follow the country code: this rules out nearly
			// every word ("meeting", "item") before any map lookup.
			if len(s) > 2 && !isDigit(s[2]) || len(s) > 3 && !isDigit(s[3]) {
				continue
			}
			cc = strings.ToUpper(s[:2])
			if _, ok := ibanLengths[cc]; !ok || !isAlnum(s[2:]) {
				continue
			}
			buf = append(buf[:0], cc...)
			buf = appendUpper(buf, s[2:])
		case len(s) == 1 && isLower(s[0]) && j < len(d.Tokens) && !d.Tokens[j].Break && len(d.Norm(j)) == 1 && isLower(d.Norm(j)[0]):
			cc = strings.ToUpper(s + d.Norm(j))
			if _, ok := ibanLengths[cc]; !ok {
				continue
			}
			buf = append(buf[:0], cc...)
			j++
		default:
			continue
		}
		need := ibanLengths[cc]
		if j < len(d.Tokens) && len(buf) == 2 && !d.Tokens[j].Break {
			if t := d.Norm(j); t == "" || !isDigit(t[0]) && !d.StartsNumber(j) {
				continue
			}
		}
		for len(buf) < need && j < len(d.Tokens) && !d.Tokens[j].Break {
			t := d.Norm(j)
			if len(t) > 1 {
				// Number words before words: "eight two" is 82, not "EIGHTTWO".
				if digits, next, ok := d.NumberAt(j, true); ok {
					buf = append(buf, digits...)
					j = next
					continue
				}
			}
			if !isAlnum(t) {
				break
			}
			buf = appendUpper(buf, t)
			j++
		}
		if len(buf) == need && IBANValid(string(buf)) {
			out = append(out, Match{Rule: b.rule, First: i, Last: j - 1, Value: string(buf)})
			i = j - 1
		}
	}
	return out
}

// IBANValid checks an IBAN in compact upper-case form: known country,
// that country's length, check digits, and mod 97 == 1.
func IBANValid(s string) bool {
	if len(s) < 5 {
		return false
	}
	n, ok := ibanLengths[s[:2]]
	if !ok || len(s) != n || !isDigit(s[2]) || !isDigit(s[3]) {
		return false
	}
	r := 0
	for k := range len(s) {
		c := s[(k+4)%len(s)]
		switch {
		case isDigit(c):
			r = (r*10 + int(c-'0')) % 97
		case c >= 'A' && c <= 'Z':
			r = (r*100 + int(c-'A') + 10) % 97
		default:
			return false
		}
	}
	return r == 1
}

func isLower(c byte) bool { return c >= 'a' && c <= 'z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isAlnum(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isLower(s[i]) && !isDigit(s[i]) {
			return false
		}
	}
	return true
}

func appendUpper(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isLower(c) {
			c -= 'a' - 'A'
		}
		b = append(b, c)
	}
	return b
}
