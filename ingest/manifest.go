package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/clock"
	"github.com/earshot/earshot/record"
	"github.com/earshot/earshot/record/spool"
	"github.com/earshot/earshot/storage"
)

// ManifestVersion is the manifest format this build writes.
const ManifestVersion = 1

// Manifest is a session's manifest (docs/ingest.md): what was recorded,
// where it is stored, and what is missing and why. It carries pseudonyms
// only.
type Manifest struct {
	Version   int    `json:"manifest_version"`
	Room      string `json:"room"`
	Session   string `json:"session"`
	Connector string `json:"connector"` // videoroom or audiobridge
	// Opened and Ended are the session's lifecycle times (UTC); Ended is
	// nil while the session is open.
	Opened      time.Time  `json:"opened"`
	Ended       *time.Time `json:"ended,omitempty"`
	EndedReason string     `json:"ended_reason,omitempty"`
	Updated     time.Time  `json:"updated"`
	// Stays are the bots' stays in the room, in order: a gap between one
	// stay's left and the next one's joined is time nobody recorded.
	Stays  []ManifestStay  `json:"stays"`
	Tracks []ManifestTrack `json:"tracks"`
}

// ManifestStay is one bot's stay in the room.
type ManifestStay struct {
	Instance string     `json:"instance"`
	Joined   time.Time  `json:"joined"`
	Left     *time.Time `json:"left,omitempty"`
	Reason   string     `json:"reason,omitempty"` // why it left
}

// ManifestTrack is one track of the session.
type ManifestTrack struct {
	Track   string `json:"track"`
	Speaker string `json:"speaker"` // pseudonym; "" for a room's mix
	Ordinal int    `json:"ordinal"`
	// FirstSample and LastSample bound the timeline (LastSample -1: no
	// audio); Origin is the UTC time of sample 0 and Anchor how it was
	// established (rtcp_sr or arrival).
	FirstSample int64              `json:"first_sample"`
	LastSample  int64              `json:"last_sample"`
	Origin      time.Time          `json:"origin"`
	Anchor      event.Anchor       `json:"anchor"`
	Started     time.Time          `json:"started"`
	Ended       *time.Time         `json:"ended,omitempty"`
	EndReason   string             `json:"end_reason,omitempty"`
	Segments    []ManifestSegment  `json:"segments"`
	Gaps        []record.GapSpan   `json:"gaps"`
	GapSamples  record.Gaps        `json:"gap_samples"`
	Packets     ManifestPacketStat `json:"packets"`
}

// ManifestSegment is one stored segment of a track.
type ManifestSegment struct {
	Seq         int64  `json:"seq"`
	Key         string `json:"key"`
	SHA256      string `json:"sha256"`
	Size        int64  `json:"size"`
	FirstSample int64  `json:"first_sample"`
	LastSample  int64  `json:"last_sample"`
}

// ManifestPacketStat counts a track's RTP packets.
type ManifestPacketStat struct {
	Received   int64 `json:"received"` // placed on the timeline
	Lost       int64 `json:"lost"`
	Late       int64 `json:"late"`
	Duplicates int64 `json:"duplicates"`
	Malformed  int64 `json:"malformed"`
}

// manifest builds a session's Manifest; tracks update it from their own
// goroutines.
type manifest struct {
	mu sync.Mutex
	m  Manifest
	// gone holds the tracks of erased speakers: updates to them land in
	// scratch, so a later gap or segment cannot bring a track back.
	gone    map[string]bool
	scratch ManifestTrack
}

func newManifest(room, session, connector string, opened time.Time) *manifest {
	return &manifest{m: Manifest{
		Version: ManifestVersion, Room: room, Session: session, Connector: connector,
		Opened: opened.UTC(), Stays: []ManifestStay{}, Tracks: []ManifestTrack{},
	}}
}

func (b *manifest) join(instance string, at time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.m.Stays = append(b.m.Stays, ManifestStay{Instance: instance, Joined: at.UTC()})
}

func (b *manifest) leave(instance, reason string, at time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := len(b.m.Stays) - 1; i >= 0; i-- {
		if s := &b.m.Stays[i]; s.Instance == instance && s.Left == nil {
			u := at.UTC()
			s.Left, s.Reason = &u, reason
			return
		}
	}
}

// StayGone is the reason of a stay its bot never closed (killed, or its
// host lost): the bot that continues the session closes it at the dead
// bot's last lease renewal, so the gap to the next stay is named.
const StayGone = "gone without leaving (its lease expired unrenewed); session taken over"

// closeOpen closes every stay still open, as left at at for reason.
func (b *manifest) closeOpen(reason string, at time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	u := at.UTC()
	for i := range b.m.Stays {
		if s := &b.m.Stays[i]; s.Left == nil {
			left := u
			if left.Before(s.Joined) {
				left = s.Joined
			}
			s.Left, s.Reason = &left, reason
		}
	}
}

func (b *manifest) end(reason string, at time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if at.IsZero() {
		at = time.Now()
	}
	u := at.UTC()
	b.m.Ended, b.m.EndedReason = &u, reason
}

// track returns the entry of a track, adding it when new. b.mu is held.
func (b *manifest) track(id string) *ManifestTrack {
	if b.gone[id] {
		b.scratch = ManifestTrack{}
		return &b.scratch
	}
	for i := range b.m.Tracks {
		if b.m.Tracks[i].Track == id {
			return &b.m.Tracks[i]
		}
	}
	b.m.Tracks = append(b.m.Tracks, ManifestTrack{Track: id, LastSample: -1, Segments: []ManifestSegment{}, Gaps: []record.GapSpan{}})
	return &b.m.Tracks[len(b.m.Tracks)-1]
}

func (b *manifest) trackStarted(id, speaker string, ordinal int, tl event.Timeline, at time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.track(id)
	t.Speaker, t.Ordinal, t.Origin, t.Anchor, t.Started = speaker, ordinal, tl.Origin, tl.Anchor, at.UTC()
}

func (b *manifest) gap(id string, g record.GapSpan) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.track(id)
	if n := len(t.Gaps); n > 0 && t.Gaps[n-1].Cause == g.Cause && t.Gaps[n-1].LastSample+1 == g.FirstSample {
		t.Gaps[n-1].LastSample = g.LastSample
		return
	}
	t.Gaps = append(t.Gaps, g)
}

func (b *manifest) segment(id string, e spool.Entry) {
	tl := e.Event.Timeline
	if tl == nil {
		return
	}
	var p event.SegmentStored
	_ = e.Event.DecodePayload(&p)
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.track(id)
	t.Segments = append(t.Segments, ManifestSegment{
		Seq: p.Seq, Key: e.Key, SHA256: e.SHA256, Size: e.Size, FirstSample: tl.FirstSample, LastSample: tl.LastSample,
	})
}

func (b *manifest) trackEnded(id, reason string, tl event.Timeline, s record.Stats, at time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.track(id)
	u := at.UTC()
	t.Ended, t.EndReason = &u, reason
	t.FirstSample, t.LastSample, t.Origin, t.Anchor = tl.FirstSample, tl.LastSample, tl.Origin, tl.Anchor
	t.GapSamples = s.Gaps
	t.Packets = ManifestPacketStat{Received: s.Packets, Lost: s.Lost, Late: s.Late, Duplicates: s.Duplicates, Malformed: s.Malformed}
}

// encode returns the manifest's JSON.
func (b *manifest) encode() ([]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.m.Updated = time.Now().UTC()
	m := b.m
	m.Tracks = slices.Clone(m.Tracks)
	slices.SortStableFunc(m.Tracks, func(x, y ManifestTrack) int { return x.Started.Compare(y.Started) })
	return json.MarshalIndent(m, "", "  ")
}

// manifestKey is the manifest's key for session_ended, or "" when no
// manifests are written.
func (s *Stage) manifestKey(room, session string) string {
	if s.cfg.Manifests == nil {
		return ""
	}
	return event.ManifestKey(room, session)
}

// writeManifest stores the manifest, overwriting the previous version:
// it is the one mutable object of a session. Failures are logged; the
// next track end or the session end writes it again.
func (s *Stage) writeManifest(ctx context.Context, b *manifest) {
	if s.cfg.Manifests == nil || b == nil {
		return
	}
	key := event.ManifestKey(b.m.Room, b.m.Session)
	// Written at stay ends too, when ctx may be over.
	err := s.putManifest(context.WithoutCancel(ctx), b)
	s.manMu.Lock()
	defer s.manMu.Unlock()
	if err != nil {
		s.m.manifestErrors.Inc()
		s.log.Warn("writing the session manifest failed; trying again", "room", b.m.Room, "session", b.m.Session, "retry_in", manifestRetry, "error", err)
		s.manPending[key] = b
		return
	}
	delete(s.manPending, key)
}

// manifestRetry is how often manifests whose write failed (an object-store
// outage) are written again: the last write of a session may have no later
// track or session end to carry it.
const manifestRetry = 5 * time.Second

// retryManifests writes the manifests whose write failed again, every
// manifestRetry until ctx ends.
func (s *Stage) retryManifests(ctx context.Context) {
	for clock.Sleep(ctx, manifestRetry) {
		s.flushManifests(ctx)
	}
}

// flushManifests tries every pending manifest once.
func (s *Stage) flushManifests(ctx context.Context) {
	s.manMu.Lock()
	pending := make([]*manifest, 0, len(s.manPending))
	for _, b := range s.manPending {
		pending = append(pending, b)
	}
	s.manMu.Unlock()
	for _, b := range pending {
		if ctx.Err() != nil {
			return
		}
		if err := s.putManifest(ctx, b); err != nil {
			continue
		}
		s.manMu.Lock()
		if s.manPending[event.ManifestKey(b.m.Room, b.m.Session)] == b {
			delete(s.manPending, event.ManifestKey(b.m.Room, b.m.Session))
		}
		s.manMu.Unlock()
		s.log.Info("session manifest written after an earlier failure", "room", b.m.Room, "session", b.m.Session)
	}
}

// putManifest writes b's current state.
func (s *Stage) putManifest(ctx context.Context, b *manifest) error {
	if err := s.dropErased(ctx, b); err != nil {
		return fmt.Errorf("cannot check for erased speakers: %w", err)
	}
	data, err := b.encode()
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err = s.cfg.Manifests.Put(wctx, event.ManifestKey(b.m.Room, b.m.Session), bytes.NewReader(data), int64(len(data)), storage.PutOptions{
		ContentType: "application/json",
		// room and session let the encryption wrapper pick the
		// session's data key.
		Metadata: map[string]string{"room": b.m.Room, "session": b.m.Session, "manifest-version": fmt.Sprint(ManifestVersion)},
	})
	return err
}

// loadManifest reads a session's manifest, when the manifest store can be
// read, so a bot continuing another's session extends it. nil when there
// is none or it cannot be read.
func (s *Stage) loadManifest(ctx context.Context, room, session string) *manifest {
	g, ok := s.cfg.Manifests.(storage.Getter)
	if !ok {
		return nil
	}
	gctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rc, _, err := g.Get(gctx, event.ManifestKey(room, session))
	if err != nil {
		if !errors.Is(err, storage.ErrNotFound) {
			s.log.Warn("reading the session manifest failed; starting a new one", "room", room, "session", session, "error", err)
		}
		return nil
	}
	defer rc.Close()
	var m Manifest
	data, err := io.ReadAll(io.LimitReader(rc, 64<<20))
	if err == nil {
		err = json.Unmarshal(data, &m)
	}
	if err != nil || m.Version != ManifestVersion || m.Session != session {
		s.log.Warn("session manifest unreadable; starting a new one", "room", room, "session", session, "error", err)
		return nil
	}
	return &manifest{m: m}
}

// shredChecker tells whether a speaker's data key was destroyed: the
// person was erased (earshot erase) while their session was recorded.
// crypt.Keyring implements it.
type shredChecker interface {
	Destroyed(ctx context.Context, ref event.KeyRef) (bool, error)
}

// dropErased removes from the manifest every track of a speaker whose key
// was shredded, before the manifest is written. Erasure scrubs the stored
// manifest, but a bot still in the room holds its own copy and rewrites it
// at the next track or session end; without this the erased pseudonym,
// track IDs and segment hashes would come back. An erasure that completes
// between this check and the write is caught by the erasure's recheck
// (docs/compliance.md). With keys that cannot tell, nothing is dropped.
func (s *Stage) dropErased(ctx context.Context, b *manifest) error {
	sc, ok := s.cfg.Keys.(shredChecker)
	if !ok {
		return nil
	}
	b.mu.Lock()
	room, session := b.m.Room, b.m.Session
	var speakers []string
	for _, t := range b.m.Tracks {
		if t.Speaker != "" && !slices.Contains(speakers, t.Speaker) {
			speakers = append(speakers, t.Speaker)
		}
	}
	b.mu.Unlock()
	for _, sp := range speakers {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		gone, err := sc.Destroyed(cctx, event.KeyRef{ID: event.KeyID(session, sp), Room: room, Session: session, Speaker: sp})
		cancel()
		if err != nil {
			return fmt.Errorf("ingest: manifest: check key of a speaker: %w", err)
		}
		if gone {
			b.dropSpeaker(sp)
			s.log.Info("erased speaker removed from the session manifest", "room", room, "session", session)
		}
	}
	return nil
}

// dropSpeaker removes every track of speaker.
func (b *manifest) dropSpeaker(speaker string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.gone == nil {
		b.gone = map[string]bool{}
	}
	b.m.Tracks = slices.DeleteFunc(b.m.Tracks, func(t ManifestTrack) bool {
		if t.Speaker == speaker {
			b.gone[t.Track] = true
		}
		return t.Speaker == speaker
	})
}
