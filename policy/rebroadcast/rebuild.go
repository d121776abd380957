package rebroadcast

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
)

// follower is a topic every instance reads whole, without a group: from
// since before the start, then live.
type follower struct {
	topic string
	since time.Duration
	fn    func(bus.Message)
}

// followers are the topics the stage rebuilds its state from: the index
// (fingerprints, the window), the private rooms (lifecycle), the alerts
// already raised (so that a restarted or second instance does not raise
// one again) and the erasures (whose audio is never indexed again).
func (s *Stage) followers() []follower {
	return []follower{
		{s.cfg.Topics.Fingerprints, s.cfg.Window, s.indexRecord},
		{s.cfg.Topics.Lifecycle, s.cfg.Window, s.roomClass},
		{s.cfg.Topics.Alerts, s.cfg.AlertLookback, s.noteAlert},
		{s.cfg.Topics.Audit, 2 * s.cfg.Window, s.noteAudit},
	}
}

// rebuild tracks the followed topics not yet read up to the end they had
// when the stage started; matching starts once none is left (or after
// RebuildWait).
type rebuild struct {
	left atomic.Int64
	done chan struct{}
	once sync.Once
}

func newRebuild(topics int) *rebuild {
	r := &rebuild{done: make(chan struct{})}
	r.left.Store(int64(topics))
	if topics == 0 {
		close(r.done)
	}
	return r
}

// caughtUp returns the function a topic calls once, when it has read back
// what it had at the start.
func (r *rebuild) caughtUp() func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			if r.left.Add(-1) == 0 {
				r.once.Do(func() { close(r.done) })
			}
		})
	}
}

// waitRebuilt waits until the followed topics are read back, at most
// RebuildWait: past it the stage goes on with what it has (a topic it may
// not read would otherwise stop it for good).
func (s *Stage) waitRebuilt(ctx context.Context) {
	start := time.Now()
	t := time.NewTimer(s.cfg.RebuildWait)
	defer t.Stop()
	select {
	case <-s.rebuilt.done:
		tracks, landmarks, bytes := s.IndexStats()
		s.log.Info("state rebuilt from Kafka", "took", time.Since(start).Round(time.Millisecond), "tracks", tracks, "landmarks", landmarks, "index_bytes", bytes)
	case <-t.C:
		s.log.Warn("state not rebuilt within rebuild_wait; matching starts with what was read", "wait", s.cfg.RebuildWait, "topics_behind", s.rebuilt.left.Load())
	case <-ctx.Done():
	}
	s.m.rebuildSeconds.Set(time.Since(start).Seconds())
}

// unreadable tells a topic that cannot be read back at all (missing, or
// refused to this principal): nothing to wait for, though the stage goes
// on asking.
func unreadable(err error) bool {
	return errors.Is(err, bus.ErrUnknownTopic) || bus.Refused(err)
}

// noteAlert remembers a rebroadcast alert already on the alerts topic
// (raised by any instance, before a restart too): its ID is stable per
// pair of tracks, so the same match is not raised again.
func (s *Stage) noteAlert(m bus.Message) {
	e, err := event.Decode(m.Value)
	if err != nil || e.Type != event.TypeAlert {
		return
	}
	var a event.Alert
	if e.DecodePayload(&a) != nil || a.RuleID != RuleID {
		return
	}
	s.raised.Add(e.EventID)
}

// lagger is what a consumer offers to measure its lag (bus.Consumer does).
type lagger interface {
	Lag(ctx context.Context) ([]bus.PartitionLag, error)
}

var _ lagger = (*bus.Consumer)(nil)

// lagEvery is how often the lag gauges are measured.
const lagEvery = 15 * time.Second

// monitorLag sets the lag gauges every lagEvery until ctx ends: the audio
// consumer's, and how far this instance's index trails the fingerprints
// topic (records other instances wrote that it has not indexed yet).
func (s *Stage) monitorLag(ctx context.Context) {
	tk := time.NewTicker(lagEvery)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		qctx, cancel := context.WithTimeout(ctx, lagEvery)
		if l, ok := s.cfg.Consumer.(lagger); ok {
			if parts, err := l.Lag(qctx); err == nil && parts != nil {
				var total int64
				for _, p := range parts {
					total += p.Lag
				}
				s.m.audioLag.Set(float64(total))
			}
		}
		if ranges, err := s.cfg.Log.Offsets(qctx, s.cfg.Topics.Fingerprints); err == nil {
			s.m.fingerprintsLag.Set(float64(s.fpLag(ranges)))
		}
		cancel()
	}
}

// fpLag is the records of the fingerprints topic past what this instance
// has read, given the partitions' ends.
func (s *Stage) fpLag(ranges map[int]bus.PartitionRange) int64 {
	s.posMu.Lock()
	defer s.posMu.Unlock()
	var total int64
	for p, r := range ranges {
		next, ok := s.fpNext[p]
		if !ok {
			next = r.First
		}
		total += max(r.End-next, 0)
	}
	return total
}
