// Package erasure carries out `earshot erase`: for a person (every
// pseudonym they had) or a room, it destroys the data keys
// (crypto-shredding every copy, Kafka records and old object versions
// included) and deletes the objects with all their versions.
//
// A legal hold beats erasure: held data is left, the erasure is recorded as
// pending (erasure/pending/<id>.json plus an audit entry "deferred") and
// completed by CompletePending once the hold is lifted. Erase is
// idempotent: a second run finds nothing left.
//
// A bot may still be recording a person when they are erased: other
// processes keep an unwrapped data key in memory for up to the keyring's
// cache TTL, so a segment sealed in that window can land after the
// erasure. A completed erasure therefore leaves a recheck record
// (erasure/recheck/<id>.json) and CompletePending runs it once more after
// RecheckAfter, in the sessions the first run touched; the recheck is
// audited like any run.
package erasure

import (
	"bytes"
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
	"github.com/earshot/earshot/compliance/retention"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/storage"
	"github.com/earshot/earshot/storage/crypt"
)

// Kinds of erasure.
const (
	KindPerson = "person"
	KindRoom   = "room"
)

// Statuses of a receipt.
const (
	StatusErased   = "erased"       // everything found was destroyed
	StatusNothing  = "nothing left" // nothing was found (already erased)
	StatusDeferred = "deferred"     // held data is left until the hold is lifted
)

// PendingPrefix is where deferred erasures are recorded.
const PendingPrefix = "erasure/pending/"

// RecheckPrefix is where completed erasures wait for their recheck.
const RecheckPrefix = "erasure/recheck/"

// DefaultRecheckAfter is twice the keyring's cache TTL: past it no
// process can still seal under a shredded key.
const DefaultRecheckAfter = 2 * crypt.DefaultCacheTTL

// Keyring is the part of the durable keyring erasure uses
// (retention.CryptKeys adapts crypt.Keyring to it).
type Keyring = retention.Keyring

// Request is one erasure.
type Request struct {
	Kind     string   `json:"kind"`     // person or room
	Subjects []string `json:"subjects"` // pseudonyms (every key version's)
	Operator string   `json:"operator"`
	Reason   string   `json:"reason,omitempty"`
}

// ID names the erasure of these subjects; the same request has the same ID,
// so a repeated deferred erasure updates one pending record.
func (r Request) ID() string {
	s := slices.Clone(r.Subjects)
	slices.Sort(s)
	return event.DeriveID("era", append([]string{r.Kind}, s...)...)
}

// Receipt says what an erasure did.
type Receipt struct {
	ID       string    `json:"id"`
	Kind     string    `json:"kind"`
	Subjects []string  `json:"subjects"`
	Operator string    `json:"operator"`
	Reason   string    `json:"reason,omitempty"`
	Time     time.Time `json:"time"`
	Status   string    `json:"status"`
	// KeysDestroyed are the IDs of the data keys shredded.
	KeysDestroyed []string `json:"keys_destroyed"`
	// Sessions are the sessions whose data was erased.
	Sessions int              `json:"sessions"`
	Deleted  retention.Counts `json:"deleted"`
	// Deferred are the held scopes left for later.
	Deferred []retention.Scope `json:"deferred,omitempty"`
	// Pending is the key of the pending record while deferred.
	Pending string `json:"pending,omitempty"`
	// Completes names the deferred erasure this run completed, if any.
	Completes string `json:"completes,omitempty"`
	// ManifestsRewritten counts the session manifests rewritten without
	// the erased person (their older versions are in Deleted).
	ManifestsRewritten int `json:"manifests_rewritten,omitempty"`
	// Recheck is the key of the record that has this erasure run once
	// more, after RecheckAfter, for what bots still wrote meanwhile.
	Recheck string `json:"recheck,omitempty"`

	touched []retention.Scope // sessions erased in, for the recheck
}

// Config configures an Eraser.
type Config struct {
	Store retention.Store  // required
	Keys  Keyring          // required
	Holds *retention.Holds // required
	Audit audit.Recorder   // required: every erasure is audited
	// RecheckAfter is how long after a completed erasure it is run once
	// more (DefaultRecheckAfter when zero; negative: never).
	RecheckAfter time.Duration
	Now          func() time.Time // default time.Now
	Logger       *slog.Logger
}

// Eraser erases people and rooms.
type Eraser struct {
	cfg Config
	log *slog.Logger
}

// New checks cfg.
func New(cfg Config) (*Eraser, error) {
	if cfg.Store == nil || cfg.Keys == nil || cfg.Holds == nil || cfg.Audit == nil {
		return nil, errors.New("erasure: store, keys, holds and audit are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.RecheckAfter == 0 {
		cfg.RecheckAfter = DefaultRecheckAfter
	}
	return &Eraser{cfg: cfg, log: cfg.Logger.With("stage", "erasure")}, nil
}

// place is one session a subject has data in.
type place struct {
	room, session string
	refs          []event.KeyRef
	speakers      map[string]bool
}

// Erase carries out req and records it in the audit log.
func (e *Eraser) Erase(ctx context.Context, req Request) (Receipt, error) {
	rc, err := e.erase(ctx, req, "", nil)
	return rc, err
}

// erase runs req. completes names the pending or recheck record this run
// settles; also, for a recheck, the sessions to look in besides those
// found (a manifest may be all that names the person there).
func (e *Eraser) erase(ctx context.Context, req Request, completes string, also []retention.Scope) (Receipt, error) {
	rc := Receipt{ID: req.ID(), Kind: req.Kind, Subjects: req.Subjects, Operator: req.Operator, Reason: req.Reason,
		Time: e.cfg.Now().UTC(), KeysDestroyed: []string{}, Completes: completes}
	if req.Kind != KindPerson && req.Kind != KindRoom {
		return rc, fmt.Errorf("erasure: kind %q is not person or room", req.Kind)
	}
	if len(req.Subjects) == 0 {
		return rc, errors.New("erasure: no subject")
	}
	err := e.run(ctx, req, &rc, also)
	if err == nil {
		err = e.settle(ctx, req, &rc, also != nil)
	}
	outcome := audit.OutcomeOK
	switch {
	case err != nil:
		outcome = audit.OutcomeFailed
	case rc.Status == StatusDeferred:
		outcome = audit.OutcomeDeferred
	}
	detail := fmt.Sprintf("%s %s: %s; %d keys destroyed, %d objects and %d versions deleted in %d sessions",
		req.Kind, rc.ID, rc.Status, len(rc.KeysDestroyed), rc.Deleted.Objects, rc.Deleted.Versions, rc.Sessions)
	if rc.ManifestsRewritten > 0 {
		detail += fmt.Sprintf("; %d manifests rewritten without them", rc.ManifestsRewritten)
	}
	if len(rc.Deferred) > 0 {
		detail += fmt.Sprintf("; %d held scopes deferred (%s)", len(rc.Deferred), rc.Pending)
	}
	switch {
	case also != nil:
		detail += "; recheck of the erasure for data written after it"
	case completes != "":
		detail += "; completes the deferred erasure " + completes
	}
	if err != nil {
		detail += "; failed: " + err.Error()
	}
	if aerr := e.cfg.Audit.Record(ctx, event.AuditEntry{Operator: req.Operator, Action: audit.ActionErase,
		Subject: strings.Join(req.Subjects, ","), Reason: req.Reason, Outcome: outcome, Detail: detail}); aerr != nil {
		err = errors.Join(err, aerr)
	}
	return rc, err
}

func (e *Eraser) run(ctx context.Context, req Request, rc *Receipt, also []retention.Scope) error {
	holds, err := e.cfg.Holds.List(ctx)
	if err != nil {
		return err
	}
	for _, subj := range req.Subjects {
		places, err := e.find(ctx, req.Kind, subj)
		if err != nil {
			return err
		}
		for _, sc := range also {
			if sc.Speaker == subj || (req.Kind == KindRoom && sc.Room == subj) {
				k := sc.Room + "/" + sc.Session
				if places[k] == nil {
					places[k] = &place{room: sc.Room, session: sc.Session, speakers: map[string]bool{}}
				}
			}
		}
		for _, k := range slices.Sorted(maps.Keys(places)) {
			p := places[k]
			speaker := ""
			if req.Kind == KindPerson {
				speaker = subj
			}
			if held(holds, req.Kind, p, speaker) {
				rc.Deferred = append(rc.Deferred, retention.Scope{Room: p.room, Session: p.session, Speaker: speaker})
				continue
			}
			// Keys first: once they are gone nothing of the subject can be
			// read, even if deleting the bytes fails half-way.
			for _, ref := range p.refs {
				if err := e.cfg.Keys.Shred(ctx, ref); err != nil {
					return fmt.Errorf("erasure: shred %s: %w", ref.ID, err)
				}
				rc.KeysDestroyed = append(rc.KeysDestroyed, ref.ID)
			}
			var c retention.Counts
			sel := retention.SessionData(p.room, p.session, nil, nil)
			if req.Kind == KindPerson {
				speakers, err := retention.TrackSpeakers(ctx, e.cfg.Store, retention.SessionAudio(p.room, p.session))
				if err != nil {
					return fmt.Errorf("erasure: %w", err)
				}
				sel = retention.SpeakerData(p.room, p.session, subj, speakers)
				// The manifest stays (it is the session's) but mixes
				// speakers under the session key: take the person out.
				// Before their audio and events go, so that a run
				// interrupted here still finds the session next time
				// (by the audio's own metadata, whatever the manifest
				// says by then).
				rewritten, mc, err := e.scrubManifest(ctx, p.room, p.session, subj, retention.TracksOf(speakers, subj))
				c.Add(mc)
				rc.Deleted.Add(mc)
				if rewritten {
					rc.ManifestsRewritten++
				}
				if err != nil {
					return err
				}
			}
			pc, err := retention.PurgeSelected(ctx, e.cfg.Store, p.room, p.session, sel)
			c.Add(pc)
			rc.Deleted.Add(pc)
			if err != nil {
				return err
			}
			if c.Locked > 0 {
				// Object lock kept some versions: the bucket holds them
				// whatever the markers say; finish once it lets go.
				rc.Deferred = append(rc.Deferred, retention.Scope{Room: p.room, Session: p.session, Speaker: speaker})
			}
			rc.Sessions++
			rc.touched = append(rc.touched, retention.Scope{Room: p.room, Session: p.session, Speaker: speaker})
		}
	}
	return nil
}

// held reports whether a hold keeps place p from being erased.
func held(holds []retention.Hold, kind string, p *place, speaker string) bool {
	if kind == KindPerson {
		return len(retention.Covered(holds, p.room, p.session, speaker)) > 0
	}
	if len(retention.Covered(holds, p.room, p.session, "")) > 0 {
		return true
	}
	for sp := range p.speakers {
		if len(retention.Covered(holds, p.room, p.session, sp)) > 0 {
			return true
		}
	}
	return false
}

// find returns the sessions in which subj has keys or data. It looks in
// the key index and scans storage too (all versions), so that data whose
// keys are already gone (an earlier, interrupted run) is still found.
func (e *Eraser) find(ctx context.Context, kind, subj string) (map[string]*place, error) {
	out := map[string]*place{}
	get := func(room, session string) *place {
		k := room + "/" + session
		p := out[k]
		if p == nil {
			p = &place{room: room, session: session, speakers: map[string]bool{}}
			out[k] = p
		}
		return p
	}
	scope := retention.Scope{Room: subj}
	if kind == KindPerson {
		scope = retention.Scope{Speaker: subj}
	}
	for ref, err := range e.cfg.Keys.KeysOf(ctx, scope) {
		if err != nil {
			return nil, fmt.Errorf("erasure: list keys of %s: %w", subj, err)
		}
		p := get(ref.Room, ref.Session)
		p.refs = append(p.refs, ref)
		if ref.Speaker != "" {
			p.speakers[ref.Speaker] = true
		}
	}
	events, audioP, manifests := archive.Prefix, retention.AudioPrefix, ""
	if kind == KindRoom {
		events, audioP, manifests = archive.ScopePrefix(subj, "", ""), retention.AudioPrefix+subj+"/", retention.ManifestPrefix+subj+"/"
	}
	for kv, err := range retention.Keys(ctx, e.cfg.Store, events, nil) {
		if err != nil {
			return nil, err
		}
		r, ok := archive.ParseKey(kv.Key)
		if !ok || (kind == KindPerson && r.Speaker != subj) || (kind == KindRoom && r.Room != subj) {
			continue
		}
		p := get(r.Room, r.Session)
		if r.Speaker != "" {
			p.speakers[r.Speaker] = true
		}
	}
	var speakers map[string]string
	if kind == KindPerson {
		var err error
		if speakers, err = retention.TrackSpeakers(ctx, e.cfg.Store, audioP); err != nil {
			return nil, fmt.Errorf("erasure: %w", err)
		}
	}
	for kv, err := range retention.Keys(ctx, e.cfg.Store, audioP, nil) {
		if err != nil {
			return nil, err
		}
		a, ok := retention.ParseAudioKey(kv.Key)
		if !ok || (kind == KindPerson && speakers[a.Track] != subj) {
			continue
		}
		get(a.Room, a.Session)
	}
	if manifests != "" {
		for kv, err := range retention.Keys(ctx, e.cfg.Store, manifests, nil) {
			if err != nil {
				return nil, err
			}
			if r, s, ok := retention.ParseManifestKey(kv.Key); ok {
				get(r, s)
			}
		}
	}
	return out, nil
}

// pending is the stored record of a deferred erasure.
type pending struct {
	Request   Request           `json:"request"`
	Deferred  []retention.Scope `json:"deferred"`
	Requested time.Time         `json:"requested"`
	Updated   time.Time         `json:"updated"`
}

// PendingKey is the object key of a deferred erasure's record.
func PendingKey(id string) string { return PendingPrefix + id + ".json" }

// settle sets the receipt's status and records or clears the pending
// record; a completed first run also records its recheck.
func (e *Eraser) settle(ctx context.Context, req Request, rc *Receipt, isRecheck bool) error {
	key := PendingKey(rc.ID)
	switch {
	case len(rc.Deferred) > 0:
		rc.Status, rc.Pending = StatusDeferred, key
		pr := pending{Request: req, Deferred: rc.Deferred, Requested: rc.Time, Updated: rc.Time}
		if old, err := e.readPending(ctx, key); err == nil {
			pr.Requested = old.Requested
		}
		b, err := json.MarshalIndent(pr, "", "  ")
		if err != nil {
			return fmt.Errorf("erasure: encode pending record: %w", err)
		}
		if _, err := e.cfg.Store.Put(ctx, key, bytes.NewReader(b), int64(len(b)), storage.PutOptions{ContentType: "application/json"}); err != nil {
			return fmt.Errorf("erasure: record deferred erasure: %w", err)
		}
		return nil
	case len(rc.KeysDestroyed) > 0 || rc.Deleted.Objects > 0 || rc.ManifestsRewritten > 0:
		rc.Status = StatusErased
	default:
		rc.Status = StatusNothing
	}
	if rc.Status == StatusErased && !isRecheck && e.cfg.RecheckAfter > 0 {
		rk := RecheckKey(rc.ID)
		b, err := json.MarshalIndent(recheck{Request: req, Sessions: rc.touched, Due: rc.Time.Add(e.cfg.RecheckAfter)}, "", "  ")
		if err != nil {
			return fmt.Errorf("erasure: encode recheck record: %w", err)
		}
		if _, err := e.cfg.Store.Put(ctx, rk, bytes.NewReader(b), int64(len(b)), storage.PutOptions{ContentType: "application/json"}); err != nil {
			return fmt.Errorf("erasure: record recheck: %w", err)
		}
		rc.Recheck = rk
	}
	if err := e.cfg.Store.DeleteAll(ctx, key); err != nil {
		return fmt.Errorf("erasure: clear pending record: %w", err)
	}
	return nil
}

// recheck is the stored record of a completed erasure awaiting its
// second run.
type recheck struct {
	Request  Request           `json:"request"`
	Sessions []retention.Scope `json:"sessions"`
	Due      time.Time         `json:"due"`
}

// RecheckKey is the object key of a completed erasure's recheck record.
func RecheckKey(id string) string { return RecheckPrefix + id + ".json" }

func (e *Eraser) readPending(ctx context.Context, key string) (pending, error) {
	var pr pending
	return pr, e.readRecord(ctx, key, &pr)
}

// readRecord decodes the JSON record at key into v.
func (e *Eraser) readRecord(ctx context.Context, key string, v any) error {
	r, _, err := e.cfg.Store.Get(ctx, key)
	if err != nil {
		return err
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, 1<<20))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("erasure: record %s: %w", key, err)
	}
	return nil
}

// Pending lists the deferred erasures.
func (e *Eraser) Pending(ctx context.Context) ([]Request, error) {
	var out []Request
	for oi, err := range e.cfg.Store.List(ctx, PendingPrefix) {
		if err != nil {
			return nil, fmt.Errorf("erasure: list pending: %w", err)
		}
		pr, err := e.readPending(ctx, oi.Key)
		if err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				continue
			}
			return nil, err
		}
		out = append(out, pr.Request)
	}
	return out, nil
}

// CompletePending retries each deferred erasure some of whose held scopes
// are no longer held, and returns how many it completed.
func (e *Eraser) CompletePending(ctx context.Context) (int, error) {
	holds, err := e.cfg.Holds.List(ctx)
	if err != nil {
		return 0, err
	}
	done := 0
	var errs []error
	for oi, err := range e.cfg.Store.List(ctx, PendingPrefix) {
		if err != nil {
			return done, fmt.Errorf("erasure: list pending: %w", err)
		}
		pr, err := e.readPending(ctx, oi.Key)
		if err != nil {
			if !errors.Is(err, storage.ErrNotFound) {
				errs = append(errs, err)
			}
			continue
		}
		released := false
		for _, s := range pr.Deferred {
			if len(retention.Covered(holds, s.Room, s.Session, s.Speaker)) == 0 {
				released = true
			}
		}
		if !released {
			continue // still held: nothing to do, nothing to audit
		}
		rc, err := e.erase(ctx, pr.Request, pr.Request.ID(), nil)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if rc.Status != StatusDeferred {
			done++
			e.log.Info("deferred erasure completed", "id", rc.ID, "keys", len(rc.KeysDestroyed), "objects", rc.Deleted.Objects)
		}
	}
	errs = append(errs, e.recheckDue(ctx))
	return done, errors.Join(errs...)
}

// recheckDue runs the rechecks whose time has come and clears their
// records.
func (e *Eraser) recheckDue(ctx context.Context) error {
	var errs []error
	for oi, err := range e.cfg.Store.List(ctx, RecheckPrefix) {
		if err != nil {
			return fmt.Errorf("erasure: list rechecks: %w", err)
		}
		var r recheck
		if err := e.readRecord(ctx, oi.Key, &r); err != nil {
			if !errors.Is(err, storage.ErrNotFound) {
				errs = append(errs, err)
			}
			continue
		}
		if e.cfg.Now().Before(r.Due) {
			continue
		}
		rc, err := e.erase(ctx, r.Request, r.Request.ID(), append([]retention.Scope{}, r.Sessions...))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := e.cfg.Store.DeleteAll(ctx, oi.Key); err != nil {
			errs = append(errs, fmt.Errorf("erasure: clear recheck record: %w", err))
			continue
		}
		if rc.Status == StatusErased {
			e.log.Warn("erasure recheck found data written after the erasure and erased it", "id", rc.ID,
				"keys", len(rc.KeysDestroyed), "objects", rc.Deleted.Objects, "manifests", rc.ManifestsRewritten)
		}
	}
	return errors.Join(errs...)
}
