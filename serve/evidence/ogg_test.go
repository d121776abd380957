package evidence

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// writeStream writes packets as one stream through pageWriter: headers on
// their own pages, then audio, the last page marked end-of-stream.
func writeStream(t testing.TB, packets [][]byte) []byte {
	t.Helper()
	var b bytes.Buffer
	pw := &pageWriter{w: &b, serial: 42}
	if err := pw.header(opusHead(1, 312), flagBOS); err != nil {
		t.Fatal(err)
	}
	if err := pw.header(opusTags([][2]string{{"A", "b"}}), 0); err != nil {
		t.Fatal(err)
	}
	for i, p := range packets {
		if err := pw.add(p, int64(i+1)*960); err != nil {
			t.Fatal(err)
		}
	}
	if err := pw.finish(int64(len(packets)) * 960); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func readAll(r *PacketReader) ([]Packet, error) {
	var out []Packet
	for {
		p, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, p)
	}
}

func TestPacketRoundTrip(t *testing.T) {
	// Sizes around the lacing edge cases: 0, 254, 255 (needs a 0 lacing
	// value after it), 510, and enough packets to fill several pages.
	sizes := []int{1, 0, 254, 255, 256, 510, 3000, 60000}
	for i := 0; i < 300; i++ {
		sizes = append(sizes, 20+i%200)
	}
	var packets [][]byte
	for i, n := range sizes {
		p := bytes.Repeat([]byte{byte(i)}, n)
		packets = append(packets, p)
	}
	stream := writeStream(t, packets)
	got, err := readAll(NewPacketReader(bytes.NewReader(stream)))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(packets)+2 {
		t.Fatalf("read %d packets, want %d", len(got), len(packets)+2)
	}
	if pre, ch, err := parseOpusHead(got[0].Data); err != nil || pre != 312 || ch != 1 {
		t.Errorf("OpusHead: pre-skip %d, channels %d, %v", pre, ch, err)
	}
	if tags, err := parseOpusTags(got[1].Data); err != nil || tags["A"] != "b" {
		t.Errorf("OpusTags: %v, %v", tags, err)
	}
	pages := 0
	for i, p := range got[2:] {
		if !bytes.Equal(p.Data, packets[i]) {
			t.Fatalf("packet %d differs (%d bytes, want %d)", i, len(p.Data), len(packets[i]))
		}
		if p.Granule != noGranule {
			pages++
			if p.Granule != int64(i+1)*960 {
				t.Errorf("packet %d ends a page with granule %d, want %d", i, p.Granule, (i+1)*960)
			}
		}
	}
	if pages < 3 {
		t.Errorf("%d audio pages, want several", pages)
	}
	if last := got[len(got)-1]; !last.EOS || last.Granule != int64(len(packets))*960 {
		t.Errorf("last packet: EOS %v granule %d", last.EOS, last.Granule)
	}
}

func TestPacketReaderDamage(t *testing.T) {
	stream := writeStream(t, [][]byte{{1, 2, 3}, {4, 5, 6}})
	bad := bytes.Clone(stream)
	bad[len(bad)-2] ^= 0xFF
	if _, err := readAll(NewPacketReader(bytes.NewReader(bad))); !errors.Is(err, ErrCorrupt) {
		t.Errorf("flipped byte: %v, want ErrCorrupt", err)
	}
	if _, err := readAll(NewPacketReader(bytes.NewReader(stream[:len(stream)-3]))); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated: %v, want io.ErrUnexpectedEOF", err)
	}
	if _, err := readAll(NewPacketReader(bytes.NewReader(nil))); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("empty: %v, want io.ErrUnexpectedEOF", err)
	}
}

func FuzzPacketReader(f *testing.F) {
	if b, err := os.ReadFile(filepath.Join("testdata", "tones.opus")); err == nil {
		f.Add(b[:min(len(b), 4000)])
	}
	f.Add(writeStream(f, [][]byte{{0xF8, 0xFF, 0xFE}, make([]byte, 300)}))
	f.Add([]byte("OggS"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := NewPacketReader(bytes.NewReader(b))
		total := 0
		for i := 0; i < 10000; i++ {
			p, err := r.Next()
			if err != nil {
				return
			}
			total += len(p.Data)
			if len(p.Data) > maxPacketBytes || total > len(b) {
				t.Fatalf("packet of %d bytes (total %d) from %d input bytes", len(p.Data), total, len(b))
			}
		}
	})
}

func FuzzOpusTags(f *testing.F) {
	f.Add(opusTags([][2]string{{"EARSHOT_ORIGIN", "2026-01-01T00:00:00Z"}}))
	f.Add([]byte("OpusTags\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = parseOpusTags(b)
		_, _, _ = parseOpusHead(b)
	})
}
