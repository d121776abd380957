package opus

import (
	"testing"

	"github.com/earshot/earshot/internal/opusenc"
	"github.com/earshot/earshot/record/ogg"
)

// encode returns the packets of pcm (48 kHz) from a VoIP encoder, as the
// test bots send.
func encode(t testing.TB, pcm []float32, bitrate int) [][]byte {
	t.Helper()
	enc, err := opusenc.New(bitrate, true)
	if err != nil {
		t.Fatal(err)
	}
	p, err := enc.Encode(pcm)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func recorderSilence(n int64) []byte {
	p, _ := ogg.Silence(n)
	return p
}

func TestInactive(t *testing.T) {
	toneP := packets(t, 1)
	silenceP := encode(t, make([]float32, 48000), 32000)
	cases := []struct {
		name   string
		packet []byte
		want   bool
	}{
		{"recorder's 20 ms silence", recorderSilence(960), true},
		{"recorder's 10 ms silence", recorderSilence(480), true},
		{"recorder's 5 ms silence", recorderSilence(240), true},
		{"recorder's 2.5 ms silence", recorderSilence(120), true},
		{"DTX: TOC only", []byte{0x78}, true},
		{"DTX: one byte of frame", []byte{0x78, 0x00}, true},
		{"tone, hybrid", toneP[25], false},
		{"digital silence, encoded", silenceP[25], true},
		{"two frames (code 1) of silence", []byte{0xF9, 0xFF, 0xFE}, false},
		{"arbitrary frames (code 3)", []byte{0xFB, 0x01, 0xFF}, false},
		{"CELT frame without the silence flag", []byte{0xF8, 0x00, 0x00, 0x00}, false},
		{"empty", nil, false},
		{"frame over 1275 bytes", make([]byte, 1277), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Inactive(c.packet); got != c.want {
				t.Errorf("Inactive(% x...) = %v, want %v", c.packet[:min(len(c.packet), 4)], got, c.want)
			}
		})
	}
}

// TestInactiveFollowsTheEncoder checks the SILK voice-activity flags
// against what was encoded: a tone's packets are all active, digital
// silence's are inactive once the encoder's detector has settled, and
// what is skipped would have decoded to near silence.
func TestInactiveFollowsTheEncoder(t *testing.T) {
	for _, rate := range []int{12000, 32000} {
		tone := encode(t, tone(48000), rate)
		for i, p := range tone {
			if Inactive(p) {
				t.Errorf("%d bit/s: tone packet %d (% x...) is inactive", rate, i, p[:4])
			}
		}
		silence := encode(t, make([]float32, 3*48000), rate)
		d, err := NewDecoder()
		if err != nil {
			t.Fatal(err)
		}
		pcm := make([]float32, MaxPacketSamples)
		inactive := 0
		for i, p := range silence {
			n, err := d.Decode(p, pcm)
			if err != nil {
				t.Fatal(err)
			}
			if !Inactive(p) {
				continue
			}
			inactive++
			if r := rms(pcm[:n]); r > 1e-3 { // -60 dBFS
				t.Errorf("%d bit/s: inactive packet %d decodes to RMS %.4f", rate, i, r)
			}
		}
		// The first few packets may be coded as active while the
		// encoder's detector learns the noise floor.
		if inactive < len(silence)*9/10 {
			t.Errorf("%d bit/s: %d of %d packets of digital silence inactive", rate, inactive, len(silence))
		}
		d.Close()
	}
}

// TestDecodeActive checks that skipped packets are their duration of
// zeros and that the decoder starts afresh after them: concealment
// right after a skipped gap must not bring back the tone before it.
func TestDecodeActive(t *testing.T) {
	tone := packets(t, 0.5)
	d, err := NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	pcm := make([]float32, MaxPacketSamples)
	for _, p := range tone {
		n, skipped, err := d.DecodeActive(p, pcm)
		if err != nil || skipped || n != 320 {
			t.Fatalf("tone packet: %d samples, skipped %v, %v", n, skipped, err)
		}
	}
	for i := range pcm {
		pcm[i] = 1
	}
	n, skipped, err := d.DecodeActive(recorderSilence(960), pcm)
	if err != nil || !skipped || n != 320 {
		t.Fatalf("silence packet: %d samples, skipped %v, %v", n, skipped, err)
	}
	if r := rms(pcm[:n]); r != 0 {
		t.Fatalf("skipped packet wrote RMS %.3f, want zeros", r)
	}
	if err := d.Conceal(pcm[:320]); err != nil {
		t.Fatal(err)
	}
	if r := rms(pcm[:320]); r > 1e-3 {
		t.Errorf("concealment after a skipped packet has RMS %.3f: the tone came back", r)
	}
	// And the tone decodes again after the gap.
	var out []float32
	for _, p := range tone {
		n, _, err := d.DecodeActive(p, pcm)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, pcm[:n]...)
	}
	if r := rms(out[1600:]); r < 0.3 || r > 0.4 {
		t.Errorf("tone after the gap has RMS %.3f, want about 0.354", r)
	}
	d.Close()
	if _, _, err := d.DecodeActive(recorderSilence(960), pcm); err == nil {
		t.Error("DecodeActive on a closed decoder did not fail")
	}
}

// FuzzInactive checks Inactive on any bytes: it never panics, a packet it
// calls inactive has a duration (DecodeActive writes that many zeros), and
// a CELT-only one it calls silent decodes to silence.
func FuzzInactive(f *testing.F) {
	f.Add([]byte{0xF8, 0xFF, 0xFE})
	f.Add([]byte{0x78})
	f.Add([]byte{0x0C, 0x12, 0x34})
	f.Add([]byte{0x7C, 0x00, 0x80, 0x00})
	for _, p := range packets(f, 0.1) {
		f.Add(p)
	}
	pcm := make([]float32, MaxPacketSamples)
	f.Fuzz(func(t *testing.T, p []byte) {
		if !Inactive(p) {
			return
		}
		n, err := PacketSamples(p)
		if err != nil || n <= 0 {
			t.Fatalf("inactive packet % x has no duration: %d, %v", p, n, err)
		}
		if p[0]>>3 < 16 || len(p) <= 2 {
			return
		}
		d, err := NewDecoder()
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		n, err = d.Decode(p, pcm)
		if err != nil {
			return // libopus may refuse what the flag alone does not show
		}
		for i, v := range pcm[:n] {
			// libopus adds a tiny constant against denormals: 1e-6 is
			// -120 dBFS.
			if v > 1e-6 || v < -1e-6 {
				t.Fatalf("silent CELT packet % x decodes to %g at sample %d", p, v, i)
			}
		}
	})
}
