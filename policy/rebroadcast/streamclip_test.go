package rebroadcast

import (
	"testing"
	"time"

	"github.com/earshot/earshot/storage"
)

// TestClipRing: the ring keeps the last samples written, a span is
// clipped to what it holds, and the WAV it makes decodes to those samples.
func TestClipRing(t *testing.T) {
	r := newClipRing("trk", 100*time.Millisecond) // 1,600 samples
	x := make([]float32, 4000)
	for i := range x {
		x[i] = float32(i%200-100) / 128
	}
	r.write(x[:1500])
	r.write(x[1500:])
	cases := []struct {
		name      string
		from, to  int64
		wantFirst int64
		wantN     int
	}{
		{"inside", 3000, 3500, 3000, 500},
		{"older than the ring", 0, 3000, 2400, 600},
		{"past the end", 3900, 5000, 3900, 100},
		{"gone", 0, 2000, 2400, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, first := r.span(c.from, c.to)
			if len(got) != c.wantN || (c.wantN > 0 && first != c.wantFirst) {
				t.Fatalf("span(%d, %d) = %d samples from %d, want %d from %d", c.from, c.to, len(got), first, c.wantN, c.wantFirst)
			}
			pcm, rate, err := ReadWAV(wavBytes(got))
			if err != nil || rate != 16000 || len(pcm) != len(got) {
				t.Fatalf("WAV round trip: %d samples at %d Hz, %v", len(pcm), rate, err)
			}
			for i, v := range pcm {
				if want := x[first+int64(i)]; v-want > 1.0/16384 || want-v > 1.0/16384 {
					t.Fatalf("sample %d: %v, want %v", first+int64(i), v, want)
				}
			}
		})
	}
}

// TestEvidenceStoreMustEncrypt: a store that would keep clips in the clear
// is refused.
func TestEvidenceStoreMustEncrypt(t *testing.T) {
	l, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := checkEvidenceStore(l); err == nil {
		t.Error("a plain store was accepted for stream clips")
	}
}

func FuzzReadWAV(f *testing.F) {
	f.Add(wavBytes([]int16{1, -2, 3}))
	f.Add([]byte("RIFF"))
	f.Fuzz(func(t *testing.T, b []byte) {
		pcm, _, err := ReadWAV(b)
		if err == nil && len(pcm) > len(b)/2 {
			t.Fatalf("%d samples from %d bytes", len(pcm), len(b))
		}
	})
}
