package testbed_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/earshot/earshot/internal/speech"
	"github.com/earshot/earshot/internal/testbed"
	"github.com/earshot/earshot/internal/wer"
)

// verboseJSON is the part of the OpenAI verbose_json response the test reads.
type verboseJSON struct {
	Language string  `json:"language"`
	Duration float64 `json:"duration"`
	Text     string  `json:"text"`
	Segments []struct {
		ID    int     `json:"id"`
		Start float64 `json:"start"`
		End   float64 `json:"end"`
		Text  string  `json:"text"`
	} `json:"segments"`
	Words []struct {
		Word  string  `json:"word"`
		Start float64 `json:"start"`
		End   float64 `json:"end"`
	} `json:"words"`
}

func transcribe(ctx context.Context, t *testing.T, baseURL, audioPath string) verboseJSON {
	t.Helper()
	audio, err := os.ReadFile(audioPath)
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, err := mw.CreateFormFile("file", filepath.Base(audioPath))
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(audio)
	for _, kv := range [][2]string{
		{"model", "whisper-1"},
		{"response_format", "verbose_json"},
		{"timestamp_granularities[]", "word"},
		{"timestamp_granularities[]", "segment"},
		{"temperature", "0"},
	} {
		if err := mw.WriteField(kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/v1/audio/transcriptions", &body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST to the Whisper fixture: %v", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("Whisper fixture answered %s: %s", resp.Status, raw)
	}
	var v verboseJSON
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("decode verbose_json: %v\n%s", err, raw)
	}
	return v
}

// Must show: the Whisper fixture transcribes a synthesized English sentence
// with WER <= 20 %, with sane segment and word timestamps.
func TestWhisperFixtureTranscribesSynthesizedSpeech(t *testing.T) {
	url := testbed.WhisperURL(t)
	tools, err := speech.ToolsFromEnv(testbed.Require(t, testbed.Speech))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	script := []speech.Item{
		{Kind: speech.KindSpeech, Text: "The meeting starts at ten thirty tomorrow morning in the main hall.", Voice: "en-us"},
		{Kind: speech.KindPause, DurMS: 1500},
		{Kind: speech.KindSpeech, Text: "Please send the report to the team before the end of the week.", Voice: "en-us"},
		{Kind: speech.KindPause, DurMS: 500},
	}
	clip, err := tools.Synthesize(ctx, script, filepath.Join(t.TempDir(), "sentence.ogg"))
	if err != nil {
		t.Fatal(err)
	}
	got := transcribe(ctx, t, url, clip.Path)

	ref := clip.Speech()
	m := wer.Measure(ref, got.Text)
	t.Logf("reference:  %s", wer.Normalize(ref))
	t.Logf("hypothesis: %s", wer.Normalize(got.Text))
	t.Logf("WER %.3f (%d sub, %d del, %d ins over %d words)", m.WER(), m.Substitutions, m.Deletions, m.Insertions, m.RefWords)
	if m.WER() > 0.20 {
		t.Errorf("WER %.3f > 0.20", m.WER())
	}

	if got.Language != "en" {
		t.Errorf("language %q, want en", got.Language)
	}
	dur := float64(clip.DurationMS) / 1000
	if d := got.Duration - dur; d < -0.05 || d > 0.05 {
		t.Errorf("fixture reports %.3f s of audio, the clip has %.3f s", got.Duration, dur)
	}
	// Whisper's timestamps come in 20 ms steps and may overhang a little.
	const slack = 0.5
	if len(got.Segments) == 0 {
		t.Fatal("no segments")
	}
	prevEnd := 0.0
	for i, s := range got.Segments {
		if s.ID != i || s.Start < prevEnd-0.01 || s.End < s.Start || s.End > dur+slack || strings.TrimSpace(s.Text) == "" {
			t.Errorf("segment %d: id %d [%.2f, %.2f] %q: ids from 0, in order, within the %.2f s clip", i, s.ID, s.Start, s.End, s.Text, dur)
		}
		prevEnd = s.End
	}
	if n := len(strings.Fields(got.Text)); len(got.Words) < n/2 || len(got.Words) > 2*n+2 {
		t.Fatalf("%d word timestamps for a %d-word transcript", len(got.Words), n)
	}
	first, last := clip.Cues[0], clip.Cues[2]
	pause := clip.Cues[1]
	prev := 0.0
	for i, w := range got.Words {
		if w.Start < prev-0.01 || w.End < w.Start || w.End > dur+slack {
			t.Errorf("word %d %q [%.2f, %.2f]: out of order or outside the clip", i, w.Word, w.Start, w.End)
		}
		prev = w.Start
		// No word sits in the middle of the long pause.
		mid := (w.Start + w.End) / 2
		if mid > sec(pause.StartMS)+0.4 && mid < sec(pause.EndMS)-0.4 {
			t.Errorf("word %d %q [%.2f, %.2f] lies inside the pause [%.2f, %.2f]", i, w.Word, w.Start, w.End, sec(pause.StartMS), sec(pause.EndMS))
		}
	}
	// The words start near the first line and end near the last.
	w0, wn := got.Words[0], got.Words[len(got.Words)-1]
	if d := w0.Start - sec(first.StartMS); d < -slack || d > slack {
		t.Errorf("first word starts at %.2f s, the first line at %.2f s", w0.Start, sec(first.StartMS))
	}
	if d := wn.End - sec(last.EndMS); d < -slack || d > slack {
		t.Errorf("last word ends at %.2f s, the last line at %.2f s", wn.End, sec(last.EndMS))
	}
	if t.Failed() {
		t.Logf("segments: %s", dump(got.Segments))
		t.Logf("words: %s", dump(got.Words))
		t.Logf("cues: %s", dump(clip.Cues))
	}
}

func sec(ms int64) float64 { return float64(ms) / 1000 }

func dump(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
