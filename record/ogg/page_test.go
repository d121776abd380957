package ogg

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

// TestCRCCheckValue checks the checksum against the CRC catalogue's check
// value for "123456789": CRC-32/CKSUM (same polynomial, not reflected,
// initial value 0) gives 0x765E7680 with its final XOR of 0xFFFFFFFF,
// which Ogg does not apply.
func TestCRCCheckValue(t *testing.T) {
	in := []byte("123456789")
	if got, want := CRC(in), ^uint32(0x765E7680); got != want {
		t.Fatalf("CRC = %08x, want %08x", got, want)
	}
	if got := UpdateCRC(UpdateCRC(0, in[:4]), in[4:]); got != CRC(in) {
		t.Fatalf("CRC in two parts = %08x, want %08x", got, CRC(in))
	}
}

func TestPageRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		page Page
	}{
		{"empty", Page{Flags: FlagEOS, Granule: 960, Serial: 7, Seq: 3}},
		{"bos one packet", Page{Flags: FlagBOS, Granule: 0, Serial: 1, Lacing: []byte{3}, Body: []byte{1, 2, 3}}},
		{"no granule", Page{Flags: FlagContinued, Granule: NoGranule, Serial: 0xFFFFFFFF, Seq: 0xFFFFFFFF, Lacing: []byte{255}, Body: make([]byte, 255)}},
		{"full page", Page{Granule: 1 << 40, Lacing: bytes.Repeat([]byte{255}, 255), Body: make([]byte, 255*255)}},
		{"many packets", Page{Granule: 5, Lacing: []byte{0, 1, 254, 255, 0}, Body: make([]byte, 510)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.page.Append([]byte("prefix"))
			if err != nil {
				t.Fatal(err)
			}
			if string(b[:6]) != "prefix" || len(b) != 6+HeaderLen+len(tt.page.Lacing)+len(tt.page.Body) {
				t.Fatalf("Append wrote %d bytes after the prefix", len(b)-6)
			}
			r := NewPageReader(bytes.NewReader(b[6:]))
			got, err := r.Next()
			if err != nil {
				t.Fatal(err)
			}
			if got.Flags != tt.page.Flags || got.Granule != tt.page.Granule || got.Serial != tt.page.Serial ||
				got.Seq != tt.page.Seq || !bytes.Equal(got.Lacing, tt.page.Lacing) || !bytes.Equal(got.Body, tt.page.Body) {
				t.Fatalf("read %+v, wrote %+v", *got, tt.page)
			}
			if _, err := r.Next(); !errors.Is(err, io.EOF) {
				t.Fatalf("after the page: %v, want io.EOF", err)
			}
		})
	}
}

func TestPageAppendRefuses(t *testing.T) {
	for name, p := range map[string]Page{
		"256 lacing values":  {Lacing: make([]byte, 256)},
		"body longer":        {Lacing: []byte{1}, Body: []byte{1, 2}},
		"body shorter":       {Lacing: []byte{3}, Body: []byte{1, 2}},
		"lacing, empty body": {Lacing: []byte{255}},
	} {
		if _, err := p.Append(nil); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestPageReaderErrors damages one good page in each way a page can break.
func TestPageReaderErrors(t *testing.T) {
	good, err := (&Page{Flags: FlagBOS, Serial: 9, Lacing: []byte{4, 0}, Body: []byte("abcd")}).Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	with := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"nothing", nil, io.EOF},
		{"capture pattern", with(func(b []byte) []byte { b[0] = 'o'; return b }), ErrCapture},
		{"garbage before the page", append([]byte("x"), good...), ErrCapture},
		{"version", with(func(b []byte) []byte { b[4] = 1; return b }), ErrVersion},
		{"checksum field", with(func(b []byte) []byte { b[22] ^= 1; return b }), ErrCRC},
		{"body byte", with(func(b []byte) []byte { b[len(b)-1] ^= 0x80; return b }), ErrCRC},
		{"granule byte", with(func(b []byte) []byte { b[6] = 1; return b }), ErrCRC},
		{"header cut", good[:10], ErrTruncated},
		{"lacing cut", good[:HeaderLen+1], ErrTruncated},
		{"body cut", good[:len(good)-1], ErrTruncated},
		{"second page cut", append(bytes.Clone(good), good[:5]...), ErrTruncated},
		{"lacing claims more body", with(func(b []byte) []byte {
			b[HeaderLen] = 200
			binary.LittleEndian.PutUint32(b[22:], 0)
			binary.LittleEndian.PutUint32(b[22:], CRC(b))
			return b
		}), ErrTruncated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewPageReader(bytes.NewReader(tt.in))
			var err error
			for range 3 {
				if _, err = r.Next(); err != nil {
					break
				}
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
			if tt.want != io.EOF && !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			if tt.want == ErrTruncated && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("error %v does not match io.ErrUnexpectedEOF", err)
			}
			if _, again := r.Next(); !errors.Is(again, tt.want) {
				t.Fatalf("second call: %v, want the same error", again)
			}
		})
	}
}
