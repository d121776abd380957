package event

import (
	"crypto/sha256"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Payloads: the readable part of each event type. Anything that carries
// speech or identity goes in the matching *Data type, stored in Protected.

// AudioChunk is the payload of TypeAudioChunk: a live chunk of one track
// (default 1 s), sent before the audio reaches storage so transcription
// latency does not wait for uploads.
type AudioChunk struct {
	Codec       string `json:"codec"`       // "opus"
	Channels    int    `json:"channels"`    // as decoded, 1 or 2
	Seq         int64  `json:"seq"`         // chunk number on the track, from 0
	Frames      int    `json:"frames"`      // Opus packets in the chunk
	GapSamples  int64  `json:"gap_samples"` // samples filled with silence
	Final       bool   `json:"final"`       // last chunk of the track
	SpeechFrame int    `json:"speech_frames,omitempty"`
}

// AudioChunkData is the protected part of TypeAudioChunk.
type AudioChunkData struct {
	// Packets are the Opus packets in timeline order; packet i starts at
	// the sample given by Offsets[i], relative to the chunk's first sample.
	Packets [][]byte `json:"packets"`
	Offsets []int64  `json:"offsets"`
}

// SegmentStored is the payload of TypeSegmentStored: a complete Ogg/Opus
// segment (default 30 s) confirmed in object storage.
type SegmentStored struct {
	Key        string `json:"key"`    // object key, derived from the timeline
	Size       int64  `json:"size"`   // bytes
	SHA256     string `json:"sha256"` // hex, also in the object's metadata
	Seq        int64  `json:"seq"`    // segment number on the track, from 0
	PreSkip    int    `json:"pre_skip"`
	GapSamples int64  `json:"gap_samples"`
	KeyID      string `json:"key_id,omitempty"` // data key the audio is encrypted under
}

// SessionStarted is the payload of TypeSessionStarted.
type SessionStarted struct {
	Connector string `json:"connector"` // "janus-videoroom", "janus-audiobridge"...
	// Metadata is the room's non-personal metadata (description and roles
	// only when configured as not sensitive).
	Metadata map[string]string `json:"metadata,omitempty"`
}

// SessionEnded is the payload of TypeSessionEnded.
type SessionEnded struct {
	Reason   string `json:"reason"`
	Manifest string `json:"manifest,omitempty"` // object key of the session manifest
}

// TrackStarted is the payload of TypeTrackStarted.
type TrackStarted struct {
	Ordinal int    `json:"ordinal"` // the speaker's track number in the session
	Codec   string `json:"codec"`
}

// TrackEnded is the payload of TypeTrackEnded.
type TrackEnded struct {
	Reason      string `json:"reason"`
	Samples     int64  `json:"samples"`
	LostPackets int64  `json:"lost_packets"`
	GapSamples  int64  `json:"gap_samples"`
	Segments    int64  `json:"segments"`
}

// BotPresence is the payload of TypeBotJoined and TypeBotLeft.
type BotPresence struct {
	Instance string `json:"instance"`
	Reason   string `json:"reason,omitempty"`
}

// RecordingSkipped is the payload of TypeRecordingSkipped: a room or
// participant that must not be recorded was seen and left alone.
type RecordingSkipped struct {
	Scope  string `json:"scope"` // "room" or "participant"
	Reason string `json:"reason"`
}

// TranscriptSegment is the payload of TypeTranscript: one engine segment of
// an utterance, placed on the track's timeline.
type TranscriptSegment struct {
	Language            string  `json:"language"`
	LanguageProbability float64 `json:"language_probability"`
	AvgLogProb          float64 `json:"avg_logprob"`
	NoSpeechProb        float64 `json:"no_speech_prob"`
	// Speech says voice activity was detected in the segment's audio.
	Speech bool `json:"speech"`
}

// TranscriptSegmentData is the protected part of TypeTranscript.
type TranscriptSegmentData struct {
	Text  string           `json:"text"`
	Words []TranscriptWord `json:"words,omitempty"`
}

// TranscriptWord is one word on the track's timeline (inclusive samples).
type TranscriptWord struct {
	Word        string  `json:"word"`
	FirstSample int64   `json:"first_sample"`
	LastSample  int64   `json:"last_sample"`
	Probability float64 `json:"probability"`
}

// Alert is the payload of TypeAlert. The matched value and the excerpt are
// personal data and sit in AlertData.
type Alert struct {
	Severity   string  `json:"severity"` // low, medium, high, critical
	Category   string  `json:"category"` // e.g. pii.phone, abuse.threat
	RuleID     string  `json:"rule_id"`
	Score      float64 `json:"score"`
	Confidence float64 `json:"confidence"`
	// Segments are the transcript event IDs the finding spans.
	Segments []string `json:"segments"`
}

// AlertData is the protected part of TypeAlert.
type AlertData struct {
	Value   string        `json:"value,omitempty"` // what matched, normalised
	Text    string        `json:"text"`            // the matching words as heard
	Excerpt []ExcerptLine `json:"excerpt"`         // context around it
}

// ExcerptLine is one transcript segment of an alert's excerpt. A line of
// another speaker than the alert's carries its text sealed under that
// speaker's data key (Sealed, KeyID; Text empty), so that erasing one
// speaker leaves none of their words readable in others' alerts.
type ExcerptLine struct {
	Speaker     string `json:"speaker"`
	Track       string `json:"track"`
	FirstSample int64  `json:"first_sample"`
	LastSample  int64  `json:"last_sample"`
	Text        string `json:"text,omitempty"`
	KeyID       string `json:"key_id,omitempty"`
	Sealed      []byte `json:"sealed,omitempty"`
}

// Reasons of an alert.updated event (AlertUpdated.Reason).
const (
	// UpdateNotInRevision: a later revision of the transcript (settled or
	// final, AlertUpdated.Pass) covers the alert's words and the policy
	// no longer finds the alert's category there.
	UpdateNotInRevision = "not_in_revision"
)

// AlertUpdated is the payload of TypeAlertUpdated, on earshot.alerts (key =
// room): something learnt about an alert after it was raised. It is shown
// with the alert and never withdraws it, and sinks do not notify it again.
// Its envelope carries the alert's room, session, speaker and timeline.
type AlertUpdated struct {
	Alert  string `json:"alert"`  // the alert's event ID
	Reason string `json:"reason"` // UpdateNotInRevision
	// Pass is the revision the update comes from ("settled", "final").
	Pass string `json:"pass"`
	// Note says it for people: "not in settled text".
	Note string `json:"note"`
}

// Alert actions a moderator can take (AlertAction.Action).
const (
	ActionAck     = "ack"     // seen, being looked at
	ActionConfirm = "confirm" // a real violation: extends retention
	ActionDismiss = "dismiss" // not a violation
)

// AlertAction is the payload of TypeAlertAction, on earshot.alert-actions
// (key = room). Operator names a member of staff from the configuration,
// never a participant. The note is in the protected part (AlertActionData)
// because moderators may quote what was said.
type AlertAction struct {
	Alert    string `json:"alert"` // the alert's event ID
	Action   string `json:"action"`
	Operator string `json:"operator"`
}

// AlertActionData is the protected part of TypeAlertAction.
type AlertActionData struct {
	Note string `json:"note,omitempty"`
}

// AuditEntry is the payload of TypeAudit, on earshot.audit and in storage.
// Entries form a hash chain: Hash is the SHA-256 over the entry with Hash
// empty, Prev the Hash of entry Seq-1, so a removed or edited entry breaks
// the chain (package audit).
type AuditEntry struct {
	Seq      int64     `json:"seq"`
	Time     time.Time `json:"time"`
	Operator string    `json:"operator"`         // staff member or "system"
	Action   string    `json:"action"`           // e.g. evidence.read, export, erase, hold.set, hold.lift, decrypt
	Subject  string    `json:"subject"`          // what: an alert ID, a room or speaker pseudonym, a key ID
	Reason   string    `json:"reason,omitempty"` // why, as the operator gave it
	Outcome  string    `json:"outcome"`          // ok, denied, deferred, failed
	Detail   string    `json:"detail,omitempty"` // free text without personal data
	Prev     string    `json:"prev"`             // hex SHA-256 of the previous entry
	Hash     string    `json:"hash"`             // hex SHA-256 of this entry
}

// Bounds of the audit entry's fields, in bytes. An entry is a few hundred
// bytes; the bounds keep any entry far below what readers of the audit log
// accept (64 KiB), however large what a caller was given (an HTTP path, a
// reason typed by an operator).
const (
	AuditMaxShort  = 256  // operator, action, subject, outcome
	AuditMaxReason = 2048 // reason
	AuditMaxDetail = 8192 // detail
)

// Bounded returns the entry with every field cut to its bound. A cut field
// ends with how long it was and the start of its SHA-256, so that the cut
// shows and the whole value can still be matched.
func (e AuditEntry) Bounded() AuditEntry {
	e.Operator = boundText(e.Operator, AuditMaxShort)
	e.Action = boundText(e.Action, AuditMaxShort)
	e.Subject = boundText(e.Subject, AuditMaxShort)
	e.Outcome = boundText(e.Outcome, AuditMaxShort)
	e.Reason = boundText(e.Reason, AuditMaxReason)
	e.Detail = boundText(e.Detail, AuditMaxDetail)
	return e
}

// boundText cuts s to at most limit bytes of valid UTF-8, marking the cut.
func boundText(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	mark := fmt.Sprintf("…[cut: %d bytes, sha256 %x]", len(s), sum[:8])
	keep := limit - len(mark)
	for keep > 0 && !utf8.RuneStart(s[keep]) {
		keep--
	}
	return strings.ToValidUTF8(s[:max(keep, 0)], "") + mark
}

// payloadOf returns a value of the payload type of typ, or nil for a type
// this build does not know.
func payloadOf(typ Type) any {
	switch typ {
	case TypeAudioChunk:
		return new(AudioChunk)
	case TypeSegmentStored:
		return new(SegmentStored)
	case TypeSessionStarted:
		return new(SessionStarted)
	case TypeSessionEnded:
		return new(SessionEnded)
	case TypeTrackStarted:
		return new(TrackStarted)
	case TypeTrackEnded:
		return new(TrackEnded)
	case TypeBotJoined, TypeBotLeft:
		return new(BotPresence)
	case TypeRecordingSkipped:
		return new(RecordingSkipped)
	case TypeTranscript:
		return new(TranscriptSegment)
	case TypeAlert:
		return new(Alert)
	case TypeAlertAction:
		return new(AlertAction)
	case TypeAlertUpdated:
		return new(AlertUpdated)
	case TypeAudit:
		return new(AuditEntry)
	}
	return nil
}

// carriesSpeech reports whether events of typ always have a protected
// part (speech, its text, or a moderator's note).
func carriesSpeech(typ Type) bool {
	switch typ {
	case TypeAudioChunk, TypeTranscript, TypeAlert, TypeAlertAction:
		return true
	}
	return false
}

// CheckPayload reports whether the event is of a type this build knows,
// its payload decodes as that type's, and it has the protected part its
// type always carries: what a consumer that keeps or forwards events
// without reading them (the archive) checks first.
func (e *Envelope) CheckPayload() error {
	v := payloadOf(e.Type)
	if v == nil {
		return fmt.Errorf("event: %s: unknown type %q", e.EventID, e.Type)
	}
	if carriesSpeech(e.Type) && e.Protected == nil {
		return fmt.Errorf("event: %s %s has no protected part", e.Type, e.EventID)
	}
	return e.DecodePayload(v)
}
