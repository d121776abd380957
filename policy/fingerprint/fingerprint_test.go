package fingerprint

import (
	"cmp"
	"errors"
	"math"
	"math/cmplx"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestRealFFTMatchesDFT(t *testing.T) {
	for _, n := range []int{8, 64, 1024} {
		r := rand.New(rand.NewPCG(uint64(n), 2))
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		got := make([]float32, n/2)
		newRealFFT(n).power(x, 0, n/2, got)
		for k := range n / 2 {
			var want complex128
			for j := range n {
				want += complex(float64(x[j]), 0) * cmplx.Exp(complex(0, -2*math.Pi*float64(j*k)/float64(n)))
			}
			w := real(want)*real(want) + imag(want)*imag(want)
			if math.Abs(float64(got[k])-w) > 1e-3*(w+float64(n)) {
				t.Fatalf("n=%d bin %d: power %v, want %v", n, k, got[k], w)
			}
		}
	}
}

func TestFFTMatchesDFT(t *testing.T) {
	for _, n := range []int{2, 8, 64, 1024} {
		r := rand.New(rand.NewPCG(uint64(n), 1))
		re, im := make([]float32, n), make([]float32, n)
		x := make([]complex128, n)
		for i := range n {
			re[i], im[i] = float32(r.NormFloat64()), float32(r.NormFloat64())
			x[i] = complex(float64(re[i]), float64(im[i]))
		}
		newFFT(n).transform(re, im)
		for k := range n {
			var want complex128
			for j := range n {
				want += x[j] * cmplx.Exp(complex(0, -2*math.Pi*float64(j*k)/float64(n)))
			}
			if got := complex(float64(re[k]), float64(im[k])); cmplx.Abs(got-want) > 1e-3*math.Sqrt(float64(n)) {
				t.Fatalf("n=%d bin %d: got %v, want %v", n, k, got, want)
			}
		}
	}
}

// chirps is deterministic test audio with moving harmonic peaks, bursts
// and pauses: enough structure for landmarks.
func chirps(seconds float64, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 7))
	n := int(seconds * SampleRate)
	out := make([]float32, n)
	var ph [4]float64
	f0 := 180.0
	for i := range n {
		t := float64(i) / SampleRate
		if i%(SampleRate/5) == 0 {
			f0 = 120 + r.Float64()*200
		}
		on := math.Sin(2*math.Pi*3*t) > -0.3 // syllable-like bursts
		var v float64
		for h := range ph {
			ph[h] += 2 * math.Pi * f0 * float64(h+2) * (1 + 0.1*math.Sin(t)) / SampleRate
			v += math.Sin(ph[h]) / float64(h+1)
		}
		if on {
			out[i] = float32(0.2*v + 0.002*r.NormFloat64())
		}
	}
	return out
}

func TestExtractorIgnoresChunking(t *testing.T) {
	x := chirps(6, 1)
	wantP, wantL := fingerprintAll(x)
	if len(wantP) < 100 {
		t.Fatalf("only %d pairs from 6 s of structured audio", len(wantP))
	}
	for _, chunk := range []int{1, 37, 160, 3840, len(x)} {
		p, l := fingerprintIn(x, chunk)
		if !slices.Equal(p, wantP) || !slices.Equal(l, wantL) {
			t.Errorf("chunk %d: %d pairs, %d levels; want %d, %d (same as 240 ms chunks)", chunk, len(p), len(l), len(wantP), len(wantL))
		}
	}
}

func TestSilenceHasNoLandmarks(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	cases := []struct {
		name string
		gen  func(i int) float32
	}{
		{"digital silence", func(int) float32 { return 0 }},
		{"noise at -70 dBFS", func(int) float32 { return float32(math.Pow(10, -70.0/20) * r.NormFloat64()) }},
		{"hum at -60 dBFS", func(i int) float32 {
			return float32(math.Pow(10, -60.0/20) * math.Sin(2*math.Pi*50*float64(i)/SampleRate))
		}},
	}
	for _, c := range cases {
		x := make([]float32, 20*SampleRate)
		for i := range x {
			x[i] = c.gen(i)
		}
		p, l := fingerprintAll(x)
		if len(p) != 0 {
			t.Errorf("%s: %d pairs, want none", c.name, len(p))
		}
		if want := (len(x)-frameSize)/Hop + 1; len(l) != want {
			t.Errorf("%s: %d levels, want one per frame (%d)", c.name, len(l), want)
		}
	}
}

func TestHashUndoesSpeed(t *testing.T) {
	cases := []struct {
		p Pair
		r float64
	}{
		{Pair{T: 10, DT: 12, F1: 500, F2: 800}, 1.03},
		{Pair{T: 10, DT: 20, F1: 1210, F2: 905}, 0.97},
		{Pair{T: 10, DT: 6, F1: 301, F2: 590}, 1.02},
		{Pair{T: 10, DT: 30, F1: 2990, F2: 2000}, 0.99},
	}
	for _, c := range cases {
		want, ok := Hash(c.p, 1)
		if !ok {
			t.Fatalf("%+v: no hash", c.p)
		}
		// The same sound played at speed r: frequencies times r, distances
		// over r.
		sped := Pair{T: c.p.T, DT: int16(math.Round(float64(c.p.DT) / c.r)), F1: c.p.F1 * float32(c.r), F2: c.p.F2 * float32(c.r)}
		got, ok := Hash(sped, c.r)
		if !ok || got != want {
			t.Errorf("%+v at speed %v: hash %x (%v), want %x", c.p, c.r, got, ok, want)
		}
		if other, _ := Hash(sped, 1); other == want {
			t.Errorf("%+v at speed %v hashes alike without the hypothesis: the test shows nothing", c.p, c.r)
		}
	}
	for _, p := range []Pair{{DT: 5, F1: 100, F2: 150}, {DT: 5, F1: 300, F2: 3400}, {DT: 40, F1: 500, F2: 600}} {
		if _, ok := Hash(p, 1); ok {
			t.Errorf("%+v: hashed, want out of range", p)
		}
	}
}

func TestIndexEraseAndExpire(t *testing.T) {
	idx, err := NewIndex(IndexConfig{Window: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	pairs, levels := fingerprintAll(chirps(10, 2))
	a := idx.AddTrack(TrackInfo{Track: "ta", Room: "r1", Speaker: "alice", StartMS: 0})
	b := idx.AddTrack(TrackInfo{Track: "tb", Room: "r2", Speaker: "bob", StartMS: 60_000})
	for _, id := range []uint32{a, b} {
		idx.AddLevels(id, levels)
		if err := idx.Add(id, pairs); err != nil {
			t.Fatal(err)
		}
	}
	per := idx.Len() / 2
	if per < 100 {
		t.Fatalf("%d landmarks per track", per)
	}
	// A query of the same audio in a third room finds both, then only
	// bob's once alice is erased, then nothing once bob's audio expired.
	find := func() []string {
		q := idx.AddTrack(TrackInfo{Track: "q" + strings.Repeat("x", idx.Len()%7+len(idx.tracks)), Room: "r3", StartMS: 120_000})
		m, err := NewMatcher(DefaultMatcherConfig(), idx, q)
		if err != nil {
			t.Fatal(err)
		}
		idx.AddLevels(q, levels)
		m.Push(pairs)
		m.Flush()
		var rooms []string
		for _, mt := range m.Matches() {
			rooms = append(rooms, mt.Ref.Room)
		}
		slices.Sort(rooms)
		return rooms
	}
	if got := find(); !slices.Equal(got, []string{"r1", "r2"}) {
		t.Fatalf("before erasure: matched %v, want [r1 r2]", got)
	}
	if n := idx.EraseSpeaker("alice"); n != 1 {
		t.Fatalf("erased %d tracks of alice, want 1", n)
	}
	if idx.Len() != per {
		t.Errorf("after erasure %d landmarks, want %d (bob's)", idx.Len(), per)
	}
	if got := find(); !slices.Equal(got, []string{"r2"}) {
		t.Errorf("after erasure: matched %v, want [r2]", got)
	}
	if err := idx.Add(a, pairs); !errors.Is(err, ErrUnknownTrack) {
		t.Errorf("adding to an erased track: %v, want ErrUnknownTrack", err)
	}
	// bob's audio ends at 70 s; 10 min later it has left the window.
	idx.Expire(60_000 + 10_000 + 10*60_000 + 1_000)
	if idx.Len() != 0 {
		t.Errorf("after expiry %d landmarks, want 0", idx.Len())
	}
	if got := find(); len(got) != 0 {
		t.Errorf("after expiry: matched %v, want nothing", got)
	}
}

func TestAllowListedRoomPair(t *testing.T) {
	idx, err := NewIndex(IndexConfig{})
	if err != nil {
		t.Fatal(err)
	}
	pairs, levels := fingerprintAll(chirps(10, 4))
	a := idx.AddTrack(TrackInfo{Track: "ta", Room: "host", StartMS: 0})
	idx.AddLevels(a, levels)
	if err := idx.Add(a, pairs); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		room    string
		matches int
	}{{"simulcast", 0}, {"elsewhere", 1}, {"host", 0}} {
		cfg := DefaultMatcherConfig()
		cfg.Allowed = func(x, y string) bool { return (x == "host" && y == "simulcast") || (x == "simulcast" && y == "host") }
		q := idx.AddTrack(TrackInfo{Track: "q-" + c.room, Room: c.room, StartMS: 0})
		idx.AddLevels(q, levels)
		m, err := NewMatcher(cfg, idx, q)
		if err != nil {
			t.Fatal(err)
		}
		m.Push(pairs)
		m.Flush()
		if got := len(m.Matches()); got != c.matches {
			t.Errorf("room %s: %d matches, want %d", c.room, got, c.matches)
		}
	}
}

func TestMatcherConfigValidateListsEveryProblem(t *testing.T) {
	err := MatcherConfig{Speeds: []float64{2}}.Validate()
	if err == nil {
		t.Fatal("no error for an empty config")
	}
	for _, want := range []string{"speed hypothesis 2", "min seconds", "min hits", "max gap", "max slot"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v: does not mention %q", err, want)
		}
	}
	if err := DefaultMatcherConfig().Validate(); err != nil {
		t.Errorf("default config: %v", err)
	}
}

func TestKeyer(t *testing.T) {
	if _, err := NewKeyer(make([]byte, 16)); err == nil {
		t.Error("a 16-byte secret was accepted")
	}
	k1, _ := NewKeyer([]byte(strings.Repeat("a", 32)))
	k2, _ := NewKeyer([]byte(strings.Repeat("b", 32)))
	seen := map[uint64]bool{}
	for h := range uint32(1000) {
		if k1.Key(h) == k2.Key(h) {
			t.Errorf("hash %d: same key under two secrets", h)
		}
		if k1.Key(h) != k1.Key(h) {
			t.Errorf("hash %d: key not stable", h)
		}
		seen[k1.Key(h)] = true
		if s := k1.Shard(h, 6); s < 0 || s >= 6 {
			t.Errorf("shard %d", s)
		}
	}
	if len(seen) != 1000 {
		t.Errorf("%d distinct keys for 1000 hashes", len(seen))
	}
}

func TestClassify(t *testing.T) {
	pub := TrackInfo{Room: "pub", StartMS: 0}
	priv := TrackInfo{Room: "priv", StartMS: 0, Private: true}
	cases := []struct {
		name       string
		m          Match
		cat, sever string
	}{
		{"speech from a public room", Match{Ref: pub, Query: TrackInfo{Room: "b", StartMS: 5000}, Speech: true}, CategoryRebroadcast, "high"},
		{"speech from a private room", Match{Ref: priv, Query: TrackInfo{Room: "b", StartMS: 5000}, Speech: true}, CategoryRebroadcast, "critical"},
		{"private query is the original", Match{Ref: TrackInfo{Room: "b", StartMS: 5000}, Query: priv, Speech: true}, CategoryRebroadcast, "critical"},
		{"music from a private room", Match{Ref: priv, Query: TrackInfo{Room: "b", StartMS: 5000}}, CategorySharedAudio, "low"},
	}
	for _, c := range cases {
		if cat, sev := Classify(c.m); cat != c.cat || sev != c.sever {
			t.Errorf("%s: %s/%s, want %s/%s", c.name, cat, sev, c.cat, c.sever)
		}
	}
}

// FuzzExtractor feeds arbitrary samples in arbitrary splits: the
// extractor must not panic, must give the same output however the input
// is split, and must keep pairs within the hashed ranges.
func FuzzExtractor(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0}, uint16(7))
	f.Add([]byte(strings.Repeat("\x7f\x80\x01\xfe", 3000)), uint16(300))
	f.Fuzz(func(t *testing.T, b []byte, split uint16) {
		x := make([]float32, len(b))
		for i, v := range b {
			x[i] = float32(int8(v)) / 128
		}
		x = append(x, x...)
		wp, wl := fingerprintIn(x, len(x))
		step := int(split)%len(x) + 1
		p, l := fingerprintIn(x, step)
		if !slices.Equal(p, wp) || !slices.Equal(l, wl) {
			t.Fatalf("split %d changed the output", step)
		}
		for _, q := range p {
			if q.DT < 1 || q.DT > maxDT || float64(q.F1) < minHz-2*binHz || float64(q.F2) > maxHz+2*binHz || q.F1 <= 0 || q.F2 <= 0 {
				t.Fatalf("pair out of range: %+v", q)
			}
		}
	})
}

func TestRadixSortIsStableByKey(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	for _, n := range []int{1, 2, 100, 5000} {
		p := make([]rawHit, n)
		for i := range p {
			p[i] = rawHit{key: uint64(r.IntN(3))<<32 | uint64(r.IntN(7))<<24 | uint64(offBias+r.IntN(50)-25), hit: hit{tq: int32(i)}}
		}
		want := slices.Clone(p)
		slices.SortStableFunc(want, func(a, b rawHit) int { return cmp.Compare(a.key, b.key) })
		m := &Matcher{}
		if got := m.radixSort(slices.Clone(p)); !slices.Equal(got, want) {
			t.Errorf("n=%d: radix order differs from a stable sort by key", n)
		}
	}
}

// TestNeighbourhoodMaxKeepsEveryPeak checks the shortcut of peak picking
// against its definition: no bin that isPeak accepts (the largest of its
// ±3 bins by ±4 sounding frames, ties to the earlier frame and lower bin)
// is ruled out by the neighbourhood maximum, with ties (values drawn from
// a few levels), silent frames and NaN in the spectra.
func TestNeighbourhoodMaxKeepsEveryPeak(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 5))
	e := NewExtractor()
	peaks, ruledOut := 0, 0
	for trial := range 2000 {
		for row := range e.spec {
			e.specT[row] = int32(row)
			if row != peakFrames && r.IntN(6) == 0 {
				e.specT[row] = -1
			}
			levels := 3 + trial%20
			for i := range e.spec[row] {
				e.spec[row][i] = float32(r.IntN(levels))
				if trial%50 == 0 && r.IntN(100) == 0 {
					e.spec[row][i] = float32(math.NaN())
				}
			}
			rowMaxOf(e.spec[row], e.rowMax[row])
		}
		cm := e.neighbourhoodMax(peakFrames)
		s := e.spec[peakFrames]
		for i := peakBins; i < len(s)-peakBins; i++ {
			exact := e.isPeak(peakFrames, i, s[i])
			if exact {
				peaks++
			}
			if s[i] < cm[i] {
				ruledOut++
				if exact {
					t.Fatalf("trial %d bin %d: a peak (%v) ruled out by the neighbourhood maximum %v", trial, i, s[i], cm[i])
				}
			}
		}
	}
	if peaks == 0 || ruledOut == 0 {
		t.Fatalf("%d peaks, %d bins ruled out: the cases test nothing", peaks, ruledOut)
	}
}

// TestConsistentGroups checks the one-pass grouping against its
// definition: a run of equal keys is kept when it and the runs of the
// keys one below and one above hold minHitsPerSecond hits.
func TestConsistentGroups(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 8))
	for _, keys := range []int{2, 10, 100, 5000} {
		p := make([]rawHit, 3000)
		count := map[uint64]int{}
		for i := range p {
			p[i].key = uint64(r.IntN(keys)) + 1<<24
			count[p[i].key]++
		}
		slices.SortStableFunc(p, func(a, b rawHit) int { return cmp.Compare(a.key, b.key) })
		var want []uint64
		for i, h := range p {
			if (i == 0 || p[i-1].key != h.key) && count[h.key-1]+count[h.key]+count[h.key+1] >= minHitsPerSecond {
				want = append(want, h.key)
			}
		}
		var got []uint64
		for _, g := range consistent(p, nil) {
			if g.end-g.start != count[g.key] || p[g.start].key != g.key {
				t.Fatalf("keys=%d: group %x spans %d hits, holds %d", keys, g.key, g.end-g.start, count[g.key])
			}
			got = append(got, g.key)
		}
		if !slices.Equal(got, want) {
			t.Errorf("keys=%d: %d groups kept, want %d", keys, len(got), len(want))
		}
	}
}
