package record

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/earshot/earshot/internal/oggcrc"
	"io"
	"strconv"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4/pkg/media/oggwriter"

	"github.com/earshot/earshot/event"
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

// oggSSRC is the SSRC the recorder gives the packets it hands to pion's
// oggwriter (which checks that a track's packets share one).
const oggSSRC = 1

// segmentWriter writes the current segment through pion's oggwriter into
// an in-memory buffer that is flushed to the sink's writer about once a
// chunk. The buffer keeps the newest page until the segment ends, so it
// can be marked end-of-stream in place, and the SHA-256 is taken over bytes
// as they leave the buffer, final.
type segmentWriter struct {
	cfg       *TrackConfig
	open      bool
	seq       int64 // seq of the open segment, or of the next one
	start     SegmentStart
	end       int64 // nominal end (exclusive)
	skipUntil int64 // after a failure, no segment opens before this sample
	out       io.Writer
	w         *oggwriter.Writer
	tr        *oggwriter.Track
	buf       segBuffer
	gaps      Gaps
	packets   int
	pkt       rtp.Packet
	out2      Segment
}

func (s *segmentWriter) init(cfg *TrackConfig) {
	s.cfg = cfg
	s.pkt.Version = 2
	s.pkt.SSRC = oggSSRC
}

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
	tags := []oggwriter.UserComment{
		{Comment: TagTrack, Value: s.cfg.Track},
		{Comment: TagSegment, Value: strconv.FormatInt(s.start.Seq, 10)},
		{Comment: TagFirstSample, Value: strconv.FormatInt(s.start.FirstSample, 10)},
		{Comment: TagSampleRate, Value: strconv.Itoa(event.SampleRate)},
		{Comment: TagOrigin, Value: tl.Origin.UTC().Format(time.RFC3339Nano)},
		{Comment: TagAnchor, Value: string(tl.Anchor)},
	}
	for _, kv := range [...][2]string{{TagRoom, s.cfg.Room}, {TagSession, s.cfg.Session}, {TagSpeaker, s.cfg.Speaker}} {
		if kv[1] != "" {
			tags = append(tags, oggwriter.UserComment{Comment: kv[0], Value: kv[1]})
		}
	}
	w, err := oggwriter.NewWriter(&s.buf,
		oggwriter.WithChannelCount(uint16(s.cfg.Channels)),
		oggwriter.WithVendor(vendor),
		oggwriter.WithUserComments(tags...))
	if err != nil {
		return fmt.Errorf("oggwriter: %w", err)
	}
	// A deterministic serial keeps a segment's bytes (and SHA-256) a pure
	// function of its content.
	sum := sha256.Sum256([]byte(s.cfg.Track + "/" + strconv.FormatInt(s.start.Seq, 10)))
	tr, err := w.NewTrack(oggSSRC, oggwriter.WithSerial(binary.BigEndian.Uint32(sum[:4])))
	if err != nil {
		return fmt.Errorf("oggwriter track: %w", err)
	}
	s.w, s.tr = w, tr
	var warm int
	recent.recent(warmupSamples, func(_ []byte, n int) { warm += n })
	for lead := int64(warmupSamples - warm); lead > 0; {
		p, n := silenceFor(lead)
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
	s.pkt.Payload = p
	if err := s.tr.WriteRTP(&s.pkt); err != nil {
		return fmt.Errorf("oggwriter: %w", err)
	}
	return nil
}

func (s *segmentWriter) write(p []byte, n int, c cause) error {
	s.gaps.add(c, int64(n))
	s.packets++
	return s.writeRaw(p)
}

// flush hands the finished bytes to the sink's writer: all of them, or all
// but the newest page (which the segment's end marks end-of-stream).
func (s *segmentWriter) flush(all bool) error {
	upto := s.buf.lastPage
	if all {
		upto = s.buf.base + int64(len(s.buf.b))
	}
	n := upto - s.buf.base
	if n <= 0 {
		return nil
	}
	chunk := s.buf.b[:n]
	if k, err := s.out.Write(chunk); err != nil || k != len(chunk) {
		return fmt.Errorf("write: %w", cmp.Or(err, io.ErrShortWrite))
	}
	s.buf.b = s.buf.b[:copy(s.buf.b, s.buf.b[n:])]
	s.buf.base = upto
	return nil
}

// finishSegment completes the open segment, ending where the timeline is
// now, and hands it to the sink.
func (t *Track) finishSegment(final bool) {
	s := &t.seg
	// Not s.w.Close(): on a plain writer it appends an empty end-of-stream
	// page whose granule position opusinfo flags; with WithSeekableOutput
	// it rewrites the last page but costs a copy of every page. Setting the
	// flag on the last page here gives the same bytes cheaply.
	if err := s.buf.markEOS(); err != nil {
		t.abortSegment(err)
		return
	}
	s.w, s.tr = nil, nil
	if err := s.flush(true); err != nil {
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
	s.w, s.tr = nil, nil
	t.stats.SegmentErrors++
	err = fmt.Errorf("record: segment %d of %s: %w", s.start.Seq, t.cfg.Track, err)
	t.errs = append(t.errs, err)
	t.cfg.Segments.AbortSegment(s.start, err)
}

// segBuffer is the in-memory tail of a segment: bytes from offset base on.
// oggwriter writes each page with one Write call, so the start of the
// newest one is known.
type segBuffer struct {
	base     int64
	b        []byte
	lastPage int64 // offset of the newest page written
}

func (s *segBuffer) reset() { s.base, s.b, s.lastPage = 0, s.b[:0], 0 }

func (s *segBuffer) Write(p []byte) (int, error) {
	s.lastPage = s.base + int64(len(s.b))
	s.b = append(s.b, p...)
	return len(p), nil
}

// markEOS sets the end-of-stream flag on the newest page and updates its
// CRC (RFC 3533 §6).
func (s *segBuffer) markEOS() error {
	page := s.b[s.lastPage-s.base:]
	if len(page) < 27 || string(page[:4]) != "OggS" || len(page) < 27+int(page[26]) {
		return errors.New("record: the segment's last write is not an Ogg page")
	}
	size := 27 + int(page[26])
	for _, l := range page[27:size] {
		size += int(l)
	}
	if size != len(page) {
		return errors.New("record: the segment's last write is not one Ogg page")
	}
	page[5] |= 0x04
	binary.LittleEndian.PutUint32(page[22:], 0)
	binary.LittleEndian.PutUint32(page[22:], oggcrc.Checksum(page))
	return nil
}
