// Package evidence cuts a stretch of a track's timeline out of its stored
// Ogg/Opus segments as one self-contained Ogg/Opus stream: the audio a
// moderator hears when checking an alert.
//
// Segments (record package) hold whole Opus packets on a sample-exact
// timeline, each segment led by 80 ms of warm-up packets that its pre-skip
// hides. Cut re-packetises without re-encoding: it takes the packets that
// cover the window from as many segments as it spans, starts at least
// 80 ms (PreRoll) before the window so that the decoder has converged when
// the window begins, sets the pre-skip to hide that pre-roll exactly, and
// trims the end with the last page's granule position (RFC 7845 §4). A
// decoder therefore outputs exactly the window's samples. Stretches with no
// stored segment (an upload that never happened) are filled with Opus
// silence frames, so positions inside the cut stay true to the timeline.
package evidence

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/record"
	"github.com/earshot/earshot/record/ogg"
	"github.com/earshot/earshot/storage"
)

// Source is the part of the object store Cut reads. Objects are read as
// stored plaintext Ogg (a decrypting store wrapper sits in front when
// audio is encrypted at rest).
type Source interface {
	storage.Getter
	storage.Lister
}

// PreRoll is the least audio decoded before the window and discarded by
// the pre-skip: RFC 7845 §4.6 recommends 80 ms for the decoder to converge.
const PreRoll = 3840

// ErrNoAudio is returned when no stored audio overlaps the window.
var ErrNoAudio = errors.New("evidence: no stored audio in the window")

// grid is the shortest Opus frame (2.5 ms); every packet lasts a multiple.
const grid = ogg.MinPacketSamples

// pageBytes: an output page ends once its body reaches this size (about a
// second of speech at WebRTC bit rates), keeping the Ogg overhead small.
const pageBytes = 4096

// Request names the stretch to cut: the inclusive sample range
// [First, Last] on one track's 48 kHz timeline.
type Request struct {
	Room, Session, Track string
	First, Last          int64
	// Tags are extra OpusTags comments (NAME=value) for the output, e.g.
	// the alert ID. Pseudonyms only.
	Tags [][2]string
}

// Result describes what Cut wrote.
type Result struct {
	// First and Last are the timeline samples the output decodes to: the
	// request's range, clipped to the stored audio.
	First, Last int64
	// Origin is the UTC time of the track's sample 0 (from the segments'
	// tags), zero when they carry none.
	Origin time.Time
	// PreSkip is the output's OpusHead pre-skip (at least PreRoll).
	PreSkip int
	// Segments is how many stored segments contributed packets.
	Segments int
	// SilenceSamples counts samples filled with silence where no stored
	// packet covered the timeline.
	SilenceSamples int64
	// Damaged lists segment keys whose Ogg data ended early or was
	// corrupt; what could be read of them was used.
	Damaged []string
	// Bytes written.
	Bytes int64
}

// Samples is the decoded length of the output.
func (r Result) Samples() int64 { return r.Last - r.First + 1 }

// Duration is the decoded length of the output.
func (r Result) Duration() time.Duration { return event.SamplesToDuration(r.Samples()) }

// segmentRef is a stored segment found by listing.
type segmentRef struct {
	key         string
	first, last int64
}

// parseSegmentKey reads "<first>-<last>.ogg" at the end of a key.
func parseSegmentKey(key string) (segmentRef, bool) {
	name := key[strings.LastIndexByte(key, '/')+1:]
	name, ok := strings.CutSuffix(name, ".ogg")
	if !ok {
		return segmentRef{}, false
	}
	a, b, ok := strings.Cut(name, "-")
	if !ok {
		return segmentRef{}, false
	}
	first, err1 := strconv.ParseInt(a, 10, 64)
	last, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || first < 0 || last < first {
		return segmentRef{}, false
	}
	return segmentRef{key: key, first: first, last: last}, true
}

// TrackPrefix is the object-key prefix of a track's segments.
func TrackPrefix(room, session, track string) string {
	return "audio/" + room + "/" + session + "/" + track + "/"
}

// segments lists the track's segments that may hold packets in
// [from, to], in timeline order.
func segments(ctx context.Context, src Source, req Request, from, to int64) ([]segmentRef, error) {
	var out []segmentRef
	for info, err := range src.List(ctx, TrackPrefix(req.Room, req.Session, req.Track)) {
		if err != nil {
			return nil, fmt.Errorf("evidence: list segments of %s: %w", req.Track, err)
		}
		s, ok := parseSegmentKey(info.Key)
		if !ok {
			continue
		}
		// A segment's warm-up packets sit up to PreRoll (plus one packet)
		// before its first sample.
		if s.last >= from && s.first-PreRoll-maxPacket <= to {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b segmentRef) int { return cmp.Compare(a.first, b.first) })
	return out, nil
}

// maxPacket is the longest Opus packet (120 ms).
const maxPacket = 5760

// Cut writes the stretch req names as one Ogg/Opus stream to w. It reads
// the segments one at a time and holds at most one Ogg page of output.
func Cut(ctx context.Context, src Source, req Request, w io.Writer) (Result, error) {
	if req.First < 0 {
		req.First = 0
	}
	if req.Last < req.First {
		return Result{}, fmt.Errorf("evidence: cut %s: last sample %d is before first %d", req.Track, req.Last, req.First)
	}
	if req.Room == "" || req.Session == "" || req.Track == "" {
		return Result{}, errors.New("evidence: cut: room, session and track are required")
	}
	start := req.First - PreRoll
	refs, err := segments(ctx, src, req, start-maxPacket, req.Last)
	if err != nil {
		return Result{}, err
	}
	a := &assembler{req: req, target: start, out: &countWriter{w: w}}
	for _, s := range refs {
		if a.full() {
			break
		}
		if err := a.segment(ctx, src, s); err != nil {
			return a.res, err
		}
	}
	return a.finish()
}

// assembler places packets on the output timeline.
type assembler struct {
	req      Request
	target   int64 // first sample of pre-roll wanted (First - PreRoll)
	out      *countWriter
	pw       *ogg.OpusWriter
	started  bool
	s0       int64 // timeline sample of the output's first decoded sample
	cursor   int64 // timeline sample the next packet must start at
	channels int
	used     bool // the current segment contributed
	res      Result
}

func (a *assembler) full() bool { return a.started && a.cursor > a.req.Last }

// segment feeds one stored segment's packets.
func (a *assembler) segment(ctx context.Context, src Source, s segmentRef) error {
	rc, _, err := src.Get(ctx, s.key)
	if errors.Is(err, storage.ErrNotFound) {
		return nil // removed since the listing (retention): a gap
	}
	if err != nil {
		return fmt.Errorf("evidence: read %s: %w", s.key, err)
	}
	defer rc.Close()
	rd, err := ogg.NewOpusReader(rc)
	if err != nil {
		a.res.Damaged = append(a.res.Damaged, s.key)
		return nil
	}
	if a.res.Origin.IsZero() {
		a.res.Origin = tagTime(rd.Tags, record.TagOrigin)
	}
	if a.channels == 0 {
		a.channels = rd.Head.Channels
	}
	a.used = false
	pos := s.first - int64(rd.Head.PreSkip)
	for !a.full() {
		pk, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// A crash leaves a segment without its end (or a damaged
			// page or packet): use what came before, the rest becomes a
			// gap.
			a.res.Damaged = append(a.res.Damaged, s.key)
			break
		}
		if err := a.packet(pos, pk.Samples, pk.Data); err != nil {
			return err
		}
		pos += int64(pk.Samples)
		if pos > a.req.Last && a.started {
			break
		}
	}
	if a.used {
		a.res.Segments++
	}
	return nil
}

// packet places one stored packet at timeline position pos.
func (a *assembler) packet(pos int64, n int, data []byte) error {
	end := pos + int64(n)
	if !a.started {
		switch {
		case end <= a.target:
			return nil // before the pre-roll
		case pos <= a.target:
			a.s0 = pos
		default:
			// Nothing stored just before the window: lead with silence.
			a.s0 = pos - roundUp(pos-a.target, grid)
		}
		if err := a.begin(); err != nil {
			return err
		}
		if err := a.silence(pos); err != nil {
			return err
		}
	}
	if pos < a.cursor {
		return nil // already covered (the next segment's warm-up)
	}
	if pos > a.cursor {
		if err := a.silence(pos); err != nil {
			return err
		}
	}
	a.cursor += int64(n)
	a.used = true
	_, err := a.pw.WritePacket(data)
	return err
}

// begin writes the stream headers once the output's start is known.
func (a *assembler) begin() error {
	a.started, a.cursor = true, a.s0
	a.res.PreSkip = int(a.req.First - a.s0)
	if a.channels == 0 {
		a.channels = 1
	}
	// A serial derived from the request: the same cut gives the same bytes.
	h := fnv.New32a()
	h.Write([]byte(a.req.Track + "/" + strconv.FormatInt(a.req.First, 10) + "/" + strconv.FormatInt(a.req.Last, 10)))
	tags := []ogg.Comment{
		{Name: record.TagTrack, Value: a.req.Track},
		{Name: record.TagRoom, Value: a.req.Room},
		{Name: record.TagSession, Value: a.req.Session},
		{Name: record.TagFirstSample, Value: strconv.FormatInt(a.req.First, 10)},
		{Name: record.TagSampleRate, Value: strconv.Itoa(event.SampleRate)},
	}
	if !a.res.Origin.IsZero() {
		tags = append(tags, ogg.Comment{Name: record.TagOrigin, Value: a.res.Origin.UTC().Format(time.RFC3339Nano)})
	}
	for _, t := range a.req.Tags {
		tags = append(tags, ogg.Comment{Name: t[0], Value: t[1]})
	}
	pw, err := ogg.NewOpusWriter(a.out, ogg.OpusWriterConfig{
		Serial:    h.Sum32(),
		Head:      ogg.Head{Channels: a.channels, PreSkip: a.res.PreSkip, InputRate: event.SampleRate},
		Tags:      ogg.Tags{Vendor: "earshot", Comments: tags},
		PageBytes: pageBytes,
	})
	if err != nil {
		return fmt.Errorf("evidence: %w", err)
	}
	a.pw = pw
	return nil
}

// silence fills the output from the cursor up to pos with silence frames
// (rounded down to the 2.5 ms grid).
func (a *assembler) silence(pos int64) error {
	for pos-a.cursor >= grid {
		p, n := ogg.Silence(pos - a.cursor)
		a.cursor += int64(n)
		if a.cursor > a.req.First {
			a.res.SilenceSamples += min(int64(n), a.cursor-a.req.First)
		}
		if _, err := a.pw.WritePacket(p); err != nil {
			return err
		}
	}
	return nil
}

func (a *assembler) finish() (Result, error) {
	if !a.started || a.cursor <= a.req.First {
		return a.res, fmt.Errorf("%w: track %s, samples %d-%d", ErrNoAudio, a.req.Track, a.req.First, a.req.Last)
	}
	a.res.First = a.req.First
	a.res.Last = min(a.req.Last, a.cursor-1)
	if err := a.pw.CloseAt(a.res.Last + 1 - a.s0); err != nil {
		return a.res, err
	}
	a.res.Bytes = a.out.n
	return a.res, nil
}

func roundUp(v, m int64) int64 { return (v + m - 1) / m * m }

// tagTime is the time in comment name of tags; zero if absent or invalid.
func tagTime(tags ogg.Tags, name string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, tags.Map()[name])
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}

// Origin returns the UTC time of a track's sample 0 as its first stored
// segment records it, so that a wall-clock window can be placed on another
// track's timeline.
func Origin(ctx context.Context, src Source, room, session, track string) (time.Time, error) {
	for info, err := range src.List(ctx, TrackPrefix(room, session, track)) {
		if err != nil {
			return time.Time{}, fmt.Errorf("evidence: list segments of %s: %w", track, err)
		}
		if _, ok := parseSegmentKey(info.Key); !ok {
			continue
		}
		rc, _, err := src.Get(ctx, info.Key)
		if err != nil {
			return time.Time{}, fmt.Errorf("evidence: read %s: %w", info.Key, err)
		}
		rd, err := ogg.NewOpusReader(rc)
		rc.Close()
		if err != nil {
			return time.Time{}, fmt.Errorf("evidence: read %s headers: %w", info.Key, err)
		}
		if t := tagTime(rd.Tags, record.TagOrigin); !t.IsZero() {
			return t, nil
		}
		return time.Time{}, fmt.Errorf("evidence: %s has no %s tag", info.Key, record.TagOrigin)
	}
	return time.Time{}, fmt.Errorf("%w: track %s has no stored segment", ErrNoAudio, track)
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
