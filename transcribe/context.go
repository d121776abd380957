package transcribe

import (
	"context"
	"strings"
	"time"
)

// Audio context: each utterance can go to the engine after a few seconds
// of the same track's earlier speech (pauses shortened), and the words
// heard there are dropped by timeline position (Attribute keeps only the
// words whose centre lies in the utterance's own range), exactly as the
// words of an overlap are. Whisper hears a short clip on its own worse
// than inside a longer recording (the pipeline-vs-file WER gap of issue 4
// is all such mis-hearings), but with tiny.en on the test bed this did not
// close the gap: 8 s of context took the benchmark's 104 lines from 7.7 %
// to 4.9 % WER (whole file 2.3 %) while the 60 s conversation went from
// 7.2 % to 9.0 % (file 4.5 %), and each engine call decodes the context's
// words again (+0.18 s per utterance). So it is off by default: measure
// with the model you run before turning it on.

// ContextConfig sets the audio context sent before each utterance. The
// zero value sends none; zero Gap and MaxAge take their defaults.
type ContextConfig struct {
	// Length is how much of the track's earlier speech goes before an
	// utterance; zero or negative sends none (the default). Context costs
	// engine time (the words in it are decoded again); at most 20 s is
	// sent, so the utterance stays inside Whisper's 30 s window.
	Length time.Duration
	// Gap is the longest silence kept between pieces of context and
	// before the utterance (300 ms): pauses are shortened so the context
	// holds speech, not silence.
	Gap time.Duration
	// MaxAge forgets speech that ended longer ago than this before the
	// utterance (60 s): after a long silence the earlier talk is another
	// topic.
	MaxAge time.Duration
}

func (c *ContextConfig) setDefaults() {
	if c.Gap <= 0 {
		c.Gap = 300 * time.Millisecond
	}
	if c.MaxAge <= 0 {
		c.MaxAge = time.Minute
	}
	// An utterance is at most MaxLength (8 s by default, and a config
	// rarely raises it far); keep context plus utterance within 30 s.
	c.Length = min(c.Length, 20*time.Second)
}

// TrackContext keeps one track's recent utterances and sends them to the
// engine before the next one (see ContextConfig). The worker and Replay
// keep one per track. A nil *TrackContext sends no context. Not safe for
// concurrent use.
type TrackContext struct {
	length, gap, age int64 // audio samples
	parts            []contextPart
}

// contextPart is an earlier utterance's audio.
type contextPart struct {
	start   int64 // audio index of samples[0]
	samples []float32
}

func (p contextPart) end() int64 { return p.start + int64(len(p.samples)) }

// NewTrackContext returns a track's context at the track's start (or at a
// takeover: the earlier speech is then unknown); nil (no context) unless
// cfg.Length is positive.
func NewTrackContext(cfg ContextConfig) *TrackContext {
	cfg.setDefaults()
	if cfg.Length <= 0 {
		return nil
	}
	samples := func(d time.Duration) int64 { return int64(d) * AudioRate / int64(time.Second) }
	return &TrackContext{length: samples(cfg.Length), gap: samples(cfg.Gap), age: samples(cfg.MaxAge)}
}

// extend returns u with the context in front: Start moves back by the
// context's length (a position that lies before the utterance and holds no
// audio of its own: the context is spliced, its pauses shortened), Own and
// Speech stay, so Attribute drops every word heard in the context. The
// second result is false when there is no context.
func (c *TrackContext) extend(u Utterance) (Utterance, bool) {
	if c == nil || len(c.parts) == 0 {
		return u, false
	}
	k := ToAudio(u.Start)
	// Newest first: each piece ends where the next begins (the overlap of a
	// cut at MaxLength is not repeated), with pauses shortened to gap.
	var pieces [][]float32
	var n int64
	next := k
	for i := len(c.parts) - 1; i >= 0 && n < c.length; i-- {
		p := c.parts[i]
		end := min(p.end(), next)
		if end <= p.start || k-end > c.age {
			break
		}
		if g := min(next-end, c.gap, c.length-n); g > 0 {
			pieces = append(pieces, make([]float32, g))
			n += g
		}
		s := p.samples[:end-p.start]
		s = s[len(s)-int(min(int64(len(s)), c.length-n)):]
		pieces = append(pieces, s)
		n += int64(len(s))
		next = p.start
	}
	if n == 0 {
		return u, false
	}
	out := make([]float32, 0, n+int64(len(u.Samples)))
	for i := len(pieces) - 1; i >= 0; i-- {
		out = append(out, pieces[i]...)
	}
	out = append(out, u.Samples...)
	v := u
	v.Start = u.Start - ToTimeline(n)
	v.Samples = out
	return v, true
}

// add remembers u (as cut, not extended) and forgets what no later
// utterance can use.
func (c *TrackContext) add(u Utterance) {
	if c == nil {
		return
	}
	k := ToAudio(u.Start)
	c.parts = append(c.parts, contextPart{start: k, samples: u.Samples})
	// Keep the newest parts holding length samples (plus the one the cut
	// overlap may clip), within age.
	var n int64
	keep := len(c.parts)
	for i := len(c.parts) - 1; i >= 0; i-- {
		if n >= c.length+int64(len(c.parts[len(c.parts)-1].samples)) || k-c.parts[i].end() > c.age {
			break
		}
		n += int64(len(c.parts[i].samples))
		keep = i
	}
	if keep > 0 {
		c.parts = append(c.parts[:0], c.parts[keep:]...)
	}
}

// hasWordlessText reports whether a result has a segment with text but no
// word times: its words cannot be told apart from the context's.
func hasWordlessText(r Result) bool {
	for _, s := range r.Segments {
		if len(s.Words) == 0 && strings.TrimSpace(s.Text) != "" {
			return true
		}
	}
	return false
}

// Transcribe sends u to eng after the track's context (a's Samples are
// replaced), and then remembers u as context for the next utterance. It
// returns the utterance the result's times refer to (u itself, or u
// extended): pass that to Attribute. sent is the audio the engine
// received, in samples. A result with text but no word times is not
// usable with context (the context's words could not be dropped), so such
// an utterance is sent again alone.
func (c *TrackContext) Transcribe(ctx context.Context, eng Engine, u Utterance, a Audio) (at Utterance, res Result, sent int, err error) {
	defer c.add(u)
	at, extended := c.extend(u)
	a.Samples = at.Samples
	res, err = eng.Transcribe(ctx, a)
	sent = len(a.Samples)
	if err != nil || !extended || !hasWordlessText(res) {
		return at, res, sent, err
	}
	a.Samples = u.Samples
	res, err = eng.Transcribe(ctx, a)
	return u, res, sent + len(u.Samples), err
}
