package record

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/record/ogg"
)

// Ogg/Opus tags each segment carries (RFC 7845 §5.2 user comments).
const (
	TagTrack       = "EARSHOT_TRACK"
	TagRoom        = "EARSHOT_ROOM"
	TagSession     = "EARSHOT_SESSION"
	TagSpeaker     = "EARSHOT_SPEAKER"
	TagSegment     = "EARSHOT_SEGMENT"      // segment number on the track
	TagFirstSample = "EARSHOT_FIRST_SAMPLE" // timeline sample of the first decoded sample
	TagSampleRate  = "EARSHOT_SAMPLE_RATE"  // 48000
	TagOrigin      = "EARSHOT_ORIGIN"       // RFC 3339 UTC time of sample 0, when the segment started
	TagAnchor      = "EARSHOT_ANCHOR"       // rtcp_sr or arrival
)

// vendor is OpusTags' vendor string.
const vendor = "earshot"

// segmentWriter writes the current segment, one Ogg page per packet, into
// an in-memory buffer that is flushed to the sink's writer about once a
// chunk. The Ogg writer holds the newest page back until the segment ends,
// so that it can be marked end-of-stream, and the SHA-256 is taken over
// bytes as they leave the buffer, final. A page per packet means a crash
// loses at most the newest packet of the open segment.
type segmentWriter struct {
	cfg       *TrackConfig
	open      bool
	seq       int64 // seq of the open segment, or of the next one
	start     SegmentStart
	end       int64 // nominal end (exclusive)
	skipUntil int64 // after a failure, no segment opens before this sample
	out       io.Writer
	w         *ogg.OpusWriter
	buf       segBuffer
	gaps      Gaps
	packets   int
	out2      Segment
}

func (s *segmentWriter) init(cfg *TrackConfig) { s.cfg = cfg }

func (s *segmentWriter) skipping(pos int64) bool { return pos < s.skipUntil }

// openSegment starts a segment at timeline sample pos: headers, then
// exactly warmupSamples of warm-up packets (the packets just before pos,
// led by silence when there are not enough), which OpusHead's pre-skip
// tells decoders to drop. Decoding the segment therefore starts at pos with
// a decoder already in the state the continuous stream would give it.
func (t *Track) openSegment(pos int64) {
	s := &t.seg
	s.start = SegmentStart{Track: t.cfg.Track, Seq: s.seq, FirstSample: pos}
	s.end = (pos/t.segLen + 1) * t.segLen
	s.seq++
	out, err := t.cfg.Segments.OpenSegment(s.start)
	if err != nil {
		s.skipUntil = s.end
		t.stats.SegmentErrors++
		t.errs = append(t.errs, fmt.Errorf("record: open segment %d of %s: %w", s.start.Seq, t.cfg.Track, err))
		return
	}
	s.out, s.open = out, true
	s.buf.reset()
	s.gaps, s.packets = Gaps{}, 0
	if err := s.begin(t.Timeline(), &t.chunk); err != nil {
		t.abortSegment(err)
	}
}

func (s *segmentWriter) begin(tl event.Timeline, recent *chunkBuilder) error {
	tags := []ogg.Comment{
		{Name: TagTrack, Value: s.cfg.Track},
		{Name: TagSegment, Value: strconv.FormatInt(s.start.Seq, 10)},
		{Name: TagFirstSample, Value: strconv.FormatInt(s.start.FirstSample, 10)},
		{Name: TagSampleRate, Value: strconv.Itoa(event.SampleRate)},
		{Name: TagOrigin, Value: tl.Origin.UTC().Format(time.RFC3339Nano)},
		{Name: TagAnchor, Value: string(tl.Anchor)},
	}
	for _, kv := range [...][2]string{{TagRoom, s.cfg.Room}, {TagSession, s.cfg.Session}, {TagSpeaker, s.cfg.Speaker}} {
		if kv[1] != "" {
			tags = append(tags, ogg.Comment{Name: kv[0], Value: kv[1]})
		}
	}
	// A deterministic serial keeps a segment's bytes (and SHA-256) a pure
	// function of its content.
	sum := sha256.Sum256([]byte(s.cfg.Track + "/" + strconv.FormatInt(s.start.Seq, 10)))
	w, err := ogg.NewOpusWriter(&s.buf, ogg.OpusWriterConfig{
		Serial: binary.BigEndian.Uint32(sum[:4]),
		Head:   ogg.Head{Channels: s.cfg.Channels, PreSkip: warmupSamples, InputRate: event.SampleRate},
		Tags:   ogg.Tags{Vendor: vendor, Comments: tags},
	})
	if err != nil {
		return err
	}
	s.w = w
	var warm int
	recent.recent(warmupSamples, func(_ []byte, n int) { warm += n })
	for lead := int64(warmupSamples - warm); lead > 0; {
		p, n := ogg.Silence(lead)
		if err := s.writeRaw(p); err != nil {
			return err
		}
		lead -= int64(n)
	}
	var werr error
	recent.recent(warmupSamples, func(p []byte, _ int) {
		if werr == nil {
			werr = s.writeRaw(p)
		}
	})
	return werr
}

func (s *segmentWriter) writeRaw(p []byte) error {
	_, err := s.w.WritePacket(p)
	return err
}

func (s *segmentWriter) write(p []byte, n int, c cause) error {
	s.gaps.add(c, int64(n))
	s.packets++
	return s.writeRaw(p)
}

// flush hands the pages written so far to the sink's writer (all but the
// newest, which the Ogg writer holds until the next one or the end).
func (s *segmentWriter) flush() error {
	if len(s.buf.b) == 0 {
		return nil
	}
	if k, err := s.out.Write(s.buf.b); err != nil || k != len(s.buf.b) {
		return fmt.Errorf("write: %w", cmp.Or(err, io.ErrShortWrite))
	}
	s.buf.base += int64(len(s.buf.b))
	s.buf.b = s.buf.b[:0]
	return nil
}

// finishSegment completes the open segment, ending where the timeline is
// now, and hands it to the sink.
func (t *Track) finishSegment(final bool) {
	s := &t.seg
	err := s.w.Close()
	s.w = nil
	if err != nil {
		t.abortSegment(err)
		return
	}
	if err := s.flush(); err != nil {
		t.abortSegment(err)
		return
	}
	s.open = false
	s.out2 = Segment{
		Timeline: t.Timeline().Sub(s.start.FirstSample, t.written-1),
		Seq:      s.start.Seq,
		Final:    final,
		PreSkip:  warmupSamples,
		Gaps:     s.gaps,
		Packets:  s.packets,
		Size:     s.buf.base,
	}
	t.stats.Segments++
	if err := t.cfg.Segments.Segment(&s.out2); err != nil {
		t.stats.SegmentErrors++
		t.errs = append(t.errs, fmt.Errorf("record: segment %d of %s: %w", s.out2.Seq, t.cfg.Track, err))
	}
}

// abortSegment gives up the open segment: the sink discards its bytes, and
// no segment opens again before the next segment boundary, so a failing
// disk is retried once a segment rather than once a packet.
func (t *Track) abortSegment(err error) {
	s := &t.seg
	s.open = false
	s.skipUntil = s.end
	s.w = nil
	t.stats.SegmentErrors++
	err = fmt.Errorf("record: segment %d of %s: %w", s.start.Seq, t.cfg.Track, err)
	t.errs = append(t.errs, err)
	t.cfg.Segments.AbortSegment(s.start, err)
}

// segBuffer is the in-memory tail of a segment: bytes from offset base on.
type segBuffer struct {
	base int64
	b    []byte
}

func (s *segBuffer) reset() { s.base, s.b = 0, s.b[:0] }

func (s *segBuffer) Write(p []byte) (int, error) {
	s.b = append(s.b, p...)
	return len(p), nil
}
