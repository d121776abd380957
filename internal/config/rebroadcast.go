package config

import "time"

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
}
