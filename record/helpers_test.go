package record

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"
	"github.com/pion/webrtc/v4/pkg/media/oggwriter"

	"github.com/earshot/earshot/record/ogg"
	"github.com/earshot/earshot/record/ogg/oggtest"
)

// memChunks keeps deep copies of every chunk.
type memChunks struct {
	chunks []Chunk
	err    error // returned by Chunk when set
}

func (m *memChunks) Chunk(c *Chunk) error {
	if m.err != nil {
		return m.err
	}
	cp := *c
	cp.Data.Packets = make([][]byte, len(c.Data.Packets))
	for i, p := range c.Data.Packets {
		cp.Data.Packets[i] = bytes.Clone(p)
	}
	cp.Data.Offsets = append([]int64(nil), c.Data.Offsets...)
	m.chunks = append(m.chunks, cp)
	return nil
}

// memSegments keeps every segment's bytes.
type memSegments struct {
	open      map[int64]*bytes.Buffer
	done      []Segment
	bytes     [][]byte
	aborted   []SegmentStart
	openErr   error
	failSeq   int64 // seq whose writer fails (when failWrite)
	failWrite bool
}

func newMemSegments() *memSegments { return &memSegments{open: map[int64]*bytes.Buffer{}, failSeq: -1} }

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func (m *memSegments) OpenSegment(s SegmentStart) (io.Writer, error) {
	if m.openErr != nil {
		return nil, m.openErr
	}
	if m.failWrite && s.Seq == m.failSeq {
		return failWriter{}, nil
	}
	b := &bytes.Buffer{}
	m.open[s.Seq] = b
	return b, nil
}

func (m *memSegments) Segment(s *Segment) error {
	b := m.open[s.Seq]
	delete(m.open, s.Seq)
	m.done = append(m.done, *s)
	m.bytes = append(m.bytes, b.Bytes())
	return nil
}

func (m *memSegments) AbortSegment(s SegmentStart, _ error) {
	delete(m.open, s.Seq)
	m.aborted = append(m.aborted, s)
}

// discard sinks for benchmarks.
type discardChunks struct{ n int }

func (d *discardChunks) Chunk(c *Chunk) error { d.n += len(c.Data.Packets); return nil }

type discardSegments struct{}

func (discardSegments) OpenSegment(SegmentStart) (io.Writer, error) { return io.Discard, nil }
func (discardSegments) Segment(*Segment) error                      { return nil }
func (discardSegments) AbortSegment(SegmentStart, error)            {}

// oggStream is a parsed single-stream Ogg/Opus file.
type oggStream struct {
	preSkip  int
	channels int
	tags     map[string]string
	vendor   string
	packets  [][]byte
	granule  uint64 // last page's granule position
	eos      bool   // last page has the end-of-stream flag
	pages    int
}

// parseOgg splits an Ogg/Opus stream into packets (by lacing values),
// checking page CRCs with pion's oggreader first.
func parseOgg(b []byte) (*oggStream, error) {
	r, hdr, err := oggreader.NewWith(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("oggreader: %w", err)
	}
	for {
		if _, _, err := r.ParseNextPage(); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("oggreader page: %w", err)
		}
	}
	s := &oggStream{preSkip: int(hdr.PreSkip), channels: int(hdr.Channels)}
	var pkt []byte
	var all [][]byte
	for off := 0; off < len(b); {
		if len(b)-off < 27 || string(b[off:off+4]) != "OggS" {
			return nil, fmt.Errorf("no page at %d", off)
		}
		s.granule = binary.LittleEndian.Uint64(b[off+6:])
		s.eos = b[off+5]&4 != 0
		nseg := int(b[off+26])
		lace := b[off+27 : off+27+nseg]
		p := off + 27 + nseg
		for _, l := range lace {
			pkt = append(pkt, b[p:p+int(l)]...)
			p += int(l)
			if l < 255 {
				all = append(all, pkt)
				pkt = nil
			}
		}
		off = p
		s.pages++
	}
	if len(all) < 2 {
		return nil, errors.New("missing OpusHead/OpusTags")
	}
	tags, err := oggreader.ParseOpusTags(all[1])
	if err != nil {
		return nil, err
	}
	s.vendor = tags.Vendor
	s.tags = map[string]string{}
	for _, c := range tags.UserComments {
		s.tags[c.Comment] = c.Value
	}
	s.packets = all[2:]
	return s, nil
}

func packetsSamples(t testing.TB, pkts [][]byte) int64 {
	t.Helper()
	var n int64
	for _, p := range pkts {
		k, err := packetSamples(p)
		if err != nil {
			t.Fatalf("packet %x: %v", p, err)
		}
		n += int64(k)
	}
	return n
}

// fixturePackets returns the Opus packets of testdata/speech_tones.opus
// (600 packets of 20 ms; source pre-skip 312).
func fixturePackets(t testing.TB) [][]byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "speech_tones.opus"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := parseOgg(b)
	if err != nil {
		t.Fatal(err)
	}
	return s.packets
}

const fixturePreSkip = 312

// Tone onsets in the fixture's source WAV, in samples.
var fixtureTones = []int64{3_500 * 48, 7_500 * 48, 11_000 * 48}

// oggOf writes packets into one Ogg/Opus stream with pion's oggwriter,
// led by 3840 samples of silence to match the recorder's pre-skip.
func oggOf(t testing.TB, pkts [][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := oggwriter.NewWriter(&buf, oggwriter.WithChannelCount(1))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := w.NewTrack(1, oggwriter.WithSerial(7))
	if err != nil {
		t.Fatal(err)
	}
	silence, _ := ogg.Silence(960)
	lead := [][]byte{silence, silence, silence, silence}
	for _, p := range append(lead, pkts...) {
		if err := tr.WriteRTP(&rtp.Packet{Header: rtp.Header{SSRC: 1}, Payload: p}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// decode decodes a stream with opusdec (libopusfile), which honours
// pre-skip and end trimming, to 48 kHz mono samples.
func decode(t testing.TB, ogg []byte) []int16 { return oggtest.Decode(t, ogg) }

// opusinfo runs opusinfo on a stream and fails on errors or warnings.
func opusinfo(t testing.TB, ogg []byte) string { return oggtest.Opusinfo(t, ogg) }

func readFixture(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "speech_tones.opus"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
