package policy

import (
	"context"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
)

// rebuild restores what a stage that ran before knew, before d (the first
// record of a partition after start-up, an assignment or a redelivery) is
// evaluated:
//
//  1. the alerts raised recently (every partition of the alerts topic
//     since Rebuild.Alerts before d): their IDs, so a transcript delivered
//     again does not raise its alert twice; their spans, into the ledger,
//     so a later revision of the same speech does not either; the
//     alert.updated events written; and their times, so the rate limiter
//     goes on where it was;
//  2. the windows of d's partition's rooms (every revision pass), by
//     replaying the partition's transcripts from Rebuild.Transcripts
//     before d up to d. A finding of the replay is remembered only when
//     the ledger holds it (its alert is among those raised): one evaluated
//     but never produced (the stage stopped in between) is reported when
//     its transcript is delivered again.
//
// A failed rebuild is logged and counted; the stage goes on with what it
// has (at worst an alert raised twice, or a phrase split across the
// restart missed).
func (s *Stage) rebuild(ctx context.Context, d *bus.Delivery) {
	s.metrics.rebuilds.Inc()
	start := time.Now()
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	ref := d.Time
	if ref.IsZero() {
		ref = time.Now()
	}
	tail := s.cfg.Rebuild.Tail
	alerts := 0
	err := tail.Read(rctx, s.cfg.Topics.Alerts, -1, ref.Add(-s.cfg.Rebuild.Alerts), -1, func(m bus.Message) error {
		e, err := event.Decode(m.Value)
		if err != nil {
			return nil
		}
		switch e.Type {
		case event.TypeAlertUpdated:
			var u event.AlertUpdated
			if e.DecodePayload(&u) == nil {
				s.ledger.markUpdated(u.Alert, u.Pass)
			}
			return nil
		case event.TypeAlert:
		default:
			return nil
		}
		var a AlertPayload
		if err := e.DecodePayload(&a); err != nil {
			return nil
		}
		s.raised.Add(e.EventID)
		if e.Timeline != nil {
			s.limit.note(limitKey{e.Room, a.RuleID, e.Speaker}, e.Timeline.Start(), e.EventID)
			s.ledger.insert(ledgerFromAlert(e, &a), e.Time)
		}
		alerts++
		return nil
	})
	if err != nil {
		s.metrics.rebuildErrors.Inc()
		s.log.Warn("rebuild: alerts not read back; a redelivered transcript may alert again", "error", err)
	}

	// The partition's rooms start over from what Kafka holds.
	s.mu.Lock()
	for k, p := range s.roomPart {
		if p == d.Partition {
			delete(s.windows, k)
			delete(s.roomPart, k)
			delete(s.roomUsed, k)
		}
	}
	s.mu.Unlock()
	p := s.cfg.Policy.Policy()
	raised := func(f Finding) bool { return s.raised.Seen(AlertID(f)) || s.ledger.match(f) != nil }
	segments := 0
	err = tail.Read(rctx, d.Topic, d.Partition, ref.Add(-s.cfg.Rebuild.Transcripts), d.Offset, func(m bus.Message) error {
		e, err := event.Decode(m.Value)
		if err != nil || e.Type != event.TypeTranscript || e.Timeline == nil {
			return nil
		}
		seg, err := SegmentFromEvent(rctx, s.cfg.Keys, e)
		if err != nil {
			return nil
		}
		pass := passOf(e.Processing)
		for _, f := range s.window(winKey{e.Room, pass}, d.Partition).Replay(p, seg, raised) {
			s.ledger.found(f, pass)
		}
		if p.Speech(&seg) {
			// What the pass covered before the restart counts, so an
			// update due is written once the pass moves on; one already
			// written is in the ledger from the alerts topic.
			s.ledger.cover(seg.Session, pass, seg.Timeline, e.Time)
		}
		segments++
		return nil
	})
	if err != nil {
		s.metrics.rebuildErrors.Inc()
		s.log.Warn("rebuild: transcripts not read back; a phrase split across the restart may be missed", "partition", d.Partition, "error", err)
	}
	s.log.Info("state rebuilt from Kafka", "partition", d.Partition, "offset", d.Offset,
		"alerts", alerts, "segments", segments, "took", time.Since(start).Round(time.Millisecond))
}

// ledgerFromAlert is the ledger entry of an alert read back from the
// alerts topic (alerts written before AlertPayload.Spans count by their
// timeline).
func ledgerFromAlert(e *event.Envelope, a *AlertPayload) *ledgerEntry {
	le := &ledgerEntry{
		id: e.EventID, room: e.Room, session: e.Session, speaker: e.Speaker, category: a.Category,
		timeline: *e.Timeline, pass: a.Pass,
	}
	if e.Processing != nil {
		le.policyVersion = e.Processing.PolicyVersion
	}
	if le.pass == "" {
		le.pass = PassLive
	}
	for _, sp := range a.Spans {
		le.spans = append(le.spans, trackRange{sp.Track, sp.FirstSample, sp.LastSample})
	}
	if len(le.spans) == 0 {
		le.spans = []trackRange{{e.Timeline.Track, e.Timeline.FirstSample, e.Timeline.LastSample}}
	}
	return le
}
