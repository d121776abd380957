package retention

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/earshot/earshot/record/spool"

	"github.com/earshot/earshot/storage"
	"github.com/earshot/earshot/storage/crypt"
)

// UnknownSpeaker stands for the speaker of audio stored without speaker
// metadata (not written by ingest): no speaker's erasure or export takes
// it, and a session with a held speaker keeps it.
const UnknownSpeaker = "?unknown"

// TrackStore is what TrackSpeakers reads: version listings and the
// metadata of one version.
type TrackStore interface {
	storage.VersionLister
	storage.VersionStater
}

// TrackSpeakers returns the speaker (pseudonym; "" for a room's mix) of
// every audio track that has a stored version under prefix (AudioPrefix,
// or a room's or session's part of it).
//
// The answer comes from the segments themselves: ingest stores each one
// with its speaker in the "speaker" metadata (the encrypting store picks
// the data key by it), and one version per track is read. Neither the
// track ID nor the session manifest can say instead: track IDs are digests
// of an ordinal no list can bound (a bot's later stays number theirs from
// 100,000 up), and erasure rewrites the manifest, so a retried erasure or
// a later sweep must still find a speaker's leftovers. A track with only
// delete markers left has nothing to read and is not in the map.
func TrackSpeakers(ctx context.Context, s TrackStore, prefix string) (map[string]string, error) {
	out := map[string]string{}
	for v, err := range s.ListVersions(ctx, prefix) {
		if err != nil {
			return nil, fmt.Errorf("retention: tracks under %s: %w", prefix, err)
		}
		a, ok := ParseAudioKey(v.Key)
		if !ok || v.DeleteMarker {
			continue
		}
		if _, done := out[a.Track]; done {
			continue
		}
		info, err := s.StatVersion(ctx, v.Key, v.VersionID)
		if errors.Is(err, storage.ErrNotFound) {
			continue // deleted since the listing; another version may say
		}
		if err != nil {
			return nil, fmt.Errorf("retention: speaker of track %s: %w", a.Track, err)
		}
		sp, ok := info.Metadata[crypt.MetaSpeaker]
		if !ok {
			sp = UnknownSpeaker
		}
		out[a.Track] = sp
	}
	return out, nil
}

// TracksOf returns the tracks of speaker in a TrackSpeakers map.
func TracksOf(speakers map[string]string, speaker string) map[string]bool {
	m := map[string]bool{}
	for t, sp := range speakers {
		if sp == speaker {
			m[t] = true
		}
	}
	return m
}

// AudioEnd returns when the newest audio stored under prefix ends, by each
// segment's own timeline in its metadata (spool.SegmentEnd), or, for a
// segment stored without one, by when the store took it. ok is false when
// nothing is stored there. One version per key is read: the key names the
// segment's sample range, so its versions hold the same stretch of audio.
//
// The sweeper counts a session as ended no earlier than this: the end an
// event claims comes through Kafka and may be forged, while segment
// metadata is what ingest stored with the audio.
func AudioEnd(ctx context.Context, s TrackStore, prefix string) (end time.Time, ok bool, err error) {
	done := ""
	for v, err := range s.ListVersions(ctx, prefix) {
		if err != nil {
			return end, ok, fmt.Errorf("retention: audio under %s: %w", prefix, err)
		}
		if _, audio := ParseAudioKey(v.Key); !audio || v.DeleteMarker || v.Key == done {
			continue
		}
		info, err := s.StatVersion(ctx, v.Key, v.VersionID)
		if errors.Is(err, storage.ErrNotFound) {
			continue // deleted since the listing; another version may say
		}
		if err != nil {
			return end, ok, fmt.Errorf("retention: end of segment %s: %w", v.Key, err)
		}
		done = v.Key
		t, placed := spool.SegmentEnd(info.Metadata)
		if !placed {
			t = v.ModTime
		}
		if !ok || t.After(end) {
			end, ok = t, true
		}
	}
	return end, ok, nil
}
