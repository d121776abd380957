package transcribe

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// scriptEngine answers call i with script[i](audio) and records the calls.
type scriptEngine struct {
	script []func(a Audio) (Result, error)
	calls  []Audio
}

func (e *scriptEngine) Transcribe(_ context.Context, a Audio) (Result, error) {
	e.calls = append(e.calls, a)
	if len(e.calls) > len(e.script) {
		return Result{}, fmt.Errorf("unexpected call %d", len(e.calls))
	}
	return e.script[len(e.calls)-1](a)
}
func (e *scriptEngine) Name() string  { return "script" }
func (e *scriptEngine) Model() string { return "test" }

// hearWords returns a result with one word per 250 ms of audio from the
// start of the audio to until seconds (or its end), named by their
// absolute time in the utterance (offset is where this audio starts).
func hearWords(a Audio, offset, until float64) Result {
	dur := float64(len(a.Samples)) / AudioRate
	until = min(until, dur)
	var seg Segment
	for t := 0.0; t+0.25 <= until+1e-9; t += 0.25 {
		w := Word{Word: fmt.Sprintf(" w%.2f", offset+t), Start: t, End: t + 0.25, Prob: 0.9}
		seg.Words = append(seg.Words, w)
		seg.Text += w.Word
	}
	if len(seg.Words) > 0 {
		seg.Start, seg.End = seg.Words[0].Start, seg.Words[len(seg.Words)-1].End
	}
	return Result{Language: "en", Segments: []Segment{seg}}
}

func TestCoverTail(t *testing.T) {
	speech := concat(silence(AudioRate, 300*time.Millisecond), voiced(AudioRate, 4*time.Second, 0.3), silence(AudioRate, 500*time.Millisecond))
	voicedEnd := 4.3
	trailingNoise := concat(silence(AudioRate, 300*time.Millisecond), voiced(AudioRate, time.Second, 0.3), noise("white", AudioRate, 3*time.Second, 0.05, 7))
	lead := 0.3
	for _, tc := range []struct {
		name      string
		audio     []float32
		script    []func(a Audio) (Result, error)
		wantCalls int
		// wantLast is the least end of the merged result's last word;
		// 0 checks nothing.
		wantLast float64
	}{
		{
			name:  "truncated: the rest is heard again and appended",
			audio: speech,
			script: []func(a Audio) (Result, error){
				func(a Audio) (Result, error) { return hearWords(a, 0, 1.55), nil },
				func(a Audio) (Result, error) { return hearWords(a, 1.5-lead, 10), nil },
			},
			wantCalls: 2, wantLast: voicedEnd - 0.25,
		},
		{
			name:  "covered: one call",
			audio: speech,
			script: []func(a Audio) (Result, error){
				func(a Audio) (Result, error) { return hearWords(a, 0, voicedEnd), nil },
			},
			wantCalls: 1,
		},
		{
			name:  "nothing heard: not asked again",
			audio: speech,
			script: []func(a Audio) (Result, error){
				func(a Audio) (Result, error) { return Result{Language: "en"}, nil },
			},
			wantCalls: 1,
		},
		{
			name:  "noise after the last word is not speech",
			audio: trailingNoise,
			script: []func(a Audio) (Result, error){
				func(a Audio) (Result, error) { return hearWords(a, 0, 1.3), nil },
			},
			wantCalls: 1,
		},
		{
			name:  "the second call fails: the first result stands",
			audio: speech,
			script: []func(a Audio) (Result, error){
				func(a Audio) (Result, error) { return hearWords(a, 0, 1.55), nil },
				func(a Audio) (Result, error) { return Result{}, errors.New("engine down") },
			},
			wantCalls: 2,
		},
		{
			name:  "the last words heard again later are dropped",
			audio: speech,
			script: []func(a Audio) (Result, error){
				func(a Audio) (Result, error) { return hearWords(a, 0, 1.55), nil },
				func(a Audio) (Result, error) {
					// The engine hears "w1.25" again, placed 0.1 s later
					// (centred after the first result's end).
					r := hearWords(a, 1.5-lead, 10)
					w := &r.Segments[0].Words
					for i := range *w {
						if (*w)[i].Word == " w1.25" {
							(*w)[i].Start += 0.15
							(*w)[i].End += 0.15
						}
					}
					return r, nil
				},
			},
			wantCalls: 2, wantLast: voicedEnd - 0.25,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eng := &scriptEngine{script: tc.script}
			first, _ := tc.script[0](Audio{Samples: tc.audio})
			res, err := CoverTail(eng, TailConfig{Lead: time.Duration(lead * float64(time.Second))}).Transcribe(context.Background(), Audio{Samples: tc.audio, Language: "en", Prompt: "before"})
			if err != nil {
				t.Fatal(err)
			}
			if len(eng.calls) != tc.wantCalls {
				t.Fatalf("%d engine calls, want %d", len(eng.calls), tc.wantCalls)
			}
			words := resultWords(res)
			if tc.wantCalls == 1 || tc.wantLast == 0 {
				if got, want := len(words), len(resultWords(first)); got != want {
					t.Fatalf("%d words, want the first result's %d", got, want)
				}
				return
			}
			again := eng.calls[1]
			if got, want := len(again.Samples), len(tc.audio)-int((1.5-lead)*AudioRate); got != want {
				t.Errorf("second call got %d samples, want %d (from %.2f s)", got, want, 1.5-lead)
			}
			if again.Language != "en" || again.Prompt != "before w0.00 w0.25 w0.50 w0.75 w1.00 w1.25" {
				t.Errorf("second call language %q prompt %q", again.Language, again.Prompt)
			}
			if end := words[len(words)-1].End; end < tc.wantLast {
				t.Errorf("last word ends at %.2f s, want >= %.2f", end, tc.wantLast)
			}
			seen := map[string]bool{}
			for i, w := range words {
				if seen[w.Word] {
					t.Errorf("word %q twice: %v", w.Word, words)
				}
				seen[w.Word] = true
				if i > 0 && w.Start < words[i-1].Start {
					t.Errorf("word %d %q starts at %.2f, before the previous one (%.2f)", i, w.Word, w.Start, words[i-1].Start)
				}
				// Every word's name is its time in the utterance: shifted
				// back right.
				var at float64
				fmt.Sscanf(w.Word, " w%f", &at)
				if d := w.Start - at; d < -1e-6 || d > 0.2 {
					t.Errorf("word %q placed at %.2f s", w.Word, w.Start)
				}
			}
			for _, s := range res.Segments {
				if len(s.Words) > 0 && (s.Start != s.Words[0].Start || s.End != s.Words[len(s.Words)-1].End) {
					t.Errorf("segment %.2f-%.2f does not span its words", s.Start, s.End)
				}
			}
		})
	}
}
