package ogg

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestPacketSamples(t *testing.T) {
	long := make([]byte, 1+1276)
	tests := []struct {
		name string
		p    []byte
		want int // 0: malformed
	}{
		{"empty", nil, 0},
		{"code0 CELT FB 20ms silence", []byte{0xF8, 0xFF, 0xFE}, 960},
		{"code0 TOC only (DTX frame)", []byte{0xF8}, 960},
		{"code0 SILK NB 10ms", []byte{0x00, 1}, 480},
		{"code0 SILK WB 60ms", []byte{0x58, 1}, 2880},
		{"code0 SILK MB 40ms", []byte{0x30, 1}, 1920},
		{"code0 hybrid SWB 10ms", []byte{0x60, 1}, 480},
		{"code0 hybrid FB 20ms", []byte{0x78, 1}, 960},
		{"code0 CELT NB 2.5ms", []byte{0x80, 1}, 120},
		{"code0 CELT WB 5ms", []byte{0xA8, 1}, 240},
		{"code0 frame over 1275 bytes", long, 0},
		{"code1 two equal frames", []byte{0xF9, 1, 2}, 1920},
		{"code1 odd length", []byte{0xF9, 1, 2, 3}, 0},
		{"code1 empty frames", []byte{0xF9}, 1920},
		{"code2 lengths 1+2", []byte{0xFA, 1, 0xAA, 0xBB, 0xCC}, 1920},
		{"code2 two-byte length", append([]byte{0xFA, 252, 1}, make([]byte, 256)...), 1920},
		{"code2 first frame too long", []byte{0xFA, 5, 1, 2}, 0},
		{"code2 missing length", []byte{0xFA}, 0},
		{"code2 truncated two-byte length", []byte{0xFA, 253}, 0},
		{"code3 CBR 3x20ms", []byte{0xFB, 3, 1, 2, 3}, 2880},
		{"code3 CBR not divisible", []byte{0xFB, 3, 1, 2}, 0},
		{"code3 no count byte", []byte{0xFB}, 0},
		{"code3 zero frames", []byte{0xFB, 0}, 0},
		{"code3 6x20ms = 120ms", []byte{0xFB, 6}, 5760},
		{"code3 7x20ms over 120ms", []byte{0xFB, 7}, 0},
		{"code3 48x2.5ms = 120ms", []byte{0xE3, 48}, 5760},
		{"code3 49x2.5ms", []byte{0xE3, 49}, 0},
		{"code3 3x60ms SILK", []byte{0x1B, 3}, 0},
		{"code3 2x60ms SILK", []byte{0x1B, 2}, 5760},
		{"code3 VBR 2 frames", []byte{0xFB, 0x82, 1, 0xAA, 0xBB, 0xCC}, 1920},
		{"code3 VBR lengths past end", []byte{0xFB, 0x82, 9, 0xAA}, 0},
		{"code3 VBR missing lengths", []byte{0xFB, 0x83, 1}, 0},
		{"code3 padding", []byte{0xFB, 0x41, 2, 0xAA, 0, 0}, 960},
		{"code3 padding 255 chain", append([]byte{0xFB, 0x41, 255, 1}, make([]byte, 255)...), 960},
		{"code3 padding past end", []byte{0xFB, 0x41, 9, 0xAA}, 0},
		{"code3 padding length missing", []byte{0xFB, 0x41}, 0},
		{"code3 padding chain truncated", []byte{0xFB, 0x41, 255}, 0},
		{"code3 VBR+padding", []byte{0xFB, 0xC2, 1, 1, 0xAA, 0xBB, 0xCC, 0}, 1920},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := PacketSamples(tt.p)
			if tt.want == 0 {
				if !errors.Is(err, ErrPacket) {
					t.Fatalf("PacketSamples = %d, %v; want ErrPacket", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("PacketSamples = %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

func FuzzPacketSamples(f *testing.F) {
	for _, s := range [][]byte{{0xF8, 0xFF, 0xFE}, {0xFB, 0xC2, 1, 1, 0xAA, 0xBB, 0xCC, 0}, {0xFB, 0x41, 255, 1}, {0x1B, 2}} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		n, err := PacketSamples(p)
		if err != nil {
			if !errors.Is(err, ErrPacket) || n != 0 {
				t.Fatalf("error %v with %d samples", err, n)
			}
			return
		}
		if n <= 0 || n > MaxPacketSamples || n%MinPacketSamples != 0 {
			t.Fatalf("%d samples for %x", n, p)
		}
	})
}

func TestSilence(t *testing.T) {
	tests := []struct {
		n    int64
		want int
	}{{0, 0}, {119, 0}, {120, 120}, {239, 120}, {240, 240}, {479, 240}, {480, 480}, {959, 480}, {960, 960}, {1 << 40, 960}}
	for _, tt := range tests {
		p, n := Silence(tt.n)
		if n != tt.want {
			t.Fatalf("Silence(%d) lasts %d, want %d", tt.n, n, tt.want)
		}
		if n == 0 {
			if p != nil {
				t.Fatalf("Silence(%d) = %x with no duration", tt.n, p)
			}
			continue
		}
		if got, err := PacketSamples(p); err != nil || got != n {
			t.Fatalf("Silence(%d) = %x: PacketSamples %d, %v; want %d", tt.n, p, got, err, n)
		}
	}
}

func TestHeadersRoundTrip(t *testing.T) {
	heads := []Head{{Channels: 1, PreSkip: 3840, InputRate: 48000}, {Channels: 2, PreSkip: 0xFFFF, InputRate: 44100, Gain: -256}}
	for _, h := range heads {
		got, err := ParseHead(h.Append(nil))
		if err != nil || got != h {
			t.Errorf("ParseHead(%+v.Append) = %+v, %v", h, got, err)
		}
	}
	tags := []Tags{
		{Vendor: "earshot"},
		{Vendor: "", Comments: []Comment{{"EARSHOT_TRACK", "trk_1"}, {"empty", ""}, {"X", "a=b"}}},
	}
	for _, tg := range tags {
		got, err := ParseTags(tg.Append(nil))
		if err != nil || got.Vendor != tg.Vendor || len(got.Comments) != len(tg.Comments) {
			t.Fatalf("ParseTags(%+v.Append) = %+v, %v", tg, got, err)
		}
		for i, c := range tg.Comments {
			if got.Comments[i] != c {
				t.Errorf("comment %d = %+v, want %+v", i, got.Comments[i], c)
			}
		}
	}
	if m := tags[1].Map(); m["EARSHOT_TRACK"] != "trk_1" || m["X"] != "a=b" || len(m) != 3 {
		t.Errorf("Map = %v", m)
	}
}

func TestHeadersRefused(t *testing.T) {
	good := Head{Channels: 1, PreSkip: 312, InputRate: 48000}.Append(nil)
	edit := func(i int, v byte) []byte { b := bytes.Clone(good); b[i] = v; return b }
	heads := map[string][]byte{
		"short":           good[:18],
		"magic":           edit(0, 'o'),
		"version 1.x":     edit(8, 0x10),
		"no channels":     edit(9, 0),
		"three channels":  edit(9, 3),
		"mapping family":  edit(18, 1),
		"OpusTags packet": Tags{}.Append(nil),
	}
	for name, p := range heads {
		if _, err := ParseHead(p); !errors.Is(err, ErrHeader) {
			t.Errorf("OpusHead %s: %v, want ErrHeader", name, err)
		}
	}
	if _, err := ParseHead(edit(8, 0x0F)); err != nil {
		t.Errorf("OpusHead version 0.15: %v (minor versions are compatible)", err)
	}
	tags := map[string][]byte{
		"short":             []byte("OpusTags\x00\x00\x00\x00"),
		"magic":             []byte("OpusTagz\x00\x00\x00\x00\x00\x00\x00\x00"),
		"vendor too long":   []byte("OpusTags\x09\x00\x00\x00\x00\x00\x00\x00"),
		"count too large":   []byte("OpusTags\x00\x00\x00\x00\xff\xff\xff\xff"),
		"comment too long":  []byte("OpusTags\x00\x00\x00\x00\x01\x00\x00\x00\x05\x00\x00\x00a=b"),
		"comment count lie": []byte("OpusTags\x00\x00\x00\x00\x02\x00\x00\x00\x03\x00\x00\x00a=b"),
	}
	for name, p := range tags {
		if _, err := ParseTags(p); !errors.Is(err, ErrHeader) {
			t.Errorf("OpusTags %s: %v, want ErrHeader", name, err)
		}
	}
	if _, err := NewOpusWriter(io.Discard, OpusWriterConfig{Head: Head{Channels: 3}}); !errors.Is(err, ErrHeader) {
		t.Errorf("writer with 3 channels: %v, want ErrHeader", err)
	}
	if _, err := NewOpusWriter(io.Discard, OpusWriterConfig{Head: Head{Channels: 1}, Tags: Tags{Comments: []Comment{{"A=B", "c"}}}}); !errors.Is(err, ErrHeader) {
		t.Errorf("writer with a comment name holding '=': %v, want ErrHeader", err)
	}
}

// TestOpusReaderOpusenc reads files opusenc wrote (libopusenc's own Ogg
// packer: pages of many packets, a final granule position that trims the
// padding of the last frame).
func TestOpusReaderOpusenc(t *testing.T) {
	tests := []struct {
		file     string
		preSkip  int
		channels int
		duration int64 // of the encoder's input, in 48 kHz samples
	}{
		{"../../internal/speakerbot/testdata/tone.opus", 312, 1, 57600},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.file), func(t *testing.T) {
			b, err := os.ReadFile(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			o, err := NewOpusReader(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			if o.Head.PreSkip != tt.preSkip || o.Head.Channels != tt.channels {
				t.Fatalf("head %+v, want pre-skip %d, %d channels", o.Head, tt.preSkip, tt.channels)
			}
			var next int64
			for {
				p, err := o.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if p.Start != next || p.Samples != 960 {
					t.Fatalf("packet at %d: start %d, %d samples", next, p.Start, p.Samples)
				}
				next += int64(p.Samples)
			}
			if got := next - int64(tt.preSkip) - o.EndTrim(); got != tt.duration {
				t.Fatalf("duration %d samples (%d read, end trim %d), want %d", got, next, o.EndTrim(), tt.duration)
			}
		})
	}
}

func TestOpusWriterRoundTrip(t *testing.T) {
	packets := [][]byte{{0xF8, 0xFF, 0xFE}, {0xFB, 3, 1, 2, 3}, {0xE0, 0xFF, 0xFE}, {0x1B, 2}}
	durations := []int{960, 2880, 120, 5760}
	for _, pageBytes := range []int{0, 4096} {
		for _, trim := range []int64{0, 100} {
			var b bytes.Buffer
			w, err := NewOpusWriter(&b, OpusWriterConfig{Serial: 3, PageBytes: pageBytes,
				Head: Head{Channels: 1, PreSkip: 312, InputRate: 48000},
				Tags: Tags{Vendor: "test", Comments: []Comment{{"K", "v"}}}})
			if err != nil {
				t.Fatal(err)
			}
			var total int64
			for i, p := range packets {
				n, err := w.WritePacket(p)
				if err != nil || n != durations[i] {
					t.Fatalf("WritePacket %d = %d, %v; want %d", i, n, err, durations[i])
				}
				total += int64(n)
			}
			if _, err := w.WritePacket([]byte{0xFB, 0}); !errors.Is(err, ErrPacket) {
				t.Fatalf("malformed packet: %v, want ErrPacket", err)
			}
			if err := w.CloseAt(total + 1); err == nil {
				t.Fatal("CloseAt past the samples written succeeded")
			}
			if err := w.CloseAt(total - trim); err != nil {
				t.Fatal(err)
			}
			pages := readPages(t, b.Bytes())
			// RFC 7845 §3: OpusHead alone on the first page, OpusTags ending
			// the second, audio from the third on.
			if len(pages) < 3 || len(pages[0].Lacing) != 1 || pages[0].Granule != 0 || pages[1].Granule != 0 || pages[1].Flags != 0 {
				t.Fatalf("header pages %+v", pages[:min(len(pages), 2)])
			}
			o, err := NewOpusReader(bytes.NewReader(b.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			if o.Head.PreSkip != 312 || o.Tags.Vendor != "test" || o.Tags.Map()["K"] != "v" {
				t.Fatalf("headers %+v %+v", o.Head, o.Tags)
			}
			var start int64
			for i := 0; ; i++ {
				p, err := o.Next()
				if errors.Is(err, io.EOF) {
					if i != len(packets) {
						t.Fatalf("%d packets read, want %d", i, len(packets))
					}
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(p.Data, packets[i]) || p.Start != start || p.Samples != durations[i] {
					t.Fatalf("packet %d: %x at %d (%d samples)", i, p.Data, p.Start, p.Samples)
				}
				if pageBytes == 0 && i < len(packets)-1 && p.Granule != start+int64(p.Samples) {
					t.Fatalf("packet %d: granule %d, want %d", i, p.Granule, start+int64(p.Samples))
				}
				start += int64(p.Samples)
			}
			if o.EndTrim() != trim {
				t.Fatalf("end trim %d, want %d", o.EndTrim(), trim)
			}
		}
	}
}

func TestOpusReaderRefuses(t *testing.T) {
	var stream []byte
	for _, pageBytes := range []int{0, 1 << 20} { // the bad packet alone on its page, or among others
		var b bytes.Buffer
		w := NewWriter(&b, WriterConfig{Serial: 1, PageBytes: pageBytes})
		for i, p := range [][]byte{Head{Channels: 1}.Append(nil), Tags{}.Append(nil), {0xF8}, {0xFB, 0}, {0xF8}} {
			if err := w.WritePacket(p, 0); err != nil {
				t.Fatal(err)
			}
			if i < 2 {
				if err := w.EndPage(); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		stream = b.Bytes()
		o, err := NewOpusReader(bytes.NewReader(stream))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := o.Next(); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if _, err := o.Next(); !errors.Is(err, ErrPacket) {
				t.Fatalf("pages of %d bytes: bad audio packet: %v, want ErrPacket (twice)", pageBytes, err)
			}
		}
	}
	for name, in := range map[string][]byte{"empty": nil, "headers only up to OpusHead": stream[:HeaderLen+1+headLen]} {
		if _, err := NewOpusReader(bytes.NewReader(in)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}
