package rebroadcast

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/policy/fingerprint"
)

// RuleID is the rule ID of the alerts this stage raises.
const RuleID = "rebroadcast.fingerprint"

// AlertPayload is the readable payload of a rebroadcast alert: event.Alert
// plus where the audio was heard twice. The evidence is the two spans:
// the evidence service cuts both clips from storage, each under its
// speaker's key; an outside stream's clip is stored by the stage
// (StreamClip).
type AlertPayload struct {
	event.Alert
	// Original is the earlier of the two spans, Copy the later: the copy's
	// room is the alert's room.
	Original Span `json:"original"`
	Copy     Span `json:"copy"`
	// MatchedS is the matched span's length in the copy, seconds.
	MatchedS float64 `json:"matched_s"`
	// Seconds counts seconds of the copy holding consistent hits; Hits
	// counts those hits.
	Seconds int `json:"seconds"`
	Hits    int `json:"hits"`
	// Speed is the copy's speed relative to the original.
	Speed float64 `json:"speed"`
	// Speech says the matched audio sounds like speech (otherwise the
	// category is audio.shared).
	Speech bool `json:"speech"`
	// External names the outside stream (its registered name) when the
	// copy is one: then the original is the room, which is the alert's
	// subject, and the copy's span is on the stream's connection.
	External string `json:"external,omitempty"`
	// StreamClip is the outside stream's audio of the copy span (its
	// audio is not recorded otherwise), stored encrypted under the room
	// speaker's key like other evidence; absent when no evidence store is
	// configured or the stream's buffer no longer held the span.
	StreamClip *Clip `json:"stream_clip,omitempty"`
}

// Span is one side of a match: a stretch of a track (inclusive samples on
// its 48 kHz timeline) and when it was heard.
type Span struct {
	Room        string    `json:"room"`
	Session     string    `json:"session"`
	Speaker     string    `json:"speaker"`
	Track       string    `json:"track"`
	FirstSample int64     `json:"first_sample"`
	LastSample  int64     `json:"last_sample"`
	Start       time.Time `json:"start"`
	End         time.Time `json:"end"`
	Private     bool      `json:"private,omitempty"`
}

// AlertID is the event ID of the alert for audio shared by two tracks:
// one per pair of tracks, whichever side found it, however far the match
// had grown, so that a chunk matched again after a redelivery or a
// restart raises the same ID and sinks drop the copy.
func AlertID(trackA, trackB string) string {
	p := []string{trackA, trackB}
	slices.Sort(p)
	return event.DeriveID(event.PrefixEvent, string(event.TypeAlert), RuleID, p[0], p[1])
}

// identity finds the record template of an index track (under s.mu).
func (s *Stage) identity(name string) (Record, bool) {
	r, ok := s.idents[name]
	return r, ok
}

// span converts a match side to a Span.
func span(r Record, info fingerprint.TrackInfo, frames [2]int32, ms [2]int64) Span {
	first := r.Start + int64(frames[0])*fingerprint.Hop*ratio
	last := r.Start + int64(frames[1]+1)*fingerprint.Hop*ratio - 1
	return Span{Room: r.Room, Session: r.Session, Speaker: r.Speaker, Track: r.Track, FirstSample: first, LastSample: last,
		Start: time.UnixMilli(ms[0]).UTC(), End: time.UnixMilli(ms[1]).UTC(), Private: info.Private}
}

// alerts builds the alert events of new matches (under s.mu), skipping
// those already raised, and returns them with their IDs and payloads.
func (s *Stage) alerts(ctx context.Context, found []fingerprint.Match) ([]bus.Message, []string, []AlertPayload) {
	var (
		msgs []bus.Message
		ids  []string
		ps   []AlertPayload
	)
	for _, m := range found {
		q, okq := s.identity(m.Query.Track)
		r, okr := s.identity(m.Ref.Track)
		if !okq || !okr {
			continue // erased or expired meanwhile
		}
		if IsExternal(q.Room) || IsExternal(r.Room) {
			if IsExternal(q.Room) && IsExternal(r.Room) {
				continue // two outside streams: no room of ours leaked
			}
			if msg, id, p, ok := s.externalAlert(ctx, m, q, r); ok && !slices.Contains(ids, id) {
				msgs, ids, ps = append(msgs, msg), append(ids, id), append(ps, p)
			}
			continue
		}
		id := AlertID(q.Track, r.Track)
		if s.raised.Seen(id) || slices.Contains(ids, id) {
			s.m.duplicates.Inc()
			continue
		}
		// A room's class may have arrived after its track started.
		m.Query.Private = m.Query.Private || s.private[q.Room]
		m.Ref.Private = m.Ref.Private || s.private[r.Room]
		qs, rs := span(q, m.Query, m.QueryFrames, m.QueryMS()), span(r, m.Ref, m.RefFrames, m.RefMS())
		orig, cp := rs, qs
		if qs.Start.Before(rs.Start) {
			orig, cp = qs, rs
		}
		category, severity := fingerprint.Classify(m)
		p := AlertPayload{
			Alert:    event.Alert{Severity: severity, Category: category, RuleID: RuleID, Score: m.Confidence, Confidence: m.Confidence},
			Original: orig, Copy: cp, MatchedS: float64(m.DurationMS()) / 1000, Seconds: m.Seconds, Hits: m.Hits,
			Speed: m.Speed, Speech: m.Speech,
		}
		msg, err := s.alert(ctx, id, p)
		if err != nil {
			s.log.Error("rebroadcast alert not built", "error", err)
			continue
		}
		msgs = append(msgs, msg)
		ids = append(ids, id)
		ps = append(ps, p)
	}
	return msgs, ids, ps
}

// alert builds one sealed alert.raised event on the copy's room (on the
// original's when the copy is an outside stream).
func (s *Stage) alert(ctx context.Context, id string, p AlertPayload) (bus.Message, error) {
	c := p.Copy
	if p.External != "" {
		c = p.Original
	}
	tl := &event.Timeline{Track: c.Track, FirstSample: c.FirstSample, LastSample: c.LastSample,
		Origin: c.Start.Add(-event.SamplesToDuration(c.FirstSample)), Anchor: event.AnchorArrival}
	e, err := event.New(event.TypeAlert, s.cfg.Producer, nil, c.Room, c.Session, c.Speaker, tl, p, RuleID)
	if err != nil {
		return bus.Message{}, err
	}
	e.EventID = id
	now := time.Now()
	e.Hops.Evaluated, e.Hops.Alerted = event.Stamp(now), event.Stamp(now)
	// Nothing was said to quote: the evidence is the two spans, cut from
	// storage on request. The protected part is there because every alert
	// has one, sealed under the copy's speaker.
	if err := e.Seal(ctx, s.cfg.Keys, event.AlertData{}); err != nil {
		return bus.Message{}, fmt.Errorf("rebroadcast: seal alert: %w", err)
	}
	b, err := e.Marshal()
	if err != nil {
		return bus.Message{}, fmt.Errorf("rebroadcast: encode alert: %w", err)
	}
	s.log.Info("alert", "category", p.Category, "severity", p.Severity, "rule", RuleID, "room", c.Room,
		"original_room", p.Original.Room, "matched_s", fmt.Sprintf("%.1f", p.MatchedS), "confidence", fmt.Sprintf("%.3f", p.Confidence), "alert", id)
	return bus.Message{Topic: s.cfg.Topics.Alerts, Key: []byte(c.Room), Value: b}, nil
}
