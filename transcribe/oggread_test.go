package transcribe

import (
	"os"
	"testing"
)

func TestParseOggOpus(t *testing.T) {
	b, err := os.ReadFile("testdata/fox.opus")
	if err != nil {
		t.Fatal(err)
	}
	seg, err := parseOggOpus(b)
	if err != nil {
		t.Fatal(err)
	}
	want := foxPackets(t)
	if len(seg.Packets) != len(want) || seg.PreSkip != 312 {
		t.Fatalf("%d packets, pre-skip %d; want %d packets, pre-skip 312", len(seg.Packets), seg.PreSkip, len(want))
	}
	for i, p := range seg.Packets {
		if string(p) != string(want[i]) || seg.Samples[i] != 960 {
			t.Fatalf("packet %d differs (%d samples)", i, seg.Samples[i])
		}
	}
	if seg.Tags == nil {
		t.Fatal("no tags map")
	}
	for _, bad := range [][]byte{nil, []byte("OggS"), b[:40], append([]byte("xxxx"), b...)} {
		if _, err := parseOggOpus(bad); err == nil {
			t.Fatalf("%d bytes of garbage parsed", len(bad))
		}
	}
}

func TestSegmentRange(t *testing.T) {
	for _, tc := range []struct {
		key         string
		first, last int64
		ok          bool
	}{
		{"audio/r/s/trk/000000000000000-000000001439999.ogg", 0, 1439999, true},
		{"audio/r/s/trk/000000001440000-000000002879999.ogg", 1440000, 2879999, true},
		{"audio/r/s/trk/5-4.ogg", 0, 0, false},
		{"audio/r/s/trk/x-4.ogg", 0, 0, false},
		{"audio/r/s/trk/manifest.json", 0, 0, false},
	} {
		f, l, err := segmentRange(tc.key)
		if (err == nil) != tc.ok || (tc.ok && (f != tc.first || l != tc.last)) {
			t.Errorf("%s: %d-%d %v", tc.key, f, l, err)
		}
	}
}

func FuzzParseOggOpus(f *testing.F) {
	b, err := os.ReadFile("testdata/fox.opus")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(b[:200])
	f.Add([]byte("OggS"))
	f.Fuzz(func(t *testing.T, data []byte) {
		seg, err := parseOggOpus(data)
		if err != nil {
			return
		}
		if len(seg.Packets) != len(seg.Samples) {
			t.Fatal("packets and durations differ in number")
		}
		for _, n := range seg.Samples {
			if n <= 0 || n > 5760 {
				t.Fatalf("packet of %d samples", n)
			}
		}
	})
}
