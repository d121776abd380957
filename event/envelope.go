// Package event defines Earshot's event model: the versioned JSON envelope
// every stage writes to Kafka, the media timeline every event points into,
// stable content-derived IDs, and the topics. docs/events.md is the reference
// for the wire format; keep the two in step.
//
// Events are written with encoding/json and read with the v1-compatible
// API of github.com/go-json-experiment/json (the Go team's implementation
// of encoding/json/v2, kept in step with it): the same decoding rules,
// read in one pass instead of a validating scan and a decoding one. Every
// consumer decodes every record, and in the policy stage decoding was
// half of the work per transcript.
package event

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	fastjson "github.com/go-json-experiment/json/v1"
)

// SchemaVersion is the envelope version this build writes. Readers accept
// any event with this major version; fields may be added within a version
// (readers ignore fields they do not know), never removed or changed.
const SchemaVersion = 1

// MaxEventBytes bounds an encoded event. Kafka's default message limit is
// 1 MB; a live chunk of Opus (1 s, ~8 KB) is far below it.
const MaxEventBytes = 900 << 10

// Type names what an event says. It is "<area>.<what>".
type Type string

// Event types. docs/events.md describes each payload.
const (
	TypeAudioChunk       Type = "audio.chunk"
	TypeSegmentStored    Type = "audio.segment_stored"
	TypeSessionStarted   Type = "lifecycle.session_started"
	TypeSessionEnded     Type = "lifecycle.session_ended"
	TypeTrackStarted     Type = "lifecycle.track_started"
	TypeTrackEnded       Type = "lifecycle.track_ended"
	TypeBotJoined        Type = "lifecycle.bot_joined"
	TypeBotLeft          Type = "lifecycle.bot_left"
	TypeRecordingSkipped Type = "lifecycle.recording_skipped"
	TypeTranscript       Type = "transcript.segment"
	TypeAlert            Type = "alert.raised"
	TypeAlertAction      Type = "alert.action"
	TypeAlertUpdated     Type = "alert.updated"
	TypeAudit            Type = "audit.entry"
)

// Producer says which program wrote an event.
type Producer struct {
	Name     string `json:"name"`               // stage, e.g. "earshot-ingest"
	Version  string `json:"version"`            // build version
	Instance string `json:"instance,omitempty"` // which replica (host name or pod)
}

// Processing records the versions of whatever turned input into this event.
// Its digest is the event's revision: replaying audio through a new model
// makes a new revision (a new event, not a duplicate), while running the
// same model again reproduces the same IDs.
type Processing struct {
	Engine        string `json:"engine,omitempty"`
	Model         string `json:"model,omitempty"`
	PolicyVersion string `json:"policy_version,omitempty"`
	// Options holds settings that change output (language, beam size...).
	Options map[string]string `json:"options,omitempty"`
}

// PassFinal is the value of Processing.Options["pass"] on a final
// revision: a session's stored audio transcribed again, in batches, after
// it ended (package transcribe). It is a better record of what was said;
// the policy stage evaluates it too, alerting on what the earlier
// revisions missed (docs/alerts.md).
const PassFinal = "final"

// PassSettled is the value of Processing.Options["pass"] on a settled
// revision: a track's live utterances transcribed again in batches of
// speech by the worker while the room is live (package transcribe). Like
// the final revision, the policy stage evaluates it too.
const PassSettled = "settled"

// IsFinalPass reports whether the processing is a final pass.
func (p *Processing) IsFinalPass() bool { return p != nil && p.Options["pass"] == PassFinal }

// IsSecondPass reports whether the processing transcribed again audio the
// live revision already covers: a final or a settled pass.
func (p *Processing) IsSecondPass() bool {
	if p == nil {
		return false
	}
	pass := p.Options["pass"]
	return pass == PassFinal || pass == PassSettled
}

// Revision digests the processing versions. An event with no processing
// (recorded audio, lifecycle) has revision "rev_0".
func (p *Processing) Revision() string {
	if p == nil || (p.Engine == "" && p.Model == "" && p.PolicyVersion == "" && len(p.Options) == 0) {
		return PrefixRevision + "_0"
	}
	parts := []string{p.Engine, p.Model, p.PolicyVersion}
	for _, k := range sortedKeys(p.Options) {
		parts = append(parts, k, p.Options[k])
	}
	return DeriveID(PrefixRevision, parts...)
}

// Hops are the wall-clock times an event's content passed each stage, so
// end-to-end latency can be measured in production from the events alone.
// Each stage copies the hops of its input and sets its own.
type Hops struct {
	Recorded    *time.Time `json:"recorded,omitempty"`    // last sample's packet reached the bot
	Chunked     *time.Time `json:"chunked,omitempty"`     // live chunk produced
	Stored      *time.Time `json:"stored,omitempty"`      // segment upload confirmed
	Transcribed *time.Time `json:"transcribed,omitempty"` // engine returned
	Evaluated   *time.Time `json:"evaluated,omitempty"`   // policy evaluated
	Alerted     *time.Time `json:"alerted,omitempty"`     // alert produced
}

// Stamp returns t in UTC as a pointer for a Hops field.
func Stamp(t time.Time) *time.Time { u := t.UTC(); return &u }

// Protection algorithms for Protected.
const (
	// AlgNone leaves the protected data readable (the field layout is the
	// same as when encrypted, so turning encryption on changes no reader).
	AlgNone = "none"
	// AlgAES256GCM is AES-256-GCM under the data key named by KeyID.
	AlgAES256GCM = "A256GCM"
)

// Protected is the one place in an event that carries speech or identity:
// audio bytes, transcript text, alert excerpts. It is sealed per speaker
// under KeyID, so destroying that key makes every copy unreadable.
type Protected struct {
	KeyID      string          `json:"key_id"`
	Alg        string          `json:"alg"`
	Data       json.RawMessage `json:"data,omitempty"`       // when Alg is AlgNone
	Ciphertext []byte          `json:"ciphertext,omitempty"` // otherwise (base64 in JSON)
}

// Envelope is the v1 event. Personal data lives only in Protected; room,
// session and speaker are pseudonyms.
type Envelope struct {
	EventID       string          `json:"event_id"`
	Type          Type            `json:"type"`
	SchemaVersion int             `json:"schema_version"`
	Producer      Producer        `json:"producer"`
	Processing    *Processing     `json:"processing,omitempty"`
	Revision      string          `json:"revision"`
	Room          string          `json:"room,omitempty"`
	Session       string          `json:"session,omitempty"`
	Speaker       string          `json:"speaker,omitempty"`
	Timeline      *Timeline       `json:"timeline,omitempty"`
	Time          time.Time       `json:"time"` // when this event was written
	Hops          Hops            `json:"hops"`
	Payload       json.RawMessage `json:"payload,omitempty"`
	Protected     *Protected      `json:"protected,omitempty"`
}

// New builds an envelope whose revision and ID follow from its content.
// extra distinguishes events of one type on the same timeline range (an
// alert's rule ID, say). payload may be nil.
func New(typ Type, prod Producer, proc *Processing, room, session, speaker string, tl *Timeline, payload any, extra ...string) (*Envelope, error) {
	e := &Envelope{
		Type:          typ,
		SchemaVersion: SchemaVersion,
		Producer:      prod,
		Processing:    proc,
		Revision:      proc.Revision(),
		Room:          room,
		Session:       session,
		Speaker:       speaker,
		Timeline:      tl,
		Time:          time.Now().UTC(),
	}
	if payload != nil {
		raw, err := json.Marshal(payload)
		if err != nil {
			return nil, fmt.Errorf("event: encode %s payload: %w", typ, err)
		}
		e.Payload = raw
	}
	idParts := append([]string{room, session, speaker}, extra...)
	if tl == nil && len(extra) == 0 && session == "" {
		return nil, fmt.Errorf("event: %s needs a timeline, a session or an extra part to derive a stable ID", typ)
	}
	e.EventID = EventID(typ, e.Revision, tl, idParts...)
	return e, nil
}

// SetProtected stores v as the event's protected data, readable (AlgNone),
// under keyID. Encryption replaces Data with Ciphertext under the same key.
func (e *Envelope) SetProtected(keyID string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("event: encode %s protected data: %w", e.Type, err)
	}
	e.Protected = &Protected{KeyID: keyID, Alg: AlgNone, Data: raw}
	return nil
}

// ErrKeyDestroyed is returned by Keys when a data key was shredded (or
// never existed where it should): what it protected can no longer be
// read. Consumers treat it as erasure working, not as a fault.
var ErrKeyDestroyed = errors.New("data key destroyed or unknown")

// ErrUnsealed is returned by Open when keys are configured but the
// protected data is readable (alg none): every producer of a deployment
// with keys seals, so such a record is refused.
var ErrUnsealed = errors.New("event: protected data is not sealed, and keys are configured")

// ErrSealed is returned when protected data is encrypted and no key was
// given to open it.
var ErrSealed = errors.New("event: protected data is encrypted")

// KeyRef names a data key and what it protects. Keyrings index keys by room,
// session and speaker so that erasure can find every key of a person or a
// room; all three are pseudonyms.
type KeyRef struct {
	ID      string // KeyID(Session, Speaker)
	Room    string
	Session string
	Speaker string // "" for the session key (room-wide data)
}

// Keys seals and opens bytes under data keys (AES-256-GCM in package crypt).
// Seal creates the key on first use; Open fails for a destroyed key.
type Keys interface {
	Seal(ctx context.Context, ref KeyRef, plaintext, aad []byte) ([]byte, error)
	Open(ctx context.Context, ref KeyRef, ciphertext, aad []byte) ([]byte, error)
}

// KeyRef returns the reference of the data key that protects this event:
// its session and speaker's key, or the session key when it has no speaker.
func (e *Envelope) KeyRef() KeyRef {
	return KeyRef{ID: KeyID(e.Session, e.Speaker), Room: e.Room, Session: e.Session, Speaker: e.Speaker}
}

// aad binds a ciphertext to its event, so that it cannot be moved to
// another event sealed under the same key.
func (e *Envelope) aad() []byte { return []byte(string(e.Type) + "\x00" + e.EventID) }

// Seal stores v as the event's protected data, encrypted under the data key
// of the event's session and speaker (see KeyRef). Set the event's ID,
// type, session and speaker first: they are bound to the ciphertext.
func (e *Envelope) Seal(ctx context.Context, k Keys, v any) error {
	if k == nil {
		return fmt.Errorf("event: seal %s %s: no keys configured", e.Type, e.EventID)
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("event: encode %s protected data: %w", e.Type, err)
	}
	ref := e.KeyRef()
	ct, err := k.Seal(ctx, ref, raw, e.aad())
	if err != nil {
		return fmt.Errorf("event: seal %s %s: %w", e.Type, e.EventID, err)
	}
	e.Protected = &Protected{KeyID: ref.ID, Alg: AlgAES256GCM, Ciphertext: ct}
	return nil
}

// Open decodes the event's protected data into v, decrypting it with k when
// it is sealed. k is nil only where no keys are configured: readable
// (AlgNone) data is refused when k is set (ErrUnsealed).
func (e *Envelope) Open(ctx context.Context, k Keys, v any) error {
	p := e.Protected
	if p == nil {
		return fmt.Errorf("event: %s %s has no protected data", e.Type, e.EventID)
	}
	raw := []byte(p.Data)
	switch p.Alg {
	case AlgNone:
		if k != nil {
			// With keys configured every producer seals: readable data
			// is a forgery (or a misconfigured producer), never trusted.
			return fmt.Errorf("event: open %s: %w", e.EventID, ErrUnsealed)
		}
	case AlgAES256GCM:
		if k == nil {
			return fmt.Errorf("event: open %s: %w (alg %s, key %s)", e.EventID, ErrSealed, p.Alg, p.KeyID)
		}
		ref := e.KeyRef()
		if ref.ID != p.KeyID {
			return fmt.Errorf("event: open %s: key %s does not belong to its session and speaker", e.EventID, p.KeyID)
		}
		var err error
		if raw, err = k.Open(ctx, ref, p.Ciphertext, e.aad()); err != nil {
			return fmt.Errorf("event: open %s: %w", e.EventID, err)
		}
	default:
		return fmt.Errorf("event: open %s: unknown alg %q", e.EventID, p.Alg)
	}
	if err := fastjson.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("event: decode %s protected data: %w", e.EventID, err)
	}
	return nil
}

// VerifySealed checks that the event's protected data was sealed under
// its session's and speaker's key for this very event (type and ID): what
// only a producer holding the deployment's keys can make. A key destroyed
// by erasure cannot say either way and is not an error. Consumers that
// keep the first record of an ID (indexes, dedupe) call it first, so that
// a forged record cannot take a real one's place.
func (e *Envelope) VerifySealed(ctx context.Context, k Keys) error {
	if k == nil {
		return nil // no keys configured: nothing is sealed
	}
	var raw json.RawMessage
	err := e.Open(ctx, k, &raw)
	if errors.Is(err, ErrKeyDestroyed) {
		return nil
	}
	return err
}

// OpenProtected decodes readable (AlgNone) protected data into v; sealed
// data fails with ErrSealed. Prefer Open.
func (e *Envelope) OpenProtected(v any) error { return e.Open(context.Background(), nil, v) }

// DecodePayload decodes the payload into v.
func (e *Envelope) DecodePayload(v any) error {
	if len(e.Payload) == 0 {
		return fmt.Errorf("event: %s %s has no payload", e.Type, e.EventID)
	}
	if err := fastjson.Unmarshal(e.Payload, v); err != nil {
		return fmt.Errorf("event: decode %s payload: %w", e.Type, err)
	}
	return nil
}

// Marshal encodes the envelope, refusing one over MaxEventBytes.
func (e *Envelope) Marshal() ([]byte, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("event: encode %s: %w", e.EventID, err)
	}
	if len(b) > MaxEventBytes {
		return nil, fmt.Errorf("event: %s %s is %d bytes, over the %d-byte limit", e.Type, e.EventID, len(b), MaxEventBytes)
	}
	return b, nil
}

// Decode parses and validates an encoded envelope. It is the one entry
// point for bytes read from Kafka: anything it rejects belongs on the
// dead-letter topic with the returned error as the reason.
func Decode(b []byte) (*Envelope, error) {
	if len(b) > MaxEventBytes {
		return nil, fmt.Errorf("event: decode: %d bytes, over the %d-byte limit", len(b), MaxEventBytes)
	}
	var e Envelope
	// json.Unmarshal rather than a Decoder: it refuses trailing data too,
	// and scans the record once instead of twice (the policy stage decodes
	// every transcript).
	if err := fastjson.Unmarshal(b, &e); err != nil {
		if trailingData(b) {
			return nil, errors.New("event: decode: trailing data after the event")
		}
		return nil, fmt.Errorf("event: decode: %w", err)
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return &e, nil
}

// trailingData says b holds one JSON value followed by more than white
// space: the error path of Decode, to name that case.
func trailingData(b []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(b))
	var v json.RawMessage
	return dec.Decode(&v) == nil && dec.More()
}

// Validate checks the fields every event must have.
func (e *Envelope) Validate() error {
	var errs []error
	if IDPrefix(e.EventID) != PrefixEvent || len(e.EventID) < 8 {
		errs = append(errs, fmt.Errorf("event_id %q is not an evt_ ID", e.EventID))
	}
	if !strings.Contains(string(e.Type), ".") {
		errs = append(errs, fmt.Errorf("type %q is not <area>.<what>", e.Type))
	}
	if e.SchemaVersion != SchemaVersion {
		errs = append(errs, fmt.Errorf("schema_version %d is not supported (this build reads %d)", e.SchemaVersion, SchemaVersion))
	}
	if e.Revision == "" {
		errs = append(errs, errors.New("revision is empty"))
	}
	if e.Producer.Name == "" {
		errs = append(errs, errors.New("producer.name is empty"))
	}
	if e.Timeline != nil {
		if err := e.Timeline.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if p := e.Protected; p != nil {
		switch {
		case p.Alg == AlgNone && len(p.Ciphertext) > 0:
			errs = append(errs, errors.New("protected: alg none with ciphertext"))
		case p.Alg != AlgNone && p.Alg != AlgAES256GCM:
			errs = append(errs, fmt.Errorf("protected: unknown alg %q", p.Alg))
		case p.Alg != AlgNone && len(p.Ciphertext) == 0:
			errs = append(errs, errors.New("protected: encrypted without ciphertext"))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("event: invalid %s %s: %w", e.Type, e.EventID, errors.Join(errs...))
	}
	return nil
}
