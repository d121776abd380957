package whispercpp

import (
	"math"
	"strings"

	"github.com/earshot/earshot/transcribe"
)

// token is one text token of a whisper.cpp segment (special and timestamp
// tokens are left out before): its bytes, probability and token-level
// times in whisper.cpp's 10 ms units (-1 when unknown).
type token struct {
	text   string
	p      float64
	t0, t1 int64
}

// minProb keeps log-probabilities finite.
const minProb = 1e-10

// segment turns a whisper.cpp segment (times in 10 ms units) into a
// transcribe.Segment: AvgLogProb is the mean log-probability of its text
// tokens, and words are runs of tokens that start at a token beginning with
// a space (Whisper's word boundary), so punctuation stays with its word
// ("world.") as in faster-whisper. A word's probability is the mean of its
// tokens' (faster-whisper's choice); its times come from its first and last
// tokens, clamped to the segment.
func segment(t0, t1 int64, text string, noSpeech float64, toks []token) transcribe.Segment {
	s := transcribe.Segment{
		Start:        centis(t0),
		End:          centis(max(t0, t1)),
		Text:         strings.TrimSpace(text),
		NoSpeechProb: clamp01(noSpeech),
	}
	if len(toks) == 0 {
		return s
	}
	var sumLog float64
	for _, t := range toks {
		sumLog += math.Log(max(clamp01(t.p), minProb))
	}
	s.AvgLogProb = sumLog / float64(len(toks))

	clamp := func(t int64, fallback float64) float64 {
		if t < 0 {
			return fallback
		}
		return min(max(centis(t), s.Start), s.End)
	}
	var (
		cur     strings.Builder
		probSum float64
		n       int
		start   float64
		end     float64
	)
	flush := func() {
		if w := strings.ToValidUTF8(strings.TrimSpace(cur.String()), "\uFFFD"); w != "" {
			s.Words = append(s.Words, transcribe.Word{Word: w, Start: start, End: max(start, end), Prob: probSum / float64(n)})
		}
		cur.Reset()
		probSum, n = 0, 0
	}
	for _, t := range toks {
		if n > 0 && strings.HasPrefix(t.text, " ") {
			flush()
		}
		if n == 0 {
			start = clamp(t.t0, s.Start)
		}
		cur.WriteString(t.text)
		probSum += clamp01(t.p)
		n++
		end = clamp(t.t1, s.End)
	}
	flush()
	return s
}

func centis(t int64) float64 { return float64(t) / 100 }

func clamp01(p float64) float64 {
	if math.IsNaN(p) {
		return 0
	}
	return min(max(p, 0), 1)
}
