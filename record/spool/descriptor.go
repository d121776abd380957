package spool

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/storage"
)

// DescriptorFormat is the descriptor version this build writes and reads.
const DescriptorFormat = 1

// ContentType is the content type segments are stored with.
const ContentType = "audio/ogg"

const (
	// maxDescriptorBytes bounds a descriptor file; a real one is ~1 KB.
	maxDescriptorBytes = 64 << 10
	// MaxSegmentBytes bounds one segment. A 30 s Opus segment is ~100 KB;
	// the limit only stops a runaway writer from filling the disk with one
	// entry, and keeps create-only S3 puts (one PUT, at most 5 GiB) possible.
	MaxSegmentBytes = 1 << 30
	// maxIDBytes bounds room, session, speaker and track IDs.
	maxIDBytes = 128
)

// ErrMalformed marks a descriptor (or entry) that cannot be used: the
// uploader moves such entries to rejected/.
var ErrMalformed = errors.New("malformed spool entry")

// Descriptor is what an entry's descriptor.json holds: everything needed to
// upload the segment and announce it, without the recorder.
type Descriptor struct {
	Format int `json:"format"`
	// Key is the object key, event.SegmentKey of the event's room, session
	// and timeline.
	Key string `json:"key"`
	// Size and SHA256 (lower-case hex) describe the segment (segment.ogg,
	// or its plaintext when sealed).
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Sealed, when set, is the name segment.ogg was sealed for (under the
	// speaker's data key, Config.Sealer); StoredSize is then its size on
	// disk.
	Sealed     string `json:"sealed,omitempty"`
	StoredSize int64  `json:"stored_size,omitempty"`
	// Spooled is when the entry was committed.
	Spooled time.Time `json:"spooled"`
	// Event is the audio.segment_stored envelope, built when the segment was
	// spooled: ID, pseudonyms, timeline, hops.recorded, and a payload with
	// Seq, PreSkip, GapSamples and KeyID. The uploader completes it (payload
	// Key, Size, SHA256; hops.stored; time) when the upload is confirmed.
	Event *event.Envelope `json:"event"`
}

// ParseDescriptor decodes and validates a descriptor. Errors wrap
// ErrMalformed.
func ParseDescriptor(b []byte) (*Descriptor, error) {
	if len(b) > maxDescriptorBytes {
		return nil, fmt.Errorf("%w: descriptor of %d bytes, more than %d", ErrMalformed, len(b), maxDescriptorBytes)
	}
	var d Descriptor
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("%w: descriptor: %w", ErrMalformed, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: descriptor: trailing data", ErrMalformed)
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	return &d, nil
}

// Validate checks that the descriptor is complete and consistent: the key
// and event ID follow from the event's pseudonyms and timeline (so a
// descriptor cannot send bytes to an unrelated key), and the event carries
// no protected data. Errors wrap ErrMalformed.
func (d *Descriptor) Validate() error {
	var errs []error
	if d.Format != DescriptorFormat {
		errs = append(errs, fmt.Errorf("format %d is not supported (this build reads %d)", d.Format, DescriptorFormat))
	}
	if !isHexSHA256(d.SHA256) {
		errs = append(errs, errors.New("sha256 is not 64 lower-case hex digits"))
	}
	if d.Size < 0 || d.Size > MaxSegmentBytes {
		errs = append(errs, fmt.Errorf("size %d is outside [0, %d]", d.Size, MaxSegmentBytes))
	}
	if d.Spooled.IsZero() {
		errs = append(errs, errors.New("spooled time is not set"))
	}
	if d.Sealed != "" && (d.StoredSize <= d.Size || d.StoredSize > 2*MaxSegmentBytes) {
		errs = append(errs, fmt.Errorf("a sealed segment of %d bytes cannot take %d on disk", d.Size, d.StoredSize))
	}
	if d.Sealed == "" && d.StoredSize != 0 {
		errs = append(errs, errors.New("stored_size is set on a segment that is not sealed"))
	}
	if e := d.Event; e == nil {
		errs = append(errs, errors.New("event is missing"))
	} else if err := validateEvent(e, d.Key); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: descriptor: %w", ErrMalformed, errors.Join(errs...))
	}
	return nil
}

func validateEvent(e *event.Envelope, key string) error {
	if err := e.Validate(); err != nil {
		return err
	}
	var errs []error
	if e.Type != event.TypeSegmentStored {
		errs = append(errs, fmt.Errorf("event type %q is not %q", e.Type, event.TypeSegmentStored))
	}
	if e.Processing != nil || e.Revision != (*event.Processing)(nil).Revision() {
		errs = append(errs, errors.New("recorded audio has no processing and revision rev_0"))
	}
	if e.Protected != nil {
		errs = append(errs, errors.New("event carries protected data (segments keep audio in the object only)"))
	}
	for _, f := range []struct {
		name, v  string
		optional bool
	}{{"room", e.Room, false}, {"session", e.Session, false}, {"speaker", e.Speaker, true}} {
		if err := checkID(f.name, f.v, f.optional); err != nil {
			errs = append(errs, err)
		}
	}
	tl := e.Timeline
	if tl == nil {
		errs = append(errs, errors.New("event has no timeline"))
		return errors.Join(errs...)
	}
	if err := checkID("track", tl.Track, false); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if want := event.SegmentKey(e.Room, e.Session, *tl); key != want {
		errs = append(errs, fmt.Errorf("key %q is not the segment key %q of the event's timeline", key, want))
	} else if err := storage.ValidateKey(key); err != nil {
		errs = append(errs, err)
	}
	if want := event.EventID(e.Type, e.Revision, tl, e.Room, e.Session, e.Speaker); e.EventID != want {
		errs = append(errs, fmt.Errorf("event_id %s does not follow from the event's content (want %s)", e.EventID, want))
	}
	p, err := decodePayload(e)
	if err != nil {
		errs = append(errs, err)
	} else {
		if p.Seq < 0 {
			errs = append(errs, fmt.Errorf("payload seq %d is negative", p.Seq))
		}
		if p.PreSkip < 0 || p.PreSkip > 0xffff {
			errs = append(errs, fmt.Errorf("payload pre_skip %d is outside [0, 65535]", p.PreSkip))
		}
		if p.GapSamples < 0 || p.GapSamples > tl.Samples() {
			errs = append(errs, fmt.Errorf("payload gap_samples %d is outside [0, %d]", p.GapSamples, tl.Samples()))
		}
		if err := checkKeyID(p.KeyID); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func decodePayload(e *event.Envelope) (event.SegmentStored, error) {
	var p event.SegmentStored
	if len(e.Payload) == 0 {
		return p, errors.New("event has no payload")
	}
	if err := json.Unmarshal(e.Payload, &p); err != nil {
		return p, fmt.Errorf("payload: %w", err)
	}
	return p, nil
}

// checkID accepts what Earshot's IDs and pseudonyms look like (ASCII
// letters, digits, '_', '-', '.'; at most 128 bytes). It is the spool's
// guard against a display name or another free-text identity arriving where
// a pseudonym belongs: those contain spaces or other characters and are
// refused.
func checkID(name, v string, optional bool) error {
	if v == "" {
		if optional {
			return nil
		}
		return fmt.Errorf("%s is empty", name)
	}
	if len(v) > maxIDBytes {
		return fmt.Errorf("%s has %d bytes, more than %d", name, len(v), maxIDBytes)
	}
	if v == "." || v == ".." {
		return fmt.Errorf("%s %q is not an ID", name, v)
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			// Never quote the value: it may be the personal data we refuse.
			return fmt.Errorf("%s is not ID-shaped (only ASCII letters, digits, '_', '-', '.'; a pseudonym belongs here)", name)
		}
	}
	return nil
}

// checkKeyID accepts a data key's name: not personal, but it may be a KMS
// ARN or URI, so any printable ASCII without spaces (at most 256 bytes).
func checkKeyID(v string) error {
	if len(v) > 2*maxIDBytes {
		return fmt.Errorf("key_id has %d bytes, more than %d", len(v), 2*maxIDBytes)
	}
	for i := 0; i < len(v); i++ {
		if v[i] <= 0x20 || v[i] >= 0x7f {
			return errors.New("key_id: only printable ASCII without spaces")
		}
	}
	return nil
}

func isHexSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// Track returns the entry's track ID: uploads of one track keep their order.
func (d *Descriptor) Track() string {
	if d.Event == nil || d.Event.Timeline == nil {
		return ""
	}
	return d.Event.Timeline.Track
}

// Announcement returns the final audio.segment_stored event: a copy of the
// spooled envelope with the payload's Key, Size and SHA256 filled in,
// hops.stored set to stored and the event time to now. Its ID is unchanged
// (it derives from the timeline), so announcing again after a restart yields
// a duplicate that consumers drop.
func (d *Descriptor) Announcement(stored time.Time) (*event.Envelope, error) {
	if d.Event == nil {
		return nil, fmt.Errorf("%w: descriptor has no event", ErrMalformed)
	}
	p, err := decodePayload(d.Event)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	p.Key, p.Size, p.SHA256 = d.Key, d.Size, d.SHA256
	raw, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("spool: encode payload of %s: %w", d.Key, err)
	}
	e := *d.Event
	e.Payload = raw
	e.Time = time.Now().UTC()
	e.Hops.Stored = event.Stamp(stored)
	return &e, nil
}

// Metadata returns the object's user metadata: non-personal coordinates
// that let an operator (or a recovery tool) place an object without its
// event. "room", "session" and "speaker" (pseudonyms) also name the data key
// the object is encrypted under when the store is a crypt.Store. The SHA-256
// is passed separately (PutOptions.SHA256); the store keeps it under its own
// key.
func (d *Descriptor) Metadata() map[string]string {
	e := d.Event
	if e == nil || e.Timeline == nil {
		return nil
	}
	tl := e.Timeline
	md := map[string]string{
		MetaTrack:       tl.Track,
		MetaFirstSample: strconv.FormatInt(tl.FirstSample, 10),
		MetaLastSample:  strconv.FormatInt(tl.LastSample, 10),
		MetaOrigin:      tl.Origin.UTC().Format(time.RFC3339Nano),
		MetaAnchor:      string(tl.Anchor),
		"event-id":      e.EventID,
		"room":          e.Room,
		"session":       e.Session,
	}
	if e.Speaker != "" {
		md["speaker"] = e.Speaker
	}
	if p, err := decodePayload(e); err == nil {
		md["seq"] = strconv.FormatInt(p.Seq, 10)
		md["pre-skip"] = strconv.Itoa(p.PreSkip)
	}
	return md
}
