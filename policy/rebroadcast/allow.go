package rebroadcast

import (
	"time"
)

// AllowedPair is a room pair that may carry the same audio: a speaker
// simulcasting in both rooms with the host's consent. Rooms are the
// pipeline's pseudonyms (the caller pseudonymises configured room IDs).
type AllowedPair struct {
	Rooms [2]string
	// Until ends the allowance (zero: no end).
	Until time.Time
	// Reason says why; it is logged when the stage starts.
	Reason string
}

// allowList answers whether two rooms are allow-listed now. It is read
// only after New, so it needs no lock.
type allowList struct {
	until map[[2]string]time.Time // by sorted pair; zero: no end
	now   func() time.Time
}

// newAllowList indexes pairs; a pair listed twice keeps the later end.
func newAllowList(pairs []AllowedPair, now func() time.Time) *allowList {
	l := &allowList{until: map[[2]string]time.Time{}, now: now}
	for _, p := range pairs {
		k := pairKey(p.Rooms[0], p.Rooms[1])
		old, seen := l.until[k]
		switch {
		case !seen, p.Until.IsZero():
			l.until[k] = p.Until
		case !old.IsZero() && p.Until.After(old):
			l.until[k] = p.Until
		}
	}
	return l
}

func pairKey(a, b string) [2]string {
	if b < a {
		a, b = b, a
	}
	return [2]string{a, b}
}

// allowed reports whether rooms a and b (either order) may carry the
// same audio at this moment.
func (l *allowList) allowed(a, b string) bool {
	until, ok := l.until[pairKey(a, b)]
	return ok && (until.IsZero() || l.now().Before(until))
}
