package ogg

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// fuzzFixtures are the Ogg/Opus files the package's users test with:
// opusenc output (pages of many packets) and recorder output.
var fuzzFixtures = []string{
	"../testdata/speech_tones.opus",
	"../../transcribe/testdata/fox.opus",
	"../../serve/evidence/testdata/tones.opus",
	"../../internal/speakerbot/testdata/tone.opus",
}

// FuzzReader feeds arbitrary bytes to every reader of the package. None
// may panic; failures must wrap ErrMalformed; every page read must encode
// back to the bytes it was read from; a stream read to its end must
// survive a rewrite through Writer packet for packet.
func FuzzReader(f *testing.F) {
	for _, name := range fuzzFixtures {
		b, err := os.ReadFile(filepath.FromSlash(name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[:min(len(b), 2000)])
		f.Add(b[:min(len(b), 300)])
	}
	// Small seeds only: the fuzzer minimises each new input, which takes
	// long on large ones. 254 empty packets make the next one continue.
	f.Add(writeAll(f, WriterConfig{Serial: 1, PageBytes: 1000}, packetsOf(append(make([]int, 254), 300, 255, 3)...)))
	f.Add(writeAll(f, WriterConfig{Serial: 2, PageBytes: 4096}, [][]byte{Head{Channels: 1}.Append(nil), Tags{}.Append(nil), {0xF8, 0xFF, 0xFE}}))
	f.Add([]byte("OggS"))
	f.Fuzz(checkReaders)
}

// checkReaders is FuzzReader's check of one input.
func checkReaders(t *testing.T, data []byte) {
	// Pages: re-encoded, each is the bytes it came from.
	pr := NewPageReader(bytes.NewReader(data))
	off := 0
	for {
		p, err := pr.Next()
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("page error %v wraps neither io.EOF nor ErrMalformed", err)
			}
			break
		}
		b, err := p.Append(nil)
		if err != nil || !bytes.HasPrefix(data[off:], b) {
			t.Fatalf("page at byte %d does not encode back to its bytes (%v)", off, err)
		}
		off += len(b)
	}

	// Packets: bounded, and a clean read rewrites to the same packets.
	packets, err := readPackets(NewReader(bytes.NewReader(data)))
	total := 0
	for _, p := range packets {
		total += len(p.Data)
		if len(p.Data) > MaxPacketLen || total > len(data) {
			t.Fatalf("packet of %d bytes (%d in all) from %d input bytes", len(p.Data), total, len(data))
		}
	}
	if err != nil && !errors.Is(err, ErrMalformed) {
		t.Fatalf("packet error %v does not wrap ErrMalformed", err)
	}
	if err == nil && len(packets) > 0 {
		var b bytes.Buffer
		w := NewWriter(&b, WriterConfig{Serial: 9, PageBytes: 1000})
		for _, p := range packets {
			if err := w.WritePacket(p.Data, p.Granule); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		again, err := readPackets(NewReader(&b))
		if err != nil || len(again) != len(packets) {
			t.Fatalf("rewritten: %d packets, %v; want %d", len(again), err, len(packets))
		}
		for i := range again {
			if !bytes.Equal(again[i].Data, packets[i].Data) {
				t.Fatalf("rewritten packet %d differs", i)
			}
		}
	}

	// Opus: durations in range and contiguous.
	o, err := NewOpusReader(bytes.NewReader(data))
	if err != nil {
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("header error %v does not wrap ErrMalformed", err)
		}
		return
	}
	var next int64
	for range 100000 {
		p, err := o.Next()
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("audio error %v wraps neither io.EOF nor ErrMalformed", err)
			}
			break
		}
		if p.Start != next || p.Samples < MinPacketSamples || p.Samples > MaxPacketSamples {
			t.Fatalf("packet at %d: start %d, %d samples", next, p.Start, p.Samples)
		}
		next += int64(p.Samples)
	}
	if trim := o.EndTrim(); trim < 0 || trim > next {
		t.Fatalf("end trim %d of %d samples", trim, next)
	}
}

// FuzzHeaders: OpusHead and OpusTags parsers never panic, and what they
// accept encodes back to a packet that parses the same.
func FuzzHeaders(f *testing.F) {
	f.Add(Head{Channels: 2, PreSkip: 312, InputRate: 48000}.Append(nil))
	f.Add(Tags{Vendor: "v", Comments: []Comment{{"EARSHOT_ORIGIN", "2026-01-01T00:00:00Z"}}}.Append(nil))
	f.Add([]byte("OpusTags\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, p []byte) {
		if h, err := ParseHead(p); err == nil {
			if again, err := ParseHead(h.Append(nil)); err != nil || again != h {
				t.Fatalf("OpusHead %+v re-parsed as %+v, %v", h, again, err)
			}
		} else if !errors.Is(err, ErrHeader) {
			t.Fatalf("OpusHead error %v does not wrap ErrHeader", err)
		}
		if tg, err := ParseTags(p); err == nil {
			again, err := ParseTags(tg.Append(nil))
			if err != nil || again.Vendor != tg.Vendor || len(again.Comments) != len(tg.Comments) {
				t.Fatalf("OpusTags %+v re-parsed as %+v, %v", tg, again, err)
			}
		} else if !errors.Is(err, ErrHeader) {
			t.Fatalf("OpusTags error %v does not wrap ErrHeader", err)
		}
	})
}
