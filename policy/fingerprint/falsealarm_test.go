package fingerprint

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/earshot/earshot/internal/speech"
	"github.com/earshot/earshot/internal/speech/speechtest"
)

// sameVoiceTexts draws two texts of n words each from the word list with
// fixed seeds, redrawing any word of the second that would complete a
// word 4-gram of the first: the rooms share words and short phrases, as
// real rooms do, but never four words in a row.
func sameVoiceTexts(words []string, n int) (a, b string, shared3 int) {
	r := rand.New(rand.NewPCG(20, 4))
	draw := func(avoid map[[4]string]bool, seen3 map[[3]string]bool) ([]string, int) {
		out := make([]string, 0, n)
		n3 := 0
		for len(out) < n {
			w := words[r.IntN(len(words))]
			if k := len(out); k >= 3 {
				g := [4]string{out[k-3], out[k-2], out[k-1], w}
				if avoid[g] {
					continue
				}
				if seen3[[3]string{out[k-2], out[k-1], w}] {
					n3++
				}
			}
			out = append(out, w)
		}
		return out, n3
	}
	wa, _ := draw(nil, nil)
	grams := map[[4]string]bool{}
	tri := map[[3]string]bool{}
	for i := 3; i < len(wa); i++ {
		grams[[4]string{wa[i-3], wa[i-2], wa[i-1], wa[i]}] = true
		tri[[3]string{wa[i-2], wa[i-1], wa[i]}] = true
	}
	wb, n3 := draw(grams, tri)
	return speechtest.Sentences(wa, r), speechtest.Sentences(wb, r), n3
}

// voicePipe speaks text with espeak-ng's en-us voice and returns a reader
// of 16 kHz mono signed 16-bit samples (sox resamples), streamed, so two
// hours need no disk.
func voicePipe(t testing.TB, s *speechtest.Studio, ctx context.Context, name, text string) io.Reader {
	t.Helper()
	return voicePipeAs(t, s, ctx, name, text, "-v", speech.DefaultVoice)
}

// voicePipeAs is voicePipe with espeak-ng's voice options (voice, speed,
// pitch) given.
func voicePipeAs(t testing.TB, s *speechtest.Studio, ctx context.Context, name, text string, voice ...string) io.Reader {
	t.Helper()
	txt := s.Path(name + ".txt")
	if err := os.WriteFile(txt, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	es := exec.CommandContext(ctx, s.Tools().EspeakNG, append(voice, "-f", txt, "--stdout")...)
	sx := exec.CommandContext(ctx, s.Tools().Sox, "-R", "-t", "wav", "-", "-t", "raw", "-r", "16000", "-c", "1", "-e", "signed", "-b", "16", "-")
	pipe, err := es.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	sx.Stdin = pipe
	out, err := sx.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := es.Start(); err != nil {
		t.Fatal(err)
	}
	if err := sx.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = es.Wait(); _ = sx.Wait() })
	return bufio.NewReaderSize(out, 1<<16)
}

// TestSameVoiceNoFalseAlarm is the hardest case for a fingerprint: two
// rooms where one synthetic voice (espeak-ng says a word the same way
// every time) speaks different text for over an hour each, sharing words and
// 3-grams but no 4-gram. Both tracks are indexed and matched as they
// arrive, as live, with an index holding all of both, and the shipped
// thresholds. Nothing may match.
func TestSameVoiceNoFalseAlarm(t *testing.T) {
	// Two rooms of over an hour each: more than two hours of audio for the
	// pair. Matching grows with the index, so the benchmark's two hours
	// per room cost four times as much (too much for make test's -race
	// build on two cores).
	r := measureSameVoice(t, 10300) // espeak-ng's en-us says about 162 words a minute
	for i, d := range r.rooms {
		if d < time.Hour {
			t.Fatalf("room %d got %v of speech, want at least 1 h", i, d)
		}
	}
	// Fed offline, unpaced: how much faster than real time is a speed
	// figure (fingerprint_tracks_per_core), not a test assertion.
	t.Logf("matched %v of audio per room in %v (%.1fx real time, %v CPU)", r.rooms[0], r.wall, r.rooms[0].Seconds()/r.wall.Seconds(), r.cpu)
	for _, m := range r.matches {
		t.Errorf("false alarm: %s at %v matched %s at %v: %d s, %d hits, confidence %.3f, speed %.2f",
			m.Query.Room, m.QueryFrames, m.Ref.Room, m.RefFrames, m.Seconds, m.Hits, m.Confidence, m.Speed)
	}
}

type sameVoiceRun struct {
	rooms     [2]time.Duration
	wall, cpu time.Duration
	matches   []Match
}

// measureSameVoice speaks words words per room and matches the rooms both
// ways as the live stage would.
func measureSameVoice(t testing.TB, words int) sameVoiceRun {
	s := speechtest.New(t)
	ta, tb, n3 := sameVoiceTexts(s.Words(), words)
	t.Logf("room B shares %d word 3-grams with room A, no 4-gram", n3)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ra, rb := voicePipe(t, s, ctx, "same-a", ta), voicePipe(t, s, ctx, "same-b", tb)

	idx, err := NewIndex(IndexConfig{Window: 3 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultMatcherConfig()
	type side struct {
		r      io.Reader
		id     uint32
		m      *Matcher
		e      *Extractor
		n      int64 // samples
		eof    bool
		pairs  []Pair
		levels []int8
	}
	var sides []*side
	for _, x := range []struct {
		r    io.Reader
		room string
	}{{ra, "room-a"}, {rb, "room-b"}} {
		id := idx.AddTrack(TrackInfo{Track: x.room + "-track", Room: x.room, Speaker: "sp-" + x.room, StartMS: 1_000_000})
		m, err := NewMatcher(cfg, idx, id)
		if err != nil {
			t.Fatal(err)
		}
		sides = append(sides, &side{r: x.r, id: id, m: m, e: NewExtractor()})
	}
	const chunk = SampleRate * 240 / 1000
	raw := make([]byte, 2*chunk)
	buf := make([]float32, chunk)
	var matches []Match
	start := time.Now()
	cpu0 := cpuTime()
	for !sides[0].eof || !sides[1].eof {
		for _, sd := range sides {
			if sd.eof {
				continue
			}
			n, err := io.ReadFull(sd.r, raw)
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				sd.eof = true
			} else if err != nil {
				t.Fatal(err)
			}
			k := n / 2
			for i := range k {
				buf[i] = float32(int16(binary.LittleEndian.Uint16(raw[2*i:]))) / 32768
			}
			sd.n += int64(k)
			sd.pairs, sd.levels = sd.e.Push(buf[:k], sd.pairs[:0], sd.levels[:0])
			if sd.eof {
				sd.pairs = sd.e.Flush(sd.pairs)
			}
			idx.AddLevels(sd.id, sd.levels)
			matches = append(matches, sd.m.Push(sd.pairs)...)
			if sd.eof {
				matches = append(matches, sd.m.Flush()...)
			}
			if err := idx.Add(sd.id, sd.pairs); err != nil {
				t.Fatal(err)
			}
		}
	}
	wall, cpu := time.Since(start), cpuTime()-cpu0
	audio := time.Duration(sides[0].n+sides[1].n) * time.Second / SampleRate
	t.Logf("%v of audio in %v wall, %v CPU (this process and espeak-ng/sox children not counted): %.0fx real time; index %d landmarks, %.1f MB",
		audio.Round(time.Second), wall.Round(time.Millisecond), cpu.Round(time.Millisecond), audio.Seconds()/wall.Seconds(), idx.Len(), float64(idx.Bytes())/1e6)
	r := sameVoiceRun{wall: wall, cpu: cpu, matches: matches}
	for i, sd := range sides {
		r.rooms[i] = time.Duration(sd.n) * time.Second / SampleRate
	}
	return r
}
