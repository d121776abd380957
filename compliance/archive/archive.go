// Package archive keeps every transcript, alert, alert action and lifecycle
// event in object storage, so that exports and the retention sweeper still
// find them after Kafka's retention has dropped the records.
//
// Each envelope is stored as it was consumed, create-only, under
//
//	events/<room>/<session>/<speaker or _>/<type>/<event_id>.json
//
// with user metadata room, session and speaker (pseudonyms), which is what
// an encrypting store (crypt.Store) chooses the object's data key by. The
// envelope's protected part is already sealed per speaker. A redelivered
// event finds its object taken and is acknowledged: the archive is
// idempotent on event IDs.
package archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"strings"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/storage"
)

// Prefix is where archived events live.
const Prefix = "events/"

// None stands for an empty room, session or speaker in keys.
const None = "_"

// Topics are the topics the archive consumes.
var Topics = []string{event.TopicTranscripts, event.TopicAlerts, event.TopicAlertActions, event.TopicLifecycle}

func part(s string) string {
	if s == "" {
		return None
	}
	return s
}

// Key returns the object key of an archived event.
func Key(e *event.Envelope) string {
	return fmt.Sprintf("%s%s/%s/%s/%s/%s.json", Prefix, part(e.Room), part(e.Session), part(e.Speaker), e.Type, e.EventID)
}

// ScopePrefix returns the listing prefix of a room's archived events,
// narrowed to a session and a speaker when they are given.
func ScopePrefix(room, session, speaker string) string {
	p := Prefix + part(room) + "/"
	if session == "" {
		return p
	}
	p += session + "/"
	if speaker == "" {
		return p
	}
	return p + speaker + "/"
}

// Ref is what an archived event's key says about it.
type Ref struct {
	Key, Room, Session, Speaker string // "" for None
	Type                        event.Type
	EventID                     string
}

// ParseKey reads an archive key back; ok is false for other keys.
func ParseKey(key string) (Ref, bool) {
	rest, ok := strings.CutPrefix(key, Prefix)
	if !ok {
		return Ref{}, false
	}
	p := strings.Split(rest, "/")
	if len(p) != 5 || !strings.HasSuffix(p[4], ".json") {
		return Ref{}, false
	}
	un := func(s string) string {
		if s == None {
			return ""
		}
		return s
	}
	return Ref{Key: key, Room: un(p[0]), Session: un(p[1]), Speaker: un(p[2]), Type: event.Type(p[3]), EventID: strings.TrimSuffix(p[4], ".json")}, true
}

// Metadata returns the user metadata of an archived event's object.
func Metadata(e *event.Envelope) map[string]string {
	md := map[string]string{"event-type": string(e.Type)}
	if e.Room != "" {
		md["room"] = e.Room
	}
	if e.Session != "" {
		md["session"] = e.Session
	}
	if e.Speaker != "" {
		md["speaker"] = e.Speaker
	}
	return md
}

// Writer stores envelopes; Put is create-only and idempotent.
type Writer struct {
	Store storage.Putter
}

// Put archives one envelope. An event already archived is not an error.
func (w Writer) Put(ctx context.Context, e *event.Envelope, raw []byte) error {
	if raw == nil {
		var err error
		if raw, err = e.Marshal(); err != nil {
			return err
		}
	}
	_, err := w.Store.Put(ctx, Key(e), bytes.NewReader(raw), int64(len(raw)), storage.PutOptions{
		ContentType: "application/json", Metadata: Metadata(e), IfAbsent: true,
	})
	if err != nil && !errors.Is(err, storage.ErrExists) {
		return fmt.Errorf("archive: store %s %s: %w", e.Type, e.EventID, err)
	}
	return nil
}

// Reader is what reading the archive needs.
type Reader interface {
	storage.Lister
	storage.Getter
}

// Events yields the archived envelopes under prefix (ScopePrefix) whose
// type is one of types (all when none are given), in key order.
func Events(ctx context.Context, s Reader, prefix string, types ...event.Type) iter.Seq2[*event.Envelope, error] {
	return func(yield func(*event.Envelope, error) bool) {
		for oi, err := range s.List(ctx, prefix) {
			if err != nil {
				yield(nil, fmt.Errorf("archive: list %s: %w", prefix, err))
				return
			}
			ref, ok := ParseKey(oi.Key)
			if !ok || (len(types) > 0 && !hasType(types, ref.Type)) {
				continue
			}
			e, err := Read(ctx, s, oi.Key)
			if errors.Is(err, storage.ErrNotFound) {
				continue // deleted since listed (sweeper, erasure)
			}
			if !yield(e, err) || err != nil {
				return
			}
		}
	}
}

func hasType(ts []event.Type, t event.Type) bool {
	for _, x := range ts {
		if x == t {
			return true
		}
	}
	return false
}

// Read fetches and decodes one archived envelope.
func Read(ctx context.Context, s storage.Getter, key string) (*event.Envelope, error) {
	rc, _, err := s.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("archive: read %s: %w", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, event.MaxEventBytes+1))
	if err != nil {
		return nil, fmt.Errorf("archive: read %s: %w", key, err)
	}
	e, err := event.Decode(b)
	if err != nil {
		return nil, fmt.Errorf("archive: %s: %w", key, err)
	}
	return e, nil
}

// Consumer is the part of bus.Consumer the archiver drives.
type Consumer interface {
	Run(ctx context.Context, h bus.Handler) error
	Close() error
}

// Config configures an Archiver.
type Config struct {
	Consumer Consumer       // on Topics; required
	Store    storage.Putter // required; an encrypting store in deployments
	// DeadLetter receives records that are not valid events; nil logs and
	// drops them.
	DeadLetter bus.Sender
	// Retry is the pause between attempts to store an event while the store
	// is unavailable. Default 1 s.
	Retry  time.Duration
	Logger *slog.Logger
	// Keys, when set, are the deployment's: an event whose protected part
	// was not sealed under them for that event is not archived (the
	// archive keeps the first record of an ID, so a forged one must not
	// take a real one's place).
	Keys event.Keys
}

// Archiver consumes the archived topics into storage.
type Archiver struct {
	cfg Config
	w   Writer
	log *slog.Logger
}

// New checks cfg and builds an Archiver.
func New(cfg Config) (*Archiver, error) {
	if cfg.Consumer == nil || cfg.Store == nil {
		return nil, errors.New("archive: consumer and store are required")
	}
	if cfg.Retry <= 0 {
		cfg.Retry = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Archiver{cfg: cfg, w: Writer{Store: cfg.Store}, log: cfg.Logger.With("stage", "archive")}, nil
}

// Run archives records until ctx ends or Close is called.
func (a *Archiver) Run(ctx context.Context) error { return a.cfg.Consumer.Run(ctx, a.Handle) }

// Close stops the consumer. It is idempotent.
func (a *Archiver) Close() error { return a.cfg.Consumer.Close() }

// Handle archives one record and acknowledges it once it is stored. While
// the store fails, it retries (the record stays unacknowledged, so a crash
// redelivers it); when ctx ends it gives up without acknowledging.
func (a *Archiver) Handle(ctx context.Context, d *bus.Delivery) {
	e, err := event.Decode(d.Value)
	if err == nil {
		err = e.CheckPayload()
	}
	if err == nil && e.Protected != nil {
		err = e.VerifySealed(ctx, a.cfg.Keys)
	}
	if err != nil {
		a.log.Warn("not an event to archive; dead-lettered", "topic", d.Topic, "offset", d.Offset, "err", err)
		if a.cfg.DeadLetter != nil {
			if derr := bus.DeadLetter(ctx, a.cfg.DeadLetter, event.TopicDeadLetter, d.Message, err.Error()); derr != nil {
				a.log.Error("dead-letter failed; the record will be redelivered", "err", derr)
				return
			}
		}
		d.Ack()
		return
	}
	for {
		err := a.w.Put(ctx, e, d.Value)
		if err == nil {
			d.Ack()
			return
		}
		if errors.Is(err, storage.ErrErased) {
			// The speaker was erased while the record waited: nothing of
			// theirs is kept, and that is not a fault.
			a.log.Info("event of an erased speaker not archived", "event_id", e.EventID)
			d.Ack()
			return
		}
		if errors.Is(err, storage.ErrInvalidKey) || errors.Is(err, storage.ErrInvalidMetadata) {
			a.log.Error("event cannot be archived; dead-lettered", "event_id", e.EventID, "err", err)
			if a.cfg.DeadLetter != nil {
				if derr := bus.DeadLetter(ctx, a.cfg.DeadLetter, event.TopicDeadLetter, d.Message, err.Error()); derr != nil {
					a.log.Error("dead-letter failed; the record will be redelivered", "err", derr)
					return
				}
			}
			d.Ack()
			return
		}
		a.log.Warn("archive: store failed; retrying", "event_id", e.EventID, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(a.cfg.Retry):
		}
	}
}
