package ogg

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"testing"
)

// packetsOf returns packets of the given sizes, each filled with its index.
func packetsOf(sizes ...int) [][]byte {
	out := make([][]byte, len(sizes))
	for i, n := range sizes {
		out[i] = bytes.Repeat([]byte{byte(i + 1)}, n)
	}
	return out
}

// writeAll writes packets with granule positions 960, 1920, … and closes.
func writeAll(t testing.TB, cfg WriterConfig, packets [][]byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w := NewWriter(&b, cfg)
	for i, p := range packets {
		if err := w.WritePacket(p, int64(i+1)*960); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func readPackets(r *Reader) ([]Packet, error) {
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

func readPages(t testing.TB, b []byte) []Page {
	t.Helper()
	r := NewPageReader(bytes.NewReader(b))
	var out []Page
	for {
		p, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		c := *p
		c.Lacing, c.Body = bytes.Clone(p.Lacing), bytes.Clone(p.Body)
		out = append(out, c)
	}
}

func TestPacketRoundTrip(t *testing.T) {
	many := make([]int, 600)
	for i := range many {
		many[i] = 20 + i%200
	}
	tests := []struct {
		name      string
		pageBytes int
		sizes     []int
		pages     int // expected page count, 0: not checked
		continued int // pages with FlagContinued
	}{
		{"one packet", 0, []int{3}, 1, 0},
		{"empty packet", 0, []int{0}, 1, 0},
		{"page per packet", 0, []int{3, 0, 254, 255, 256, 510}, 6, 0},
		{"lacing edges packed", 1 << 20, []int{0, 254, 255, 256, 510}, 1, 0},
		// 255*254 bytes need 254 lacing values of 255 and a final 0: 255 in all.
		{"exactly one full page", 0, []int{255 * 254}, 1, 0},
		// 255*255 bytes: 255 values of 255 fill the page, the final 0 goes on.
		{"terminating zero on the next page", 0, []int{255 * 255}, 2, 1},
		{"packet over three pages", 0, []int{150000}, 3, 2},
		{"big packet among small ones", 4096, []int{10, 100000, 10, 10}, 3, 1},
		// 252 empty packets and three 255s of the next fill the lacing values.
		{"lacing fills mid-packet", 1 << 20, append(make([]int, 252), 1000), 2, 1},
		{"4 KiB pages", 4096, many, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			packets := packetsOf(tt.sizes...)
			stream := writeAll(t, WriterConfig{Serial: 42, PageBytes: tt.pageBytes}, packets)
			got, err := readPackets(NewReader(bytes.NewReader(stream)))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(packets) {
				t.Fatalf("read %d packets, wrote %d", len(got), len(packets))
			}
			pages := readPages(t, stream)
			for i, p := range got {
				if !bytes.Equal(p.Data, packets[i]) {
					t.Fatalf("packet %d: %d bytes differ from the %d written", i, len(p.Data), len(packets[i]))
				}
				if p.Granule != NoGranule && p.Granule != int64(i+1)*960 {
					t.Fatalf("packet %d ends a page with granule %d, want %d", i, p.Granule, (i+1)*960)
				}
			}
			if !got[len(got)-1].EOS || got[len(got)-1].Granule != int64(len(packets))*960 {
				t.Fatalf("last packet: EOS %v, granule %d", got[len(got)-1].EOS, got[len(got)-1].Granule)
			}
			continued := 0
			for i, p := range pages {
				if p.Serial != 42 || p.Seq != uint32(i) || (p.Flags&FlagBOS != 0) != (i == 0) || (p.Flags&FlagEOS != 0) != (i == len(pages)-1) {
					t.Fatalf("page %d: serial %d seq %d flags %#x", i, p.Serial, p.Seq, p.Flags)
				}
				if p.Flags&FlagContinued != 0 {
					continued++
				}
				// A page with lacing values to spare ended because it reached
				// PageBytes (or it is the last).
				if i < len(pages)-1 && len(p.Lacing) < 255 && len(p.Body) < tt.pageBytes {
					t.Fatalf("page %d ended at %d bytes, under %d", i, len(p.Body), tt.pageBytes)
				}
			}
			if tt.pages != 0 && len(pages) != tt.pages {
				t.Errorf("%d pages, want %d", len(pages), tt.pages)
			}
			if continued != tt.continued {
				t.Errorf("%d continued pages, want %d", continued, tt.continued)
			}
		})
	}
}

func TestWriterEndPageAndHeldPage(t *testing.T) {
	var b bytes.Buffer
	w := NewWriter(&b, WriterConfig{Serial: 1, PageBytes: 1 << 20})
	if err := w.WritePacket([]byte("head"), 0); err != nil {
		t.Fatal(err)
	}
	if err := w.EndPage(); err != nil {
		t.Fatal(err)
	}
	if err := w.EndPage(); err != nil { // nothing open: no empty page
		t.Fatal(err)
	}
	if b.Len() != 0 {
		t.Fatalf("%d bytes written while the only page is held back", b.Len())
	}
	for i := range 3 {
		if err := w.WritePacket([]byte{byte(i)}, int64(i+1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.EndPage(); err != nil {
		t.Fatal(err)
	}
	if pages := readPages(t, b.Bytes()); len(pages) != 1 || pages[0].Flags != FlagBOS || pages[0].Granule != 0 {
		t.Fatalf("before Close: %d pages, want the first one alone", len(pages))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := w.WritePacket([]byte{1}, 9); err == nil {
		t.Fatal("WritePacket after Close succeeded")
	}
	pages := readPages(t, b.Bytes())
	if len(pages) != 2 || pages[1].Flags != FlagEOS || pages[1].Granule != 3 || len(pages[1].Lacing) != 3 {
		t.Fatalf("after Close: %+v", pages)
	}
	if err := NewWriter(io.Discard, WriterConfig{}).Close(); err == nil {
		t.Fatal("closing a stream without packets succeeded")
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n == 0 {
		return 0, errors.New("disk full")
	}
	f.n--
	return len(p), nil
}

func TestWriterWriteError(t *testing.T) {
	w := NewWriter(&failWriter{n: 1}, WriterConfig{})
	var err error
	for i := 0; err == nil && i < 10; i++ {
		err = w.WritePacket([]byte{1}, int64(i))
	}
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("disk full")) {
		t.Fatalf("error %v, want the destination's", err)
	}
	if again := w.WritePacket([]byte{1}, 99); again == nil {
		t.Fatal("the writer went on after a failed write")
	}
}

// TestReaderErrors breaks a good stream's page sequence in the ways a lost,
// repeated or foreign page does.
func TestReaderErrors(t *testing.T) {
	pagesOf := func(cfg WriterConfig, sizes ...int) []Page {
		return readPages(t, writeAll(t, cfg, packetsOf(sizes...)))
	}
	join := func(pages ...Page) []byte {
		var b []byte
		for _, p := range pages {
			var err error
			if b, err = p.Append(b); err != nil {
				t.Fatal(err)
			}
		}
		return b
	}
	small := pagesOf(WriterConfig{Serial: 5}, 10, 20, 30, 40)
	big := pagesOf(WriterConfig{Serial: 5}, 10, 100000, 10) // page 1 continues on page 2
	other := pagesOf(WriterConfig{Serial: 6}, 7, 8)
	noEOS := small[3]
	noEOS.Flags = 0
	notBOS := small[0]
	notBOS.Flags = 0
	tests := []struct {
		name    string
		in      []byte
		want    error // nil: reads without error
		packets int
	}{
		{"good", join(small...), nil, 4},
		{"no end-of-stream page: ends at a page boundary", join(small[0], small[1], small[2], noEOS), nil, 4},
		{"other stream interleaved", join(small[0], other[0], small[1], other[1], small[2], small[3]), nil, 4},
		{"chained stream after the end", join(append(slices.Clone(small), other...)...), nil, 4},
		{"nothing after end-of-stream is read", append(join(small...), "garbage"...), nil, 4},
		{"empty input", nil, ErrTruncated, 0},
		{"lost page", join(small[0], small[1], small[3]), ErrSequence, 2},
		{"repeated page", join(small[0], small[1], small[1]), ErrSequence, 2},
		{"first page not BOS", join(notBOS, small[1]), ErrSequence, 0},
		{"lost continuation page", join(big[0], big[1], big[3]), ErrSequence, 1},
		{"cut after a page ending mid-packet", join(big[0], big[1]), ErrTruncated, 1},
		{"damaged page", append(join(small[:2]...)[:40], join(small[2:]...)...), ErrCapture, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readPackets(NewReader(bytes.NewReader(tt.in)))
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
			if err != nil && !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			if len(got) != tt.packets {
				t.Fatalf("%d packets before the error, want %d", len(got), tt.packets)
			}
		})
	}
}

func TestReaderPacketLimit(t *testing.T) {
	// Continued pages adding up past MaxPacketLen, built page by page so
	// that the writer's own limits are not in the way.
	var b []byte
	var err error
	full := bytes.Repeat([]byte{255}, 255)
	for seq := range uint32(MaxPacketLen/(255*255) + 2) {
		p := Page{Serial: 1, Seq: seq, Granule: NoGranule, Lacing: full, Body: make([]byte, 255*255)}
		if seq == 0 {
			p.Flags = FlagBOS
		} else {
			p.Flags = FlagContinued
		}
		if b, err = p.Append(b); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := readPackets(NewReader(bytes.NewReader(b))); !errors.Is(err, ErrOversize) {
		t.Fatalf("error %v, want ErrOversize", err)
	}
}
