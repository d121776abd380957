//go:build whisper

package whispercpp

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/earshot/earshot/internal/speech"
	"github.com/earshot/earshot/transcribe"
)

// FolderTranscriptsFile is what TestTranscribeFolder writes into the
// folder: a JSON object from each WAV file's name to whisper.cpp's text.
const FolderTranscriptsFile = "transcripts.json"

// TestTranscribeFolder is the offline side of the end-to-end tests in
// transcribe/whispercpp/e2etest: it transcribes every 16 kHz mono WAV file
// in EARSHOT_WHISPER_FOLDER with the converted model (EARSHOT_WHISPER_MODEL)
// through Engine.Transcribe, as the live worker calls it (language en, 2
// threads), and writes the texts to FolderTranscriptsFile there, so that the
// host can tell which alerts the same engine raises on the same audio.
func TestTranscribeFolder(t *testing.T) {
	model, dir := os.Getenv("EARSHOT_WHISPER_MODEL"), os.Getenv("EARSHOT_WHISPER_FOLDER")
	if model == "" || dir == "" {
		t.Skip("EARSHOT_WHISPER_MODEL and EARSHOT_WHISPER_FOLDER are not both set; transcribe/whispercpp/e2etest sets them through testbed/whisper-sid.sh exec")
	}
	wavs, err := filepath.Glob(filepath.Join(dir, "*.wav"))
	if err != nil || len(wavs) == 0 {
		t.Fatalf("no WAV file in %s (%v)", dir, err)
	}
	e, err := New(Config{ModelPath: model, Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	out := map[string]string{}
	for _, path := range wavs {
		pcm, err := speech.ReadWAVFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if pcm.Rate != transcribe.AudioRate || pcm.Channels != 1 {
			t.Fatalf("%s: %d Hz × %d, want 16 kHz mono", path, pcm.Rate, pcm.Channels)
		}
		samples := make([]float32, len(pcm.Samples))
		for i, v := range pcm.Samples {
			samples[i] = float32(v) / 32768
		}
		res, err := e.Transcribe(t.Context(), transcribe.Audio{Samples: samples, Language: "en"})
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		var text []string
		for _, s := range res.Segments {
			text = append(text, strings.TrimSpace(s.Text))
		}
		out[filepath.Base(path)] = strings.Join(text, " ")
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, FolderTranscriptsFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
}
