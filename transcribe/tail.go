package transcribe

import (
	"context"
	"strings"
	"time"
	"unicode"
)

// Whisper sometimes stops early: on a long utterance of spelled digits or
// letters it returns the first words and closes the segment ("You can reach
// me at 404-"), and the speech after them is never transcribed. The words
// that matter most to a moderator (the number, the address) are exactly
// the ones lost. CoverTail sends such an uncovered stretch to the engine a
// second time, on its own, and appends what it hears.

// TailConfig sets when CoverTail asks the engine again. The zero value
// takes the defaults.
type TailConfig struct {
	// MinVoiced is how much voiced audio (20 ms frames that are loud and
	// periodic at a speaking pitch, as the segmenter judges them) must lie
	// after the last word the engine returned for the rest to be sent
	// again: 600 ms by default, about two syllables, so a last word whose
	// end the engine placed a little early does not cost a second call.
	MinVoiced time.Duration
	// Lead is how much audio before the last word's end goes with the
	// rest, so the engine does not start inside a word: 300 ms by default.
	// Words heard again there are dropped (by time, and by text when the
	// same words start the second result).
	Lead time.Duration
}

func (c *TailConfig) setDefaults() {
	if c.MinVoiced <= 0 {
		c.MinVoiced = 600 * time.Millisecond
	}
	if c.Lead <= 0 {
		c.Lead = 300 * time.Millisecond
	}
}

// CoverTail returns eng with uncovered speech sent again: when the result
// of an utterance has words and at least MinVoiced of voiced audio follows
// its last word, the audio from Lead before that word's end to the end is
// transcribed once more on its own (with the words heard so far as the
// prompt) and its words are appended as further segments. One extra call
// at most per utterance; if it fails, the first result stands. A result
// without words (silence, noise, an engine that gives no word times) is
// returned as it is: the engine heard no speech to continue from.
//
// The wrapped engine keeps eng's Name and Model: the transcript's revision
// names the engine and model, and CoverTail is part of how the worker uses
// them, like the segmenter.
func CoverTail(eng Engine, cfg TailConfig) Engine {
	cfg.setDefaults()
	var vad SegmenterConfig
	_ = vad.setDefaults() // the zero value's defaults are valid
	return &tailEngine{Engine: eng, cfg: cfg, vad: vad}
}

type tailEngine struct {
	Engine
	cfg TailConfig
	vad SegmenterConfig // its Margin, MinLevel and Voicing judge a frame voiced
}

func (e *tailEngine) Transcribe(ctx context.Context, a Audio) (Result, error) {
	res, err := e.Engine.Transcribe(ctx, a)
	if err != nil {
		return res, err
	}
	end, ok := lastWordEnd(res)
	if !ok {
		return res, nil
	}
	first := int(end * AudioRate)
	if voicedAfter(a.Samples, first, e.vad) < int(e.cfg.MinVoiced.Seconds()*50) {
		return res, nil
	}
	from := max(first-int(e.cfg.Lead.Seconds()*AudioRate), 0)
	prompt := strings.TrimSpace(a.Prompt + " " + resultText(res))
	more, err := e.Engine.Transcribe(ctx, Audio{Samples: a.Samples[from:], Language: a.Language, Prompt: prompt})
	if err != nil {
		return res, nil
	}
	return appendTail(res, more, float64(from)/AudioRate, end), nil
}

// lastWordEnd is the end of the result's last word, in seconds.
func lastWordEnd(r Result) (float64, bool) {
	end, ok := 0.0, false
	for _, s := range r.Segments {
		for _, w := range s.Words {
			if strings.TrimSpace(w.Word) != "" && (!ok || w.End > end) {
				end, ok = w.End, true
			}
		}
	}
	return end, ok
}

// voicedAfter counts the voiced 20 ms frames of x from sample first on:
// loud against the quietest frame of the utterance and periodic at a
// speaking pitch, the segmenter's test.
func voicedAfter(x []float32, first int, vad SegmenterConfig) int {
	if first < 0 || first >= len(x) {
		return 0
	}
	floor := 0.0
	nf := len(x) / frameLen
	for i := range nf {
		if e := energyDB(x[i*frameLen : (i+1)*frameLen]); i == 0 || e < floor {
			floor = e
		}
	}
	var buf [pitchWindow]float64
	n := 0
	for i := (first + frameLen - 1) / frameLen; i+2 <= nf; i++ {
		f := x[i*frameLen : (i+2)*frameLen]
		e := energyDB(f[:frameLen])
		if e < floor+vad.Margin || e < vad.MinLevel {
			continue
		}
		if periodicity(f, &buf) >= vad.Voicing {
			n++
		}
	}
	return n
}

// appendTail adds the words of more (times relative to offset seconds into
// the utterance) after res: words centred before end were heard already,
// and so are leading words that repeat the end of res's text.
func appendTail(res, more Result, offset, end float64) Result {
	type kept struct {
		seg  int // index in more.Segments
		word Word
	}
	var tail []kept
	for i, s := range more.Segments {
		for _, w := range s.Words {
			w.Start += offset
			w.End += offset
			if strings.TrimSpace(w.Word) == "" || (w.Start+w.End)/2 < end {
				continue
			}
			tail = append(tail, kept{i, w})
		}
	}
	// The engine may hear the last words again a little later than it
	// placed them the first time: drop the longest run (up to three words)
	// that starts the tail and ends the first result.
	heard := resultWords(res)
	for k := min(len(tail), len(heard), 3); k > 0; k-- {
		same := true
		for j := range k {
			same = same && normWord(heard[len(heard)-k+j].Word) == normWord(tail[j].word.Word)
		}
		if same {
			tail = tail[k:]
			break
		}
	}
	if len(tail) == 0 {
		return res
	}
	out := res
	out.Segments = append([]Segment(nil), res.Segments...)
	// One segment per segment of more that kept words, with its scores.
	for i := 0; i < len(tail); {
		src := more.Segments[tail[i].seg]
		seg := Segment{AvgLogProb: src.AvgLogProb, NoSpeechProb: src.NoSpeechProb}
		var text strings.Builder
		for j := i; j < len(tail) && tail[j].seg == tail[i].seg; j++ {
			seg.Words = append(seg.Words, tail[j].word)
			text.WriteString(tail[j].word.Word)
		}
		i += len(seg.Words)
		seg.Start, seg.End, seg.Text = seg.Words[0].Start, seg.Words[len(seg.Words)-1].End, text.String()
		out.Segments = append(out.Segments, seg)
	}
	return out
}

func resultWords(r Result) []Word {
	var ws []Word
	for _, s := range r.Segments {
		for _, w := range s.Words {
			if strings.TrimSpace(w.Word) != "" {
				ws = append(ws, w)
			}
		}
	}
	return ws
}

func resultText(r Result) string {
	var b strings.Builder
	for _, s := range r.Segments {
		b.WriteString(s.Text)
	}
	return strings.Join(strings.Fields(b.String()), " ")
}

func normWord(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			return unicode.ToLower(r)
		}
		return -1
	}, s)
}
