package serve

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/policy"
)

// Alert statuses, as the index derives them from alert actions.
const (
	StatusOpen         = "open"
	StatusAcknowledged = "acknowledged"
	StatusConfirmed    = "confirmed"
	StatusDismissed    = "dismissed"
)

// Entry is one alert in the index.
type Entry struct {
	Env     *event.Envelope // the alert.raised event, protected data still sealed
	Alert   event.Alert
	Actions []ActionRecord // in time order
	// Updates are what later transcript revisions said about the alert
	// (alert.updated: "not in settled text"), in arrival order. They never
	// change its status.
	Updates []UpdateRecord
	// Suppressed counts the findings of the same room, rule and speaker
	// the policy's rate limit folded into this alert.
	Suppressed int
}

// UpdateRecord is one alert.updated event on an alert.
type UpdateRecord struct {
	ID     string    `json:"id"`
	Pass   string    `json:"pass"`
	Reason string    `json:"reason"`
	Note   string    `json:"note"`
	Time   time.Time `json:"time"`
}

// ActionRecord is one action taken on an alert. Its note stays sealed in
// the action event, which the record keeps for the console to open.
type ActionRecord struct {
	ID       string          `json:"id"`
	Action   string          `json:"action"`
	Operator string          `json:"operator"`
	Time     time.Time       `json:"time"`
	env      *event.Envelope // the action event, its note sealed
}

// Status derives the alert's status from its actions: the latest decision
// (confirm or dismiss) wins; an acknowledgement alone makes it
// acknowledged; no action leaves it open.
func (e *Entry) Status() string {
	status := StatusOpen
	for _, a := range e.Actions {
		switch a.Action {
		case event.ActionConfirm:
			status = StatusConfirmed
		case event.ActionDismiss:
			status = StatusDismissed
		case event.ActionAck:
			if status == StatusOpen {
				status = StatusAcknowledged
			}
		}
	}
	return status
}

// Index keeps alerts by ID with their actions, in memory and bounded: when
// full, the oldest alert (by arrival) is dropped. It is rebuilt from the
// alert and action topics on every start (see Tail); nothing of it is
// stored. Safe for concurrent use.
type Index struct {
	mu      sync.RWMutex
	max     int
	alerts  map[string]*Entry
	order   []string                  // alert IDs by arrival, oldest first
	pending map[string][]ActionRecord // actions seen before their alert
	porder  []string
	seen    map[string]bool // action event IDs applied
	keys    event.Keys      // when set, only events sealed under them are applied
	changed chan struct{}   // closed on the next change (Changed)
}

// RequireSealed makes Apply take only events whose protected part was
// sealed under k for that event (event.VerifySealed): a record written by
// someone without the deployment's keys, carrying a real alert's ID, can
// then neither take that alert's place nor add actions to it.
func (x *Index) RequireSealed(k event.Keys) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.keys = k
}

func (x *Index) sealed(e *event.Envelope) bool {
	x.mu.RLock()
	k := x.keys
	x.mu.RUnlock()
	return k == nil || e.VerifySealed(context.Background(), k) == nil
}

// NewIndex returns an index holding at most max alerts (default 100000).
func NewIndex(max int) *Index {
	if max <= 0 {
		max = 100000
	}
	return &Index{max: max, alerts: map[string]*Entry{}, pending: map[string][]ActionRecord{}, seen: map[string]bool{}}
}

// Apply adds an alert.raised, alert.action or alert.updated event (an
// update of an alert not in the index is dropped: it follows its alert on
// the same partition); anything else, and
// repeats of an event already applied, are ignored. It reports whether the
// index changed.
func (x *Index) Apply(e *event.Envelope) bool {
	if (e.Type == event.TypeAlert || e.Type == event.TypeAlertAction) && !x.sealed(e) {
		return false
	}
	switch e.Type {
	case event.TypeAlert:
		var a policy.AlertPayload
		if e.Timeline == nil || e.DecodePayload(&a) != nil {
			return false
		}
		x.mu.Lock()
		defer x.mu.Unlock()
		if _, ok := x.alerts[e.EventID]; ok {
			return false
		}
		ent := &Entry{Env: e, Alert: a.Alert, Suppressed: a.Suppressed}
		if p, ok := x.pending[e.EventID]; ok {
			ent.Actions = p
			delete(x.pending, e.EventID)
		}
		x.alerts[e.EventID] = ent
		x.order = append(x.order, e.EventID)
		for len(x.order) > x.max {
			delete(x.alerts, x.order[0])
			x.order = x.order[1:]
		}
		x.notify()
		return true
	case event.TypeAlertUpdated:
		var u event.AlertUpdated
		if e.DecodePayload(&u) != nil || u.Alert == "" {
			return false
		}
		x.mu.Lock()
		defer x.mu.Unlock()
		ent, ok := x.alerts[u.Alert]
		if !ok || x.seen[e.EventID] {
			return false
		}
		x.seen[e.EventID] = true
		ent.Updates = append(ent.Updates, UpdateRecord{ID: e.EventID, Pass: u.Pass, Reason: u.Reason, Note: u.Note, Time: e.Time})
		x.notify()
		return true
	case event.TypeAlertAction:
		var a event.AlertAction
		if e.DecodePayload(&a) != nil || a.Alert == "" {
			return false
		}
		rec := ActionRecord{ID: e.EventID, Action: a.Action, Operator: a.Operator, Time: e.Time, env: e}
		x.mu.Lock()
		defer x.mu.Unlock()
		if x.seen[e.EventID] {
			return false
		}
		x.seen[e.EventID] = true
		if ent, ok := x.alerts[a.Alert]; ok {
			ent.Actions = insertByTime(ent.Actions, rec)
			x.notify()
			return true
		}
		// The action's alert may come later: the two topics are read
		// independently on a rebuild.
		if _, ok := x.pending[a.Alert]; !ok {
			x.porder = append(x.porder, a.Alert)
		}
		x.pending[a.Alert] = insertByTime(x.pending[a.Alert], rec)
		for len(x.porder) > x.max {
			delete(x.pending, x.porder[0])
			x.porder = x.porder[1:]
		}
		if len(x.seen) > 4*x.max {
			x.seen = map[string]bool{} // bounded; a replay then re-inserts, which insertByTime absorbs
		}
		return true
	}
	return false
}

func insertByTime(list []ActionRecord, r ActionRecord) []ActionRecord {
	for _, a := range list {
		if a.ID == r.ID {
			return list
		}
	}
	i, _ := slices.BinarySearchFunc(list, r, func(a, b ActionRecord) int { return a.Time.Compare(b.Time) })
	for i < len(list) && list[i].Time.Equal(r.Time) {
		i++
	}
	return slices.Insert(list, i, r)
}

// Get returns a copy of the alert's entry.
func (x *Index) Get(id string) (Entry, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	e, ok := x.alerts[id]
	if !ok {
		return Entry{}, false
	}
	c := *e
	c.Actions = slices.Clone(e.Actions)
	c.Updates = slices.Clone(e.Updates)
	return c, true
}

// Filter selects alerts in List. Empty fields match everything.
type Filter struct {
	Room     string
	Status   string
	Category string
	Severity string
	// Rooms, when not empty, limits the result to these rooms (a
	// room-scoped operator's).
	Rooms []string
	Limit int // newest first; default 100
}

// matchesBut reports whether e passes every filter but the status.
func (f *Filter) matchesBut(e *Entry) bool {
	return (f.Room == "" || e.Env.Room == f.Room) &&
		(f.Category == "" || e.Alert.Category == f.Category) &&
		(f.Severity == "" || e.Alert.Severity == f.Severity) &&
		(len(f.Rooms) == 0 || slices.Contains(f.Rooms, e.Env.Room))
}

// List returns copies of the matching alerts, newest (by arrival) first.
func (x *Index) List(f Filter) []Entry {
	out, _ := x.Query(f, false)
	return out
}

// Query returns what List does and, when counts is set, the number of
// alerts per status among those matching every filter but the status
// (what a queue's status tabs show), in one pass under one lock.
func (x *Index) Query(f Filter, counts bool) ([]Entry, map[string]int) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	var byStatus map[string]int
	if counts {
		byStatus = map[string]int{StatusOpen: 0, StatusAcknowledged: 0, StatusConfirmed: 0, StatusDismissed: 0}
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	var out []Entry
	for i := len(x.order) - 1; i >= 0; i-- {
		if len(out) >= f.Limit && !counts {
			break
		}
		e := x.alerts[x.order[i]]
		if !f.matchesBut(e) {
			continue
		}
		st := e.Status()
		if counts {
			byStatus[st]++
		}
		if len(out) >= f.Limit || (f.Status != "" && st != f.Status) {
			continue
		}
		c := *e
		c.Actions = slices.Clone(e.Actions)
		c.Updates = slices.Clone(e.Updates)
		out = append(out, c)
	}
	return out, byStatus
}

// Changed returns a channel closed at the next change of the index: a
// waiter takes it, waits, then takes the next one.
func (x *Index) Changed() <-chan struct{} {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.changed == nil {
		x.changed = make(chan struct{})
	}
	return x.changed
}

// notify wakes the waiters of Changed; x.mu is held.
func (x *Index) notify() {
	if x.changed != nil {
		close(x.changed)
		x.changed = nil
	}
}

// Len is the number of alerts held.
func (x *Index) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.alerts)
}

// CountByRoom returns the number of alerts with the status in each room,
// in one pass.
func (x *Index) CountByRoom(status string) map[string]int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := map[string]int{}
	for _, e := range x.alerts {
		if e.Status() == status {
			out[e.Env.Room]++
		}
	}
	return out
}
