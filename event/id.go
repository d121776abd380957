package event

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
)

// idEncoding is lower-case, unpadded base32: IDs stay safe in object keys,
// URLs and Kafka keys, and are case-insensitive for people reading them.
var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// idBytes is how much of the SHA-256 an ID keeps: 20 bytes (160 bits) make
// accidental collisions impossible in practice while keeping IDs short.
const idBytes = 20

// DeriveID returns prefix + "_" + a digest of parts. Each part is length-
// prefixed, so ("ab","c") and ("a","bc") differ. The same parts always give
// the same ID, on any machine and after any restart: that is what lets every
// consumer dedupe at-least-once deliveries on the ID alone.
func DeriveID(prefix string, parts ...string) string {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	for _, p := range parts {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(p)))])
		h.Write([]byte(p))
	}
	sum := h.Sum(nil)
	return prefix + "_" + idEncoding.EncodeToString(sum[:idBytes])
}

// idLen is the length of a derived ID's digest part: idBytes in unpadded
// base32.
var idLen = idEncoding.EncodedLen(idBytes)

// ValidID reports whether id is an ID DeriveID makes with prefix: the
// prefix, '_' and a digest. Edges that take IDs from outside (HTTP paths,
// command lines) check it before using or recording one.
func ValidID(prefix, id string) bool {
	d, ok := strings.CutPrefix(id, prefix+"_")
	if !ok || len(d) != idLen {
		return false
	}
	for _, c := range []byte(d) {
		if (c < 'a' || c > 'z') && (c < '2' || c > '7') {
			return false
		}
	}
	return true
}

// IDPrefix returns the part of an ID before its first '_'.
func IDPrefix(id string) string {
	p, _, _ := strings.Cut(id, "_")
	return p
}

// ID prefixes, one per kind of thing an ID names.
const (
	PrefixEvent    = "evt"
	PrefixTrack    = "trk"
	PrefixSession  = "ses"
	PrefixRevision = "rev"
)

// SessionID names one recording session of a room: the bot's stay in it,
// starting at the UTC instant the session was opened (kept in the lifecycle
// topic, so a restarted bot resumes the same session rather than making a
// new one). room is the room's pseudonym.
func SessionID(room string, opened int64) string {
	return DeriveID(PrefixSession, room, strconv.FormatInt(opened, 10))
}

// TrackID names one speaker's track in a session. ordinal counts the
// speaker's tracks in the session (0 for the first; a rejoin makes the next),
// so a rejoin starts a new timeline under the same speaker pseudonym.
func TrackID(session, speaker string, ordinal int) string {
	return DeriveID(PrefixTrack, session, speaker, strconv.Itoa(ordinal))
}

// EventID derives an event's ID from what the event is about: its type, the
// revision of the processing that made it, its timeline coordinates and any
// further distinguishing parts (a rule ID for an alert, say). Nothing that
// varies between two runs over the same audio (clocks, counters, hosts) may
// go into it.
func EventID(typ Type, revision string, tl *Timeline, extra ...string) string {
	parts := make([]string, 0, 5+len(extra))
	parts = append(parts, string(typ), revision)
	if tl != nil {
		parts = append(parts, tl.Track, strconv.FormatInt(tl.FirstSample, 10), strconv.FormatInt(tl.LastSample, 10))
	}
	parts = append(parts, extra...)
	return DeriveID(PrefixEvent, parts...)
}

// SegmentKey is the object key of a stored segment. It is derived from the
// timeline alone (pseudonyms and sample numbers, never raw identities), so a
// restarted recorder computes the same key for the same audio and its
// create-only upload cannot overwrite what is already stored. Sample numbers
// are zero-padded so that keys list in time order.
func SegmentKey(room, session string, tl Timeline) string {
	return fmt.Sprintf("audio/%s/%s/%s/%015d-%015d.ogg", room, session, tl.Track, tl.FirstSample, tl.LastSample)
}

// ManifestKey is the object key of a session's manifest.
func ManifestKey(room, session string) string {
	return fmt.Sprintf("manifests/%s/%s.json", room, session)
}

// PrefixKey prefixes data-key IDs.
const PrefixKey = "key"

// KeyID names the data key that protects one speaker's speech in one
// session (audio objects, protected event fields). Destroying it makes all
// of that speaker's copies unreadable. speaker is "" for a room-wide mix.
func KeyID(session, speaker string) string {
	return DeriveID(PrefixKey, session, speaker)
}
