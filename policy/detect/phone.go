package detect

import (
	"strings"

	"github.com/nyaruka/phonenumbers"

	"github.com/earshot/earshot/policy/normalize"
)

// Phone finds phone numbers: numeric runs (written, spoken, or mixed) that
// libphonenumber says are valid numbers, read as international when they
// start with "+", "plus" or "00", else as national numbers of one of the
// region hints. When a whole run is not a number, its windows at group
// boundaries are tried, longest first, so "call 202 555 0143 or 0199"
// still finds the first number.
type Phone struct {
	rule    *Rule
	regions []phoneRegion
	codes   map[string]bool // calling codes of the regions, as digits
}

type phoneRegion struct {
	code string
	cc   int32
	ndd  string // national (trunk) prefix, e.g. "0"; "1" for NANPA
	// direct says a national number of this region can be checked by
	// stripping the trunk prefix and asking IsValidNumber, without
	// phonenumbers.Parse (whose extension-stripping regex costs more than
	// the rest of the policy together). TestPhoneDirectMatchesParse
	// checks the regions listed in directRegions.
	direct bool
}

// directRegions have a plain trunk prefix (no carrier codes or prefix
// rewriting), so stripping it is what Parse does.
var directRegions = map[string]bool{
	"US": true, "CA": true, "GB": true, "IE": true, "AE": true, "SA": true, "EG": true, "JO": true,
	"QA": true, "KW": true, "BH": true, "OM": true, "LB": true, "MA": true, "TN": true, "DZ": true,
	"IQ": true, "PK": true, "IN": true, "DE": true, "FR": true, "ES": true, "NL": true, "BE": true,
	"CH": true, "AT": true, "SE": true, "AU": true, "NZ": true, "TR": true,
}

var _ Detector = (*Phone)(nil)

// NewPhone makes a phone detector for region hints (ISO 3166-1 alpha-2,
// upper case; see ValidRegion).
func NewPhone(rule *Rule, regions []string) *Phone {
	p := &Phone{rule: rule, codes: map[string]bool{}}
	for _, r := range regions {
		r = strings.ToUpper(r)
		cc := phonenumbers.GetCountryCodeForRegion(r)
		p.regions = append(p.regions, phoneRegion{code: r, cc: int32(cc), ndd: phonenumbers.GetNddPrefixForRegion(r, true), direct: directRegions[r]})
		if cc > 0 {
			p.codes[itoa(cc)] = true
		}
	}
	return p
}

// ValidRegion says libphonenumber knows the region code.
func ValidRegion(r string) bool { return phonenumbers.GetSupportedRegions()[r] }

// E.164 allows 15 digits; national numbers are at least 7 digits long in
// every region this matters for (shorter ones are local or service
// numbers, which identify nobody).
const (
	minPhoneDigits = 7
	maxPhoneDigits = 15
	// maxPhoneTries bounds libphonenumber calls per run: a long run of
	// single spoken digits has many windows.
	maxPhoneTries = 48
)

// Detect implements Detector.
func (p *Phone) Detect(d *normalize.Doc, out []Match) []Match {
	var num phonenumbers.PhoneNumber
	for ri := range d.Runs {
		run := &d.Runs[ri]
		if run.Quantity {
			continue
		}
		g := run.Groups
		total := len(d.DigitsOf(run, 0, len(g)-1))
		if total < minPhoneDigits {
			continue
		}
		tries, leftover, mark := 0, 0, len(out)
		for a := 0; a < len(g); {
			found := false
			for b := len(g) - 1; b >= a && tries < maxPhoneTries; b-- {
				digits := d.DigitsOf(run, a, b)
				if len(digits) < minPhoneDigits {
					break
				}
				if len(digits) > maxPhoneDigits {
					continue
				}
				tries++
				if e164, ok := p.valid(&num, digits, run.Plus && a == 0); ok {
					out = append(out, Match{Rule: p.rule, First: int(g[a].First), Last: int(g[b].Last), Value: e164})
					a, found = b+1, true
					break
				}
			}
			if !found {
				leftover += int(g[a].End - g[a].Start)
				a++
			}
		}
		if leftover > maxLeftover {
			// The run is not phone numbers with a stray digit or two: it is
			// some longer identifier (a card that fails Luhn, an account
			// number) in which an 8-digit window happens to be a valid
			// landline somewhere.
			out = out[:mark]
		}
	}
	return out
}

// maxLeftover is how many digits of a run may be left over when it is read
// as one or more phone numbers (an extension digit, a misheard digit).
const maxLeftover = 3

// valid checks digits as a phone number and returns it in E.164.
func (p *Phone) valid(num *phonenumbers.PhoneNumber, digits string, plus bool) (string, bool) {
	if plus {
		return international(num, digits)
	}
	if rest, ok := strings.CutPrefix(digits, "00"); ok && len(rest) >= minPhoneDigits+1 {
		if e, ok := international(num, rest); ok {
			return e, true
		}
	}
	for _, r := range p.regions {
		if e, ok := r.national(num, digits); ok {
			return e, true
		}
	}
	// "four four seven nine one one …" without the plus: an international
	// number of a hinted country.
	if len(digits) >= 10 {
		for n := 1; n <= 3; n++ {
			if p.codes[digits[:n]] {
				if e, ok := international(num, digits); ok {
					return e, true
				}
				break
			}
		}
	}
	return "", false
}

// international checks digits that start with a country calling code
// (country codes are prefix-free, so the first known one is the one).
func international(num *phonenumbers.PhoneNumber, digits string) (string, bool) {
	for n := 1; n <= 3 && n < len(digits); n++ {
		cc := 0
		for _, c := range digits[:n] {
			cc = cc*10 + int(c-'0')
		}
		if phonenumbers.GetRegionCodeForCountryCode(cc) == "ZZ" {
			continue
		}
		return check(num, int32(cc), digits[n:])
	}
	return "", false
}

// national checks digits as a number dialled within region r.
func (r *phoneRegion) national(num *phonenumbers.PhoneNumber, digits string) (string, bool) {
	if !r.direct {
		if err := phonenumbers.ParseToNumber(digits, r.code, num); err != nil || !phonenumbers.IsValidNumber(num) {
			return "", false
		}
		return phonenumbers.Format(num, phonenumbers.E164), true
	}
	if r.ndd != "" {
		if rest, ok := strings.CutPrefix(digits, r.ndd); ok {
			if e, ok := check(num, r.cc, rest); ok {
				return e, true
			}
		}
	}
	if e, ok := check(num, r.cc, digits); ok {
		return e, true
	}
	// Dialled with the international prefix, or with the region's own
	// country code but no "+": Parse accepts both.
	if rest, ok := strings.CutPrefix(digits, "00"); ok {
		return international(num, rest)
	}
	if rest, ok := strings.CutPrefix(digits, itoa(int(r.cc))); ok {
		if e, ok := check(num, r.cc, rest); ok {
			return e, true
		}
		if rest, ok := strings.CutPrefix(rest, r.ndd); ok && r.ndd != "" {
			return check(num, r.cc, rest)
		}
	}
	return "", false
}

// check asks libphonenumber whether national significant number nsn is
// valid in country code cc: a length check first, then the number plan.
func check(num *phonenumbers.PhoneNumber, cc int32, nsn string) (string, bool) {
	if len(nsn) < 2 || len(nsn) > 17 {
		return "", false
	}
	var n uint64
	zeros := int32(0)
	for i := 0; i < len(nsn); i++ {
		if nsn[i] == '0' && n == 0 {
			zeros++
		}
		n = n*10 + uint64(nsn[i]-'0')
	}
	num.Reset()
	num.CountryCode = &cc
	num.NationalNumber = &n
	if zeros > 0 {
		lz := true
		num.ItalianLeadingZero = &lz
		if zeros > 1 {
			num.NumberOfLeadingZeros = &zeros
		}
	}
	if !phonenumbers.IsPossibleNumber(num) || !phonenumbers.IsValidNumber(num) {
		return "", false
	}
	return "+" + itoa(int(cc)) + nsn, true
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}
