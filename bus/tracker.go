package bus

import (
	"fmt"
	"sort"
)

// offsetTracker follows one partition's fetched records and says how far the
// partition may be committed: up to the oldest unfinished record, so a record
// finished out of order never lets the commit skip an older one still in
// work. Kafka's committed offset is the next record to read, so the commit
// offset is the lowest unfinished offset, or the last fetched offset + 1 when
// everything fetched is finished.
//
// Offsets are added in fetch order, which is increasing but may have gaps
// (compaction, transaction markers). Not safe for concurrent use.
type offsetTracker struct {
	q    []trackEntry // q[head:] is the oldest unfinished record and everything fetched after it
	head int
	last int64 // last offset added; valid when added
	// added reports whether any record was fetched yet.
	added bool
	open  int // unfinished records
}

type trackEntry struct {
	off  int64
	done bool
}

// add records a fetched offset. Offsets must increase; anything else means
// the fetch position moved backwards, which the caller must handle with a
// fresh tracker.
func (t *offsetTracker) add(off int64) error {
	if off < 0 {
		return fmt.Errorf("bus: offset tracker: negative offset %d", off)
	}
	if t.added && off <= t.last {
		return fmt.Errorf("bus: offset tracker: offset %d not after %d", off, t.last)
	}
	t.q = append(t.q, trackEntry{off: off})
	t.last, t.added = off, true
	t.open++
	return nil
}

// done marks off finished. It reports false when off is not awaiting
// completion (never fetched, or finished already), which callers ignore:
// a duplicate Ack must not move the commit.
func (t *offsetTracker) done(off int64) bool {
	live := t.q[t.head:]
	i := sort.Search(len(live), func(i int) bool { return live[i].off >= off })
	if i == len(live) || live[i].off != off || live[i].done {
		return false
	}
	live[i].done = true
	t.open--
	for t.head < len(t.q) && t.q[t.head].done {
		t.head++
	}
	t.compact()
	return true
}

// compact drops the finished prefix once it is most of the slice, keeping
// memory proportional to the records in work.
func (t *offsetTracker) compact() {
	if t.head == len(t.q) {
		t.q, t.head = t.q[:0], 0
		return
	}
	if t.head >= 64 && t.head*2 >= len(t.q) {
		n := copy(t.q, t.q[t.head:])
		t.q, t.head = t.q[:n], 0
	}
}

// commitOffset is the offset to commit: the lowest unfinished offset, or the
// last fetched + 1. ok is false before the first record.
func (t *offsetTracker) commitOffset() (off int64, ok bool) {
	if !t.added {
		return 0, false
	}
	if t.head < len(t.q) {
		return t.q[t.head].off, true
	}
	return t.last + 1, true
}

// unfinished is the number of fetched records not yet done.
func (t *offsetTracker) unfinished() int { return t.open }
