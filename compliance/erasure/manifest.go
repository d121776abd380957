package erasure

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"

	"github.com/earshot/earshot/compliance/retention"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/storage"
)

// maxManifestBytes bounds the manifest read into memory (ingest reads up
// to the same).
const maxManifestBytes = 64 << 20

// scrubManifest removes speaker, and tracks (theirs, by the audio's own
// metadata), from a session's manifest. The manifest
// mixes speakers and is sealed whole under the session key, so shredding
// the speaker's keys leaves it readable: the current version is rewritten
// without the speaker's tracks (or anything else naming them), then every
// older version, which still names them, is deleted. With no live manifest
// (deleted, only history left) every version goes. A session key already
// destroyed leaves nothing readable, so nothing to do. It reports whether
// it rewrote the manifest and which versions it deleted; versions under
// object lock are counted in Locked and left.
func (e *Eraser) scrubManifest(ctx context.Context, room, session, speaker string, tracks map[string]bool) (bool, retention.Counts, error) {
	var c retention.Counts
	key := event.ManifestKey(room, session)
	live, rewritten := false, false
	rc, info, err := e.cfg.Store.Get(ctx, key)
	switch {
	case errors.Is(err, storage.ErrNotFound):
	case errors.Is(err, storage.ErrErased):
		return false, c, nil
	case err != nil:
		return false, c, fmt.Errorf("erasure: read manifest %s: %w", key, err)
	default:
		data, err := io.ReadAll(io.LimitReader(rc, maxManifestBytes))
		rc.Close()
		if err != nil {
			return false, c, fmt.Errorf("erasure: read manifest %s: %w", key, err)
		}
		out, changed, err := scrubJSON(data, speaker, tracks)
		if err != nil {
			return false, c, fmt.Errorf("erasure: manifest %s: %w", key, err)
		}
		if changed {
			md := map[string]string{}
			maps.Copy(md, info.Metadata)
			delete(md, "sha256") // the store's own
			// room and session pick the session key, as ingest wrote it.
			md["room"], md["session"] = room, session
			if _, err := e.cfg.Store.Put(ctx, key, bytes.NewReader(out), int64(len(out)), storage.PutOptions{
				ContentType: "application/json", Metadata: md}); err != nil {
				return false, c, fmt.Errorf("erasure: rewrite manifest %s: %w", key, err)
			}
			rewritten = true
		}
		live = true
	}
	var old []storage.Version
	for v, err := range e.cfg.Store.ListVersions(ctx, key) {
		if err != nil {
			return rewritten, c, fmt.Errorf("erasure: list versions of %s: %w", key, err)
		}
		if v.Key != key || (live && v.IsLatest && !v.DeleteMarker) {
			continue
		}
		old = append(old, v)
	}
	if len(old) == 0 {
		return rewritten, c, nil
	}
	vd, ok := e.cfg.Store.(storage.VersionDeleter)
	if !ok {
		return rewritten, c, fmt.Errorf("erasure: %d old versions of %s name the speaker and the store cannot delete versions", len(old), key)
	}
	locked := false
	for _, v := range old {
		err := vd.DeleteVersion(ctx, key, v.VersionID)
		switch {
		case errors.Is(err, storage.ErrLocked):
			locked = true
		case err != nil:
			return rewritten, c, fmt.Errorf("erasure: delete version %s of %s: %w", v.VersionID, key, err)
		default:
			c.Versions++
		}
	}
	if locked {
		c.Locked++
	}
	return rewritten, c, nil
}

// scrubJSON removes from a JSON document everything naming speaker: any
// object whose "speaker" is theirs or whose "track" is one of their
// tracks, and any string mentioning the pseudonym or one of the track IDs
// (inside arrays the element goes, inside objects the member). The
// document is decoded generically so that fields this package does not
// know survive; numbers keep their exact text.
func scrubJSON(data []byte, speaker string, tracks map[string]bool) ([]byte, bool, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, false, fmt.Errorf("decode: %w", err)
	}
	s := scrubber{speaker: speaker, tracks: tracks}
	doc, _ = s.scrub(doc)
	if !s.changed {
		return data, false, nil
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, false, fmt.Errorf("encode: %w", err)
	}
	return out, true, nil
}

type scrubber struct {
	speaker string
	tracks  map[string]bool
	changed bool
}

func (s *scrubber) names(str string) bool {
	if strings.Contains(str, s.speaker) {
		return true
	}
	for t := range s.tracks {
		if strings.Contains(str, t) {
			return true
		}
	}
	return false
}

// scrub returns v without what names the speaker, and whether v itself
// names them (the caller drops it).
func (s *scrubber) scrub(v any) (any, bool) {
	switch x := v.(type) {
	case string:
		return x, s.names(x)
	case map[string]any:
		if sp, _ := x["speaker"].(string); sp == s.speaker {
			return x, true
		}
		if tr, _ := x["track"].(string); s.tracks[tr] {
			return x, true
		}
		for k, m := range x {
			m, drop := s.scrub(m)
			if drop || s.names(k) {
				delete(x, k)
				s.changed = true
				continue
			}
			x[k] = m
		}
		return x, false
	case []any:
		out := x[:0]
		for _, m := range x {
			m, drop := s.scrub(m)
			if drop {
				s.changed = true
				continue
			}
			out = append(out, m)
		}
		return out, false
	}
	return v, false
}
