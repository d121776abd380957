package transcribe

import "math"

// Voice-activity detection works on 20 ms frames of 16 kHz audio aligned to
// the track's timeline, so the same audio gives the same frames however it
// was chunked. A frame is
//   - loud when its energy is at least Margin above the adaptive noise
//     floor (the quietest frame of the last FloorWindow) and above MinLevel;
//   - voiced when it is loud and periodic at a speaking pitch (70–400 Hz):
//     vowels are, while hiss, hum-free noise, clicks and bumps are not. This
//     is what keeps steady or suddenly starting noise from ever opening an
//     utterance, whatever its level.

const (
	frameLen = AudioRate / 50 // 20 ms
	// silenceDB is the energy of digital silence (and the lowest floor).
	silenceDB = -100.0
	// Periodicity is measured at 8 kHz over two frames (40 ms, two periods
	// of a 50 Hz voice) on lags 2.5–14.3 ms (400 down to 70 Hz).
	pitchRate   = 8000
	pitchWindow = 2 * frameLen * pitchRate / AudioRate
	minLag      = pitchRate / 400
	maxLag      = pitchRate / 70
	// preEmphasis flattens the spectrum before the autocorrelation (the
	// usual speech value): without it, brown noise and rumble correlate up
	// to 0.65 at pitch lags; with it, 0.3 at most, while vowels stay at
	// 0.7–0.95.
	preEmphasis = 0.97
)

// energyDB is a frame's mean power in dB relative to a full-scale square
// wave (a full-scale sine is -3 dB).
func energyDB(x []float32) float64 {
	var sum float64
	for _, v := range x {
		sum += float64(v) * float64(v)
	}
	if sum == 0 {
		return silenceDB
	}
	return max(10*math.Log10(sum/float64(len(x))), silenceDB)
}

// periodicity returns the highest normalised autocorrelation of x (two
// frames of 16 kHz audio) over speaking-pitch lags: near 1 for a voiced
// vowel, near 0.2 for noise. x is decimated to 8 kHz and pre-emphasised
// first, so low-frequency rumble (brown noise, bumps), which correlates
// with itself at any short lag, does not pass as voice.
func periodicity(x []float32, y *[pitchWindow]float64) float64 {
	// Decimate by 2 (pair average) and pre-emphasise.
	var prev, mean float64
	for i := range pitchWindow {
		v := (float64(x[2*i]) + float64(x[2*i+1])) / 2
		y[i] = v - preEmphasis*prev
		prev = v
		mean += y[i]
	}
	mean /= pitchWindow
	var total float64
	for i := range y {
		y[i] -= mean
		total += y[i] * y[i]
	}
	if total < 1e-12 {
		return 0
	}
	// head[τ] = energy of y[0:N-τ], tail[τ] = energy of y[τ:N], updated
	// incrementally as τ grows.
	head, tail := total, total
	for i := range minLag {
		head -= y[pitchWindow-1-i] * y[pitchWindow-1-i]
		tail -= y[i] * y[i]
	}
	best := 0.0
	for lag := minLag; lag <= maxLag; lag++ {
		var dot float64
		a, b := y[:pitchWindow-lag], y[lag:]
		for i := range a {
			dot += a[i] * b[i]
		}
		if den := head * tail; den > 1e-20 && dot > 0 {
			if r := dot / math.Sqrt(den); r > best {
				best = r
			}
		}
		head -= y[pitchWindow-1-lag] * y[pitchWindow-1-lag]
		tail -= y[lag] * y[lag]
	}
	return best
}

// floorTracker keeps the adaptive noise floor: the minimum frame energy
// over a sliding window. A minimum follows the noise (which is always
// there) and ignores speech (which pauses), and needs no warm-up: the first
// frame of steady noise already sets the floor to that noise.
type floorTracker struct {
	ring []float64
	pos  int
	full bool
}

func newFloorTracker(frames int) *floorTracker {
	return &floorTracker{ring: make([]float64, max(frames, 1))}
}

// add records a frame's energy and returns the floor including it.
func (f *floorTracker) add(e float64) float64 {
	f.ring[f.pos] = e
	f.pos++
	if f.pos == len(f.ring) {
		f.pos, f.full = 0, true
	}
	n := f.pos
	if f.full {
		n = len(f.ring)
	}
	floor := f.ring[0]
	for _, v := range f.ring[1:n] {
		floor = min(floor, v)
	}
	return floor
}
