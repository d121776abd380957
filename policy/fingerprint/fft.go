package fingerprint

import (
	"math"
	"math/bits"
)

// fft is an in-place iterative radix-2 complex FFT of one fixed size with
// precomputed twiddles and bit-reversal table. It is all the spectral
// analysis the extractor needs (one transform size, magnitudes only), so it
// lives here rather than pulling a numerics library into the module.
type fft struct {
	n   int
	rev []int32
	cos []float32
	sin []float32
}

func newFFT(n int) *fft {
	if n < 2 || n&(n-1) != 0 {
		panic("fingerprint: fft size must be a power of two") // programming error: sizes are constants
	}
	f := &fft{n: n, rev: make([]int32, n), cos: make([]float32, n/2), sin: make([]float32, n/2)}
	shift := uint(bits.UintSize - bits.TrailingZeros(uint(n)))
	for i := range n {
		f.rev[i] = int32(bits.Reverse(uint(i)) >> shift)
	}
	for i := range n / 2 {
		a := -2 * math.Pi * float64(i) / float64(n)
		f.cos[i], f.sin[i] = float32(math.Cos(a)), float32(math.Sin(a))
	}
	return f
}

// transform replaces (re, im) by its discrete Fourier transform.
func (f *fft) transform(re, im []float32) {
	n := f.n
	for i := range n {
		j := int(f.rev[i])
		if j > i {
			re[i], re[j] = re[j], re[i]
			im[i], im[j] = im[j], im[i]
		}
	}
	for size := 2; size <= n; size <<= 1 {
		half, step := size/2, n/size
		for start := 0; start < n; start += size {
			for k := range half {
				wr, wi := f.cos[k*step], f.sin[k*step]
				a, b := start+k, start+k+half
				tr := re[b]*wr - im[b]*wi
				ti := re[b]*wi + im[b]*wr
				re[b], im[b] = re[a]-tr, im[a]-ti
				re[a], im[a] = re[a]+tr, im[a]+ti
			}
		}
	}
}

// realFFT is the transform of n real samples through one complex
// transform of n/2 points (even samples as real parts, odd as imaginary),
// half the work of a complex transform of n.
type realFFT struct {
	n      int
	half   *fft
	re, im []float32
	wr, wi []float32 // e^{-2πik/n}, k < n/2
}

func newRealFFT(n int) *realFFT {
	f := &realFFT{n: n, half: newFFT(n / 2), re: make([]float32, n/2), im: make([]float32, n/2),
		wr: make([]float32, n/2), wi: make([]float32, n/2)}
	for k := range n / 2 {
		a := -2 * math.Pi * float64(k) / float64(n)
		f.wr[k], f.wi[k] = float32(math.Cos(a)), float32(math.Sin(a))
	}
	return f
}

// power writes |X[k]|² for k in [lo, hi) of the transform of x into out.
func (f *realFFT) power(x []float32, lo, hi int, out []float32) {
	h := f.n / 2
	for i := range h {
		f.re[i], f.im[i] = x[2*i], x[2*i+1]
	}
	f.half.transform(f.re, f.im)
	for k := lo; k < hi; k++ {
		j := (h - k) % h
		// Even part E = (Z[k] + conj Z[h-k]) / 2, odd part
		// O = (Z[k] - conj Z[h-k]) / 2i; X[k] = E + W^k O.
		er, ei := (f.re[k]+f.re[j])/2, (f.im[k]-f.im[j])/2
		or, oi := (f.im[k]+f.im[j])/2, -(f.re[k]-f.re[j])/2
		xr := er + f.wr[k]*or - f.wi[k]*oi
		xi := ei + f.wr[k]*oi + f.wi[k]*or
		out[k-lo] = xr*xr + xi*xi
	}
}
