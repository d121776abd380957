package config

import (
	"slices"
	"strconv"
	"strings"
	"time"
)

// Rebroadcast configures the live rebroadcast stage (package
// policy/rebroadcast): fingerprints of every live track, matched across
// rooms. It is on by default: it costs about 0.5 % of a core per live
// track and 2 MB per track-hour of index (docs/rebroadcast.md).
type Rebroadcast struct {
	// Enabled runs the stage in `earshot run` (and lets `earshot
	// rebroadcast` start).
	Enabled bool `yaml:"enabled"`
	// Window is how long audio stays in the index: a copy played later
	// than this after the original is not found.
	Window time.Duration `yaml:"window"`
	// MaxLandmarks bounds the index's memory (8 bytes and slack each);
	// past it the oldest audio goes before the window ends.
	MaxLandmarks int `yaml:"max_landmarks"`
	// QueryDelay is how long a chunk waits before it is matched, so that
	// other instances' fingerprints of the same moments have arrived.
	QueryDelay time.Duration `yaml:"query_delay"`
	// MaxInFlight bounds the chunks held (awaiting QueryDelay) and not
	// yet acknowledged.
	MaxInFlight int `yaml:"max_in_flight"`
	// Watch lists outside streams to compare with the live rooms
	// (docs/rebroadcast.md, "Watching outside streams"); from the file
	// only. One instance watches them: the owner of the audio topic's
	// partition 0.
	Watch []WatchStream `yaml:"watch"`
	// Allow lists room pairs that may carry the same audio (a speaker
	// simulcasting in two rooms with the host's consent): they are never
	// compared. From the file only.
	Allow []RebroadcastAllow `yaml:"allow"`
}

// RebroadcastAllow is one allow-listed room pair. Rooms are named as the
// room server names them (or as pseudonyms); they are pseudonymised when
// the stage starts, like every room in the configuration.
type RebroadcastAllow struct {
	// Rooms are the two rooms; the pair is symmetric.
	Rooms []string `yaml:"rooms"`
	// Until, when set (RFC 3339, or a date meaning its start in UTC),
	// ends the allowance: from then on the pair is compared again.
	Until string `yaml:"until"`
	// Reason says why (who consented); it is logged when the stage starts.
	Reason string `yaml:"reason"`
}

// UntilTime parses Until; the zero time when it is empty.
func (a RebroadcastAllow) UntilTime() (time.Time, error) {
	s := strings.TrimSpace(a.Until)
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Parse(time.DateOnly, s)
}

func defaultRebroadcast() Rebroadcast {
	return Rebroadcast{Enabled: true, Window: 30 * time.Minute, MaxLandmarks: 100_000_000, QueryDelay: 2 * time.Second, MaxInFlight: 20_000}
}

// validate reports every problem of the section through bad.
func (x *Rebroadcast) validate(bad func(key, format string, a ...any)) {
	if x.Window < time.Minute {
		bad("rebroadcast.window", "%v is under a minute: a replay is found only while its original is in the index; use e.g. 30m", x.Window)
	}
	if x.MaxLandmarks < 1_000_000 {
		bad("rebroadcast.max_landmarks", "%d is under 1,000,000 (about 2 track-hours at a 30 %% talk share)", x.MaxLandmarks)
	}
	if x.QueryDelay < 0 || x.QueryDelay > time.Minute {
		bad("rebroadcast.query_delay", "%v must be between 0 and 1m; 2s covers the hop through Kafka", x.QueryDelay)
	}
	if x.MaxInFlight < 256 {
		bad("rebroadcast.max_in_flight", "%d is under 256: chunks wait query_delay before they are acknowledged", x.MaxInFlight)
	}
	validateWatch(x.Watch, bad)
	pairs := map[[2]string]int{}
	for i, a := range x.Allow {
		key := "rebroadcast.allow[" + strconv.Itoa(i) + "]"
		rooms := make([]string, len(a.Rooms))
		for j, r := range a.Rooms {
			rooms[j] = strings.TrimSpace(r)
		}
		switch {
		case len(rooms) != 2:
			bad(key+".rooms", "lists %d rooms; list exactly two (the pair is symmetric: [A, B] also allows B's audio in A)", len(rooms))
		case rooms[0] == "" || rooms[1] == "":
			bad(key+".rooms", "has an empty room; name both rooms as the room server does")
		case rooms[0] == "*" || rooms[1] == "*":
			bad(key+".rooms", "has a wildcard; list each pair (a wildcard would silence every copy of that room)")
		case rooms[0] == rooms[1]:
			bad(key+".rooms", "names %q twice; a room is never compared with itself, so list two different rooms", rooms[0])
		default:
			slices.Sort(rooms)
			p := [2]string{rooms[0], rooms[1]}
			if j, dup := pairs[p]; dup {
				bad(key+".rooms", "repeats the pair of rebroadcast.allow[%d]; keep one entry (with the later until)", j)
			}
			pairs[p] = i
		}
		if _, err := a.UntilTime(); err != nil {
			bad(key+".until", "%q is not a time; use RFC 3339 (2027-01-31T18:00:00Z) or a date (2027-01-31), or leave it out for no end", a.Until)
		}
		if strings.TrimSpace(a.Reason) == "" {
			bad(key+".reason", "is empty; say why the rooms may carry the same audio (e.g. the host's consent to a simulcast)")
		}
	}
}
