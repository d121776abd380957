package transcribe

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/earshot/earshot/event"
)

func TestSpliceAndSplitBatch(t *testing.T) {
	sec := func(s float64) int { return int(s * AudioRate) }
	utts := []Utterance{
		{Start: 0, Samples: make([]float32, sec(2))},
		{Start: 48000 * 10, Samples: make([]float32, sec(1))},
		{Start: 48000 * 20, Samples: make([]float32, sec(3))},
	}
	audio, starts := splice(utts)
	g := float64(batchGap) / AudioRate // 0.3 s
	if want := sec(6) + 2*batchGap; len(audio) != want || starts[0] != 0 || starts[1] != sec(2)+batchGap || starts[2] != sec(3)+2*batchGap {
		t.Fatalf("splice: %d samples, starts %v", len(audio), starts)
	}
	w := func(word string, at float64) Word { return Word{Word: " " + word, Start: at, End: at + 0.2, Prob: 0.9} }
	u1, u2 := 2+g, 3+2*g // where utterances 2 and 3 start in the batch
	res := Result{Language: "en", Segments: []Segment{
		// One segment across the first two utterances.
		{Start: 0.1, End: u1 + 0.5, Text: "a b c", AvgLogProb: -0.3, Words: []Word{w("a", 0.1), w("b", 1.5), w("c", u1+0.3)}},
		// A word centred in the pause after utterance 2, nearer to 3.
		{Start: u2 - 0.12, End: u2 + 2, Text: "d e", Words: []Word{w("d", u2-0.12), w("e", u2+1.5)}},
		// No word times: placed by the segment's centre.
		{Start: u2 + 2.2, End: u2 + 2.8, Text: " f"},
	}}
	got := splitBatch(utts, starts, res)
	var desc []string
	for i, r := range got {
		for _, s := range r.Segments {
			var ws []string
			for _, x := range s.Words {
				ws = append(ws, fmt.Sprintf("%s@%.2f", strings.TrimSpace(x.Word), x.Start))
			}
			desc = append(desc, fmt.Sprintf("u%d[%.2f-%.2f %q %v]", i, s.Start, s.End, s.Text, ws))
		}
	}
	want := []string{
		`u0[0.10-1.70 "a b" [a@0.10 b@1.50]]`,
		`u1[0.30-0.50 "c" [c@0.30]]`,
		`u2[0.00-1.70 "d e" [d@0.00 e@1.50]]`,
		`u2[2.20-2.80 " f" []]`,
	}
	if strings.Join(desc, " ") != strings.Join(want, " ") {
		t.Fatalf("split:\n got %v\nwant %v", desc, want)
	}
	if got[0].Segments[0].AvgLogProb != -0.3 || got[1].Language != "en" {
		t.Errorf("probabilities or language not carried: %+v", got)
	}
}

// wordEngine answers with one word per second of audio, each word named
// by the call number and its second, and counts calls.
type wordEngine struct{ calls int }

func (e *wordEngine) Transcribe(_ context.Context, a Audio) (Result, error) {
	e.calls++
	secs := float64(len(a.Samples)) / AudioRate
	seg := Segment{Start: 0, End: secs, AvgLogProb: -0.1}
	for s := 0.0; s+0.5 < secs; s++ {
		seg.Words = append(seg.Words, Word{Word: fmt.Sprintf(" c%dw%d", e.calls, int(s)), Start: s + 0.1, End: s + 0.4, Prob: 0.9})
		seg.Text += seg.Words[len(seg.Words)-1].Word
	}
	return Result{Language: "en", Segments: []Segment{seg}}, nil
}
func (e *wordEngine) Name() string  { return "words" }
func (e *wordEngine) Model() string { return "test" }

// TestReplayBatch: with Batch, a replay sends the stored utterances in
// few engine calls, every word lands on the stored timeline where its
// utterance is, and the batch size is part of the revision.
func TestReplayBatch(t *testing.T) {
	ctx := context.Background()
	fs := newFoxSession(t, "ses_b", 4)
	fs.putSegments(t, fs.keys...)
	run := func(batch time.Duration) (*wordEngine, ReplayStats, []*event.Envelope) {
		eng := &wordEngine{}
		st, evs := replayEvents(t, fs.store, eng, "ses_b", batch)
		return eng, st, evs
	}
	one, st1, single := run(0)
	many, stB, batched := run(25 * time.Second)
	if st1.Utterances != 4 || stB.Utterances != 4 || one.calls != 4 || many.calls != 1 {
		t.Fatalf("utterances %d/%d, engine calls %d unbatched, %d batched: want 4 utterances, 4 calls and 1", st1.Utterances, stB.Utterances, one.calls, many.calls)
	}
	if stB.Revision == st1.Revision {
		t.Error("a batched replay has the revision of an unbatched one")
	}
	// Unbatched, each transcript spans its whole utterance (the fake
	// engine's one segment covers the audio it gets): the utterances'
	// places on the timeline. Batched, every word must fall inside one of
	// them, every utterance gets words, and none is lost: one word per
	// second of the batch.
	var spans [][2]int64
	for _, e := range single {
		spans = append(spans, [2]int64{e.Timeline.FirstSample, e.Timeline.LastSample})
	}
	perUtt := make([]int, len(spans))
	words := 0
	for _, e := range batched {
		var d event.TranscriptSegmentData
		if err := e.Open(ctx, testKeys, &d); err != nil {
			t.Fatal(err)
		}
		for _, w := range d.Words {
			words++
			in := -1
			for i, sp := range spans {
				if w.FirstSample >= sp[0] && w.LastSample <= sp[1] {
					in = i
				}
			}
			if in < 0 {
				t.Errorf("batched word %q at %d-%d lies in no utterance %v", w.Word, w.FirstSample, w.LastSample, spans)
				continue
			}
			perUtt[in]++
		}
	}
	var speech float64
	for _, sp := range spans {
		speech += float64(sp[1]-sp[0]+1) / 48000
	}
	batchSecs := speech + float64(len(spans)-1)*0.3
	if want := int(batchSecs + 0.5); words != want {
		t.Errorf("%d words in the batch, want %d (one per second of %.2f s)", words, want, batchSecs)
	}
	for i, n := range perUtt {
		if n == 0 {
			t.Errorf("utterance %d got no word", i)
		}
	}
}
