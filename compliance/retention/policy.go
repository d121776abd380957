package retention

import (
	"fmt"
	"regexp"
	"time"
)

// Retention modes of a Class.
const (
	// ModeEphemeral keeps a session's data only Grace after it ended,
	// unless an alert was raised.
	ModeEphemeral = "ephemeral"
	// ModeFixed keeps data Days after the session ended.
	ModeFixed = "fixed"
)

// Class is one class of rooms: how long their data is kept.
type Class struct {
	Mode string `yaml:"mode"` // ModeEphemeral or ModeFixed
	// Grace (ephemeral) is how long after the session's end its audio
	// stays, so that late alerts still find it.
	Grace time.Duration `yaml:"grace"`
	// Days (fixed; ephemeral sessions with an alert) keeps data this many
	// days after the session ended. An ephemeral class without it keeps
	// alerted sessions DefaultAlertDays.
	Days int `yaml:"days"`
	// ConfirmedDays replaces Days once an alert of the session is confirmed
	// (alert.action "confirm").
	ConfirmedDays int `yaml:"confirmed_days"`
}

// RoomRule assigns a class to rooms.
type RoomRule struct {
	Class string `yaml:"class"`
	// Rooms are raw room IDs (pseudonymised with the deployment's secret at
	// start, never logged) or room pseudonyms.
	Rooms []string `yaml:"rooms"`
	// Pattern is a regular expression on the raw room ID. Only ingest sees
	// raw IDs: it applies to sessions whose session_started metadata names
	// the class (MetaClass), and to the pseudonyms otherwise.
	Pattern string `yaml:"pattern"`
}

// Rules are the classes and the rules that give rooms their class.
type Rules struct {
	DefaultClass string
	Classes      map[string]Class
	Rooms        []RoomRule
}

// MetaClass is the session_started metadata key that names a session's
// retention class. Ingest, which sees raw room IDs, can set it from
// Policy.ClassOfRaw; rules on raw IDs then apply after pseudonymisation.
const MetaClass = "retention_class"

// Policy maps rooms to retention classes and says when data expires.
type Policy struct {
	def     string
	classes map[string]Class
	rules   []rule
}

type rule struct {
	class   string
	rooms   map[string]bool // pseudonyms, and raw IDs for ClassOfRaw
	raw     map[string]bool
	pattern *regexp.Regexp
}

// NewPolicy builds the policy from the rules. pseudonyms returns
// every pseudonym of a raw room ID (pseudonym.Pseudonymizer.All); it lets
// rules list raw IDs without the sweeper ever seeing them in data.
func NewPolicy(cfg Rules, pseudonyms func(rawRoom string) []string) (*Policy, error) {
	p := &Policy{def: cfg.DefaultClass, classes: cfg.Classes}
	if _, ok := p.classes[p.def]; !ok {
		return nil, fmt.Errorf("retention: default class %q is not defined", p.def)
	}
	for i, rc := range cfg.Rooms {
		if _, ok := p.classes[rc.Class]; !ok {
			return nil, fmt.Errorf("retention: rule %d: class %q is not defined", i+1, rc.Class)
		}
		r := rule{class: rc.Class, rooms: map[string]bool{}, raw: map[string]bool{}}
		for _, id := range rc.Rooms {
			r.rooms[id] = true
			r.raw[id] = true
			if pseudonyms != nil {
				for _, ps := range pseudonyms(id) {
					r.rooms[ps] = true
				}
			}
		}
		if rc.Pattern != "" {
			re, err := regexp.Compile(rc.Pattern)
			if err != nil {
				return nil, fmt.Errorf("retention: rule %d: %w", i+1, err)
			}
			r.pattern = re
		}
		p.rules = append(p.rules, r)
	}
	return p, nil
}

// ClassOf returns the class of a session: the one its session_started
// metadata names, else the first rule matching the room pseudonym, else the
// default.
func (p *Policy) ClassOf(room string, meta map[string]string) (string, Class) {
	if name := meta[MetaClass]; name != "" {
		if c, ok := p.classes[name]; ok {
			return name, c
		}
	}
	for _, r := range p.rules {
		if r.rooms[room] || (r.pattern != nil && r.pattern.MatchString(room)) {
			return r.class, p.classes[r.class]
		}
	}
	return p.def, p.classes[p.def]
}

// ClassOfRaw returns the class of a raw room ID, for ingest to record in
// session_started metadata (MetaClass).
func (p *Policy) ClassOfRaw(rawRoom string) string {
	for _, r := range p.rules {
		if r.raw[rawRoom] || (r.pattern != nil && r.pattern.MatchString(rawRoom)) {
			return r.class
		}
	}
	return p.def
}

// Facts are what a session's retention depends on.
type Facts struct {
	Ended     time.Time // when the session ended
	Alerts    int       // alerts (and reports) raised in the session
	Confirmed bool      // an alert was confirmed by a moderator
}

// DefaultAlertDays keeps an ephemeral session with an alert when its class
// sets no days.
const DefaultAlertDays = 30

// Expires returns when a session of class c with facts f expires.
//   - ephemeral without alerts: Grace after the end;
//   - otherwise Days after the end, ConfirmedDays once an alert is confirmed.
func Expires(c Class, f Facts) time.Time {
	if c.Mode == ModeEphemeral && f.Alerts == 0 {
		return f.Ended.Add(c.Grace)
	}
	days := c.Days
	if days == 0 {
		days = DefaultAlertDays // an ephemeral class that did not say
	}
	if f.Confirmed && c.ConfirmedDays > days {
		days = c.ConfirmedDays
	}
	return f.Ended.Add(time.Duration(days) * 24 * time.Hour)
}
