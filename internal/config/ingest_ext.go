package config

import (
	"regexp"
	"time"
)

// Lease is how ingest instances agree that at most one bot records a room:
// a lease per room in the compacted topic earshot.state (package
// ingest/lease, docs/ingest.md). The timing follows the resume target
// (recording resumes at most 15 s after a kill -9): another instance takes
// a room at most TTL after its holder's last renewal; the holder stops
// recording before that when it cannot renew.
type Lease struct {
	// Enabled turns the lease on. Leave it on whenever more than one
	// instance may run (or one may be restarted): it also keeps a room's
	// session across bot restarts.
	Enabled bool `yaml:"enabled"`
	// TTL is how long a lease lives without renewal (default 10s).
	TTL time.Duration `yaml:"ttl"`
	// Renew is how often the holder renews (default 3s, at most ttl/3).
	Renew time.Duration `yaml:"renew"`
	// Instance names this instance in leases, manifest stays and its
	// lifecycle events: unique among running instances, stable across
	// restarts (default: the host name). A restarted instance takes its
	// own leases back at once.
	Instance string `yaml:"instance"`
	// SessionGap: a room's session continues across bot restarts and
	// takeovers unless the room had no bot for longer than this (default
	// 1m).
	SessionGap time.Duration `yaml:"session_gap"`
}

func defaultLease() Lease {
	return Lease{Enabled: true, TTL: 10 * time.Second, Renew: 3 * time.Second, SessionGap: time.Minute}
}

// validate reports every problem of the section through bad.
func (x *Lease) validate(bad func(key, format string, a ...any)) {
	if !x.Enabled {
		return
	}
	if x.TTL < time.Second || x.TTL > 5*time.Minute {
		bad("ingest.lease.ttl", "%v must be between 1s and 5m (10s keeps a kill -9 within the 15 s resume target)", x.TTL)
	}
	if x.Renew <= 0 || x.Renew*3 > x.TTL {
		bad("ingest.lease.renew", "%v must be positive and at most ingest.lease.ttl/3 (%v), so two renewals may fail before the lease expires", x.Renew, x.TTL/3)
	}
	if x.SessionGap < 0 {
		bad("ingest.lease.session_gap", "%v must not be negative", x.SessionGap)
	}
}

// Participants says which participants are never recorded: they are not
// subscribed (a VideoRoom) or the mix is not recorded while they can be
// heard in it (an AudioBridge room), and each skip is a
// lifecycle.recording_skipped event carrying pseudonyms only.
type Participants struct {
	// Skip lists pseudonyms of participants never recorded (compute one
	// with `earshot pseudonym <identity>`).
	Skip []string `yaml:"skip"`
	// SkipDisplay is a regular expression on display names of
	// participants never recorded (operators rarely know pseudonyms in
	// advance); empty: none.
	SkipDisplay string `yaml:"skip_display"`
	// RoomDescription puts each room's description into its session's
	// metadata (lifecycle.session_started). Off by default: descriptions
	// are free text and may name people.
	RoomDescription bool `yaml:"room_description"`
}

func defaultParticipants() Participants { return Participants{} }

// validate reports every problem of the section through bad.
func (x *Participants) validate(bad func(key, format string, a ...any)) {
	if x.SkipDisplay != "" {
		if _, err := regexp.Compile(x.SkipDisplay); err != nil {
			bad("ingest.participants.skip_display", "%q is not a regular expression: %v", x.SkipDisplay, err)
		}
	}
	for _, p := range x.Skip {
		if len(p) < 4 || p[0] != 'p' {
			bad("ingest.participants.skip", "%q is not a participant pseudonym (p<version>_...); compute one with `earshot pseudonym <identity>`", p)
		}
	}
}
