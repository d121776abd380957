// Package detect holds the policy engine's detectors: lexicons matched with
// Aho-Corasick, regular expressions, and PII detectors with validators
// (phone numbers through libphonenumber, e-mail addresses written or
// spoken, payment cards with Luhn and issuer ranges, IBANs with mod-97).
// All of them read a normalize.Doc and report token ranges, so a match can
// be traced back to the transcript's words and timeline.
package detect

import (
	"fmt"

	"github.com/earshot/earshot/policy/normalize"
)

// Severity orders how urgent an alert is.
type Severity uint8

// Severities, lowest first.
const (
	SeverityLow Severity = iota + 1
	SeverityMedium
	SeverityHigh
	SeverityCritical
)

var severityNames = [...]string{"", "low", "medium", "high", "critical"}

// String returns the severity's name ("low" … "critical").
func (s Severity) String() string {
	if int(s) < len(severityNames) && s > 0 {
		return severityNames[s]
	}
	return fmt.Sprintf("severity(%d)", uint8(s))
}

// ParseSeverity reads a severity name.
func ParseSeverity(s string) (Severity, error) {
	for i, n := range severityNames {
		if i > 0 && n == s {
			return Severity(i), nil
		}
	}
	return 0, fmt.Errorf("unknown severity %q (want low, medium, high or critical)", s)
}

// MarshalText writes the severity's name.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a severity name.
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Rule is what a detector reports matches for.
type Rule struct {
	ID       string
	Category string
	Severity Severity
	// Strength is how sure a match of this rule is a violation, in (0, 1],
	// before the transcript's own confidence is taken into account.
	Strength float64
}

// Match is one occurrence of a rule in a Doc.
type Match struct {
	Rule *Rule
	// First and Last are the Doc tokens the match covers (inclusive).
	First, Last int
	// Value is the canonical form of what was found where there is one:
	// E.164 for a phone number, the address for an e-mail, the IBAN, a
	// card's network and last four digits. It is personal data.
	Value string
}

// Detector finds matches in a Doc and appends them to out.
type Detector interface {
	Detect(d *normalize.Doc, out []Match) []Match
}
