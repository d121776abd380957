package rebroadcast

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/earshot/earshot/policy/fingerprint"
)

func testPermutation(t testing.TB, seed byte) *fingerprint.Permutation {
	k, err := fingerprint.NewKeyer(bytes.Repeat([]byte{seed}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k.Permutation()
}

// TestLandmarksTravelKeyed: landmarks packed under one deployment's secret
// come back unchanged with it, and the values on the wire are not the
// hashes (nor what another secret makes of them).
func TestLandmarksTravelKeyed(t *testing.T) {
	p, other := testPermutation(t, 1), testPermutation(t, 2)
	var lms []fingerprint.Landmark
	for i := range 1000 {
		lms = append(lms, fingerprint.Landmark{Hash: uint32(i * 997 % (1 << fingerprint.HashBits)), T: int32(i)})
	}
	b := packLandmarks(lms, p)
	got, err := unpackLandmarks(b, p)
	if err != nil || !slices.Equal(got, lms) {
		t.Fatalf("round trip: %v, equal %v", err, slices.Equal(got, lms))
	}
	plain, same := 0, 0
	for _, l := range lms {
		if p.Forward(l.Hash) == l.Hash {
			plain++
		}
		if p.Forward(l.Hash) == other.Forward(l.Hash) {
			same++
		}
	}
	if plain > 5 || same > 5 {
		t.Errorf("%d of 1000 keyed values equal the hash, %d equal another secret's", plain, same)
	}
}

func TestDecodeRecord(t *testing.T) {
	good := Record{V: 1, Origin: "i", Track: "trk", Room: "r", Levels: []byte{1}, Landmarks: make([]byte, 16)}
	for _, tc := range []struct {
		name string
		edit func(r *Record)
		ok   bool
	}{
		{"good", func(*Record) {}, true},
		{"version", func(r *Record) { r.V = 2 }, false},
		{"no track", func(r *Record) { r.Track = "" }, false},
		{"no room", func(r *Record) { r.Room = "" }, false},
		{"negative seq", func(r *Record) { r.Seq = -1 }, false},
		{"ragged landmarks", func(r *Record) { r.Landmarks = make([]byte, 12) }, false},
		{"too many levels", func(r *Record) { r.Levels = make([]byte, maxRecordFrames+1) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := good
			tc.edit(&r)
			b, err := r.marshal()
			if err != nil {
				t.Fatal(err)
			}
			_, err = DecodeRecord(b)
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrBadRecord)) {
				t.Errorf("err = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

func FuzzDecodeRecord(f *testing.F) {
	r := Record{V: 1, Origin: "i", Track: "trk", Room: "r", Levels: []byte{1}, Landmarks: make([]byte, 16)}
	b, _ := r.marshal()
	f.Add(b)
	f.Add([]byte(`{"v":1}`))
	f.Add([]byte(`not json`))
	p := testPermutation(f, 1)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRecord(b)
		if err != nil {
			return
		}
		if len(r.Landmarks)%8 != 0 || r.Track == "" || r.Seq < 0 {
			t.Fatalf("accepted an invalid record: %+v", r)
		}
		_, _ = unpackLandmarks(r.Landmarks, p)
	})
}
