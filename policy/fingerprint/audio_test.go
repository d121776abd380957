package fingerprint

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/earshot/earshot/internal/speech"
	"github.com/earshot/earshot/internal/testbed"
)

// studio renders test audio with the test bed's speech tools (espeak-ng,
// sox, opus-tools) in a temporary directory.
type studio struct {
	t     testing.TB
	tools speech.Tools
	dir   string
	words []string
}

func newStudio(t testing.TB) *studio {
	t.Helper()
	tools, err := speech.LookupTools()
	if err != nil {
		testbed.Unavailable(t, err.Error())
	}
	b, err := os.ReadFile("testdata/words.txt")
	if err != nil {
		t.Fatal(err)
	}
	return &studio{t: t, tools: tools, dir: t.TempDir(), words: strings.Fields(string(b))}
}

// in returns the studio for subtest t (failures end the subtest).
func (s *studio) in(t testing.TB) *studio {
	c := *s
	c.t = t
	return &c
}

func (s *studio) path(name string) string { return filepath.Join(s.dir, name) }

func (s *studio) run(bin string, args ...string) {
	s.t.Helper()
	if bin == s.tools.Sox && (len(args) == 0 || args[0] != "-R") {
		// Repeatable mode: sox dithers with fresh random noise on every
		// run otherwise, and the same script must give the same audio.
		args = append([]string{"-R"}, args...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
}

// text is n words from the word list drawn with seed, in sentences of 6
// to 14 words (espeak-ng pauses at full stops, as people do).
func (s *studio) text(seed uint64, n int) string {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	ws := make([]string, n)
	for i := range ws {
		ws[i] = s.words[r.IntN(len(s.words))]
	}
	return sentences(ws, r)
}

// say renders text with espeak-ng's en-us voice to a 48 kHz WAV (the rate
// a WebRTC speaker sends).
func (s *studio) say(text, name string) string {
	s.t.Helper()
	txt, raw, out := s.path(name+".txt"), s.path(name+".espeak.wav"), s.path(name+".wav")
	if err := os.WriteFile(txt, []byte(text), 0o644); err != nil {
		s.t.Fatal(err)
	}
	s.run(s.tools.EspeakNG, "-v", speech.DefaultVoice, "-f", txt, "-w", raw)
	s.run(s.tools.Sox, raw, "-r", "48000", out)
	return out
}

// opus encodes a WAV at kbps (as a speaker's browser would) and decodes
// it to 16 kHz mono float samples, as the pipeline's libopus decoder
// gives them.
func (s *studio) opus(wav string, kbps int) []float32 {
	s.t.Helper()
	ogg, dec, raw := wav+".ogg", wav+".dec.wav", wav+".f32"
	s.run(s.tools.Opusenc, "--quiet", "--bitrate", strconv.Itoa(kbps), "--framesize", "20", "--serial", "1", wav, ogg)
	s.run(s.tools.Opusdec, "--quiet", "--rate", "48000", ogg, dec)
	s.run(s.tools.Sox, dec, "-r", "16000", "-c", "1", "-e", "float", "-b", "32", "-t", "raw", raw)
	return readF32(s.t, raw)
}

// pcm16k converts a WAV to 16 kHz mono float samples without Opus.
func (s *studio) pcm16k(wav string) []float32 {
	s.t.Helper()
	raw := wav + ".plain.f32"
	s.run(s.tools.Sox, wav, "-r", "16000", "-c", "1", "-e", "float", "-b", "32", "-t", "raw", raw)
	return readF32(s.t, raw)
}

// sox applies effects to a WAV and returns the new WAV.
func (s *studio) sox(in, name string, effects ...string) string {
	s.t.Helper()
	out := s.path(name + ".wav")
	s.run(s.tools.Sox, append([]string{in, "-r", "48000", out}, effects...)...)
	return out
}

// concat joins WAVs back to back.
func (s *studio) concat(name string, wavs ...string) string {
	s.t.Helper()
	out := s.path(name + ".wav")
	s.run(s.tools.Sox, append(append([]string{}, wavs...), out)...)
	return out
}

// addNoise mixes pink noise into a WAV at snrDB below the WAV's RMS.
func (s *studio) addNoise(in, name string, snrDB float64) string {
	s.t.Helper()
	sig := s.pcm16k(in)
	noise := s.path(name + ".noise.wav")
	dur := fmt.Sprintf("%.3f", float64(len(sig))/SampleRate+0.1)
	// -R: the same noise every run.
	s.run(s.tools.Sox, "-R", "-n", "-r", "48000", "-c", "1", "-b", "16", noise, "synth", dur, "pinknoise", "vol", "0.25")
	nz := s.pcm16k(noise)
	k := rms(sig) / rms(nz) * math.Pow(10, -snrDB/20)
	out := s.path(name + ".wav")
	s.run(s.tools.Sox, "-m", "-v", "1", in, "-v", strconv.FormatFloat(k, 'f', 6, 64), noise, out, "trim", "0", fmt.Sprintf("%.3f", float64(len(sig))/SampleRate))
	return out
}

func rms(x []float32) float64 {
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return math.Sqrt(s / float64(max(len(x), 1)))
}

func readF32(t testing.TB, path string) []float32 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	out := make([]float32, st.Size()/4)
	if err := binary.Read(bufio.NewReader(f), binary.LittleEndian, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// fingerprintAll runs one track's samples through an extractor in chunks
// of 240 ms (the pipeline's live chunk) and returns pairs and levels.
func fingerprintAll(x []float32) ([]Pair, []int8) {
	return fingerprintIn(x, SampleRate*240/1000)
}

// fingerprintIn is fingerprintAll with chunks of the given length.
func fingerprintIn(x []float32, chunk int) ([]Pair, []int8) {
	e := NewExtractor()
	var pairs []Pair
	var levels []int8
	for i := 0; i < len(x); i += chunk {
		pairs, levels = e.Push(x[i:min(i+chunk, len(x))], pairs, levels)
	}
	return e.Flush(pairs), levels
}

// stream feeds one track through an extractor and matcher in 240 ms
// chunks, indexing its pairs as it goes when index is set, as the live
// stage does, and returns every match the matcher holds at the end.
func stream(t testing.TB, cfg MatcherConfig, idx *Index, info TrackInfo, x []float32, index bool) []Match {
	t.Helper()
	id := idx.AddTrack(info)
	m, err := NewMatcher(cfg, idx, id)
	if err != nil {
		t.Fatal(err)
	}
	e := NewExtractor()
	const chunk = SampleRate * 240 / 1000
	var pairs []Pair
	var levels []int8
	feed := func() {
		idx.AddLevels(id, levels)
		m.Push(pairs)
		if index {
			if err := idx.Add(id, pairs); err != nil {
				t.Fatal(err)
			}
		}
		pairs, levels = pairs[:0], levels[:0]
	}
	for i := 0; i < len(x); i += chunk {
		pairs, levels = e.Push(x[i:min(i+chunk, len(x))], pairs, levels)
		feed()
	}
	pairs = e.Flush(pairs)
	feed()
	m.Flush()
	return m.Matches()
}

// cpuTime is this process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
