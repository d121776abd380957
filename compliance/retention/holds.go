package retention

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/earshot/earshot/compliance/archive"
	"github.com/earshot/earshot/storage"
)

// HoldPrefix is where hold markers live.
const HoldPrefix = "holds/"

// Hold is a legal hold: data in its scope is neither swept nor erased
// until it is lifted.
type Hold struct {
	Scope
	Reason   string    `json:"reason"`
	Operator string    `json:"operator"`
	Set      time.Time `json:"set"`
}

// HoldKey is the marker object of a hold on scope:
// holds/<room|_>/<session|_>/<speaker|_>.json.
func HoldKey(s Scope) string {
	f := func(v string) string {
		if v == "" {
			return archive.None
		}
		return v
	}
	return HoldPrefix + f(s.Room) + "/" + f(s.Session) + "/" + f(s.Speaker) + ".json"
}

// LegalHolder sets or clears the S3 object-lock legal hold of one object
// version. An S3 store whose bucket has object lock implements it; with it,
// the bucket itself refuses to delete held versions, whoever asks.
type LegalHolder interface {
	SetLegalHold(ctx context.Context, key, versionID string, on bool) error
}

// Holds keeps legal holds as marker objects (always: they are how the
// sweeper and erasure see holds) and, when Lock is set, also as S3
// object-lock legal holds on every version in the scope.
type Holds struct {
	Store Store
	Lock  LegalHolder // optional
}

// ErrNoScope is returned for a hold that names no room and no speaker.
var ErrNoScope = errors.New("retention: a hold needs a room or a speaker")

// Set places (or updates) a hold.
func (h *Holds) Set(ctx context.Context, hold Hold) error {
	if hold.Room == "" && hold.Speaker == "" {
		return ErrNoScope
	}
	if hold.Set.IsZero() {
		hold.Set = time.Now().UTC()
	}
	b, err := json.Marshal(hold)
	if err != nil {
		return fmt.Errorf("retention: encode hold: %w", err)
	}
	key := HoldKey(hold.Scope)
	if _, err := h.Store.Put(ctx, key, bytes.NewReader(b), int64(len(b)), storage.PutOptions{ContentType: "application/json"}); err != nil {
		return fmt.Errorf("retention: set hold %s: %w", hold.Scope, err)
	}
	if h.Lock != nil {
		if _, err := h.apply(ctx, hold.Scope, true, nil); err != nil {
			return err
		}
	}
	return nil
}

// Lift removes a hold (every version of its marker). Object-lock holds are
// cleared on versions no other hold covers. Lifting a hold that does not
// exist reports false.
func (h *Holds) Lift(ctx context.Context, s Scope) (bool, error) {
	key := HoldKey(s)
	existed := false
	for kv, err := range Keys(ctx, h.Store, key, func(k string) bool { return k == key }) {
		if err != nil {
			return false, err
		}
		existed = kv.Live
	}
	if err := h.Store.DeleteAll(ctx, key); err != nil {
		return false, fmt.Errorf("retention: lift hold %s: %w", s, err)
	}
	if h.Lock != nil {
		rest, err := h.List(ctx)
		if err != nil {
			return existed, err
		}
		if _, err := h.apply(ctx, s, false, rest); err != nil {
			return existed, err
		}
	}
	return existed, nil
}

// List returns every hold in place.
func (h *Holds) List(ctx context.Context) ([]Hold, error) {
	var out []Hold
	for oi, err := range h.Store.List(ctx, HoldPrefix) {
		if err != nil {
			return nil, fmt.Errorf("retention: list holds: %w", err)
		}
		hold, err := h.read(ctx, oi.Key)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, hold)
	}
	return out, nil
}

func (h *Holds) read(ctx context.Context, key string) (Hold, error) {
	rc, _, err := h.Store.Get(ctx, key)
	if err != nil {
		return Hold{}, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 64<<10))
	if err != nil {
		return Hold{}, fmt.Errorf("retention: read hold %s: %w", key, err)
	}
	var hold Hold
	if err := json.Unmarshal(b, &hold); err != nil {
		return Hold{}, fmt.Errorf("retention: hold marker %s: %w", key, err)
	}
	return hold, nil
}

// Covered returns the holds that cover (room, session, speaker).
func Covered(holds []Hold, room, session, speaker string) []Hold {
	var out []Hold
	for _, h := range holds {
		if h.Covers(room, session, speaker) {
			out = append(out, h)
		}
	}
	return out
}

// Apply sets the object-lock legal hold on every version in the scope of
// each hold: objects written after a hold was set get it on the next sweep.
// Without Lock it does nothing.
func (h *Holds) Apply(ctx context.Context, holds []Hold) (int, error) {
	if h.Lock == nil {
		return 0, nil
	}
	n := 0
	for _, hold := range holds {
		k, err := h.apply(ctx, hold.Scope, true, nil)
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// apply sets (or clears) object-lock holds in scope s; when clearing,
// versions that a hold in keep still covers are left held.
func (h *Holds) apply(ctx context.Context, s Scope, on bool, keep []Hold) (int, error) {
	prefixes := []string{AudioPrefix, archive.Prefix, ManifestPrefix}
	if s.Room != "" {
		prefixes = []string{AudioPrefix + s.Room + "/", archive.ScopePrefix(s.Room, "", ""), ManifestPrefix + s.Room + "/"}
	}
	n := 0
	for _, p := range prefixes {
		var speakers map[string]string
		if strings.HasPrefix(p, AudioPrefix) {
			var err error
			if speakers, err = TrackSpeakers(ctx, h.Store, p); err != nil {
				return n, fmt.Errorf("retention: object lock for %s: %w", s, err)
			}
		}
		for v, err := range h.Store.ListVersions(ctx, p) {
			if err != nil {
				return n, fmt.Errorf("retention: object lock for %s: %w", s, err)
			}
			if v.DeleteMarker {
				continue
			}
			room, session, speaker, ok := place(v.Key, speakers)
			if !ok || !s.Covers(room, session, speaker) || (!on && len(Covered(keep, room, session, speaker)) > 0) {
				continue
			}
			if err := h.Lock.SetLegalHold(ctx, v.Key, v.VersionID, on); err != nil {
				return n, fmt.Errorf("retention: object lock for %s on %s: %w", s, v.Key, err)
			}
			n++
		}
	}
	return n, nil
}

// place says which room, session and speaker a key's data belongs to.
// Audio keys carry a track, not a speaker: speakers (TrackSpeakers) maps
// it. A track written after the map was made waits for the next sweep.
func place(key string, speakers map[string]string) (string, string, string, bool) {
	if a, ok := ParseAudioKey(key); ok {
		return a.Room, a.Session, speakers[a.Track], true
	}
	if r, ok := archive.ParseKey(key); ok {
		return r.Room, r.Session, r.Speaker, true
	}
	if r, s, ok := ParseManifestKey(key); ok {
		return r, s, "", true
	}
	return "", "", "", false
}
