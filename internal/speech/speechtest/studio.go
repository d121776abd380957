// Package speechtest is the test kit that renders speech for the
// fingerprint and rebroadcast tests: text drawn from a fixed word list
// with a seed, spoken by espeak-ng, degraded with sox (gain, band-pass,
// reverb, speed, pitch, noise at a given SNR) and sent through Opus, in a
// temporary folder per test. Tools come from the test bed (testbed/speech.sh).
package speechtest

import (
	"bufio"
	"context"
	_ "embed"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/earshot/earshot/internal/speech"
	"github.com/earshot/earshot/internal/testbed"
)

// words is the list texts are drawn from: common concrete English words,
// so that any two texts share words and short phrases as real rooms do.
//
//go:embed words.txt
var words string

// Studio renders test audio into one test's temporary folder.
type Studio struct {
	t     testing.TB
	tools speech.Tools
	dir   string
	words []string
}

// New returns a studio for t; without the speech tools the test is
// reported unavailable (a failure under the test bed).
func New(t testing.TB) *Studio {
	t.Helper()
	tools, err := speech.LookupTools()
	if err != nil {
		testbed.Unavailable(t, err.Error())
	}
	return &Studio{t: t, tools: tools, dir: t.TempDir(), words: strings.Fields(words)}
}

// In returns the studio for subtest t (failures end the subtest); it
// shares the folder.
func (s *Studio) In(t testing.TB) *Studio {
	c := *s
	c.t = t
	return &c
}

// Tools are the speech tools' paths, for callers that stream.
func (s *Studio) Tools() speech.Tools { return s.tools }

// Words is the word list texts are drawn from.
func (s *Studio) Words() []string { return s.words }

// Path is name inside the studio's folder.
func (s *Studio) Path(name string) string { return filepath.Join(s.dir, name) }

// Run runs a tool and fails the test with its output when it fails.
func (s *Studio) Run(bin string, args ...string) {
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

// Text is n words from the word list drawn with seed, in sentences of 6
// to 14 words (espeak-ng pauses at full stops, as people do).
func (s *Studio) Text(seed uint64, n int) string {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	ws := make([]string, n)
	for i := range ws {
		ws[i] = s.words[r.IntN(len(s.words))]
	}
	return Sentences(ws, r)
}

// Sentences joins words into sentences of 6 to 14 words drawn from r.
func Sentences(ws []string, r *rand.Rand) string {
	var b strings.Builder
	left := 0
	for i, w := range ws {
		if left == 0 {
			if i > 0 {
				b.WriteString(". ")
			}
			left = 6 + r.IntN(9)
		} else {
			b.WriteByte(' ')
		}
		b.WriteString(w)
		left--
	}
	b.WriteString(".")
	return b.String()
}

// Say renders text with espeak-ng's en-us voice to a 48 kHz WAV (the rate
// a WebRTC speaker sends) and returns its path.
func (s *Studio) Say(text, name string) string {
	s.t.Helper()
	txt, raw, out := s.Path(name+".txt"), s.Path(name+".espeak.wav"), s.Path(name+".wav")
	if err := os.WriteFile(txt, []byte(text), 0o644); err != nil {
		s.t.Fatal(err)
	}
	s.Run(s.tools.EspeakNG, "-v", speech.DefaultVoice, "-f", txt, "-w", raw)
	s.Run(s.tools.Sox, raw, "-r", "48000", out)
	return out
}

// Opus encodes a WAV at kbps (as a speaker's browser would) and decodes
// it to 16 kHz mono float samples, as the pipeline's libopus decoder
// gives them.
func (s *Studio) Opus(wav string, kbps int) []float32 {
	s.t.Helper()
	ogg, dec := wav+".ogg", wav+".dec.wav"
	s.Run(s.tools.Opusenc, "--quiet", "--bitrate", strconv.Itoa(kbps), "--framesize", "20", "--serial", "1", wav, ogg)
	s.Run(s.tools.Opusdec, "--quiet", "--rate", "48000", ogg, dec)
	return s.Samples(dec, 16000)
}

// Samples converts a WAV to mono float samples at rate, after any sox
// effects.
func (s *Studio) Samples(wav string, rate int, effects ...string) []float32 {
	s.t.Helper()
	f, err := os.CreateTemp(s.dir, filepath.Base(wav)+".*.f32")
	if err != nil {
		s.t.Fatal(err)
	}
	raw := f.Name()
	_ = f.Close()
	s.Run(s.tools.Sox, append([]string{wav, "-r", strconv.Itoa(rate), "-c", "1", "-e", "float", "-b", "32", "-t", "raw", raw}, effects...)...)
	return ReadF32(s.t, raw)
}

// Sox applies effects to a WAV and returns the new 48 kHz WAV.
func (s *Studio) Sox(in, name string, effects ...string) string {
	s.t.Helper()
	out := s.Path(name + ".wav")
	s.Run(s.tools.Sox, append([]string{in, "-r", "48000", out}, effects...)...)
	return out
}

// Concat joins WAVs back to back.
func (s *Studio) Concat(name string, wavs ...string) string {
	s.t.Helper()
	out := s.Path(name + ".wav")
	s.Run(s.tools.Sox, append(append([]string{}, wavs...), out)...)
	return out
}

// AddNoise mixes pink noise into a WAV at snrDB below the WAV's RMS.
func (s *Studio) AddNoise(in, name string, snrDB float64) string {
	s.t.Helper()
	sig := s.Samples(in, 16000)
	noise := s.Path(name + ".noise.wav")
	dur := float64(len(sig)) / 16000
	s.Run(s.tools.Sox, "-n", "-r", "48000", "-c", "1", "-b", "16", noise, "synth", fmt.Sprintf("%.3f", dur+0.1), "pinknoise", "vol", "0.25")
	nz := s.Samples(noise, 16000)
	k := RMS(sig) / RMS(nz) * math.Pow(10, -snrDB/20)
	out := s.Path(name + ".wav")
	s.Run(s.tools.Sox, "-m", "-v", "1", in, "-v", strconv.FormatFloat(k, 'f', 6, 64), noise, out, "trim", "0", fmt.Sprintf("%.3f", dur))
	return out
}

// RMS is the root mean square of x.
func RMS(x []float32) float64 {
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return math.Sqrt(s / float64(max(len(x), 1)))
}

// ReadF32 reads a file of little-endian float32 samples.
func ReadF32(t testing.TB, path string) []float32 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float32, st.Size()/4)
	if err := binary.Read(bufio.NewReader(f), binary.LittleEndian, out); err != nil {
		t.Fatal(err)
	}
	return out
}
