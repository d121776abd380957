package transcribe

import (
	"math"
	"strings"
)

// Batches: a replay can send several utterances of a track to the engine
// as one audio, spliced with short pauses, and keep every word. Whisper
// hears a 2–3 s utterance on its own worse than inside a longer stretch of
// speech: on the test bed (tiny.en, 104 lines) utterance by utterance gives
// 7.7–8.3 % WER where the whole file gives 2.3 %, and 25 s batches give
// 3.0 %. The live path cannot wait for 25 s of speech (latency), a replay
// can: it is how a final revision as good as the whole file's is made.

// batchGap is the silence put between the utterances of a batch: long
// enough to read as a pause between sentences, short enough that the
// batch holds speech, not silence.
const batchGap = AudioRate * 3 / 10

// splice returns the utterances' audio joined with batchGap of silence
// between them, and where each utterance starts in it (audio samples).
func splice(utts []Utterance) (audio []float32, starts []int) {
	n := 0
	for _, u := range utts {
		n += len(u.Samples) + batchGap
	}
	audio = make([]float32, 0, n)
	for i, u := range utts {
		if i > 0 {
			audio = append(audio, make([]float32, batchGap)...)
		}
		starts = append(starts, len(audio))
		audio = append(audio, u.Samples...)
	}
	return audio, starts
}

// splitBatch turns the engine's result for a spliced batch into one result
// per utterance, times relative to that utterance's own audio, so each can
// go through Attribute as if it had been sent alone. A word belongs to the
// utterance whose audio holds its centre; a word centred in a pause goes
// to the nearer side. A segment's words may so land in two utterances:
// each gets a segment with its words (the segment's probabilities kept).
// A segment without word times goes whole to the utterance holding its
// centre.
func splitBatch(utts []Utterance, starts []int, res Result) []Result {
	out := make([]Result, len(utts))
	for i := range out {
		out[i] = Result{Language: res.Language, LanguageProb: res.LanguageProb}
	}
	owner := func(sec float64) int {
		pos := sec * AudioRate
		best, bd := 0, math.Inf(1)
		for i, u := range utts {
			a, b := float64(starts[i]), float64(starts[i]+len(u.Samples))
			d := 0.0
			switch {
			case pos < a:
				d = a - pos
			case pos > b:
				d = pos - b
			}
			if d < bd {
				best, bd = i, d
			}
		}
		return best
	}
	local := func(i int, sec float64) float64 {
		v := sec - float64(starts[i])/AudioRate
		return min(max(v, 0), float64(len(utts[i].Samples))/AudioRate)
	}
	for _, s := range res.Segments {
		if len(s.Words) == 0 {
			i := owner((s.Start + s.End) / 2)
			out[i].Segments = append(out[i].Segments, Segment{Start: local(i, s.Start), End: local(i, s.End), Text: s.Text,
				AvgLogProb: s.AvgLogProb, NoSpeechProb: s.NoSpeechProb})
			continue
		}
		parts := map[int]*Segment{}
		var order []int
		for _, w := range s.Words {
			i := owner((w.Start + w.End) / 2)
			p := parts[i]
			if p == nil {
				p = &Segment{Start: local(i, w.Start), AvgLogProb: s.AvgLogProb, NoSpeechProb: s.NoSpeechProb}
				parts[i] = p
				order = append(order, i)
			}
			p.Words = append(p.Words, Word{Word: w.Word, Start: local(i, w.Start), End: local(i, w.End), Prob: w.Prob})
			p.End = local(i, w.End)
		}
		for _, i := range order {
			p := parts[i]
			texts := make([]string, len(p.Words))
			for k, w := range p.Words {
				texts[k] = strings.TrimSpace(w.Word)
			}
			p.Text = strings.Join(texts, " ")
			out[i].Segments = append(out[i].Segments, *p)
		}
	}
	return out
}
