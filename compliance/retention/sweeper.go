package retention

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/earshot/earshot/compliance/archive"
	"github.com/earshot/earshot/compliance/audit"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/storage"
)

// PendingCompleter completes erasures that holds deferred, once the holds
// are lifted (erasure.Eraser).
type PendingCompleter interface {
	CompletePending(ctx context.Context) (int, error)
}

// TopicSetter applies the configured Kafka topic retention (KafkaTopics).
type TopicSetter interface {
	Apply(ctx context.Context) error
}

// ActionExpire is the audit action of a session the sweeper deleted.
const ActionExpire = "retention.expire"

// SweeperConfig configures a Sweeper.
type SweeperConfig struct {
	Store  Store   // required
	Holds  *Holds  // required
	Policy *Policy // required
	// AssumeEndedAfter treats a session without session_ended as ended this
	// long after its newest object. Default 24h.
	AssumeEndedAfter time.Duration
	// Interval between sweeps. Default 5m.
	Interval time.Duration
	Pending  PendingCompleter // optional
	Topics   TopicSetter      // optional
	Audit    audit.Recorder   // optional: one entry per expired session
	// Keys, when set, shreds the data keys of expired data too, so that
	// copies outside storage (retained Kafka records, backups) expire
	// with it.
	Keys   Keyring
	Now    func() time.Time // default time.Now
	Logger *slog.Logger
}

// Sweeper deletes expired sessions with all their object versions,
// completes deferred erasures and keeps Kafka topic retention in line.
type Sweeper struct {
	cfg SweeperConfig
	log *slog.Logger
}

// NewSweeper checks cfg.
func NewSweeper(cfg SweeperConfig) (*Sweeper, error) {
	if cfg.Store == nil || cfg.Holds == nil || cfg.Policy == nil {
		return nil, errors.New("retention: sweeper needs a store, holds and a policy")
	}
	if cfg.AssumeEndedAfter <= 0 {
		cfg.AssumeEndedAfter = 24 * time.Hour
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 5 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Sweeper{cfg: cfg, log: cfg.Logger.With("stage", "sweeper")}, nil
}

// Run sweeps now and then every Interval until ctx ends. A failed sweep is
// logged and retried at the next tick.
func (s *Sweeper) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		rep, err := s.Sweep(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			s.log.Error("sweep failed; retrying at the next interval", "err", err, "interval", s.cfg.Interval)
		case rep.Expired > 0 || rep.Erasures > 0:
			s.log.Info("sweep", "sessions", rep.Sessions, "expired", rep.Expired, "held", rep.Held,
				"objects", rep.Deleted.Objects, "versions", rep.Deleted.Versions, "locked", rep.Deleted.Locked, "erasures_completed", rep.Erasures)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Close is a no-op; Run stops with its context.
func (s *Sweeper) Close() error { return nil }

// SweepReport says what one sweep did.
type SweepReport struct {
	Sessions int    // sessions found in storage
	Expired  int    // sessions (or their unheld parts) deleted
	Held     int    // expired sessions kept whole by a hold
	Deleted  Counts // objects and versions removed
	Keys     int    // data keys shredded
	Erasures int    // deferred erasures completed
}

// session is what the sweeper knows of one recorded session.
type session struct {
	room, id  string
	ended     time.Time
	hasEnd    bool
	last      time.Time
	alerts    int
	confirmed bool
	meta      map[string]string
	speakers  map[string]bool
}

// Sweep runs once.
func (s *Sweeper) Sweep(ctx context.Context) (SweepReport, error) {
	var rep SweepReport
	now := s.cfg.Now()
	holds, err := s.cfg.Holds.List(ctx)
	if err != nil {
		return rep, err
	}
	sessions, err := s.index(ctx)
	if err != nil {
		return rep, err
	}
	rep.Sessions = len(sessions)
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(sessions)) {
		ss := sessions[k]
		end := ss.ended
		if !ss.hasEnd {
			if now.Before(ss.last.Add(s.cfg.AssumeEndedAfter)) {
				continue
			}
			end = ss.last
		}
		name, class := s.cfg.Policy.ClassOf(ss.room, ss.meta)
		exp := Expires(class, Facts{Ended: end, Alerts: ss.alerts, Confirmed: ss.confirmed})
		if now.Before(exp) {
			continue
		}
		// The end a record claims may be forged (or precede audio stored
		// after it): the session ends no earlier than its newest audio.
		// Read only for sessions about to expire, as it stats segments.
		audioEnd, stored, err := AudioEnd(ctx, s.cfg.Store, SessionAudio(ss.room, ss.id))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if stored && audioEnd.After(end) {
			// Timelines are stamped on arrival, so the last segment may
			// end a moment after the recorded end; a minute is not that.
			lvl := slog.LevelDebug
			if audioEnd.Sub(end) > time.Minute {
				lvl = slog.LevelWarn
			}
			s.log.Log(ctx, lvl, "session's audio ends after its recorded end; retention counts from the audio", "room", ss.room, "session", ss.id,
				"recorded_end", end, "audio_end", audioEnd)
			end = audioEnd
			if exp = Expires(class, Facts{Ended: end, Alerts: ss.alerts, Confirmed: ss.confirmed}); now.Before(exp) {
				continue
			}
		}
		if len(Covered(holds, ss.room, ss.id, "")) > 0 {
			rep.Held++
			continue
		}
		// Who is in the session: the speakers of its archived events and
		// of its stored audio (either may outlive the other).
		speakers, err := TrackSpeakers(ctx, s.cfg.Store, SessionAudio(ss.room, ss.id))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var keep []string
		for _, sp := range slices.Sorted(maps.Keys(ss.speakers)) {
			if len(Covered(holds, ss.room, ss.id, sp)) > 0 {
				keep = append(keep, sp)
			}
		}
		for _, sp := range speakers {
			if !ss.speakers[sp] && !slices.Contains(keep, sp) && len(Covered(holds, ss.room, ss.id, sp)) > 0 {
				keep = append(keep, sp)
			}
		}
		c, err := PurgeSelected(ctx, s.cfg.Store, ss.room, ss.id, SessionData(ss.room, ss.id, keep, speakers))
		rep.Deleted.Add(c)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		shredded, err := s.shred(ctx, ss.room, ss.id, keep)
		rep.Keys += shredded
		if err != nil {
			errs = append(errs, err)
			continue
		}
		rep.Expired++
		s.log.Info("session expired", "keys_shredded", shredded, "room", ss.room, "session", ss.id, "class", name, "ended", end, "expired", exp,
			"objects", c.Objects, "versions", c.Versions, "locked", c.Locked, "held_speakers", len(keep))
		if s.cfg.Audit != nil {
			detail := fmt.Sprintf("class %s (%s), ended %s, %d objects, %d versions deleted, %d keys shredded", name, class.Mode, end.UTC().Format(time.RFC3339), c.Objects, c.Versions, shredded)
			if len(keep) > 0 {
				detail += fmt.Sprintf("; %d held speakers kept", len(keep))
			}
			if err := s.cfg.Audit.Record(ctx, event.AuditEntry{Operator: "system", Action: ActionExpire, Subject: ss.id,
				Reason: "retention policy", Outcome: audit.OutcomeOK, Detail: detail}); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if s.cfg.Pending != nil {
		n, err := s.cfg.Pending.CompletePending(ctx)
		rep.Erasures = n
		if err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := s.cfg.Holds.Apply(ctx, holds); err != nil {
		errs = append(errs, err)
	}
	if s.cfg.Topics != nil {
		if err := s.cfg.Topics.Apply(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return rep, errors.Join(errs...)
}

// shred destroys the data keys of an expired session, but those of the
// held speakers in keep and, when any is held, the session key (shared
// data stays).
func (s *Sweeper) shred(ctx context.Context, room, session string, keep []string) (int, error) {
	if s.cfg.Keys == nil {
		return 0, nil
	}
	var refs []event.KeyRef
	for ref, err := range s.cfg.Keys.KeysOf(ctx, Scope{Room: room, Session: session}) {
		if err != nil {
			return 0, fmt.Errorf("retention: keys of %s: %w", session, err)
		}
		if ref.Session != session || (ref.Speaker == "" && len(keep) > 0) || slices.Contains(keep, ref.Speaker) {
			continue
		}
		refs = append(refs, ref)
	}
	for i, ref := range refs {
		if err := s.cfg.Keys.Shred(ctx, ref); err != nil {
			return i, fmt.Errorf("retention: shred %s: %w", ref.ID, err)
		}
	}
	return len(refs), nil
}

// index finds every session in storage with what its retention depends on.
func (s *Sweeper) index(ctx context.Context) (map[string]*session, error) {
	out := map[string]*session{}
	get := func(room, id string) *session {
		k := room + "/" + id
		ss := out[k]
		if ss == nil {
			ss = &session{room: room, id: id, speakers: map[string]bool{}}
			out[k] = ss
		}
		return ss
	}
	touch := func(ss *session, t time.Time) {
		if t.After(ss.last) {
			ss.last = t
		}
	}
	alertSession := map[string]*session{} // alert event ID -> its session
	var actions []*event.Envelope
	for kv, err := range Keys(ctx, s.cfg.Store, archive.Prefix, nil) {
		if err != nil {
			return nil, err
		}
		ref, ok := archive.ParseKey(kv.Key)
		if !ok {
			continue
		}
		if ref.Type == event.TypeAlertAction {
			// Actions may carry only the room: they are placed through
			// their alert below.
			if kv.Live {
				e, err := archive.Read(ctx, s.cfg.Store, kv.Key)
				if err != nil {
					s.log.Warn("archived alert action unreadable; skipped", "key", kv.Key, "err", err)
				} else {
					actions = append(actions, e)
				}
			}
			if ref.Session == "" {
				continue
			}
		}
		if ref.Room == "" || ref.Session == "" {
			continue
		}
		ss := get(ref.Room, ref.Session)
		touch(ss, kv.Newest.ModTime)
		if ref.Speaker != "" {
			ss.speakers[ref.Speaker] = true
		}
		if !kv.Live {
			continue
		}
		switch {
		case ref.Type == event.TypeAlert:
			ss.alerts++
			alertSession[ref.EventID] = ss
		case strings.HasPrefix(string(ref.Type), "report."):
			ss.alerts++
		case ref.Type == event.TypeSessionEnded, ref.Type == event.TypeSessionStarted:
			e, err := archive.Read(ctx, s.cfg.Store, kv.Key)
			if err != nil {
				s.log.Warn("archived lifecycle event unreadable; skipped", "key", kv.Key, "err", err)
				continue
			}
			if ref.Type == event.TypeSessionEnded {
				// The latest of several: an earlier one may be forged.
				if !ss.hasEnd || e.Time.After(ss.ended) {
					ss.ended, ss.hasEnd = e.Time, true
				}
			} else {
				var p event.SessionStarted
				if e.DecodePayload(&p) == nil {
					ss.meta = p.Metadata
				}
			}
		}
	}
	for _, e := range actions {
		var a event.AlertAction
		if e.DecodePayload(&a) != nil || a.Action != event.ActionConfirm {
			continue
		}
		if ss := alertSession[a.Alert]; ss != nil {
			ss.confirmed = true
		}
	}
	for kv, err := range Keys(ctx, s.cfg.Store, AudioPrefix, nil) {
		if err != nil {
			return nil, err
		}
		if a, ok := ParseAudioKey(kv.Key); ok {
			touch(get(a.Room, a.Session), kv.Newest.ModTime)
		}
	}
	for kv, err := range Keys(ctx, s.cfg.Store, ManifestPrefix, nil) {
		if err != nil {
			return nil, err
		}
		r, id, ok := ParseManifestKey(kv.Key)
		if !ok {
			continue
		}
		ss := get(r, id)
		touch(ss, kv.Newest.ModTime)
		if !kv.Live {
			continue
		}
		// The manifest names the session's speakers and, once it ended,
		// when: the latest of its end and the archive's counts.
		m, err := readManifest(ctx, s.cfg.Store, kv.Key)
		if err != nil {
			s.log.Warn("manifest unreadable; skipped", "key", kv.Key, "err", err)
			continue
		}
		for _, t := range m.Tracks {
			if t.Speaker != "" {
				ss.speakers[t.Speaker] = true
			}
		}
		if m.Ended != nil && (!ss.hasEnd || m.Ended.After(ss.ended)) {
			ss.ended, ss.hasEnd = *m.Ended, true
		}
	}
	return out, nil
}

// manifest is the part of a session manifest (ingest.Manifest) the
// sweeper reads.
type manifest struct {
	Ended  *time.Time `json:"ended"`
	Tracks []struct {
		Speaker string `json:"speaker"`
	} `json:"tracks"`
}

func readManifest(ctx context.Context, s storage.Getter, key string) (manifest, error) {
	var m manifest
	rc, _, err := s.Get(ctx, key)
	if err != nil {
		return m, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 16<<20))
	if err != nil {
		return m, err
	}
	return m, json.Unmarshal(b, &m)
}
