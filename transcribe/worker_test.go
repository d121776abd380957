package transcribe

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/bustest"
)

// fakeEngine answers every utterance with one segment covering it, and
// fails the first failFirst calls. Like a real engine it fails a call
// whose context has ended.
type fakeEngine struct {
	calls     atomic.Int64
	failFirst int64
}

func (f *fakeEngine) Transcribe(ctx context.Context, a Audio) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	if f.calls.Add(1) <= f.failFirst {
		return Result{}, errors.New("engine down")
	}
	secs := float64(len(a.Samples)) / AudioRate
	return Result{Language: "en", LanguageProb: 0.99, Segments: []Segment{{
		Start: 0, End: secs, Text: "the quick brown fox", AvgLogProb: -0.2, NoSpeechProb: 0.01,
	}}}, nil
}
func (f *fakeEngine) Name() string  { return "fake" }
func (f *fakeEngine) Model() string { return "test" }

// chunkRecords turns the fox packets into audio.chunk records of one track.
func chunkRecords(t *testing.T, track string) []bus.Message {
	t.Helper()
	return chunkMessages(t, track, chunks(0, foxPackets(t), 50))
}

// chunkMessages turns chunks into audio.chunk records of one track, the
// last one final.
func chunkMessages(t *testing.T, track string, cs []chunk) []bus.Message {
	t.Helper()
	var out []bus.Message
	for i, c := range cs {
		tl := c.tl
		tl.Track = track
		e, err := event.New(event.TypeAudioChunk, event.Producer{Name: "test"}, nil, "r1_room", "ses_s", "p1_spk", &tl,
			event.AudioChunk{Codec: "opus", Channels: 1, Seq: int64(i), Frames: len(c.data.Packets), Final: i == len(cs)-1})
		if err != nil {
			t.Fatal(err)
		}
		e.Hops.Recorded = event.Stamp(time.Now())
		if err := e.Seal(context.Background(), testKeys, c.data); err != nil {
			t.Fatal(err)
		}
		b, err := e.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, bus.Message{Topic: event.TopicAudio, Key: []byte(track), Value: b})
	}
	return out
}

// runUntilStopped runs a worker on cons until the returned stop is called; stop
// waits for Run (failing the test on its error) and closes the worker.
// Only the first call counts.
func runUntilStopped(t *testing.T, ctx context.Context, cons consumer, out *bustest.Capture, eng Engine) (stop func()) {
	t.Helper()
	w, err := NewWorker(WorkerConfig{Consumer: cons, Sender: out, Engine: eng, Language: "en", Producer: event.Producer{Name: "t"}, Keys: testKeys})
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
			_ = w.Close()
		})
	}
}

func TestWorker(t *testing.T) {
	tests := []struct {
		name           string
		failFirst      int64
		garbage        bool
		wantTranscript bool
		wantDead       int
	}{
		{name: "transcribes", wantTranscript: true},
		{name: "engine error dead-letters the utterance's chunks", failFirst: 1000, wantDead: 1},
		{name: "malformed record dead-lettered, the rest goes on", garbage: true, wantTranscript: true, wantDead: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			recs := chunkRecords(t, "trk_a")
			if tt.garbage {
				recs = append([]bus.Message{{Topic: event.TopicAudio, Key: []byte("trk_a"), Value: []byte(`{"not":"an event"}`)}}, recs...)
			}
			brokers := bustest.Preload(t, ctx, event.TopicAudio, recs...)
			cons, err := bus.NewConsumer(bus.ConsumerConfig{Cluster: brokers, GroupID: "g", Topics: []string{event.TopicAudio}, StartOffset: bus.FirstOffset})
			if err != nil {
				t.Fatal(err)
			}
			out := &bustest.Capture{}
			eng := &fakeEngine{failFirst: tt.failFirst}
			stop := runUntilStopped(t, ctx, cons, out, eng)
			defer stop()
			// Wait until the whole track was handled: the final chunk flushes.
			deadline := time.Now().Add(90 * time.Second)
			finished := func() bool {
				return eng.calls.Load() > 0 &&
					(!tt.wantTranscript || len(out.Topic(event.TopicTranscripts)) > 0) &&
					len(out.Topic(event.TopicDeadLetter)) >= tt.wantDead
			}
			for !finished() {
				if time.Now().After(deadline) {
					t.Fatalf("nothing came out: %d engine calls, %d records", eng.calls.Load(), len(out.All()))
				}
				time.Sleep(50 * time.Millisecond)
			}
			time.Sleep(300 * time.Millisecond)
			stop()

			trs := out.Topic(event.TopicTranscripts)
			if got := len(trs) > 0; got != tt.wantTranscript {
				t.Fatalf("transcripts: %d, want some=%v", len(trs), tt.wantTranscript)
			}
			if dead := len(out.Topic(event.TopicDeadLetter)); dead < tt.wantDead {
				t.Fatalf("dead letters: %d, want >= %d", dead, tt.wantDead)
			}
			for _, m := range trs {
				e, err := event.Decode(m.Value)
				if err != nil {
					t.Fatal(err)
				}
				var data TranscriptSegmentData
				if err := e.Open(context.Background(), testKeys, &data); err != nil || data.Text != "the quick brown fox" {
					t.Fatalf("transcript data %+v, %v", data, err)
				}
				if e.Type != event.TypeTranscript || e.Timeline.Track != "trk_a" || e.Speaker != "p1_spk" || string(m.Key) != "r1_room" {
					t.Fatalf("transcript event %+v key %s", e, m.Key)
				}
				if e.Hops.Recorded == nil || e.Hops.Transcribed == nil || e.Processing.Engine != "fake" {
					t.Fatalf("hops or processing missing: %+v %+v", e.Hops, e.Processing)
				}
				// The speech in fox.opus sits between its 1 s of leading and
				// trailing silence: the transcript must not claim the silence.
				if e.Timeline.FirstSample < 36000 || e.Timeline.LastSample > int64(len(foxPackets(t)))*960-36000 {
					t.Fatalf("transcript covers %d-%d, beyond the speech", e.Timeline.FirstSample, e.Timeline.LastSample)
				}
			}
		})
	}
}

// blockingEngine holds every call until its context ends and then fails
// as a network client does, without naming the cancellation.
type blockingEngine struct {
	once   sync.Once
	called chan struct{}
}

func (b *blockingEngine) Transcribe(ctx context.Context, _ Audio) (Result, error) {
	b.once.Do(func() { close(b.called) })
	<-ctx.Done()
	return Result{}, errors.New("connection reset by peer")
}
func (b *blockingEngine) Name() string  { return "fake" }
func (b *blockingEngine) Model() string { return "test" }

// TestWorkerStoppedMidCall: a worker stopped while the engine is on an
// utterance dead-letters nothing and acks nothing of it; the next worker
// of the group gets the chunks again and transcribes them.
func TestWorkerStoppedMidCall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	brokers := bustest.Preload(t, ctx, event.TopicAudio, chunkRecords(t, "trk_a")...)
	out := &bustest.Capture{}
	start := func(eng Engine) func() {
		cons, err := bus.NewConsumer(bus.ConsumerConfig{Cluster: brokers, GroupID: "g", Topics: []string{event.TopicAudio}, StartOffset: bus.FirstOffset,
			DrainTimeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return runUntilStopped(t, ctx, cons, out, eng)
	}

	blocked := &blockingEngine{called: make(chan struct{})}
	stop1 := start(blocked)
	select {
	case <-blocked.called:
	case <-ctx.Done():
		t.Fatal("the engine was never called")
	}
	stop1()
	if n := len(out.Topic(event.TopicDeadLetter)); n != 0 {
		t.Fatalf("%d records dead-lettered by a stopped worker, want 0", n)
	}

	eng := &fakeEngine{}
	defer start(eng)()
	for len(out.Topic(event.TopicTranscripts)) == 0 {
		if ctx.Err() != nil {
			t.Fatalf("the next worker transcribed nothing (%d engine calls): the chunks were not redelivered", eng.calls.Load())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := len(out.Topic(event.TopicDeadLetter)); n != 0 {
		t.Fatalf("%d dead letters, want 0", n)
	}
}

// twoGenerations stands in for a consumer-group member whose partition
// stays with it across a rebalance: it hands the first records to the
// handler under one generation's context, ends that generation, then
// delivers again from the first record not acked (Kafka's committed
// offset) under a new context, as bus.Consumer does.
type twoGenerations struct {
	recs  []bus.Message
	split int
	acked []atomic.Bool
}

func (c *twoGenerations) Run(ctx context.Context, h bus.Handler) error {
	deliver := func(gctx context.Context, from, to int) {
		for i := from; i < to; i++ {
			h(gctx, bus.NewDelivery(c.recs[i], func() { c.acked[i].Store(true) }))
		}
	}
	g1, end1 := context.WithCancel(ctx)
	deliver(g1, 0, c.split)
	time.Sleep(500 * time.Millisecond) // the drain
	end1()
	first := 0
	for first < len(c.recs) && c.acked[first].Load() {
		first++
	}
	g2, end2 := context.WithCancel(ctx)
	defer end2()
	deliver(g2, first, len(c.recs))
	<-ctx.Done()
	return nil
}
func (c *twoGenerations) Close() error { return nil }

// TestWorkerAcrossRebalance: a track whose partition stays with the worker
// across a rebalance goes on in the new generation: every chunk is acked,
// the track is transcribed, nothing is dead-lettered.
func TestWorkerAcrossRebalance(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	recs := chunkMessages(t, "trk_a", chunks(0, foxPackets(t), 10))
	cons := &twoGenerations{recs: recs, split: len(recs) / 2, acked: make([]atomic.Bool, len(recs))}
	out := &bustest.Capture{}
	eng := &fakeEngine{}
	defer runUntilStopped(t, ctx, cons, out, eng)()
	allAcked := func() bool {
		for i := range cons.acked {
			if !cons.acked[i].Load() {
				return false
			}
		}
		return true
	}
	for !allAcked() || len(out.Topic(event.TopicTranscripts)) == 0 {
		if ctx.Err() != nil {
			var n int
			for i := range cons.acked {
				if cons.acked[i].Load() {
					n++
				}
			}
			t.Fatalf("%d of %d chunks acked, %d transcripts, %d engine calls", n, len(recs), len(out.Topic(event.TopicTranscripts)), eng.calls.Load())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := len(out.Topic(event.TopicDeadLetter)); n != 0 {
		t.Fatalf("%d dead letters, want 0", n)
	}
}
