package speech

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// Line is one turn of a scripted conversation.
type Line struct {
	Speaker string
	Text    string
	Voice   string // espeak-ng voice; default DefaultVoice
}

// Conversation renders a scripted conversation as one Ogg/Opus file per
// speaker, all on one shared timeline: while one speaker talks the others'
// files hold silence, so speaker bots that start together reproduce the
// conversation. Turns are separated by gapMS of silence. It returns each
// speaker's clip, keyed by speaker.
func (t Tools) Conversation(ctx context.Context, lines []Line, gapMS int, outDir string) (map[string]Clip, error) {
	if len(lines) == 0 {
		return nil, errors.New("speech: conversation has no lines")
	}
	if gapMS < 0 {
		return nil, fmt.Errorf("speech: negative gap %d ms", gapMS)
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, fmt.Errorf("speech: conversation: %w", err)
	}
	// Render every line alone first: its length decides how long the other
	// speakers stay silent.
	durMS := make([]int, len(lines))
	tmp, err := os.MkdirTemp(outDir, ".lines-")
	if err != nil {
		return nil, fmt.Errorf("speech: conversation: %w", err)
	}
	defer os.RemoveAll(tmp)
	for i, l := range lines {
		c, err := t.Synthesize(ctx, []Item{{Kind: KindSpeech, Text: l.Text, Voice: l.Voice}}, filepath.Join(tmp, fmt.Sprintf("%03d.ogg", i)))
		if err != nil {
			return nil, fmt.Errorf("speech: conversation line %d: %w", i+1, err)
		}
		durMS[i] = int((c.Samples*1000 + SampleRate - 1) / SampleRate)
	}
	scripts := map[string][]Item{}
	for _, l := range lines {
		if _, ok := scripts[l.Speaker]; !ok {
			scripts[l.Speaker] = nil
		}
	}
	for i, l := range lines {
		for sp := range scripts {
			if sp == l.Speaker {
				scripts[sp] = append(scripts[sp], Item{Kind: KindSpeech, Text: l.Text, Voice: l.Voice})
			} else {
				scripts[sp] = append(scripts[sp], Item{Kind: KindPause, DurMS: durMS[i]})
			}
			if gapMS > 0 {
				scripts[sp] = append(scripts[sp], Item{Kind: KindPause, DurMS: gapMS})
			}
		}
	}
	speakers := make([]string, 0, len(scripts))
	for sp := range scripts {
		speakers = append(speakers, sp)
	}
	sort.Strings(speakers)
	out := map[string]Clip{}
	for _, sp := range speakers {
		c, err := t.Synthesize(ctx, scripts[sp], filepath.Join(outDir, sp+".ogg"))
		if err != nil {
			return nil, fmt.Errorf("speech: conversation speaker %s: %w", sp, err)
		}
		out[sp] = c
	}
	return out, nil
}
