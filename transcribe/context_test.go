package transcribe

import (
	"context"
	"slices"
	"testing"
	"time"
)

// utt is an utterance of n audio samples at audio index k, each sample
// holding v (so the context's pieces can be told apart).
func utt(k, n int64, v float32) Utterance {
	s := make([]float32, n)
	for i := range s {
		s[i] = v
	}
	return Utterance{Start: ToTimeline(k), Samples: s, Own: AudioSpan(k, n)}
}

// runs describes x as (value, length) pairs.
func runs(x []float32) [][2]float32 {
	var out [][2]float32
	for _, v := range x {
		if n := len(out); n > 0 && out[n-1][0] == v {
			out[n-1][1]++
			continue
		}
		out = append(out, [2]float32{v, 1})
	}
	return out
}

func TestTrackContextExtend(t *testing.T) {
	const ms = AudioRate / 1000
	c := NewTrackContext(ContextConfig{Length: 2 * time.Second, Gap: 100 * time.Millisecond, MaxAge: 10 * time.Second})
	// Nothing yet: the utterance goes alone.
	if v, ok := c.extend(utt(0, 100*ms, 1)); ok || len(v.Samples) != 100*ms {
		t.Fatalf("empty context extended the utterance: %d samples", len(v.Samples))
	}
	c.add(utt(0, 1000*ms, 1))
	// A cut at MaxLength: the next utterance overlaps the previous one by
	// 200 ms; the overlap is not repeated, and no silence comes between.
	c.add(utt(800*ms, 600*ms, 2))
	// After a 3 s pause (shortened to 100 ms):
	u := utt(4400*ms, 500*ms, 3)
	u.Own = AudioSpan(4400*ms, 500*ms)
	v, ok := c.extend(u)
	if !ok {
		t.Fatal("no context")
	}
	want := [][2]float32{{1, 800 * ms}, {2, 600 * ms}, {0, 100 * ms}, {3, 500 * ms}}
	// The context is 2 s: 100 ms pause + 600 ms + the last 1300 ms... of
	// which only 800 ms exist.
	if got := runs(v.Samples); !slices.Equal(got, want) {
		t.Fatalf("extended audio runs %v, want %v", got, want)
	}
	if v.Start != u.Start-ToTimeline(1500*ms) || v.Own != u.Own || v.Span().Last != u.Span().Last {
		t.Fatalf("extended utterance: start %d own %+v span %+v; want start %d, own and end unchanged", v.Start, v.Own, v.Span(), u.Start-ToTimeline(1500*ms))
	}

	// Length bounds the context: the oldest audio is cut.
	short := NewTrackContext(ContextConfig{Length: 300 * time.Millisecond, Gap: 100 * time.Millisecond})
	short.add(utt(0, 1000*ms, 1))
	v, _ = short.extend(utt(2000*ms, 100*ms, 3))
	if got, want := runs(v.Samples), [][2]float32{{1, 200 * ms}, {0, 100 * ms}, {3, 100 * ms}}; !slices.Equal(got, want) {
		t.Fatalf("bounded context runs %v, want %v", got, want)
	}

	// The pause alone can fill the context.
	tiny := NewTrackContext(ContextConfig{Length: 50 * time.Millisecond, Gap: 100 * time.Millisecond})
	tiny.add(utt(0, 1000*ms, 1))
	v, _ = tiny.extend(utt(2000*ms, 100*ms, 3))
	if got, want := runs(v.Samples), [][2]float32{{0, 50 * ms}, {3, 100 * ms}}; !slices.Equal(got, want) {
		t.Fatalf("pause-only context runs %v, want %v", got, want)
	}

	// Speech older than MaxAge is forgotten.
	c.add(u)
	if v, ok := c.extend(utt(20000*ms, 100*ms, 4)); ok {
		t.Fatalf("context from 15 s ago with MaxAge 10 s: %v", runs(v.Samples))
	}

	// Off.
	if NewTrackContext(ContextConfig{}) != nil || NewTrackContext(ContextConfig{Length: -1}) != nil {
		t.Fatal("zero or negative Length did not turn context off")
	}
	var off *TrackContext
	off.add(u)
	if _, ok := off.extend(u); ok {
		t.Fatal("nil context extended")
	}
}

func TestTrackContextKeepsLittle(t *testing.T) {
	const ms = AudioRate / 1000
	c := NewTrackContext(ContextConfig{Length: time.Second})
	for i := range int64(100) {
		c.add(utt(i*1000*ms, 500*ms, 1))
	}
	if len(c.parts) > 4 {
		t.Fatalf("%d parts kept for 1 s of context", len(c.parts))
	}
}

// contextEngine hears "before" in the first half of any audio longer than
// the utterance and "now" at its end; words or not as set.
type contextEngine struct {
	words bool
	calls []int
}

func (e *contextEngine) Transcribe(_ context.Context, a Audio) (Result, error) {
	e.calls = append(e.calls, len(a.Samples))
	d := float64(len(a.Samples)) / AudioRate
	var segs []Segment
	if d > 1 {
		segs = append(segs, Segment{Start: 0, End: d - 1, Text: " before", Words: []Word{{Word: " before", Start: 0.1, End: 0.5}}})
	}
	segs = append(segs, Segment{Start: d - 1, End: d, Text: " now", Words: []Word{{Word: " now", Start: d - 0.8, End: d - 0.2}}})
	if !e.words {
		for i := range segs {
			segs[i].Words = nil
		}
		if len(segs) == 2 {
			// Without word times an engine may well join them.
			segs = []Segment{{Start: 0, End: d, Text: " before now"}}
		}
	}
	return Result{Language: "en", Segments: segs}, nil
}
func (e *contextEngine) Name() string  { return "fake" }
func (e *contextEngine) Model() string { return "test" }

func TestTrackContextTranscribeDropsContextWords(t *testing.T) {
	const ms = AudioRate / 1000
	for _, words := range []bool{true, false} {
		eng := &contextEngine{words: words}
		c := NewTrackContext(ContextConfig{Length: 8 * time.Second})
		first := utt(0, 2000*ms, 0.1)
		first.Speech = []Span{first.Span()}
		second := utt(5000*ms, 1000*ms, 0.1)
		second.Speech = []Span{second.Span()}
		var texts []string
		for _, u := range []Utterance{first, second} {
			before := len(eng.calls)
			at, res, sent, err := c.Transcribe(context.Background(), eng, u, Audio{Language: "en"})
			if err != nil {
				t.Fatal(err)
			}
			sum := 0
			for _, n := range eng.calls[before:] {
				sum += n
			}
			if sent != sum {
				t.Fatalf("sent %d samples, engine calls %v", sent, eng.calls[before:])
			}
			for _, tr := range Attribute(at, res, DefaultFilter) {
				texts = append(texts, tr.Data.Text)
				if tr.Span.First < u.Start || tr.Span.Last > u.Span().Last {
					t.Fatalf("words %v: transcript at %+v outside the utterance %+v", words, tr.Span, u.Span())
				}
			}
		}
		// The first utterance has no context: it hears "before" and "now";
		// the second hears "before" only in its context, which is dropped
		// (by word time, or by sending the utterance again alone).
		want := []string{"before", "now", "now"}
		if !words {
			want = []string{"before now", "now"}
		}
		if !slices.Equal(texts, want) {
			t.Fatalf("words %v: transcripts %q, want %q", words, texts, want)
		}
		// Without word times the second utterance is sent again alone.
		if n := len(eng.calls); (words && n != 2) || (!words && n != 3) {
			t.Fatalf("words %v: %d engine calls %v", words, n, eng.calls)
		}
	}
}

// FuzzTrackContext: whatever the utterances' positions and lengths, the
// context never exceeds Length and the utterance ends the audio sent.
func FuzzTrackContext(f *testing.F) {
	f.Add(int64(8000), int64(300), []byte{10, 20, 5, 30, 200, 3, 1, 1})
	f.Add(int64(50), int64(1000), []byte{255, 255, 0, 0, 7, 9})
	f.Fuzz(func(t *testing.T, lengthMS, gapMS int64, steps []byte) {
		const ms = AudioRate / 1000
		c := NewTrackContext(ContextConfig{Length: time.Duration(lengthMS%30000) * time.Millisecond, Gap: time.Duration(gapMS%5000) * time.Millisecond})
		var k int64
		for i := 0; i+1 < len(steps); i += 2 {
			// A step back (a cut's overlap) or a pause, then an utterance.
			k += (int64(steps[i]) - 40) * 20 * ms
			k = max(k, 0)
			u := utt(k, (int64(steps[i+1])%100+1)*20*ms, float32(i+1))
			v, ok := c.extend(u)
			if c != nil && ok && (v.Start > u.Start || int64(len(v.Samples)-len(u.Samples)) > c.length ||
				!slices.Equal(v.Samples[len(v.Samples)-len(u.Samples):], u.Samples) || ToAudio(u.Start-v.Start) != int64(len(v.Samples)-len(u.Samples))) {
				t.Fatalf("step %d: extended %d..+%d for %d..+%d, length %d", i, v.Start, len(v.Samples), u.Start, len(u.Samples), c.length)
			}
			c.add(u)
			k += int64(len(u.Samples))
		}
	})
}
