package fingerprint

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"math"
	"math/rand/v2"
)

// Hash layout: 8 bits of anchor log-frequency, 7 bits of the target's
// log-frequency relative to the anchor, 5 bits of frame distance.
const (
	// freqStep is the width of a log-frequency cell: 2 %, four times the
	// residual error of the nearest speed hypothesis (1 % apart).
	freqStep  = 0.02
	deltaBias = 64
	// HashBits is the number of bits a landmark hash uses.
	HashBits = 8 + 7 + 5
)

var lnStep = math.Log1p(freqStep)

// Hash is the landmark hash of p under the hypothesis that the audio
// containing p plays at speed r relative to the audio it is compared with
// (frequencies scaled by r, times by 1/r): the anchor's frequency and the
// distance are mapped back; the frequency ratio is invariant. ok is false
// when the mapped pair falls outside the hashed range.
func Hash(p Pair, r float64) (h uint32, ok bool) {
	cells, qd, ok := pairCells(p)
	if !ok {
		return 0, false
	}
	rCells := 0.0 // speed 1, as every indexed landmark is hashed
	if r != 1 {
		rCells = math.Log(r) / lnStep
	}
	return hashAt(cells, qd, p.DT, r, rCells)
}

// pairCells is the part of a pair's hash no speed hypothesis changes: the
// anchor's log-frequency in cells above minHz (not yet quantised: the
// hypothesis shifts it) and the quantised frequency ratio. A matcher
// computes it once per pair rather than once per hypothesis.
func pairCells(p Pair) (cells float64, qd uint32, ok bool) {
	d := math.Round(math.Log(float64(p.F2/p.F1))/lnStep) + deltaBias
	if !(d >= 0 && d < 128) { // also false for NaN
		return 0, 0, false
	}
	return math.Log(float64(p.F1)/minHz) / lnStep, uint32(d), true
}

// hashAt finishes Hash from pairCells at speed r, whose log in cells is
// rCells (ln r / lnStep): dividing the anchor's frequency by r is
// subtracting rCells from its cells.
func hashAt(cells float64, qd uint32, dt int16, r, rCells float64) (uint32, bool) {
	q1 := math.Floor(cells - rCells)
	if !(q1 >= 0 && q1 < 256) {
		return 0, false
	}
	qt := math.Round(float64(dt) * r)
	if qt < 1 || qt >= 32 {
		return 0, false
	}
	return uint32(q1)<<12 | qd<<5 | uint32(qt), true
}

// Keyer turns landmark hashes into keyed hashes (HMAC-SHA256 under the
// deployment's secret, truncated to 64 bits) for anything that leaves the
// process: a shard key on Kafka, an index entry in another instance.
// Without the secret, nobody can compute the keyed hash of a landmark and
// so cannot test whether some audio was spoken in a room; with the
// secret, a keyed hash still says nothing about the audio beyond the
// landmark it stands for (see docs/rebroadcast.md).
type Keyer struct {
	key []byte
}

// NewKeyer returns a Keyer under secret (at least 32 bytes).
func NewKeyer(secret []byte) (*Keyer, error) {
	if len(secret) < 32 {
		return nil, errShortSecret
	}
	return &Keyer{key: append([]byte(nil), secret...)}, nil
}

// Key is h's keyed hash.
func (k *Keyer) Key(h uint32) uint64 {
	m := hmac.New(sha256.New, k.key)
	var b [8]byte
	copy(b[:4], "efp1") // domain: landmark hashes, layout version 1
	binary.BigEndian.PutUint32(b[4:], h)
	m.Write(b[:])
	return binary.BigEndian.Uint64(m.Sum(nil))
}

// Shard is the shard (0..n-1) that indexes h: the keyed hash modulo n, so
// the shard a landmark goes to reveals nothing without the secret either.
func (k *Keyer) Shard(h uint32, n int) int {
	return int(k.Key(h) % uint64(n))
}

// Permutation is a keyed bijection of the landmark hash space: what a
// landmark travels as between processes. Without the secret the permuted
// value of a landmark cannot be computed, so records on Kafka cannot be
// tested against some audio; an instance holding the secret maps it back
// to the hash its index is laid out by. A table each way: 8 MB.
type Permutation struct {
	fwd, inv []uint32
}

// Permutation returns the keyed permutation of the hash space: a
// Fisher-Yates shuffle driven by ChaCha8 seeded with HMAC-SHA256 of the
// secret, so every instance of a deployment derives the same one.
func (k *Keyer) Permutation() *Permutation {
	m := hmac.New(sha256.New, k.key)
	m.Write([]byte("efp1-permutation"))
	var seed [32]byte
	copy(seed[:], m.Sum(nil))
	r := rand.New(rand.NewChaCha8(seed))
	p := &Permutation{fwd: make([]uint32, 1<<HashBits), inv: make([]uint32, 1<<HashBits)}
	for i := range p.fwd {
		p.fwd[i] = uint32(i)
	}
	r.Shuffle(len(p.fwd), func(i, j int) { p.fwd[i], p.fwd[j] = p.fwd[j], p.fwd[i] })
	for i, v := range p.fwd {
		p.inv[v] = uint32(i)
	}
	return p
}

// Forward maps a hash (below 1<<HashBits) to its keyed value.
func (p *Permutation) Forward(h uint32) uint32 { return p.fwd[h&(1<<HashBits-1)] }

// Inverse maps a keyed value back; ok is false outside the hash space.
func (p *Permutation) Inverse(v uint32) (h uint32, ok bool) {
	if v >= 1<<HashBits {
		return 0, false
	}
	return p.inv[v], true
}
