package fingerprint

import (
	"errors"
	"fmt"
	"time"
)

// TrackInfo says whose audio a track is. Room and Speaker are the
// pipeline's pseudonyms, never raw identities.
type TrackInfo struct {
	Track   string
	Room    string
	Speaker string
	// StartMS is the wall-clock time of the track's first sample (Unix
	// milliseconds): frame t starts at StartMS + t*FrameMS.
	StartMS int64
	// Private marks a private or confidential room.
	Private bool
}

// entry is one indexed landmark: 8 bytes.
type entry struct {
	track uint32
	t     int32
}

type trackState struct {
	info  TrackInfo
	room  uint32 // the room's number in this index
	dead  bool   // erased or expired: skipped by lookups, swept from slots
	last  int32
	count int
	// levels are the track's frame levels from frame lbase on (one byte
	// a frame): what decides whether matched audio is speech.
	levels []int8
	lbase  int32
}

// IndexConfig shapes an Index.
type IndexConfig struct {
	// Window is how long landmarks stay in the index (default 30 min).
	Window time.Duration
}

// Index holds the landmarks of every track of the last Window, across
// rooms. It is a flat table of 2^HashBits slots, each a slice of entries
// in arrival order: a lookup is one slice read, and expiry trims slices
// from the front. It is not safe for concurrent use.
type Index struct {
	window int64 // ms
	slots  [][]entry
	tracks []trackState
	byName map[string]uint32
	rooms  map[string]uint32
	n      int // live entries
}

// NewIndex returns an empty index.
func NewIndex(cfg IndexConfig) (*Index, error) {
	if cfg.Window == 0 {
		cfg.Window = 30 * time.Minute
	}
	if cfg.Window < time.Minute {
		return nil, fmt.Errorf("fingerprint: index window %v is shorter than a minute", cfg.Window)
	}
	return &Index{window: cfg.Window.Milliseconds(), slots: make([][]entry, 1<<HashBits), byName: map[string]uint32{}, rooms: map[string]uint32{}}, nil
}

// ErrUnknownTrack is returned for a track the index does not hold.
var ErrUnknownTrack = errors.New("fingerprint: unknown track")

// AddTrack registers a track and returns its number in this index; a
// track registered again keeps its number.
func (x *Index) AddTrack(info TrackInfo) uint32 {
	if id, ok := x.byName[info.Track]; ok {
		return id
	}
	id := uint32(len(x.tracks))
	room, ok := x.rooms[info.Room]
	if !ok {
		room = uint32(len(x.rooms))
		x.rooms[info.Room] = room
	}
	x.tracks = append(x.tracks, trackState{info: info, room: room, last: -1})
	x.byName[info.Track] = id
	return id
}

// Info returns a track's description.
func (x *Index) Info(id uint32) TrackInfo { return x.tracks[id].info }

// Add indexes pairs of track id (hashed at speed 1).
func (x *Index) Add(id uint32, pairs []Pair) error {
	if int(id) >= len(x.tracks) || x.tracks[id].dead {
		return fmt.Errorf("%w: %d", ErrUnknownTrack, id)
	}
	ts := &x.tracks[id]
	for _, p := range pairs {
		h, ok := Hash(p, 1)
		if !ok {
			continue
		}
		x.slots[h] = append(x.slots[h], entry{track: id, t: p.T})
		ts.count++
		x.n++
		ts.last = max(ts.last, p.T)
	}
	return nil
}

// AddLevels records the levels of track id's next frames (as
// Extractor.Push returns them).
func (x *Index) AddLevels(id uint32, levels []int8) {
	if int(id) < len(x.tracks) && !x.tracks[id].dead {
		x.tracks[id].levels = append(x.tracks[id].levels, levels...)
	}
}

// levelsOf returns the levels of track id over frames [from, to], clipped
// to what the index holds.
func (x *Index) levelsOf(id uint32, from, to int32) []int8 {
	ts := &x.tracks[id]
	lo, hi := int(from-ts.lbase), int(to-ts.lbase)+1
	lo, hi = max(lo, 0), min(hi, len(ts.levels))
	if lo >= hi {
		return nil
	}
	return ts.levels[lo:hi]
}

// Len is the number of landmarks indexed.
func (x *Index) Len() int { return x.n }

// Bytes estimates the index's memory: entry storage (with the slack of
// slice growth) and the slot table.
func (x *Index) Bytes() int64 {
	var capSum int64
	for _, s := range x.slots {
		capSum += int64(cap(s))
	}
	var lv int64
	for _, ts := range x.tracks {
		lv += int64(cap(ts.levels))
	}
	return capSum*8 + lv + int64(len(x.slots))*24 + int64(len(x.tracks))*128
}

// endMS is the wall time of a track's frame t.
func endMS(info TrackInfo, t int32) int64 { return info.StartMS + int64(t)*FrameMS }

// Expire removes every landmark older than the window at nowMS.
func (x *Index) Expire(nowMS int64) {
	cut := nowMS - x.window
	for id := range x.tracks {
		ts := &x.tracks[id]
		if !ts.dead && ts.last >= 0 && endMS(ts.info, ts.last) < cut {
			x.drop(uint32(id))
		}
		if ts.dead {
			continue
		}
		if n := int((cut-ts.info.StartMS)/FrameMS) - int(ts.lbase); n > 0 {
			n = min(n, len(ts.levels))
			ts.levels = append([]int8(nil), ts.levels[n:]...)
			ts.lbase += int32(n)
		}
	}
	x.sweep(func(e entry) bool {
		return x.tracks[e.track].dead || endMS(x.tracks[e.track].info, e.t) < cut
	})
}

// EraseSpeaker removes every landmark of a speaker's tracks (erasure: a
// person's fingerprints go with their keys) and returns how many tracks
// it dropped.
func (x *Index) EraseSpeaker(speaker string) int {
	return x.eraseWhere(func(i TrackInfo) bool { return i.Speaker == speaker })
}

// EraseRoom removes every landmark of a room's tracks.
func (x *Index) EraseRoom(room string) int {
	return x.eraseWhere(func(i TrackInfo) bool { return i.Room == room })
}

func (x *Index) eraseWhere(match func(TrackInfo) bool) int {
	n := 0
	for id := range x.tracks {
		if !x.tracks[id].dead && match(x.tracks[id].info) {
			x.drop(uint32(id))
			n++
		}
	}
	if n > 0 {
		x.sweep(func(e entry) bool { return x.tracks[e.track].dead })
	}
	return n
}

// drop marks a track dead and forgets its identity.
func (x *Index) drop(id uint32) {
	ts := &x.tracks[id]
	delete(x.byName, ts.info.Track)
	ts.dead = true
	ts.info = TrackInfo{StartMS: ts.info.StartMS}
	ts.levels = nil
}

// sweep removes the entries gone reports, keeping order.
func (x *Index) sweep(gone func(entry) bool) {
	for h, s := range x.slots {
		k := 0
		for _, e := range s {
			if !gone(e) {
				s[k] = e
				k++
			}
		}
		x.n -= len(s) - k
		switch {
		case k == 0:
			x.slots[h] = nil
		case k < cap(s)/4:
			x.slots[h] = append([]entry(nil), s[:k]...)
		default:
			clear(s[k:])
			x.slots[h] = s[:k]
		}
	}
	for id := range x.tracks {
		if x.tracks[id].dead {
			x.tracks[id].count = 0
		}
	}
}

// Landmark is an indexed landmark as another process sends it: its hash at
// speed 1 and its anchor frame. A reference needs no more: only the query
// side hashes under several speed hypotheses, and that needs the pair's
// frequencies (Pair), which never leave the process that extracted them.
type Landmark struct {
	Hash uint32
	T    int32
}

// Landmarks returns the hashes at speed 1 of pairs, as Add indexes them.
func Landmarks(pairs []Pair, out []Landmark) []Landmark {
	for _, p := range pairs {
		if h, ok := Hash(p, 1); ok {
			out = append(out, Landmark{Hash: h, T: p.T})
		}
	}
	return out
}

// AddLandmarks indexes landmarks of track id that another process hashed
// (Landmarks). A hash outside HashBits is an error: nothing is added.
func (x *Index) AddLandmarks(id uint32, lms []Landmark) error {
	if int(id) >= len(x.tracks) || x.tracks[id].dead {
		return fmt.Errorf("%w: %d", ErrUnknownTrack, id)
	}
	for _, l := range lms {
		if l.Hash >= 1<<HashBits || l.T < 0 {
			return fmt.Errorf("fingerprint: landmark hash %#x or frame %d out of range", l.Hash, l.T)
		}
	}
	ts := &x.tracks[id]
	for _, l := range lms {
		x.slots[l.Hash] = append(x.slots[l.Hash], entry{track: id, t: l.T})
		ts.count++
		x.n++
		ts.last = max(ts.last, l.T)
	}
	return nil
}

// Tracks is the number of tracks the index holds (expired and erased ones
// not counted).
func (x *Index) Tracks() int {
	n := 0
	for i := range x.tracks {
		if !x.tracks[i].dead {
			n++
		}
	}
	return n
}

// Known reports whether a track of that name is held.
func (x *Index) Known(track string) bool {
	_, ok := x.byName[track]
	return ok
}

// Count is the number of landmarks the index holds for the named track.
func (x *Index) Count(track string) int {
	id, ok := x.byName[track]
	if !ok {
		return 0
	}
	return x.tracks[id].count
}
