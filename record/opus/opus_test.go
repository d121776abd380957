package opus

import (
	"errors"
	"math"
	"testing"

	"github.com/earshot/earshot/internal/opusenc"
)

// tone returns n samples at 48 kHz of a 440 Hz sine at amplitude 0.5.
func tone(n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(0.5 * math.Sin(2*math.Pi*440*float64(i)/48000))
	}
	return x
}

func packets(t testing.TB, seconds float64) [][]byte {
	t.Helper()
	enc, err := opusenc.New(32000, true)
	if err != nil {
		t.Fatal(err)
	}
	p, err := enc.Encode(tone(int(seconds * 48000)))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func rms(x []float32) float64 {
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return math.Sqrt(s / float64(len(x)))
}

func TestDecodeAt16kHz(t *testing.T) {
	d, err := NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	pcm := make([]float32, MaxPacketSamples)
	var out []float32
	for _, p := range packets(t, 1) {
		if n, err := PacketSamples(p); err != nil || n != 320 {
			t.Fatalf("PacketSamples = %d, %v; want 320 (20 ms at 16 kHz)", n, err)
		}
		n, err := d.Decode(p, pcm)
		if err != nil {
			t.Fatal(err)
		}
		if n != 320 {
			t.Fatalf("decoded %d samples, want 320", n)
		}
		out = append(out, pcm[:n]...)
	}
	// A 0.5 sine has RMS 0.354; the decoder's start-up costs a little.
	if r := rms(out[1600:]); r < 0.3 || r > 0.4 {
		t.Fatalf("decoded RMS %.3f, want about 0.354", r)
	}
	// 440 Hz at 16 kHz: about 880 zero crossings per second.
	crossings := 0
	for i := 1601; i < len(out); i++ {
		if (out[i-1] < 0) != (out[i] < 0) {
			crossings++
		}
	}
	if want := 880.0 * float64(len(out)-1601) / 16000; math.Abs(float64(crossings)-want) > 10 {
		t.Fatalf("%d zero crossings, want about %.0f: not decoded at 16 kHz", crossings, want)
	}
}

func TestConcealAndReset(t *testing.T) {
	d, err := NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ps := packets(t, 0.5)
	pcm := make([]float32, MaxPacketSamples)
	for _, p := range ps[:10] {
		if _, err := d.Decode(p, pcm); err != nil {
			t.Fatal(err)
		}
	}
	plc := make([]float32, 320)
	if err := d.Conceal(plc); err != nil {
		t.Fatal(err)
	}
	if rms(plc) < 0.05 {
		t.Fatalf("concealment after a tone is silent (RMS %.3f): it should extrapolate", rms(plc))
	}
	if err := d.ConcealFEC(ps[12], plc); err != nil {
		t.Fatal(err)
	}
	if err := d.Conceal(make([]float32, 100)); err == nil {
		t.Fatal("concealing 100 samples (not a multiple of 2.5 ms) succeeded")
	}
	if err := d.Reset(); err != nil {
		t.Fatal(err)
	}
	// After a reset the decoder has nothing to extrapolate from.
	if err := d.Conceal(plc); err != nil {
		t.Fatal(err)
	}
	if r := rms(plc); r > 1e-3 {
		t.Fatalf("concealment after reset has RMS %.4f, want silence", r)
	}
}

func TestCorruptPacketsAreErrors(t *testing.T) {
	d, err := NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	pcm := make([]float32, MaxPacketSamples)
	for name, p := range map[string][]byte{
		"empty":               {},
		"code 3 no count":     {0x03},
		"code 3 zero frames":  {0x03, 0x00},
		"code 3 over 120 ms":  {0x0b, 0x3f},
		"code 2 bad length":   {0x02, 0xff, 0xff},
		"code 1 odd length":   {0x01, 0x01, 0x02, 0x03},
		"code 3 vbr overflow": {0x03, 0x82, 0xff, 0xff},
	} {
		if _, err := d.Decode(p, pcm); !errors.Is(err, ErrInvalidPacket) {
			t.Errorf("%s: Decode err = %v, want ErrInvalidPacket", name, err)
		}
	}
	if _, err := PacketSamples(nil); !errors.Is(err, ErrInvalidPacket) {
		t.Errorf("PacketSamples(nil) err = %v", err)
	}
}

func TestClosedDecoder(t *testing.T) {
	d, err := NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := d.Decode([]byte{0xf8, 0xff, 0xfe}, make([]float32, MaxPacketSamples)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Decode after Close: %v, want ErrClosed", err)
	}
	if err := d.Reset(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Reset after Close: %v, want ErrClosed", err)
	}
}

func FuzzDecode(f *testing.F) {
	for _, p := range packets(f, 0.1) {
		f.Add(p)
	}
	f.Add([]byte{0x03, 0x82, 0xff, 0xff})
	f.Add([]byte{0xfc})
	d, err := NewDecoder()
	if err != nil {
		f.Fatal(err)
	}
	pcm := make([]float32, MaxPacketSamples)
	f.Fuzz(func(t *testing.T, p []byte) {
		n, err := d.Decode(p, pcm)
		if err != nil {
			if !errors.Is(err, ErrInvalidPacket) {
				t.Fatalf("Decode error %v is not ErrInvalidPacket", err)
			}
			return
		}
		if want, err := PacketSamples(p); err != nil || want != n {
			t.Fatalf("decoded %d samples, PacketSamples says %d, %v", n, want, err)
		}
	})
}
