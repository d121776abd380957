package speakerbot

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
)

// CueSheet describes what a synthesized Ogg/Opus file contains and when
// (internal/speech writes it next to the file as <file>.cues.json).
// Offsets are milliseconds of decoded audio, after pre-skip.
type CueSheet struct {
	DurationMS int64 `json:"duration_ms"`
	Cues       []Cue `json:"cues"`
}

// Cue is one utterance or tone of a cue sheet.
type Cue struct {
	Kind    string  `json:"kind"` // "speech" or "tone"
	Text    string  `json:"text,omitempty"`
	Voice   string  `json:"voice,omitempty"`
	FreqHz  float64 `json:"freq_hz,omitempty"`
	StartMS int64   `json:"start_ms"`
	EndMS   int64   `json:"end_ms"`
}

// CuesPath is where the cue sheet of an Ogg/Opus file lives.
func CuesPath(oggPath string) string { return oggPath + ".cues.json" }

// LoadCues reads a cue sheet file. A missing file yields an error matching
// os.ErrNotExist.
func LoadCues(path string) (*CueSheet, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	cs, err := ParseCues(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cs, nil
}

// ParseCues parses and checks a cue sheet: every cue needs a kind and
// 0 <= start_ms <= end_ms.
func ParseCues(b []byte) (*CueSheet, error) {
	var cs CueSheet
	if err := json.Unmarshal(b, &cs); err != nil {
		return nil, fmt.Errorf("cue sheet: %w", err)
	}
	for i, c := range cs.Cues {
		if c.Kind == "" {
			return nil, fmt.Errorf("cue sheet: cue %d has no kind", i)
		}
		if c.StartMS < 0 || c.EndMS < c.StartMS {
			return nil, fmt.Errorf("cue sheet: cue %d: bad interval [%d, %d] ms", i, c.StartMS, c.EndMS)
		}
	}
	if cs.DurationMS < 0 {
		return nil, errors.New("cue sheet: negative duration_ms")
	}
	return &cs, nil
}
