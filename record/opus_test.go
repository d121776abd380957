package record

import (
	"errors"
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
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("PacketSamples = %d, %v; want ErrMalformed", got, err)
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
			if !errors.Is(err, ErrMalformed) || n != 0 {
				t.Fatalf("error %v with %d samples", err, n)
			}
			return
		}
		if n <= 0 || n > maxPacketSamples || n%grid != 0 {
			t.Fatalf("%d samples for %x", n, p)
		}
	})
}
