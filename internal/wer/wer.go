// Package wer measures word error rate: the one shared helper for every
// transcript-quality check in Earshot's tests and benchmarks.
//
// Both sides go through Normalize first, so that a transcript is not
// penalised for writing "25" where the script said "twenty five", for
// capitals, or for punctuation.
package wer

import (
	"strings"
)

// Result counts the word edits that turn the reference into the hypothesis.
type Result struct {
	Substitutions int
	Deletions     int // reference words missing from the hypothesis
	Insertions    int // hypothesis words not in the reference
	RefWords      int // words in the normalised reference
	HypWords      int // words in the normalised hypothesis
}

// Errors is the edit distance: substitutions + deletions + insertions.
func (r Result) Errors() int { return r.Substitutions + r.Deletions + r.Insertions }

// WER is Errors / RefWords. An empty reference scores 0 against an empty
// hypothesis and 1 against anything else (every word is an insertion, and a
// rate over no words would be infinite).
func (r Result) WER() float64 {
	if r.RefWords == 0 {
		if r.HypWords == 0 {
			return 0
		}
		return 1
	}
	return float64(r.Errors()) / float64(r.RefWords)
}

// WER returns the word error rate of hyp against ref, both normalised.
func WER(ref, hyp string) float64 { return Measure(ref, hyp).WER() }

// Measure normalises both texts and aligns them word by word (Levenshtein
// over words, each edit costing 1).
func Measure(ref, hyp string) Result {
	r := strings.Fields(Normalize(ref))
	h := strings.Fields(Normalize(hyp))
	return Align(r, h)
}

// Align counts the edits between two word lists as given (no
// normalisation). Among alignments with the fewest edits it prefers
// substitutions over a deletion plus an insertion, as sclite does.
func Align(ref, hyp []string) Result {
	type cell struct{ cost, sub, del, ins int }
	// Two rows of the dynamic-programming table are enough.
	prev := make([]cell, len(hyp)+1)
	cur := make([]cell, len(hyp)+1)
	for j := range prev {
		prev[j] = cell{cost: j, ins: j}
	}
	better := func(a, b cell) bool {
		if a.cost != b.cost {
			return a.cost < b.cost
		}
		return a.sub > b.sub
	}
	for i := 1; i <= len(ref); i++ {
		cur[0] = cell{cost: i, del: i}
		for j := 1; j <= len(hyp); j++ {
			d := prev[j-1]
			if ref[i-1] != hyp[j-1] {
				d.cost++
				d.sub++
			}
			best := d
			del := prev[j]
			del.cost++
			del.del++
			if better(del, best) {
				best = del
			}
			ins := cur[j-1]
			ins.cost++
			ins.ins++
			if better(ins, best) {
				best = ins
			}
			cur[j] = best
		}
		prev, cur = cur, prev
	}
	last := prev[len(hyp)]
	return Result{
		Substitutions: last.sub,
		Deletions:     last.del,
		Insertions:    last.ins,
		RefWords:      len(ref),
		HypWords:      len(hyp),
	}
}
