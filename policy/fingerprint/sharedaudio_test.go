package fingerprint

import (
	"fmt"
	"testing"

	"github.com/earshot/earshot/internal/speech/speechtest"
)

// holdMusic renders 40 s of synthetic hold music with sox: a pad of
// three-note chords changing every 2 s under a legato melody of quarter-
// second triangle notes, the kind of loop a waiting room plays.
func holdMusic(s *speechtest.Studio) string {
	chords := [][3]float64{{220, 277, 330}, {247, 311, 370}, {196, 247, 294}, {175, 220, 262}}
	melody := []float64{440, 494, 554, 587, 659, 587, 554, 494}
	var parts []string
	for i := range 20 {
		c := chords[i%len(chords)]
		pad := s.Path(fmt.Sprintf("pad%d.wav", i))
		s.Run(s.Tools().Sox, "-n", "-r", "48000", "-b", "16", pad, "synth", "2",
			"sine", fmt.Sprint(c[0]), "sine", fmt.Sprint(c[1]), "sine", fmt.Sprint(c[2]), "remix", "-", "gain", "-n", "-12")
		var notes []string
		for j := range 8 {
			n := s.Path(fmt.Sprintf("note%d-%d.wav", i, j))
			s.Run(s.Tools().Sox, "-n", "-r", "48000", "-b", "16", n, "synth", "0.25", "triangle", fmt.Sprint(melody[(i+j)%len(melody)]*(1+float64(i%3)/8)), "gain", "-n", "-14")
			notes = append(notes, n)
		}
		mel := s.Concat(fmt.Sprintf("mel%d", i), notes...)
		bar := s.Path(fmt.Sprintf("bar%d.wav", i))
		s.Run(s.Tools().Sox, "-m", pad, mel, bar)
		parts = append(parts, bar)
	}
	return s.Concat("hold-music", parts...)
}

// TestSharedAudio plays the same audio in two rooms. Hold music matches
// but is shared audio (low severity), not a leak; shared silence gives no
// landmarks at all, so nothing to match.
func TestSharedAudio(t *testing.T) {
	s := speechtest.New(t)
	music := holdMusic(s)
	silence := s.Path("silence.wav")
	s.Run(s.Tools().Sox, "-n", "-r", "48000", "-c", "1", "-b", "16", silence, "trim", "0", "60")
	quiet := s.Path("quiet.wav")
	s.Run(s.Tools().Sox, "-R", "-n", "-r", "48000", "-c", "1", "-b", "16", quiet, "synth", "60", "pinknoise", "gain", "-n", "-65")
	cases := []struct {
		name      string
		wav       string
		wantMatch bool
	}{
		{"hold music", music, true},
		{"digital silence", silence, false},
		{"room tone at -65 dBFS", quiet, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := s.In(t)
			idx, err := NewIndex(IndexConfig{})
			if err != nil {
				t.Fatal(err)
			}
			cfg := DefaultMatcherConfig()
			a := s.Opus(c.wav, 32)
			b := s.Opus(s.Sox(c.wav, "b-"+c.name, "gain", "-6"), 24)
			if pa, _ := fingerprintAll(a); !c.wantMatch && len(pa) != 0 {
				t.Errorf("%d landmarks, want none", len(pa))
			}
			stream(t, cfg, idx, TrackInfo{Track: "a", Room: "room-a", Private: true, StartMS: 0}, a, true)
			ms := stream(t, cfg, idx, TrackInfo{Track: "b", Room: "room-b", StartMS: 30_000}, b, true)
			if !c.wantMatch {
				if len(ms) != 0 {
					t.Errorf("%d matches, want none: %+v", len(ms), ms)
				}
				return
			}
			if len(ms) != 1 {
				t.Fatalf("%d matches, want 1", len(ms))
			}
			m := ms[0]
			cat, sev := Classify(m)
			t.Logf("%d s over %d ms, %d hits, confidence %.3f, speech %v → %s/%s", m.Seconds, m.DurationMS(), m.Hits, m.Confidence, m.Speech, cat, sev)
			if m.Speech || cat != CategorySharedAudio || sev != "low" {
				t.Errorf("hold music from a private room: speech %v, %s/%s; want shared audio, low", m.Speech, cat, sev)
			}
			// Held notes make peaks only where notes change, and the
			// chord loop repeats every 8 s, which splits hits across
			// offsets: the best single offset covers part of the 40 s. The
			// match must still stand on its own (the matcher's own
			// minimum), within the music's span in both rooms.
			if m.Seconds < cfg.MinSeconds || m.DurationMS() > 41_000 {
				t.Errorf("matched %d s over %d ms of 40 s", m.Seconds, m.DurationMS())
			}
		})
	}
}
