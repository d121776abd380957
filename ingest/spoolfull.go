package ingest

import (
	"errors"
	"sync"
	"syscall"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
)

// CategorySpoolFull is the category of the operational alert an instance
// raises when its spool's disk is full and it hands its rooms off.
const CategorySpoolFull = "ops.spool_full"

// DefaultSpoolRetry is Config.SpoolRetry's default.
const DefaultSpoolRetry = time.Minute

// errSpoolFull ends a stay: the spool cannot take segments.
var errSpoolFull = errors.New("spool disk full")

// spoolFullReason is the stay's end reason in the manifest and bot_left.
const spoolFullReason = "spool disk full"

// diskFull reports whether err is a full disk or an exhausted quota.
func diskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// spoolGuard is the instance's view of its spool's disk. A segment that
// fails on a full disk marks it full: every stay ends (releasing its room's
// lease, so another instance takes the room at its next poll, and the
// session goes on there) and no room is joined until SpoolRetry has passed.
// Recording into a spool that cannot take segments would keep the room
// from an instance that can, with only the live chunks reaching anyone.
type spoolGuard struct {
	mu      sync.Mutex
	full    chan struct{} // closed while the disk is full
	since   time.Time     // when it was found full
	alerted bool          // an alert went out and no segment was spooled since
}

func newSpoolGuard() *spoolGuard { return &spoolGuard{full: make(chan struct{})} }

// markFull records a full disk; it reports whether an alert is due (the
// first full disk since a segment was last spooled).
func (g *spoolGuard) markFull(now time.Time) (alert bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.full:
		return false
	default:
	}
	close(g.full)
	g.since = now
	alert = !g.alerted
	g.alerted = true
	return alert
}

// fullCh is closed while the disk is full (and when it becomes full).
func (g *spoolGuard) fullCh() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.full
}

// isFull reports whether rooms must not be joined; past retry since the
// disk was found full it clears, so that rooms are tried again.
func (g *spoolGuard) isFull(now time.Time, retry time.Duration) (full, cleared bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.full:
	default:
		return false, false
	}
	if now.Sub(g.since) < retry {
		return true, false
	}
	g.full = make(chan struct{})
	return false, true
}

// spooled records that a segment was spooled: a later full disk alerts
// again.
func (g *spoolGuard) spooled() {
	g.mu.Lock()
	g.alerted = false
	g.mu.Unlock()
}

// spoolError handles a segment's spool error: on a full disk the instance
// gives up its rooms and raises one operational alert per episode.
func (s *Stage) spoolError(err error) {
	if !diskFull(err) {
		return
	}
	now := time.Now().UTC()
	if !s.disk.markFull(now) {
		return
	}
	s.m.spoolFull.Set(1)
	s.log.Error("spool disk full: leaving every room so that another instance records it; segments already spooled still upload",
		"error", err, "retry_in", s.cfg.SpoolRetry)
	s.raiseSpoolFull(now)
}

// raiseSpoolFull queues an alert.raised event of category
// CategorySpoolFull for earshot.ops, without waiting (it is called on a
// track's goroutine). It names no room (the disk is the instance's) and
// holds no personal data, so it has no protected part; its ID derives from
// the instance and the episode's start.
func (s *Stage) raiseSpoolFull(episode time.Time) {
	e, err := event.New(event.TypeAlert, s.cfg.Producer, nil, "", "", "", nil, event.Alert{
		Severity: "high", Category: CategorySpoolFull, RuleID: CategorySpoolFull, Confidence: 1,
	}, CategorySpoolFull, s.cfg.Producer.Instance, episode.Format(time.RFC3339Nano))
	if err == nil {
		var b []byte
		if b, err = e.Marshal(); err == nil && !s.out.Send(bus.Message{Topic: event.TopicOps, Key: []byte(CategorySpoolFull), Value: b}) {
			err = errors.New("the event queue is full")
		}
	}
	if err != nil {
		s.log.Error("spool-full alert not written", "error", err)
	}
}
