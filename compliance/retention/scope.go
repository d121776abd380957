// Package retention enforces how long Earshot keeps what it recorded: room
// classes (ephemeral, fixed), legal holds, and the sweeper that deletes
// expired audio, manifests and archived events with all their versions.
package retention

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"

	"github.com/earshot/earshot/compliance/archive"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/storage"
)

// Object key prefixes the sweeper and erasure act on.
const (
	AudioPrefix    = "audio/"
	ManifestPrefix = "manifests/"
)

// Scope names data by room, session and speaker (pseudonyms). An empty
// field is a wildcard; a scope with every field empty names nothing.
type Scope struct {
	Room    string `json:"room,omitempty"`
	Session string `json:"session,omitempty"`
	Speaker string `json:"speaker,omitempty"`
}

// IsZero reports whether the scope names nothing.
func (s Scope) IsZero() bool { return s == Scope{} }

// Covers reports whether data of (room, session, speaker) falls in the
// scope. Data without a speaker (session-wide events, manifests) is not
// covered by a speaker scope; callers that know the speaker appears in the
// session keep such shared data themselves (see SessionData).
func (s Scope) Covers(room, session, speaker string) bool {
	if s.IsZero() {
		return false
	}
	return (s.Room == "" || s.Room == room) &&
		(s.Session == "" || s.Session == session) &&
		(s.Speaker == "" || s.Speaker == speaker)
}

func (s Scope) String() string {
	f := func(v string) string {
		if v == "" {
			return "*"
		}
		return v
	}
	return "room " + f(s.Room) + " session " + f(s.Session) + " speaker " + f(s.Speaker)
}

// AudioKey is what an audio key says: audio/<room>/<session>/<track>/<range>.ogg.
type AudioKey struct{ Room, Session, Track string }

// ParseAudioKey reads an audio object key.
func ParseAudioKey(key string) (AudioKey, bool) {
	rest, ok := strings.CutPrefix(key, AudioPrefix)
	if !ok {
		return AudioKey{}, false
	}
	p := strings.Split(rest, "/")
	if len(p) != 4 {
		return AudioKey{}, false
	}
	return AudioKey{Room: p[0], Session: p[1], Track: p[2]}, true
}

// ParseManifestKey reads manifests/<room>/<session>.json.
func ParseManifestKey(key string) (room, session string, ok bool) {
	rest, ok := strings.CutPrefix(key, ManifestPrefix)
	if !ok {
		return "", "", false
	}
	room, file, ok := strings.Cut(rest, "/")
	session, ok2 := strings.CutSuffix(file, ".json")
	return room, session, ok && ok2 && !strings.Contains(session, "/")
}

// Store is the object storage the sweeper and erasure use.
type Store interface {
	storage.Lister
	storage.VersionLister
	storage.VersionStater
	storage.Getter
	storage.Putter
	storage.Eraser
}

// Keys yields each distinct key (with every version, delete markers
// included) under prefix that keep accepts. Listing versions rather than
// objects finds data whose newest version was deleted but whose older
// versions remain.
func Keys(ctx context.Context, s storage.VersionLister, prefix string, keep func(key string) bool) iter.Seq2[KeyVersions, error] {
	return func(yield func(KeyVersions, error) bool) {
		var (
			cur  KeyVersions
			skip bool
		)
		for v, err := range s.ListVersions(ctx, prefix) {
			if err != nil {
				yield(KeyVersions{}, fmt.Errorf("retention: list versions of %s: %w", prefix, err))
				return
			}
			if v.Key != cur.Key {
				if cur.Key != "" && !skip && !yield(cur, nil) {
					return
				}
				cur = KeyVersions{Key: v.Key}
				skip = keep != nil && !keep(v.Key)
			}
			if skip {
				continue
			}
			cur.Versions++
			if v.IsLatest && !v.DeleteMarker {
				cur.Live = true
			}
			if v.ModTime.After(cur.Newest.ModTime) {
				cur.Newest = v.ObjectInfo
			}
		}
		if cur.Key != "" && !skip {
			yield(cur, nil)
		}
	}
}

// KeyVersions summarises the versions of one key.
type KeyVersions struct {
	Key      string
	Versions int  // versions and delete markers
	Live     bool // the newest version is an object, not a delete marker
	Newest   storage.ObjectInfo
}

// Counts say what a purge removed.
type Counts struct {
	Objects  int `json:"objects"`  // keys removed with all their versions
	Versions int `json:"versions"` // versions and delete markers removed
	Locked   int `json:"locked"`   // keys left because object lock holds them
}

// Add sums two counts.
func (c *Counts) Add(o Counts) {
	c.Objects += o.Objects
	c.Versions += o.Versions
	c.Locked += o.Locked
}

// Purge removes every version of every key under prefix that keep accepts
// (nil: all). Keys under object-lock retention or legal hold are counted
// in Locked and left.
func Purge(ctx context.Context, s Store, prefix string, keep func(key string) bool) (Counts, error) {
	var (
		c    Counts
		todo []KeyVersions
	)
	for kv, err := range Keys(ctx, s, prefix, keep) {
		if err != nil {
			return c, err
		}
		todo = append(todo, kv)
	}
	for _, kv := range todo {
		err := s.DeleteAll(ctx, kv.Key)
		switch {
		case errors.Is(err, storage.ErrLocked):
			c.Locked++
		case err != nil:
			return c, fmt.Errorf("retention: delete %s: %w", kv.Key, err)
		default:
			c.Objects++
			c.Versions += kv.Versions
		}
	}
	return c, nil
}

// SessionData selects a session's keys, leaving out those of the speakers
// in keep: their audio tracks, their archived events, and (when any is
// kept) the session's shared objects, which mix speakers. speakers maps
// the session's tracks to their speakers (TrackSpeakers); a track it does
// not know has no stored version left to keep, and one of UnknownSpeaker
// is kept whenever any speaker is.
func SessionData(room, session string, keep []string, speakers map[string]string) func(key string) bool {
	spk := map[string]bool{}
	for _, p := range keep {
		spk[p] = true
	}
	return func(key string) bool {
		if a, ok := ParseAudioKey(key); ok {
			sp, known := speakers[a.Track]
			kept := known && (spk[sp] || (sp == UnknownSpeaker && len(keep) > 0))
			return a.Room == room && a.Session == session && !kept
		}
		if r, ok := archive.ParseKey(key); ok {
			if r.Room != room || r.Session != session {
				return false
			}
			return len(keep) == 0 || (r.Speaker != "" && !spk[r.Speaker])
		}
		if r, s, ok := ParseManifestKey(key); ok {
			return r == room && s == session && len(keep) == 0
		}
		return false
	}
}

// SpeakerData selects one speaker's keys in a session: the audio of their
// tracks (speakers: TrackSpeakers) and their archived events. Shared
// objects stay (crypto-shredding makes the speaker's fields in them
// unreadable).
func SpeakerData(room, session, speaker string, speakers map[string]string) func(key string) bool {
	return func(key string) bool {
		if a, ok := ParseAudioKey(key); ok {
			sp, known := speakers[a.Track]
			return a.Room == room && a.Session == session && known && sp == speaker
		}
		if r, ok := archive.ParseKey(key); ok {
			return r.Room == room && r.Session == session && r.Speaker == speaker
		}
		return false
	}
}

// SessionAudio is the prefix of a session's audio.
func SessionAudio(room, session string) string { return AudioPrefix + room + "/" + session + "/" }

// SessionPrefixes are the prefixes under which a session's data lives.
func SessionPrefixes(room, session string) []string {
	return []string{
		SessionAudio(room, session),
		archive.ScopePrefix(room, session, ""),
		event.ManifestKey(room, session),
	}
}

// PurgeSelected runs Purge over each of a session's prefixes.
func PurgeSelected(ctx context.Context, s Store, room, session string, sel func(string) bool) (Counts, error) {
	var total Counts
	for _, p := range SessionPrefixes(room, session) {
		c, err := Purge(ctx, s, p, sel)
		total.Add(c)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}
