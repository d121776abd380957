//go:build whisper

package whispercpp

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/earshot/earshot/internal/speech"
	"github.com/earshot/earshot/internal/wer"
	"github.com/earshot/earshot/transcribe"
	"github.com/earshot/earshot/transcribe/whispercpp/internal/ggmlmodel"
)

// TestRealWeights transcribes the benchmark's lines with whisper.cpp on the
// converted tiny.en (EARSHOT_WHISPER_MODEL) and compares with what
// faster-whisper made of the same audio with the fixture's decoding
// (EARSHOT_WHISPER_REF, see reference_test.go): WER within 1 point over all
// lines, the same text tokens on at least 90 % of lines (a mis-mapped or
// transposed tensor cannot pass this); each line's last word ends within
// 0.2 s of faster-whisper's; silence and noise give no text; whisper.cpp
// loads every tensor of the file.
//
// The last-word bound holds through the engine's correction from the audio
// (lastword.go): libwhisper's DTW alone puts 5 of the 20 last words 0.24 to
// 0.38 s from faster-whisper's (transcribe/README.md, "Last-word times").
func TestRealWeights(t *testing.T) {
	model, refDir := os.Getenv("EARSHOT_WHISPER_MODEL"), os.Getenv("EARSHOT_WHISPER_REF")
	if model == "" || refDir == "" {
		t.Skip("EARSHOT_WHISPER_MODEL (a converted tiny.en) and EARSHOT_WHISPER_REF (faster-whisper's transcripts of the same audio) are not both set; TestWhisperBuildInSidRoot sets them through testbed/whisper-sid.sh smoke")
	}
	ref, err := readReference(refDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("decoding: %s", ref.Decoding)

	// whisper.cpp fails a load on an unknown tensor and on a missing one,
	// except that a file with no tensors loads as an "empty model": the
	// file must hold them all, and whisper.cpp must not say that.
	mark := testLogs.len()
	e, err := New(Config{ModelPath: model, Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if logged := testLogs.since(mark); slices.ContainsFunc(logged, func(m string) bool { return strings.Contains(m, "no tensors loaded") }) {
		t.Errorf("whisper.cpp loaded no tensors from %s", model)
	}
	if n := tensorsIn(t, model); n != 7+15*4+4+24*4 {
		t.Errorf("%s holds %d tensors; whisper.cpp's tiny.en has %d", model, n, 7+15*4+4+24*4)
	}

	var (
		refs, cppHyps, fwHyps []string
		sameTokens, lines     int
		endsClose             int
		cppTime, fwTime       float64
		audio                 float64
	)
	for _, u := range ref.Utterances {
		l := transcribeLine(t, e, refDir, u)
		cppTime += l.elapsed
		if u.Script == "" {
			if l.text != "" {
				t.Errorf("%s: whisper.cpp heard %q (faster-whisper: %q)", u.Name, l.text, u.Text)
			}
			continue
		}
		lines++
		audio += l.seconds
		refs, cppHyps, fwHyps = append(refs, u.Script), append(cppHyps, l.text), append(fwHyps, u.Text)
		same := slices.Equal(l.tokens, u.Tokens)
		if same {
			sameTokens++
		}
		if math.Abs(l.lastEnd-u.LastWordEnd) <= lastWordSlack {
			endsClose++
		} else {
			t.Errorf("%s: the last word ends at %.2f s, faster-whisper's at %.2f s: more than %.1f s apart", u.Name, l.lastEnd, u.LastWordEnd, lastWordSlack)
		}
		fwTime += u.FixtureSeconds
		t.Logf("realweights: %s same tokens %v, last word end %.2f s vs %.2f s\n  whisper.cpp    %q\n  faster-whisper %q (fixture over HTTP: %q)", u.Name, same, l.lastEnd, u.LastWordEnd, l.text, u.Text, u.FixtureText)
	}
	if b, err := json.Marshal(engineTimes{WhisperCppSeconds: cppTime, AudioSeconds: audio}); err != nil {
		t.Fatal(err)
	} else if err := os.WriteFile(filepath.Join(refDir, timesFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	cppWER := wer.Measure(strings.Join(refs, " "), strings.Join(cppHyps, " ")).WER() * 100
	fwWER := wer.Measure(strings.Join(refs, " "), strings.Join(fwHyps, " ")).WER() * 100
	t.Logf("realweights: %d lines (window %s): WER whisper.cpp %.2f %%, faster-whisper %.2f %%; same tokens on %d; last word end within %.1f s on %d; engine time whisper.cpp %.2f s, faster-whisper fixture (HTTP, int8) %.2f s",
		lines, e.cfg.Window, cppWER, fwWER, sameTokens, lastWordSlack, endsClose, cppTime, fwTime)
	if lines < 20 {
		t.Errorf("%d lines in the reference, want the benchmark's 20", lines)
	}
	if math.Abs(cppWER-fwWER) > 1 {
		t.Errorf("WER %.2f %% is more than 1 point from faster-whisper's %.2f %%", cppWER, fwWER)
	}
	if sameTokens*10 < lines*9 {
		t.Errorf("the same tokens as faster-whisper on %d of %d lines, want at least 90 %%", sameTokens, lines)
	}
}

// lastWordSlack is how far whisper.cpp's last word of an utterance may end
// from faster-whisper's, in seconds.
const lastWordSlack = 0.2

// line is whisper.cpp's answer for one reference utterance.
type line struct {
	text    string
	tokens  []int
	lastEnd float64 // the last word's end, s (0 without words)
	seconds float64 // the audio's duration
	elapsed float64 // Transcribe's wall time, s
}

// transcribeLine transcribes the reference utterance u with e.
func transcribeLine(t testing.TB, e *Engine, refDir string, u refUtterance) line {
	t.Helper()
	pcm, err := speech.ReadWAVFile(filepath.Join(refDir, u.WAV))
	if err != nil {
		t.Fatal(err)
	}
	if pcm.Rate != transcribe.AudioRate || pcm.Channels != 1 {
		t.Fatalf("%s: %d Hz × %d, want 16 kHz mono", u.WAV, pcm.Rate, pcm.Channels)
	}
	samples := make([]float32, len(pcm.Samples))
	for i, s := range pcm.Samples {
		samples[i] = float32(s) / 32768
	}
	t0 := time.Now()
	res, err := e.Transcribe(context.Background(), transcribe.Audio{Samples: samples, Language: "en"})
	l := line{elapsed: time.Since(t0).Seconds(), seconds: float64(len(samples)) / transcribe.AudioRate}
	if err != nil {
		t.Fatalf("%s: %v", u.Name, err)
	}
	l.tokens, l.text = e.lastTokens(t), resultText(res)
	if ws := allWords(res); len(ws) > 0 {
		l.lastEnd = ws[len(ws)-1].End
	}
	return l
}

// lastTokens returns the text token ids of the last whisper_full call.
func (e *Engine) lastTokens(t testing.TB) []int {
	t.Helper()
	if err := acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer release()
	var ids []int
	eot := e.wctx.Whisper_token_eot()
	for i := range e.wctx.Whisper_full_n_segments() {
		for j := range e.wctx.Whisper_full_n_tokens(i) {
			if id := e.wctx.Whisper_full_get_token_id(i, j); id < eot {
				ids = append(ids, int(id))
			}
		}
	}
	return ids
}

func resultText(res transcribe.Result) string {
	var parts []string
	for _, s := range res.Segments {
		if s.Text != "" {
			parts = append(parts, s.Text)
		}
	}
	return strings.Join(parts, " ")
}

func allWords(res transcribe.Result) []transcribe.Word {
	var ws []transcribe.Word
	for _, s := range res.Segments {
		ws = append(ws, s.Words...)
	}
	return ws
}

// tensorsIn counts the tensor records of a ggml model file.
func tensorsIn(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, n, err := ggmlmodel.Read(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	ts, err := ggmlmodel.ReadTensors(bytes.NewReader(b[n:]), false)
	if err != nil {
		t.Fatal(err)
	}
	return len(ts)
}
