package whispercpp

import (
	"math"
	"math/rand/v2"
	"testing"
)

// signal builds audio from parts: seconds of a 220 Hz tone at an RMS level
// in dBFS (-inf: silence), over white noise at noise dBFS RMS.
type part struct {
	seconds float64
	db      float64
}

func signal(noise float64, parts ...part) []float32 {
	rng := rand.New(rand.NewPCG(1, 2))
	var out []float32
	for _, p := range parts {
		amp := math.Sqrt2 * math.Pow(10, p.db/20)
		for i := range int(p.seconds * 16000) {
			v := amp * math.Sin(2*math.Pi*220*float64(i)/16000)
			if !math.IsInf(noise, -1) {
				v += rng.NormFloat64() * math.Pow(10, noise/20)
			}
			out = append(out, float32(v))
		}
	}
	return out
}

func TestVoicedEnd(t *testing.T) {
	off := math.Inf(-1)
	for _, tc := range []struct {
		name  string
		audio []float32
		want  int64
	}{
		{"speech then silence", signal(off, part{0.3, off}, part{1.5, -12}, part{0.3, off}), 180},
		{"a quiet tail 30 dB down is speech", signal(off, part{1, -12}, part{0.2, -42}, part{0.5, off}), 120},
		{"a tail 50 dB down is not", signal(off, part{1, -12}, part{0.2, -62}, part{0.5, off}), 100},
		{"speech over a noise floor", signal(-45, part{0.2, off}, part{1, -15}, part{0.8, off}), 120},
		{"speech to the last frame", signal(off, part{0.5, off}, part{1, -20}), 150},
		{"silence", signal(off, part{2, off}), -1},
		{"noise alone", signal(-30, part{3, off}), -1},
		{"shorter than a frame", make([]float32, frameSamples-1), -1},
		{"empty", nil, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := voicedEnd(tc.audio); got != tc.want {
				t.Errorf("voicedEnd = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestLastWordEnd(t *testing.T) {
	for _, tc := range []struct {
		name                    string
		start, dtw, cut, voiced int64
		want                    int64
	}{
		{"placed at the audio's end, speech ends before", 250, 296, 297, 268, 268},
		{"placed at a closing timestamp before the speech ends", 180, 198, 200, 220, 220},
		{"within atCut of the cut counts as at it", 180, 196, 200, 215, 215},
		{"placed inside the speech: kept", 200, 254, 280, 270, 254},
		{"placed after the speech, not at the cut: clamped", 200, 262, 300, 250, 250},
		{"no voiced end: kept", 200, 296, 297, -1, 296},
		{"voiced end before the token starts: kept", 260, 296, 297, 250, 296},
		{"no DTW time: kept", 200, -1, 297, 250, -1},
		{"unknown start", -1, 98, 99, 80, 80},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := lastWordEnd(tc.start, tc.dtw, tc.cut, tc.voiced); got != tc.want {
				t.Errorf("lastWordEnd(%d, %d, %d, %d) = %d, want %d", tc.start, tc.dtw, tc.cut, tc.voiced, got, tc.want)
			}
		})
	}
}
