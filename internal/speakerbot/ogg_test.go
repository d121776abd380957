package speakerbot

import (
	"bytes"
	"os"
	"testing"
)

func readFixture(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/tone.opus")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The fixture is opusenc output (1.2 s, 20 ms frames, up to 1 s per page):
// pages of many packets, a final granule position that trims the end.
func TestReadOpusFile(t *testing.T) {
	f, err := ReadOpusFile(bytes.NewReader(readFixture(t)))
	if err != nil {
		t.Fatal(err)
	}
	if f.PreSkip() != 312 || f.Head.Channels != 1 {
		t.Errorf("head: pre-skip %d channels %d, want 312 and 1", f.PreSkip(), f.Head.Channels)
	}
	// 1.2 s plus pre-skip, in 20 ms packets.
	if want := (57600 + 312 + 959) / 960; len(f.Packets) != want {
		t.Errorf("packets = %d, want %d", len(f.Packets), want)
	}
	var next int64
	for i, p := range f.Packets {
		if p.Start != next || p.Samples != 960 || len(p.Data) == 0 {
			t.Fatalf("packet %d: start %d samples %d len %d; want start %d, 960 samples", i, p.Start, p.Samples, len(p.Data), next)
		}
		next += int64(p.Samples)
	}
	if f.Samples != next {
		t.Errorf("Samples = %d, want %d", f.Samples, next)
	}
	// opusenc's final granule position marks the input's exact length.
	if got := f.DurationSamples(); got != 57600 {
		t.Errorf("DurationSamples = %d, want 57600 (1.2 s)", got)
	}
}

func TestReadOpusFileRejectsDamage(t *testing.T) {
	good := readFixture(t)
	flipped := bytes.Clone(good)
	flipped[len(flipped)/2] ^= 0x40 // breaks a page checksum
	cases := map[string][]byte{
		"empty":         nil,
		"not ogg":       []byte("RIFF....WAVEfmt "),
		"truncated":     good[:len(good)-100],
		"only headers":  good[:200],
		"checksum":      flipped,
		"garbage magic": append([]byte("OggX"), good[4:]...),
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := ReadOpusFile(bytes.NewReader(in)); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

func FuzzReadOpusFile(f *testing.F) {
	good := readFixture(f)
	f.Add(good)
	f.Add(good[:300])
	f.Add([]byte("OggS"))
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := ReadOpusFile(bytes.NewReader(b))
		if err != nil {
			return
		}
		var next int64
		for _, p := range file.Packets {
			if p.Start != next || p.Samples <= 0 || p.Samples > 5760 {
				t.Fatalf("inconsistent packet %+v", p)
			}
			next += int64(p.Samples)
		}
		if file.DurationSamples() < 0 || file.DurationSamples() > file.Samples {
			t.Fatalf("duration %d of %d samples", file.DurationSamples(), file.Samples)
		}
	})
}
