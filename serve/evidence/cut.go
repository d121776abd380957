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
	"encoding/binary"
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
const grid = 120

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
	pw       *pageWriter
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
	pr := NewPacketReader(rc)
	head, err := pr.Next()
	if err != nil {
		a.res.Damaged = append(a.res.Damaged, s.key)
		return nil
	}
	preSkip, channels, err := parseOpusHead(head.Data)
	if err != nil {
		a.res.Damaged = append(a.res.Damaged, s.key)
		return nil
	}
	tags, err := pr.Next()
	if err != nil {
		a.res.Damaged = append(a.res.Damaged, s.key)
		return nil
	}
	if a.res.Origin.IsZero() {
		a.res.Origin = tagTime(tags.Data, record.TagOrigin)
	}
	if a.channels == 0 {
		a.channels = channels
	}
	a.used = false
	pos := s.first - int64(preSkip)
	for !a.full() {
		pk, err := pr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// A crash leaves a segment without its end (or a damaged
			// page): use what came before, the rest becomes a gap.
			a.res.Damaged = append(a.res.Damaged, s.key)
			break
		}
		n, err := record.PacketSamples(pk.Data)
		if err != nil {
			a.res.Damaged = append(a.res.Damaged, s.key)
			break
		}
		if err := a.packet(pos, n, pk.Data); err != nil {
			return err
		}
		pos += int64(n)
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
	return a.pw.add(data, a.cursor-a.s0)
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
	a.pw = &pageWriter{w: a.out, serial: h.Sum32()}
	if err := a.pw.header(opusHead(a.channels, a.res.PreSkip), flagBOS); err != nil {
		return err
	}
	tags := [][2]string{
		{record.TagTrack, a.req.Track},
		{record.TagRoom, a.req.Room},
		{record.TagSession, a.req.Session},
		{record.TagFirstSample, strconv.FormatInt(a.req.First, 10)},
		{record.TagSampleRate, strconv.Itoa(event.SampleRate)},
	}
	if !a.res.Origin.IsZero() {
		tags = append(tags, [2]string{record.TagOrigin, a.res.Origin.UTC().Format(time.RFC3339Nano)})
	}
	tags = append(tags, a.req.Tags...)
	return a.pw.header(opusTags(tags), 0)
}

// silence fills the output from the cursor up to pos with silence frames
// (rounded down to the 2.5 ms grid).
func (a *assembler) silence(pos int64) error {
	for pos-a.cursor >= grid {
		p, n := silenceFor(pos - a.cursor)
		a.cursor += int64(n)
		if a.cursor > a.req.First {
			a.res.SilenceSamples += min(int64(n), a.cursor-a.req.First)
		}
		if err := a.pw.add(p, a.cursor-a.s0); err != nil {
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
	if err := a.pw.finish(a.res.Last + 1 - a.s0); err != nil {
		return a.res, err
	}
	a.res.Bytes = a.out.n
	return a.res, nil
}

func roundUp(v, m int64) int64 { return (v + m - 1) / m * m }

// silencePackets are CELT-only fullband silence frames (TOC config 31, 30,
// 29, 28; payload 0xFF 0xFE, the silence flag) for 20, 10, 5 and 2.5 ms,
// as the recorder fills gaps with.
var silencePackets = []struct {
	samples int
	packet  []byte
}{
	{960, []byte{0xF8, 0xFF, 0xFE}},
	{480, []byte{0xF0, 0xFF, 0xFE}},
	{240, []byte{0xE8, 0xFF, 0xFE}},
	{120, []byte{0xE0, 0xFF, 0xFE}},
}

// silenceFor returns the longest silence packet that fits in n samples.
func silenceFor(n int64) ([]byte, int) {
	for _, s := range silencePackets {
		if int64(s.samples) <= n {
			return s.packet, s.samples
		}
	}
	return silencePackets[len(silencePackets)-1].packet, grid
}

// opusHead builds an OpusHead packet (RFC 7845 §5.1), mapping family 0.
func opusHead(channels, preSkip int) []byte {
	b := append([]byte("OpusHead"), 1, byte(channels))
	b = binary.LittleEndian.AppendUint16(b, uint16(preSkip))
	b = binary.LittleEndian.AppendUint32(b, event.SampleRate)
	b = binary.LittleEndian.AppendUint16(b, 0) // output gain
	return append(b, 0)                        // mapping family
}

// parseOpusHead returns the pre-skip and channel count of an OpusHead.
func parseOpusHead(p []byte) (preSkip, channels int, err error) {
	if len(p) < 19 || string(p[:8]) != "OpusHead" || p[8]>>4 != 0 {
		return 0, 0, fmt.Errorf("%w: not an OpusHead packet", ErrCorrupt)
	}
	channels = int(p[9])
	if channels < 1 || channels > 2 {
		return 0, 0, fmt.Errorf("%w: %d channels", ErrCorrupt, channels)
	}
	return int(binary.LittleEndian.Uint16(p[10:])), channels, nil
}

// opusTags builds an OpusTags packet (RFC 7845 §5.2).
func opusTags(tags [][2]string) []byte {
	const vendor = "earshot"
	b := append([]byte("OpusTags"), 0, 0, 0, 0)
	binary.LittleEndian.PutUint32(b[8:], uint32(len(vendor)))
	b = append(b, vendor...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(tags)))
	for _, t := range tags {
		c := t[0] + "=" + t[1]
		b = binary.LittleEndian.AppendUint32(b, uint32(len(c)))
		b = append(b, c...)
	}
	return b
}

// parseOpusTags returns an OpusTags packet's comments by name (upper-cased).
func parseOpusTags(p []byte) (map[string]string, error) {
	if len(p) < 16 || string(p[:8]) != "OpusTags" {
		return nil, fmt.Errorf("%w: not an OpusTags packet", ErrCorrupt)
	}
	p = p[8:]
	next := func() ([]byte, bool) {
		if len(p) < 4 {
			return nil, false
		}
		n := binary.LittleEndian.Uint32(p)
		p = p[4:]
		if uint64(n) > uint64(len(p)) {
			return nil, false
		}
		v := p[:n]
		p = p[n:]
		return v, true
	}
	if _, ok := next(); !ok {
		return nil, fmt.Errorf("%w: OpusTags vendor", ErrCorrupt)
	}
	if len(p) < 4 {
		return nil, fmt.Errorf("%w: OpusTags count", ErrCorrupt)
	}
	count := binary.LittleEndian.Uint32(p)
	p = p[4:]
	out := map[string]string{}
	for i := uint32(0); i < count; i++ {
		c, ok := next()
		if !ok {
			return nil, fmt.Errorf("%w: OpusTags comment %d", ErrCorrupt, i)
		}
		k, v, _ := strings.Cut(string(c), "=")
		out[strings.ToUpper(k)] = v
	}
	return out, nil
}

func tagTime(tagsPacket []byte, name string) time.Time {
	tags, err := parseOpusTags(tagsPacket)
	if err != nil {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, tags[name])
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
		pr := NewPacketReader(rc)
		_, err1 := pr.Next()
		tags, err2 := pr.Next()
		rc.Close()
		if err := errors.Join(err1, err2); err != nil {
			return time.Time{}, fmt.Errorf("evidence: read %s headers: %w", info.Key, err)
		}
		if t := tagTime(tags.Data, record.TagOrigin); !t.IsZero() {
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
