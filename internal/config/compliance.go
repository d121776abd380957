package config

import (
	"path/filepath"
	"regexp"
	"sort"
	"time"

	"github.com/earshot/earshot/compliance/retention"
)

// Retention modes of a room class (RetentionClass.Mode).
const (
	// RetentionEphemeral deletes a session's audio and events a grace period
	// after the session ended, unless an alert, a report or a hold keeps them.
	RetentionEphemeral = retention.ModeEphemeral
	// RetentionFixed keeps a session's data a fixed number of days after it
	// ended, longer once an alert is confirmed.
	RetentionFixed = retention.ModeFixed
)

// Retention sets how long audio and events are kept, per room class. The
// sweeper of the compliance stage enforces it.
type Retention struct {
	// DefaultClass is the class of rooms no rule names. Default "standard".
	DefaultClass string `yaml:"default_class"`
	// Classes by name. Defaults: "standard" (fixed, 30 days, 90 once an
	// alert is confirmed) and "ephemeral" (15 min grace; kept like standard
	// when an alert was raised).
	Classes map[string]RetentionClass `yaml:"classes"`
	// Rooms assigns classes; the first matching rule wins (file only).
	Rooms []RoomClass `yaml:"rooms"`
	// SweepInterval is how often the sweeper runs. Default 5m.
	SweepInterval time.Duration `yaml:"sweep_interval"`
	// AssumeEndedAfter treats a session with no session_ended event as ended
	// this long after its newest object (a bot that crashed never says the
	// session ended). Default 24h.
	AssumeEndedAfter time.Duration `yaml:"assume_ended_after"`
	// KafkaTopics sets retention.ms per topic name on every sweep; empty
	// keeps the topic defaults (event.Topics). File only.
	KafkaTopics map[string]time.Duration `yaml:"kafka_topics"`
	// ApplyKafka turns the Kafka topic settings on. When the brokers refuse
	// (no ALTER_CONFIGS permission) the sweeper logs it once and goes on.
	ApplyKafka bool `yaml:"apply_kafka"`
}

// RetentionClass is one class of rooms (package retention owns the type).
type RetentionClass = retention.Class

// RoomClass assigns a class to rooms.
type RoomClass = retention.RoomRule

// Rules returns the classes and room rules, for retention.NewPolicy.
func (x Retention) Rules() retention.Rules {
	return retention.Rules{DefaultClass: x.DefaultClass, Classes: x.Classes, Rooms: x.Rooms}
}

func defaultRetention() Retention {
	return Retention{
		DefaultClass: "standard",
		Classes: map[string]RetentionClass{
			"standard":  {Mode: RetentionFixed, Days: 30, ConfirmedDays: 90},
			"ephemeral": {Mode: RetentionEphemeral, Grace: 15 * time.Minute, Days: 30, ConfirmedDays: 90},
		},
		SweepInterval:    5 * time.Minute,
		AssumeEndedAfter: 24 * time.Hour,
		ApplyKafka:       true,
	}
}

// validate reports every problem of the section through bad.
func (x *Retention) validate(bad func(key, format string, a ...any)) {
	if _, ok := x.Classes[x.DefaultClass]; !ok {
		bad("retention.default_class", "%q is not one of the classes under retention.classes (%v)", x.DefaultClass, classNames(x.Classes))
	}
	for _, name := range classNames(x.Classes) {
		c := x.Classes[name]
		key := "retention.classes." + name
		switch c.Mode {
		case RetentionEphemeral:
			if c.Grace <= 0 {
				bad(key+".grace", "%v must be positive (15m lets late alerts still find the audio)", c.Grace)
			}
		case RetentionFixed:
			if c.Days < 1 {
				bad(key+".days", "%d must be at least 1 for a fixed class", c.Days)
			}
		default:
			bad(key+".mode", "%q is not ephemeral or fixed", c.Mode)
		}
		if c.Days < 0 || c.ConfirmedDays < 0 {
			bad(key+".days", "days and confirmed_days must not be negative")
		}
		if c.ConfirmedDays != 0 && c.ConfirmedDays < c.Days {
			bad(key+".confirmed_days", "%d is shorter than days %d; a confirmed alert extends retention, set it to at least %d", c.ConfirmedDays, c.Days, c.Days)
		}
	}
	for i, r := range x.Rooms {
		if _, ok := x.Classes[r.Class]; !ok {
			bad("retention.rooms", "rule %d names class %q, which retention.classes does not define", i+1, r.Class)
		}
		if r.Pattern != "" {
			if _, err := regexp.Compile(r.Pattern); err != nil {
				bad("retention.rooms", "rule %d: pattern %q is not a regular expression: %v", i+1, r.Pattern, err)
			}
		}
		if r.Pattern == "" && len(r.Rooms) == 0 {
			bad("retention.rooms", "rule %d matches nothing; give rooms or a pattern", i+1)
		}
	}
	if x.SweepInterval < time.Second {
		bad("retention.sweep_interval", "%v must be at least 1s", x.SweepInterval)
	}
	if x.AssumeEndedAfter <= 0 {
		bad("retention.assume_ended_after", "%v must be positive", x.AssumeEndedAfter)
	}
	for t, d := range x.KafkaTopics {
		if d == 0 || d < -1 {
			bad("retention.kafka_topics", "topic %s: %v must be positive (or -1ns to keep forever)", t, d)
		}
	}
}

func classNames(m map[string]RetentionClass) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Compliance configures audit, export signing and erasure.
type Compliance struct {
	// SigningKeyFile holds the deployment's ed25519 export signing key
	// (PKCS#8 PEM), created on first use. Default
	// <data_dir>/secrets/export.ed25519.
	SigningKeyFile string `yaml:"signing_key_file"`
	// Archive runs the event archive in the compliance stage (transcripts,
	// alerts, actions and lifecycle events to events/ in storage).
	Archive bool `yaml:"archive"`
	// Sweep runs the retention sweeper in the compliance stage.
	Sweep bool `yaml:"sweep"`
	// ConsumerGroup is the archive's Kafka consumer group.
	ConsumerGroup string `yaml:"consumer_group"`
	// Operators, when not empty, lists the staff names the erase, export
	// and hold commands accept as --operator.
	Operators []string `yaml:"operators"`
}

func defaultCompliance() Compliance {
	return Compliance{Archive: true, Sweep: true, ConsumerGroup: "earshot-compliance"}
}

// validate reports every problem of the section through bad.
func (x *Compliance) validate(bad func(key, format string, a ...any)) {
	if x.SigningKeyFile == "" {
		bad("compliance.signing_key_file", "is empty; point it at the export signing key (created when missing)")
	}
	if x.Archive && x.ConsumerGroup == "" {
		bad("compliance.consumer_group", "is empty; name the archive's Kafka consumer group")
	}
}

// resolvePaths fills path defaults under dataDir.
func (x *Compliance) resolvePaths(dataDir string) {
	if x.SigningKeyFile == "" {
		x.SigningKeyFile = filepath.Join(dataDir, "secrets", "export.ed25519")
	}
}
