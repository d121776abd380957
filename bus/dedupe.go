package bus

import (
	lru "github.com/hashicorp/golang-lru/v2"
)

// DefaultDedupeCapacity is the Dedupe capacity used when none is given: it
// covers many minutes of redelivery at Earshot's event rates while costing a
// few megabytes.
const DefaultDedupeCapacity = 1 << 16

// Dedupe is a bounded, concurrency-safe set of event IDs already handled,
// for consumers of an at-least-once stream. When full it forgets the least
// recently added or checked ID, so it catches redeliveries that arrive within
// the last capacity IDs (a rebalance or restart replays at most the records
// that were in work, which is far fewer).
//
// Mark an ID when its record is finished, not when it arrives: a record whose
// work was abandoned (a revoked partition, a crash) must run again when it is
// redelivered.
//
//	if dd.Seen(id) { d.Ack(); return }    // a redelivery of finished work
//	... handle ...
//	dd.Add(id); d.Ack()
type Dedupe struct {
	c *lru.Cache[string, struct{}]
}

// NewDedupe returns an empty set holding up to capacity IDs
// (DefaultDedupeCapacity when capacity <= 0).
func NewDedupe(capacity int) *Dedupe {
	if capacity <= 0 {
		capacity = DefaultDedupeCapacity
	}
	c, err := lru.New[string, struct{}](capacity)
	if err != nil { // only for a non-positive size, excluded above
		panic("bus: dedupe: " + err.Error())
	}
	return &Dedupe{c: c}
}

// Seen reports whether id was added and not forgotten since.
func (d *Dedupe) Seen(id string) bool {
	_, ok := d.c.Get(id) // Get, not Contains: a hit keeps the ID in the set longer
	return ok
}

// Add records id and reports whether it was new. Checking and adding is one
// atomic step, so of two concurrent Adds of one ID exactly one reports true.
func (d *Dedupe) Add(id string) (added bool) {
	found, _ := d.c.ContainsOrAdd(id, struct{}{})
	return !found
}

// Len is the number of IDs held.
func (d *Dedupe) Len() int { return d.c.Len() }
