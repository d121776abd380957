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
	// twr, twi hold each stage's twiddles contiguously (stages of size
	// 4, 8, ..., n: half of the size each), so the butterfly loop reads
	// them in order rather than at a stride.
	twr, twi []float32
}

func newFFT(n int) *fft {
	if n < 2 || n&(n-1) != 0 {
		panic("fingerprint: fft size must be a power of two") // programming error: sizes are constants
	}
	f := &fft{n: n, rev: make([]int32, n)}
	shift := uint(bits.UintSize - bits.TrailingZeros(uint(n)))
	for i := range n {
		f.rev[i] = int32(bits.Reverse(uint(i)) >> shift)
	}
	for size := 4; size <= n; size <<= 1 {
		for k := range size / 2 {
			a := -2 * math.Pi * float64(k*(n/size)) / float64(n)
			f.twr = append(f.twr, float32(math.Cos(a)))
			f.twi = append(f.twi, float32(math.Sin(a)))
		}
	}
	return f
}

// transform replaces (re, im) by its discrete Fourier transform.
func (f *fft) transform(re, im []float32) {
	n := f.n
	re, im = re[:n], im[:n]
	for i, j := range f.rev {
		if int(j) > i {
			re[i], re[j] = re[j], re[i]
			im[i], im[j] = im[j], im[i]
		}
	}
	// Size 2: the twiddle is 1.
	for a := 0; a+1 < n; a += 2 {
		tr, ti := re[a+1], im[a+1]
		re[a+1], im[a+1] = re[a]-tr, im[a]-ti
		re[a], im[a] = re[a]+tr, im[a]+ti
	}
	off := 0
	for size := 4; size <= n; size <<= 1 {
		half := size / 2
		wr, wi := f.twr[off:off+half], f.twi[off:off+half]
		for start := 0; start < n; start += size {
			ar, ai := re[start:start+half], im[start:start+half]
			br, bi := re[start+half:start+size], im[start+half:start+size]
			ai, br, bi = ai[:len(ar)], br[:len(ar)], bi[:len(ar)]
			wr, wi := wr[:len(ar)], wi[:len(ar)]
			for k := range ar {
				tr := br[k]*wr[k] - bi[k]*wi[k]
				ti := br[k]*wi[k] + bi[k]*wr[k]
				br[k], bi[k] = ar[k]-tr, ai[k]-ti
				ar[k], ai[k] = ar[k]+tr, ai[k]+ti
			}
		}
		off += half
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
