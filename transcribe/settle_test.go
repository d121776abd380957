package transcribe

import (
	"context"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
)

// regionEngine hears one word per stretch of sound: each run of audio
// louder than silence (gaps under 200 ms bridged) becomes a segment with
// one word covering it, so a spliced batch comes back with every
// utterance's word where its audio sits. hold, when set, blocks calls on
// more than maxLive seconds of audio (the settled pass's) until it is
// closed.
type regionEngine struct {
	mu    sync.Mutex
	calls []float64 // seconds of audio per call
	hold  chan struct{}
}

// maxLive is longer than any one fox utterance and shorter than two.
const maxLive = 5.0

func (r *regionEngine) Transcribe(ctx context.Context, a Audio) (Result, error) {
	secs := float64(len(a.Samples)) / AudioRate
	r.mu.Lock()
	r.calls = append(r.calls, secs)
	r.mu.Unlock()
	if r.hold != nil && secs > maxLive {
		select {
		case <-r.hold:
		case <-ctx.Done():
			return Result{}, ctx.Err()
		}
	}
	res := Result{Language: "en", LanguageProb: 0.99}
	const win = AudioRate / 100 // 10 ms
	start, last := -1, -1
	emit := func() {
		s, e := float64(start)/AudioRate, float64(last+win)/AudioRate
		w := fmt.Sprintf("w%d", len(res.Segments))
		res.Segments = append(res.Segments, Segment{Start: s, End: e, Text: w, AvgLogProb: -0.2, NoSpeechProb: 0.01,
			Words: []Word{{Word: w, Start: s, End: e, Prob: 0.9}}})
	}
	for i := 0; i+win <= len(a.Samples); i += win {
		var sum float64
		for _, v := range a.Samples[i : i+win] {
			sum += float64(v) * float64(v)
		}
		if math.Sqrt(sum/win) < 1e-3 {
			continue
		}
		if start >= 0 && i-last > AudioRate/5 {
			emit()
			start = -1
		}
		if start < 0 {
			start = i
		}
		last = i
	}
	if start >= 0 {
		emit()
	}
	return res, nil
}
func (r *regionEngine) Name() string  { return "region" }
func (r *regionEngine) Model() string { return "test" }

// settledCalls counts the calls beyond the track's six live ones (the
// settled pass's) and the longest call.
func (r *regionEngine) settledCalls() (n int, longest float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.calls {
		longest = max(longest, s)
	}
	return len(r.calls) - 6, longest
}

// foxTrack is fox.opus said six times in a row on one track (about 3 s of
// speech each, 2 s of silence between): six utterances.
func foxTrack(t *testing.T, track string) []bus.Message {
	t.Helper()
	var pk [][]byte
	for range 6 {
		pk = append(pk, foxPackets(t)...)
	}
	return chunkMessages(t, track, chunks(0, pk, 50))
}

func TestSettledPass(t *testing.T) {
	tests := []struct {
		name   string
		settle SettleConfig
		hold   bool
		// overloaded: the worker is behind on live audio (lag over the
		// alert threshold) throughout.
		overloaded bool
		// batches: settled engine calls; perBatch: utterances in each.
		batches, perBatch int
	}{
		{name: "off", batches: 0},
		{name: "two utterances fit in 8 s", settle: SettleConfig{Batch: 8 * time.Second, Quiet: time.Minute}, batches: 3, perBatch: 2},
		{name: "all six at the track's end", settle: SettleConfig{Batch: 28 * time.Second, Quiet: time.Minute}, batches: 1, perBatch: 6},
		{name: "behind on live audio, nothing is settled", settle: SettleConfig{Batch: 8 * time.Second, Quiet: time.Minute}, overloaded: true},
		{name: "a quiet speaker settles each utterance", settle: SettleConfig{Batch: 28 * time.Second, Quiet: 700 * time.Millisecond}, batches: 6, perBatch: 1},
		// The engine holds the settled calls (two utterances, longer than
		// any live one): the queue (1) fills, a batch is dropped, and the
		// live revision is complete all the same.
		{name: "a full queue drops batches, never live transcripts", settle: SettleConfig{Batch: 8 * time.Second, Quiet: time.Minute, Queue: 1}, hold: true, perBatch: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eng := &regionEngine{}
			var before func(*Worker)
			if tt.hold {
				// Let the engine go once the queue has overflowed.
				eng.hold = make(chan struct{})
				before = func(w *Worker) {
					go func() {
						for metricValue(w.m.settleDropped) == 0 {
							time.Sleep(10 * time.Millisecond)
						}
						close(eng.hold)
					}()
				}
			}
			if tt.overloaded {
				before = func(w *Worker) { w.lag.over.Store(true) }
			}
			out, w := runWorker(t, foxTrack(t, "trk_s"), WorkerConfig{Engine: eng, Language: "en", Settle: tt.settle}, before)

			var liveTL, settledTL []event.Timeline
			for _, e := range envelopes(t, out.Topic(event.TopicTranscripts)) {
				switch {
				case !e.Processing.IsSecondPass():
					liveTL = append(liveTL, *e.Timeline)
				case e.Processing.Options["pass"] == event.PassSettled && e.Processing.Options["batch"] == tt.settle.Batch.String():
					settledTL = append(settledTL, *e.Timeline)
				default:
					t.Fatalf("unexpected processing %+v", e.Processing)
				}
			}
			if len(liveTL) != 6 {
				t.Fatalf("%d live transcripts, want one per utterance (6)", len(liveTL))
			}
			dropped := int(metricValue(w.m.settleDropped))
			if tt.hold {
				if dropped == 0 || len(settledTL)+tt.perBatch*dropped != 6 {
					t.Fatalf("held engine: %d settled transcripts, %d batches of %d dropped; want some dropped and the rest settled (6 in all)", len(settledTL), dropped, tt.perBatch)
				}
			} else {
				n, longest := eng.settledCalls()
				if tt.overloaded {
					if n != 0 || dropped != 3 {
						t.Fatalf("behind on live audio: %d settled batches, %d dropped; want none settled, 3 dropped", n, dropped)
					}
				} else if n != tt.batches || dropped != 0 {
					t.Fatalf("%d settled batches (%d dropped), want %d", n, dropped, tt.batches)
				}
				if tt.batches > 0 && (longest > tt.settle.Batch.Seconds() || longest < float64(tt.perBatch)*2.5) {
					t.Fatalf("longest batch %.2f s: want %d utterances, within %v", longest, tt.perBatch, tt.settle.Batch)
				}
				if len(settledTL) != tt.batches*tt.perBatch {
					t.Fatalf("%d settled transcripts, want %d", len(settledTL), tt.batches*tt.perBatch)
				}
			}
			// Every settled word lands on its utterance's place on the
			// track's timeline: where the live revision put it.
			for _, s := range settledTL {
				found := false
				for _, l := range liveTL {
					if math.Abs(float64(s.FirstSample-l.FirstSample)) < 0.05*event.SampleRate &&
						math.Abs(float64(s.LastSample-l.LastSample)) < 0.05*event.SampleRate {
						found = true
					}
				}
				if !found || s.Track != "trk_s" {
					t.Fatalf("settled segment %s %d-%d matches no live one %v", s.Track, s.FirstSample, s.LastSample, liveTL)
				}
			}
		})
	}
}
