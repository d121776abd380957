package transcribe

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func newSegmenter(t testing.TB, cfg SegmenterConfig) *Segmenter {
	t.Helper()
	s, err := NewSegmenter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// segment pushes 16 kHz audio starting at timeline sample start in pieces
// of piece samples, then flushes.
func segment(t testing.TB, cfg SegmenterConfig, start int64, x []float32, piece int) []Utterance {
	t.Helper()
	s := newSegmenter(t, cfg)
	var out []Utterance
	for i := 0; i < len(x); i += piece {
		j := min(i+piece, len(x))
		out = append(out, s.Push(start+int64(i)*Ratio, x[i:j])...)
	}
	return append(out, s.Flush()...)
}

func describe(us []Utterance) string {
	var b strings.Builder
	for _, u := range us {
		sp := u.Span()
		fmt.Fprintf(&b, "[%.2fs–%.2fs own %.2f–%.2f speech %d] ", float64(sp.First)/48000, float64(sp.Last+1)/48000,
			float64(u.Own.First)/48000, float64(u.Own.Last+1)/48000, len(u.Speech))
	}
	return b.String()
}

func sec(s float64) int64 { return int64(s * 48000) }

func TestSegmenterFindsSpeech(t *testing.T) {
	fox := decodeAll(t, chunks(0, foxPackets(t), 50)).Samples // 1 s silence, ~2.9 s speech, 1 s silence
	for _, tc := range []struct {
		name string
		x    []float32
	}{
		{"espeak sentence", fox},
		{"same at -20 dB", scale(fox, -20)},
		{"same at -30 dB", scale(fox, -30)},
		{"in white noise at 15 dB SNR", add(fox, noise("white", 16000, 5*time.Second, 0.01, 3))},
		{"in pink noise at 12 dB SNR", add(fox, noise("pink", 16000, 5*time.Second, 0.015, 4))},
		{"synthetic voice", concat(silence(16000, time.Second), voiced(16000, 3*time.Second, 0.5), silence(16000, time.Second))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			us := segment(t, SegmenterConfig{}, 0, tc.x, 16000)
			if len(us) != 1 {
				t.Fatalf("%d utterances, want 1: %s", len(us), describe(us))
			}
			u := us[0]
			sp := u.Span()
			// Speech runs from ~1.0 s to ~3.6 s (its tail fading under the
			// level gate when quiet); pre-roll and post-roll
			// add 0.2 s each.
			if sp.First < sec(0.6) || sp.First > sec(1.0) || sp.Last < sec(3.65) || sp.Last > sec(4.4) {
				t.Fatalf("utterance %s does not frame the speech (1.0–3.6 s)", describe(us))
			}
			if u.Own != sp || len(u.Speech) == 0 {
				t.Fatalf("own %+v, speech %v", u.Own, u.Speech)
			}
			if len(u.Samples) != int(sp.Last-sp.First+1)/Ratio || u.Start != sp.First {
				t.Fatal("samples and span disagree")
			}
		})
	}
}

func TestSegmenterIgnoresSilenceAndNoise(t *testing.T) {
	for _, tc := range []struct {
		name string
		x    []float32
	}{
		{"digital silence", silence(16000, 5*time.Second)},
		{"white noise -40 dBFS", noise("white", 16000, 5*time.Second, 0.01, 1)},
		{"white noise -20 dBFS", noise("white", 16000, 5*time.Second, 0.1, 2)},
		{"pink noise -30 dBFS", noise("pink", 16000, 5*time.Second, 0.03, 3)},
		{"brown noise -30 dBFS", noise("brown", 16000, 5*time.Second, 0.03, 4)},
		{"noise starting after silence", concat(silence(16000, 2*time.Second), noise("white", 16000, 3*time.Second, 0.05, 5))},
		{"noise bursts", concat(noise("pink", 16000, time.Second, 0.1, 6), silence(16000, time.Second),
			noise("white", 16000, 500*time.Millisecond, 0.2, 7), silence(16000, time.Second), noise("brown", 16000, time.Second, 0.2, 8))},
		{"clicks", clicks(16000, 5*time.Second)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if us := segment(t, SegmenterConfig{}, 0, tc.x, 16000); len(us) != 0 {
				t.Fatalf("%d utterances from no speech: %s", len(us), describe(us))
			}
		})
	}
}

// clicks is a knock every 250 ms: loud, short, not voiced.
func clicks(rate int, d time.Duration) []float32 {
	x := silence(rate, d)
	for at := 0; at+40 < len(x); at += rate / 4 {
		for i := range 40 {
			x[at+i] = 0.9 * float32(1-i%2*2)
		}
	}
	return x
}

func TestSegmenterCutsAtPauses(t *testing.T) {
	v := func() []float32 { return voiced(16000, 1500*time.Millisecond, 0.5) }
	for _, tc := range []struct {
		pause time.Duration
		want  int
	}{
		{200 * time.Millisecond, 1},
		{400 * time.Millisecond, 1},
		{700 * time.Millisecond, 2},
		{2 * time.Second, 2},
	} {
		x := concat(silence(16000, time.Second), v(), silence(16000, tc.pause), v(), silence(16000, time.Second))
		us := segment(t, SegmenterConfig{}, 0, x, 16000)
		if len(us) != tc.want {
			t.Errorf("pause %v: %d utterances, want %d: %s", tc.pause, len(us), tc.want, describe(us))
			continue
		}
		if len(us) == 2 && us[0].Span().Overlaps(us[1].Span()) {
			t.Errorf("pause %v: utterances overlap: %s", tc.pause, describe(us))
		}
	}
}

func TestSegmenterMaxLength(t *testing.T) {
	x := concat(silence(16000, time.Second), voiced(16000, 20*time.Second, 0.5), silence(16000, time.Second))
	us := segment(t, SegmenterConfig{}, 0, x, 16000)
	if len(us) < 3 {
		t.Fatalf("20 s of speech made %d utterances: %s", len(us), describe(us))
	}
	for i, u := range us {
		if u.Duration() > 8*time.Second {
			t.Errorf("utterance %d lasts %v, over MaxLength", i, u.Duration())
		}
		if i == 0 {
			continue
		}
		prev := us[i-1]
		// Consecutive pieces overlap by 0.5 s, and own adjoining halves.
		ov := prev.Span().Last - u.Span().First + 1
		if ov != sec(0.5) {
			t.Errorf("utterances %d and %d overlap by %d samples, want %d", i-1, i, ov, sec(0.5))
		}
		if prev.Own.Last+1 != u.Own.First || u.Own.First != u.Start+sec(0.25) {
			t.Errorf("ownership does not split the overlap in the middle: %s", describe(us[i-1:i+1]))
		}
		// DedupeWords splits the same way.
		mid := []TranscriptWord{{Word: "a", FirstSample: u.Own.First - 10, LastSample: u.Own.First + 9}}
		if got := DedupeWords(mid, prev.Span(), mid, u.Span()); len(got) != 1 {
			t.Errorf("DedupeWords kept a boundary word %d times", len(got))
		}
	}
	first, last := us[0].Own.First, us[len(us)-1].Own.Last
	if first != us[0].Start || last != us[len(us)-1].Span().Last {
		t.Errorf("outer ownership %d–%d is not the whole speech", first, last)
	}
}

func TestSegmenterIgnoresHowAudioIsSplit(t *testing.T) {
	fox := decodeAll(t, chunks(0, foxPackets(t), 50)).Samples
	x := concat(fox, voiced(16000, 11*time.Second, 0.3), silence(16000, 700*time.Millisecond), fox)
	want := segment(t, SegmenterConfig{}, 48000, x, 16000)
	if len(want) < 3 {
		t.Fatalf("only %d utterances: %s", len(want), describe(want))
	}
	for _, piece := range []int{37, 320, 4567, len(x)} {
		got := segment(t, SegmenterConfig{}, 48000, x, piece)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("pieces of %d: %s\nwant %s", piece, describe(got), describe(want))
		}
	}
}

func TestSegmenterPreRollAndFlush(t *testing.T) {
	s := newSegmenter(t, SegmenterConfig{})
	x := concat(silence(16000, time.Second), voiced(16000, 2*time.Second, 0.5))
	if us := s.Push(0, x); len(us) != 0 {
		t.Fatalf("utterance before the speech ended: %s", describe(us))
	}
	if p, ok := s.Pending(); !ok || p > sec(0.8) {
		t.Fatalf("Pending = %d, %v: want the utterance's start (≤ 0.8 s)", p, ok)
	}
	us := s.Flush()
	if len(us) != 1 {
		t.Fatalf("Flush returned %d utterances", len(us))
	}
	if got := us[0].Start; got != sec(0.8) {
		t.Fatalf("utterance starts at %.3f s, want 0.8 s (onset at 1 s minus 200 ms pre-roll)", float64(got)/48000)
	}
	if got := us[0].Span().Last + 1; got != sec(3) {
		t.Fatalf("flushed utterance ends at %.3f s, want 3 s (the end of the audio)", float64(got)/48000)
	}
	if _, ok := s.Pending(); ok {
		t.Fatal("Pending after Flush")
	}
	// After Flush the segmenter serves a new track.
	if us := append(s.Push(0, x), s.Flush()...); len(us) != 1 {
		t.Fatalf("after Flush: %d utterances", len(us))
	}
}

func TestSegmenterDiscontinuity(t *testing.T) {
	s := newSegmenter(t, SegmenterConfig{})
	v := voiced(16000, 2*time.Second, 0.5)
	var us []Utterance
	us = append(us, s.Push(0, concat(silence(16000, time.Second), v))...)
	// The audio jumps 30 s ahead (a gap the decoder did not fill): the
	// utterance in progress ends at the gap.
	us = append(us, s.Push(sec(33), v)...)
	if len(us) != 1 || us[0].Span().Last != sec(3)-1 {
		t.Fatalf("at the discontinuity: %s", describe(us))
	}
	// Audio that was already pushed is ignored.
	us = append(us, s.Push(sec(33), v[:8000])...)
	us = append(us, s.Flush()...)
	if len(us) != 2 || us[1].Start < sec(33) || us[1].Span().Last != sec(35)-1 {
		t.Fatalf("after the discontinuity: %s", describe(us))
	}
}

func TestSegmenterConfigErrors(t *testing.T) {
	for _, cfg := range []SegmenterConfig{
		{MaxLength: time.Second},
		{Overlap: 3 * time.Second},
		{MinPause: 50 * time.Millisecond},
		{PreRoll: -time.Second},
		{Onset: time.Second},
		{Voicing: 1.5},
	} {
		if _, err := NewSegmenter(cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}

// FuzzSegmenter pushes audio at arbitrary positions (overlaps, gaps,
// repeats): the segmenter must never panic, and every utterance must be
// well formed.
func FuzzSegmenter(f *testing.F) {
	f.Add([]byte{0, 200, 9, 0, 200, 9, 10, 100, 3, 255, 255, 1})
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9})
	voice := voiced(16000, 10*time.Second, 0.5)
	f.Fuzz(func(t *testing.T, ops []byte) {
		s, err := NewSegmenter(SegmenterConfig{MaxLength: 2 * time.Second, Overlap: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		var pos int64
		var out []Utterance
		for i := 0; i+2 < len(ops); i += 3 {
			// Each op: a jump (-128..127 × 20 ms), a length (× 10 ms) and
			// a source (voice or silence).
			pos = max(0, pos+int64(int8(ops[i]))*320)
			n := min(int(ops[i+1])*160, len(voice))
			x := voice[:n]
			if ops[i+2]%2 == 0 {
				x = make([]float32, n)
			}
			out = append(out, s.Push(pos*Ratio, x)...)
			pos += int64(n)
		}
		out = append(out, s.Flush()...)
		for _, u := range out {
			sp := u.Span()
			if len(u.Samples) == 0 || u.Start%Ratio != 0 || u.Duration() > 2*time.Second {
				t.Fatalf("bad utterance: start %d, %d samples", u.Start, len(u.Samples))
			}
			if u.Own.First < sp.First || u.Own.Last > sp.Last || u.Own.Last < u.Own.First {
				t.Fatalf("own %+v outside %+v", u.Own, sp)
			}
			if len(u.Speech) == 0 {
				t.Fatal("utterance without speech")
			}
			for _, x := range u.Speech {
				if x.First < sp.First || x.Last > sp.Last {
					t.Fatalf("speech %+v outside %+v", x, sp)
				}
			}
		}
	})
}
