package transcribe

import (
	"testing"
	"time"
)

// TestPeriodicitySeparatesVoiceFromNoise checks the numbers the voicing
// threshold (0.45) relies on.
func TestPeriodicitySeparatesVoiceFromNoise(t *testing.T) {
	var y [pitchWindow]float64
	stats := func(x []float32) (lo, hi float64) {
		lo = 1
		for at := frameLen; at+frameLen <= len(x); at += frameLen {
			p := periodicity(x[at-frameLen:at+frameLen], &y)
			lo, hi = min(lo, p), max(hi, p)
		}
		return lo, hi
	}
	if lo, _ := stats(voiced(AudioRate, 2*time.Second, 0.5)); lo < 0.7 {
		t.Errorf("a steady voice has frames at periodicity %.2f", lo)
	}
	for _, kind := range []string{"white", "pink", "brown"} {
		if _, hi := stats(noise(kind, AudioRate, 10*time.Second, 0.05, 9)); hi > 0.35 {
			t.Errorf("%s noise reaches periodicity %.2f", kind, hi)
		}
	}
	if p := periodicity(make([]float32, 2*frameLen), &y); p != 0 {
		t.Errorf("silence has periodicity %.2f", p)
	}
}

func TestFloorTrackerFollowsTheMinimum(t *testing.T) {
	f := newFloorTracker(3)
	for i, c := range []struct{ in, want float64 }{{-40, -40}, {-20, -40}, {-30, -40}, {-25, -30}, {-50, -50}, {-10, -50}} {
		if got := f.add(c.in); got != c.want {
			t.Fatalf("step %d: floor %v, want %v", i, got, c.want)
		}
	}
}
