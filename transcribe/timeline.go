package transcribe

import (
	"math"

	"github.com/earshot/earshot/event"
)

// Span is an inclusive range of timeline (48 kHz) samples on one track.
type Span struct {
	First, Last int64
}

// Overlaps reports whether two spans share a sample.
func (s Span) Overlaps(o Span) bool { return s.First <= o.Last && o.First <= s.Last }

// Center is the span's middle sample (rounded down).
func (s Span) Center() int64 { return s.First + (s.Last-s.First)/2 }

// ToAudio returns the index of the 16 kHz audio sample that covers timeline
// sample n (floor division, also for negative n).
func ToAudio(n int64) int64 {
	q := n / Ratio
	if n%Ratio < 0 {
		q--
	}
	return q
}

// ToTimeline returns the first timeline sample of 16 kHz audio sample k.
func ToTimeline(k int64) int64 { return k * Ratio }

// AudioSpan returns the inclusive timeline range covered by the 16 kHz
// audio samples [first, first+n).
func AudioSpan(first, n int64) Span {
	return Span{First: ToTimeline(first), Last: ToTimeline(first+n) - 1}
}

// secondsToSamples converts seconds relative to some audio's start to
// timeline samples, rounding to the nearest; non-finite or negative input
// gives 0.
func secondsToSamples(sec float64) int64 {
	if !(sec > 0) || math.IsInf(sec, 0) {
		return 0
	}
	const limit = float64(math.MaxInt64 / 2)
	v := math.Round(sec * float64(event.SampleRate))
	if v > limit {
		return int64(limit)
	}
	return int64(v)
}
