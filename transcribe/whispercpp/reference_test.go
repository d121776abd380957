package whispercpp

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// The real-weights comparison has two halves: TestWhisperBuildInSidRoot
// (host) renders the utterances and has the faster-whisper fixture
// transcribe them, writing a reference folder; TestRealWeights (sid root,
// whisper tag) transcribes the same files with whisper.cpp on the
// converted tiny.en and compares. This file is the folder's format.

// refFile is the reference folder's index.
const refFile = "reference.json"

// reference is what faster-whisper made of each utterance.
type reference struct {
	// Decoding describes the settings both engines use.
	Decoding   string         `json:"decoding"`
	Utterances []refUtterance `json:"utterances"`
}

// refUtterance is one audio file and faster-whisper's transcript of it.
type refUtterance struct {
	Name string `json:"name"`
	// Script is what was said ("" for silence and noise).
	Script string `json:"script"`
	// WAV is the file name in the folder: 16 kHz mono 16-bit, the audio
	// both engines get.
	WAV     string  `json:"wav"`
	Seconds float64 `json:"seconds"`
	// Text, Tokens (text tokens only: ids below <|endoftext|>) and the
	// last word's end, in seconds, as faster-whisper gave them with the
	// fixture's decoding, float32 and OpenAI's front end
	// (testbed/whisper/reference.py --front-end openai).
	Text        string  `json:"text"`
	Tokens      []int   `json:"tokens"`
	LastWordEnd float64 `json:"last_word_end"`
	// FixtureText is what the fixture itself (int8, its own front end)
	// answered over HTTP, and FixtureSeconds its wall time for the request.
	FixtureText    string  `json:"fixture_text"`
	FixtureSeconds float64 `json:"fixture_seconds"`
}

// timesFile is where TestRealWeights leaves whisper.cpp's engine time for
// BenchmarkWhisperCppVsFasterWhisper.
const timesFile = "times.json"

// engineTimes is whisper.cpp's time on the reference's speech lines.
type engineTimes struct {
	WhisperCppSeconds float64 `json:"whispercpp_seconds"`
	AudioSeconds      float64 `json:"audio_seconds"`
}

func readReference(dir string) (reference, error) {
	var ref reference
	b, err := os.ReadFile(filepath.Join(dir, refFile))
	if err != nil {
		return ref, err
	}
	if err := json.Unmarshal(b, &ref); err != nil {
		return ref, fmt.Errorf("%s: %w", refFile, err)
	}
	if len(ref.Utterances) == 0 {
		return ref, fmt.Errorf("%s: no utterances", refFile)
	}
	return ref, nil
}

func writeReference(dir string, ref reference) error {
	b, err := json.MarshalIndent(ref, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, refFile), b, 0o644)
}
