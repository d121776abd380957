package fingerprint

import (
	"math"
)

// Analysis constants. Audio arrives at 16 kHz (what record/opus
// decodes to); a 1024-point frame every 512 samples gives 15.6 Hz bins and
// a 16 ms time step. Only 250–3500 Hz is used: the band
// a loudspeaker-to-microphone path and a phone codec keep.
const (
	// SampleRate is the rate Push takes.
	SampleRate = 16000
	frameSize  = 1024
	// Hop is the analysis step in samples; landmark times count hops.
	// 16 ms: a replay's frames fall anywhere between the original's, and
	// at Wang's 32 ms a half-hop misalignment loses most peaks.
	Hop = 256
	// FrameMS is the length of one hop in milliseconds.
	FrameMS = 1000 * Hop / SampleRate

	minHz = 250.0
	maxHz = 3500.0
	binHz = float64(SampleRate) / frameSize
	loBin = int(minHz/binHz) + 1
	hiBin = int(maxHz / binHz)

	// A peak must be the largest value within ±peakBins bins and
	// ±peakFrames frames.
	peakBins   = 3
	peakFrames = 4
	// contrastBins is the half-width of the local mean a peak must
	// exceed by minContrastDB: it keeps broadband noise from making peaks.
	contrastBins  = 12
	minContrastDB = 6.0
	// peaksPerFrame bounds density: the strongest peaks of a frame only.
	peaksPerFrame = 2
	// silentDB is the frame level (dBFS of the windowed frame's RMS) below
	// which a frame has no peaks: shared silence and faint room noise must
	// never match.
	silentDB = -55.0

	// A landmark pairs an anchor peak with up to fanout later peaks at
	// 1..maxDT frames and within maxOctaves of it.
	fanout     = 3
	maxDT      = 31
	maxOctaves = 1.0
)

// Pair is a landmark before hashing: an anchor peak and a later peak.
// Hashing happens per speed hypothesis (Hash), so a pair keeps the exact
// frequencies.
type Pair struct {
	// T is the anchor's frame (hops since the track's first sample).
	T int32
	// DT is the frames from anchor to target, 1..maxDT.
	DT int16
	// F1, F2 are the anchor's and target's frequencies in Hz.
	F1, F2 float32
}

// peak is one spectral peak.
type peak struct {
	t    int32
	hz   float32
	cont float32 // contrast over the local mean, dB: ranks peaks
}

// Extractor turns one track's 16 kHz mono PCM into landmark pairs and
// per-frame levels, incrementally: Push any number of samples at a time;
// the output depends only on the samples, never on how they were split.
// It is not safe for concurrent use.
type Extractor struct {
	fft    *realFFT
	window []float32
	buf    []float32 // samples not yet consumed by a full frame
	frame  int32     // index of the next frame to analyse
	x, pow []float32

	// spec holds the log spectra (loBin-peakBins..hiBin+peakBins) of the
	// last 2*peakFrames+1 frames, oldest first, for the time-neighbour
	// test; specT are their frame numbers (-1: none).
	spec  [][]float32
	specT []int32
	// rowMax[r][i] is the largest of spec[r][i-peakBins..i+peakBins]
	// (i in peakBins..len-peakBins-1), computed once as a row arrives, so
	// that a bin's 9x7 neighbourhood is nine reads rather than 63.
	rowMax [][]float32
	// colMax is scratch for the neighbourhood maxima of the middle frame.
	colMax []float32
	// pending are peaks not yet paired with every later peak that may
	// follow them.
	pending []peak
	// found is scratch for one frame's peaks.
	found []peak
}

// NewExtractor returns an extractor for one track.
func NewExtractor() *Extractor {
	w := make([]float32, frameSize)
	for i := range w {
		w[i] = float32(0.5 - 0.5*math.Cos(2*math.Pi*float64(i)/float64(frameSize)))
	}
	e := &Extractor{fft: newRealFFT(frameSize), window: w, x: make([]float32, frameSize), pow: make([]float32, hiBin-loBin+1+2*peakBins)}
	n := 2*peakFrames + 1
	width := hiBin - loBin + 1 + 2*peakBins
	e.spec = make([][]float32, n)
	e.rowMax = make([][]float32, n)
	e.specT = make([]int32, n)
	for i := range e.spec {
		e.spec[i] = make([]float32, width)
		e.rowMax[i] = make([]float32, width)
		e.specT[i] = -1
	}
	e.colMax = make([]float32, width)
	return e
}

// Frames is the number of frames analysed so far.
func (e *Extractor) Frames() int32 { return e.frame }

// Push analyses samples (16 kHz mono, full scale ±1) and appends to out
// the pairs whose anchor and every possible target are complete, and to
// levels each new frame's level in dBFS (clamped to -128..0). Both are
// returned extended.
func (e *Extractor) Push(samples []float32, out []Pair, levels []int8) ([]Pair, []int8) {
	e.buf = append(e.buf, samples...)
	for len(e.buf) >= frameSize {
		lvl := e.analyse(e.buf[:frameSize])
		levels = append(levels, lvl)
		out = e.peaksAndPairs(out)
		e.frame++
		e.buf = e.buf[:copy(e.buf, e.buf[Hop:])]
	}
	return out, levels
}

// Flush pairs the peaks still waiting for later frames (end of track).
func (e *Extractor) Flush(out []Pair) []Pair {
	for range peakFrames + maxDT + 1 {
		e.rotate(false)
		out = e.peaksAndPairs(out)
		e.frame++
	}
	return out
}

// analyse computes one frame's log spectrum into the newest spec slot and
// returns its level.
func (e *Extractor) analyse(x []float32) int8 {
	var pow float64
	for i, v := range x {
		w := v * e.window[i]
		e.x[i] = w
		pow += float64(w) * float64(w)
	}
	// The Hann window's mean square is 3/8: undo it so that a full-scale
	// sine reads -3 dBFS whatever the window.
	db := -128.0
	if pow > 0 {
		db = max(10*math.Log10(pow/float64(len(x))/0.375), -128)
	}
	if db < silentDB {
		e.rotate(false)
		return int8(math.Round(db))
	}
	e.fft.power(e.x, loBin-peakBins, hiBin+peakBins+1, e.pow)
	s, rm := e.rotate(true)
	for i, p := range e.pow {
		s[i] = float32(10 * math.Log10(float64(p)+1e-12))
	}
	rowMaxOf(s, rm)
	return int8(math.Round(min(db, 0)))
}

// rowMaxOf sets rm[i] to the largest of s[i-peakBins..i+peakBins]. A NaN
// in s makes the maxima around it NaN (the builtin max propagates it), so
// those bins get the exact peak test.
func rowMaxOf(s, rm []float32) {
	for i := peakBins; i < len(s)-peakBins; i++ {
		m := s[i-peakBins]
		for _, w := range s[i-peakBins+1 : i+peakBins+1] {
			m = max(m, w)
		}
		rm[i] = m
	}
}

// neighbourhoodMax returns, for every bin of spec row mid, the largest
// value within ±peakBins bins and ±peakFrames sounding frames (itself
// included), from the row maxima: a bin below it is no peak, so only the
// bins equal to it (or NaN) need isPeak's 63 comparisons and tie rule.
func (e *Extractor) neighbourhoodMax(mid int) []float32 {
	cm := e.colMax
	copy(cm, e.rowMax[mid])
	for r := range e.spec {
		if r == mid || e.specT[r] < 0 {
			continue
		}
		row := e.rowMax[r]
		for i := peakBins; i < len(cm)-peakBins; i++ {
			cm[i] = max(cm[i], row[i])
		}
	}
	return cm
}

// rotate drops the oldest spectrum and makes the newest the current frame
// (e.frame), returned with its row maxima for the caller to fill, or
// marked silent when !sound.
func (e *Extractor) rotate(sound bool) (spec, rowMax []float32) {
	n := len(e.spec)
	first, firstMax := e.spec[0], e.rowMax[0]
	copy(e.spec, e.spec[1:])
	copy(e.rowMax, e.rowMax[1:])
	copy(e.specT, e.specT[1:])
	e.spec[n-1], e.rowMax[n-1] = first, firstMax
	if !sound {
		e.specT[n-1] = -1
		return nil, nil
	}
	e.specT[n-1] = e.frame
	return first, firstMax
}

// peaksAndPairs finds the peaks of the frame now in the middle of spec
// (peakFrames behind the newest) and emits the pairs of anchors that can
// have no further targets.
func (e *Extractor) peaksAndPairs(out []Pair) []Pair {
	mid := peakFrames
	if t := e.specT[mid]; t >= 0 {
		s := e.spec[mid]
		cm := e.neighbourhoodMax(mid)
		found := e.found[:0]
		for i := peakBins; i < len(s)-peakBins; i++ {
			v := s[i]
			if v < cm[i] || !e.isPeak(mid, i, v) {
				continue
			}
			lo, hi := max(i-contrastBins, 0), min(i+contrastBins+1, len(s))
			var sum float32
			for _, w := range s[lo:hi] {
				sum += w
			}
			c := v - sum/float32(hi-lo)
			if c < minContrastDB {
				continue
			}
			// Parabolic interpolation of the peak's position on the log
			// spectrum: sub-bin frequency keeps log-frequency quantisation
			// stable under small pitch shifts.
			a, b, d := s[i-1], v, s[i+1]
			off := float32(0)
			if den := a - 2*b + d; den < 0 {
				off = 0.5 * (a - d) / den
			}
			hz := (float32(loBin-peakBins+i) + off) * float32(binHz)
			found = append(found, peak{t: t, hz: hz, cont: c})
		}
		if len(found) > peaksPerFrame {
			insertionSort(found, func(a, b peak) bool { return a.cont > b.cont })
			found = found[:peaksPerFrame]
		}
		insertionSort(found, func(a, b peak) bool { return a.hz < b.hz })
		e.pending = append(e.pending, found...)
		e.found = found
	}
	// Peaks are complete up to frame e.frame-peakFrames; an anchor at t is
	// done once t+maxDT is complete.
	done := e.frame - peakFrames - maxDT
	n := 0
	for n < len(e.pending) && e.pending[n].t <= done {
		out = e.pairs(out, n)
		n++
	}
	e.pending = e.pending[:copy(e.pending, e.pending[n:])]
	return out
}

// insertionSort sorts a frame's few peaks stably by less, without the
// allocation sort.Slice makes (a frame has a handful of peaks).
func insertionSort(p []peak, less func(a, b peak) bool) {
	for i := 1; i < len(p); i++ {
		for j := i; j > 0 && less(p[j], p[j-1]); j-- {
			p[j], p[j-1] = p[j-1], p[j]
		}
	}
}

// isPeak reports whether v at bin i of spec row r is the maximum of its
// neighbourhood (ties broken towards the earlier frame and lower bin, so
// a flat top yields one peak).
func (e *Extractor) isPeak(r, i int, v float32) bool {
	for dr := -peakFrames; dr <= peakFrames; dr++ {
		if e.specT[r+dr] < 0 {
			continue
		}
		row := e.spec[r+dr]
		for j := i - peakBins; j <= i+peakBins; j++ {
			if dr == 0 && j == i {
				continue
			}
			w := row[j]
			if w > v || (w == v && (dr < 0 || (dr == 0 && j < i))) {
				return false
			}
		}
	}
	return true
}

// pairs appends the pairs of pending[a] with the nearest later peaks.
func (e *Extractor) pairs(out []Pair, a int) []Pair {
	p := e.pending[a]
	n := 0
	for _, q := range e.pending[a+1:] {
		if q.t == p.t {
			continue
		}
		dt := q.t - p.t
		if dt > maxDT {
			break
		}
		if math.Abs(math.Log2(float64(q.hz/p.hz))) > maxOctaves {
			continue
		}
		out = append(out, Pair{T: p.t, DT: int16(dt), F1: p.hz, F2: q.hz})
		if n++; n == fanout {
			break
		}
	}
	return out
}
