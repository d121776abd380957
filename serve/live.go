package serve

import (
	"slices"
	"sync"
	"time"

	"github.com/earshot/earshot/event"
)

// Live keeps what the console's live rooms page shows: the rooms being
// recorded now, their speakers' tracks with their recording state, and
// each room's latest transcript lines (still sealed). It is fed from the
// lifecycle, segments and transcripts topics read from their end when
// serve starts (a room already live shows up with its next segment or
// transcript), in memory and bounded. Safe for concurrent use.
type Live struct {
	mu      sync.Mutex
	now     func() time.Time
	rooms   map[string]*liveRoom
	changed chan struct{}
}

// Bounds of the live view.
const (
	liveLines   = 60               // transcript lines kept per room
	liveRooms   = 2000             // rooms kept; the least recently active is dropped
	liveLinger  = 10 * time.Minute // an ended or silent room stays listed this long
	liveStalled = 75 * time.Second // a live track with no stored segment for this long is stalled (segments are 30 s)
)

type liveRoom struct {
	room, session string
	started       time.Time // session start, or first sight
	ended         time.Time // session end; zero while live
	seen          time.Time // last event
	tracks        map[string]*liveTrack
	lines         []*event.Envelope // transcript events, oldest first
}

type liveTrack struct {
	speaker     string
	started     time.Time
	ended       bool
	lastSegment time.Time
	gapSamples  int64 // silence filled in its stored segments so far
	lastLine    time.Time
}

// NewLive returns an empty live view; now defaults to time.Now.
func NewLive(now func() time.Time) *Live {
	if now == nil {
		now = time.Now
	}
	return &Live{now: now, rooms: map[string]*liveRoom{}}
}

// Apply takes a lifecycle, segment or transcript event; others are
// ignored.
func (l *Live) Apply(e *event.Envelope) {
	if e.Room == "" {
		return
	}
	switch e.Type {
	case event.TypeSessionStarted, event.TypeSessionEnded, event.TypeTrackStarted, event.TypeTrackEnded,
		event.TypeSegmentStored, event.TypeTranscript, event.TypeBotJoined:
	default:
		return
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.rooms[e.Room]
	if r == nil || (e.Session != "" && r.session != e.Session && e.Type == event.TypeSessionStarted) {
		r = &liveRoom{room: e.Room, session: e.Session, started: e.Time, seen: now, tracks: map[string]*liveTrack{}}
		l.rooms[e.Room] = r
		l.trim(now)
	}
	r.seen = now
	if e.Session != "" && r.session == "" {
		r.session = e.Session
	}
	track := func() *liveTrack {
		if e.Timeline == nil || e.Timeline.Track == "" {
			return nil
		}
		t := r.tracks[e.Timeline.Track]
		if t == nil {
			t = &liveTrack{speaker: e.Speaker, started: e.Time}
			r.tracks[e.Timeline.Track] = t
		}
		return t
	}
	switch e.Type {
	case event.TypeSessionStarted:
		r.started, r.ended = e.Time, time.Time{}
	case event.TypeSessionEnded:
		r.ended = e.Time
	case event.TypeTrackStarted:
		if t := track(); t != nil {
			t.started, t.ended = e.Time, false
		}
	case event.TypeTrackEnded:
		if t := track(); t != nil {
			t.ended = true
		}
	case event.TypeSegmentStored:
		var p event.SegmentStored
		if t := track(); t != nil && e.DecodePayload(&p) == nil {
			t.lastSegment = now
			t.gapSamples += p.GapSamples
		}
	case event.TypeTranscript:
		if t := track(); t != nil {
			t.lastLine = now
		}
		r.lines = append(r.lines, e)
		slices.SortStableFunc(r.lines, func(a, b *event.Envelope) int { return lineStart(a).Compare(lineStart(b)) })
		if len(r.lines) > liveLines {
			r.lines = slices.Delete(r.lines, 0, len(r.lines)-liveLines)
		}
	}
	if l.changed != nil {
		close(l.changed)
		l.changed = nil
	}
}

func lineStart(e *event.Envelope) time.Time {
	if e.Timeline == nil {
		return e.Time
	}
	return e.Timeline.Start()
}

// trim drops rooms that ended or went silent long ago, and the least
// recently active past the bound; l.mu is held.
func (l *Live) trim(now time.Time) {
	for k, r := range l.rooms {
		if now.Sub(r.seen) > liveLinger && (!r.ended.IsZero() || now.Sub(r.seen) > 2*liveLinger) {
			delete(l.rooms, k)
		}
	}
	for len(l.rooms) > liveRooms {
		var oldest *liveRoom
		for _, r := range l.rooms {
			if oldest == nil || r.seen.Before(oldest.seen) {
				oldest = r
			}
		}
		delete(l.rooms, oldest.room)
	}
}

// Changed returns a channel closed at the next change.
func (l *Live) Changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.changed == nil {
		l.changed = make(chan struct{})
	}
	return l.changed
}

// LiveTrack is one speaker's track as the live page shows it.
type LiveTrack struct {
	Track, Speaker string
	Started        time.Time
	Ended          bool
	// State: "recording", "stalled" (no stored segment for a while),
	// "gaps" (silence filled where packets were lost) or "ended".
	State      string
	GapSeconds float64
	LastLine   time.Time
}

// LiveRoom is one room as the live page shows it.
type LiveRoom struct {
	Room, Session string
	Started       time.Time
	Ended         time.Time
	Tracks        []LiveTrack
	// Lines are the latest transcript events, oldest first (sealed).
	Lines []*event.Envelope
}

// Rooms returns the rooms seen lately that pass keep, most recently
// started first.
func (l *Live) Rooms(keep func(room string) bool) []LiveRoom {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.trim(now)
	var out []LiveRoom
	for _, r := range l.rooms {
		if keep(r.room) {
			out = append(out, r.view(now))
		}
	}
	slices.SortFunc(out, func(a, b LiveRoom) int { return b.Started.Compare(a.Started) })
	return out
}

// Room returns one room.
func (l *Live) Room(room string) (LiveRoom, bool) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.rooms[room]
	if !ok {
		return LiveRoom{}, false
	}
	return r.view(now), true
}

func (r *liveRoom) view(now time.Time) LiveRoom {
	v := LiveRoom{Room: r.room, Session: r.session, Started: r.started, Ended: r.ended, Lines: slices.Clone(r.lines)}
	for id, t := range r.tracks {
		lt := LiveTrack{Track: id, Speaker: t.speaker, Started: t.started, Ended: t.ended,
			GapSeconds: event.SamplesToDuration(t.gapSamples).Seconds(), LastLine: t.lastLine}
		last := t.lastSegment
		if last.IsZero() {
			last = t.started
		}
		switch {
		case t.ended || !r.ended.IsZero():
			lt.State = "ended"
		case now.Sub(last) > liveStalled:
			lt.State = "stalled"
		case t.gapSamples > 0:
			lt.State = "gaps"
		default:
			lt.State = "recording"
		}
		v.Tracks = append(v.Tracks, lt)
	}
	slices.SortFunc(v.Tracks, func(a, b LiveTrack) int { return a.Started.Compare(b.Started) })
	return v
}
