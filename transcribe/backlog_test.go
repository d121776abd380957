package transcribe

import (
	"context"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/bustest"
)

// TestSegmenterResume: a segmenter that starts inside the tail of an
// utterance another worker transcribed drops that tail, and cuts what
// follows exactly as a segmenter that saw the whole track.
func TestSegmenterResume(t *testing.T) {
	x := concat(silence(16000, 500*time.Millisecond), voiced(16000, 2*time.Second, 0.5), silence(16000, 900*time.Millisecond),
		voiced(16000, 1500*time.Millisecond, 0.5), silence(16000, time.Second))
	full := segment(t, SegmenterConfig{}, 0, x, 320)
	if len(full) != 2 {
		t.Fatalf("whole track: %s, want 2 utterances", describe(full))
	}
	resumeAt := func(from int) []Utterance {
		s := newSegmenter(t, SegmenterConfig{})
		s.Resume()
		var out []Utterance
		for i := from; i < len(x); i += 320 {
			out = append(out, s.Push(int64(i)*Ratio, x[i:min(i+320, len(x))])...)
		}
		return append(out, s.Flush()...)
	}
	for _, tc := range []struct {
		name string
		from int // audio sample the second worker starts at
		want []Utterance
	}{
		{"inside the first utterance's speech", 16000 * 2, full[1:]},
		{"where the first worker's commit leaves the second utterance", int(ToAudio(full[1].Start)) - 300*16, full[1:]},
		{"a whole pause before the first", 0, full},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := resumeAt(tc.from)
			if len(got) != len(tc.want) {
				t.Fatalf("got %s, want %s", describe(got), describe(tc.want))
			}
			for i := range got {
				if got[i].Start != tc.want[i].Start || len(got[i].Samples) != len(tc.want[i].Samples) || got[i].Own != tc.want[i].Own {
					t.Fatalf("utterance %d: got %s, want %s (cuts must match the first worker's, or event IDs differ)", i, describe(got), describe(tc.want))
				}
			}
		})
	}
}

// langEngine records the language of each request.
type langEngine struct {
	mu    sync.Mutex
	langs []string
}

func (e *langEngine) Transcribe(_ context.Context, a Audio) (Result, error) {
	e.mu.Lock()
	e.langs = append(e.langs, a.Language)
	e.mu.Unlock()
	return Result{Language: a.Language, Segments: []Segment{{Start: 0, End: float64(len(a.Samples)) / AudioRate, Text: "marhaba", AvgLogProb: -0.1}}}, nil
}
func (e *langEngine) Name() string  { return "fake" }
func (e *langEngine) Model() string { return "test" }

func (e *langEngine) seen() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.langs...)
}

// runWorker feeds recs (audio chunks of one track; the fox track of room
// r1_room when nil) to a worker built from cfg on an embedded broker until
// the final chunk is handled and the settled pass has nothing pending, and
// returns what it produced and the worker.
func runWorker(t *testing.T, recs []bus.Message, cfg WorkerConfig, before func(w *Worker)) (*bustest.Capture, *Worker) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if recs == nil {
		recs = chunkRecords(t, "trk_a")
	}
	brokers := bustest.Preload(t, ctx, event.TopicAudio, recs...)
	cons, err := bus.NewConsumer(bus.ConsumerConfig{Cluster: brokers, GroupID: "g", Topics: []string{event.TopicAudio}, StartOffset: bus.FirstOffset})
	if err != nil {
		t.Fatal(err)
	}
	out := &bustest.Capture{}
	cfg.Consumer, cfg.Sender, cfg.Producer, cfg.Keys = cons, out, event.Producer{Name: "t"}, testKeys
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	w, err := NewWorker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if before != nil {
		before(w)
	}
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	deadline := time.Now().Add(90 * time.Second)
	for {
		l, err := cons.Lag(ctx)
		if err == nil && len(l) == 1 && l[0].Lag == 0 && l[0].End == int64(len(recs)) && metricValue(w.m.settlePending) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the worker did not finish the track: lag %+v, %v", l, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	_ = w.Close()
	return out, w
}

// TestWorkerRoomLanguage: a room's configured language reaches the engine
// request and the transcript's processing (its revision).
func TestWorkerRoomLanguage(t *testing.T) {
	for _, tc := range []struct {
		name string
		lang func(string) string
		want string
	}{
		{"room listed", func(r string) string { return map[string]string{"r1_room": "ar"}[r] }, "ar"},
		{"room not listed: the default", func(string) string { return "" }, "en"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eng := &langEngine{}
			out, _ := runWorker(t, nil, WorkerConfig{Engine: eng, Language: "en", RoomLanguage: tc.lang}, nil)
			langs := eng.seen()
			if len(langs) == 0 {
				t.Fatal("no engine call")
			}
			for _, l := range langs {
				if l != tc.want {
					t.Fatalf("engine asked for %q, want %q", l, tc.want)
				}
			}
			trs := out.Topic(event.TopicTranscripts)
			if len(trs) == 0 {
				t.Fatal("no transcript")
			}
			e, err := event.Decode(trs[0].Value)
			if err != nil {
				t.Fatal(err)
			}
			if got := e.Processing.Options["language"]; got != tc.want {
				t.Fatalf("processing language %q, want %q", got, tc.want)
			}
		})
	}
}

// TestWorkerCapacityMode: under overload, chunks of rooms nobody flagged
// are acknowledged untranscribed and counted; flagged rooms go on.
func TestWorkerCapacityMode(t *testing.T) {
	for _, tc := range []struct {
		name     string
		flagged  []string
		overload bool
		wantSkip bool
	}{
		{"overloaded, room not flagged: skipped", nil, true, true},
		{"overloaded, room flagged: transcribed", []string{"r1_room"}, true, false},
		{"not overloaded: transcribed", nil, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eng := &fakeEngine{}
			reg := prometheus.NewRegistry()
			out, w := runWorker(t, nil, WorkerConfig{Engine: eng, Language: "en", Metrics: reg,
				Backlog: Backlog{LagAlert: 10, CapacityMode: true, Flagged: NewRoomSet(0, tc.flagged...)}},
				func(w *Worker) { w.lag.over.Store(tc.overload) })
			skipped := metricValue(w.m.skippedChunks)
			trs := len(out.Topic(event.TopicTranscripts))
			if tc.wantSkip {
				if eng.calls.Load() != 0 || trs != 0 || skipped == 0 || metricValue(w.m.skippedSeconds) < 4 {
					t.Fatalf("engine calls %d, transcripts %d, skipped %v chunks: want everything skipped", eng.calls.Load(), trs, skipped)
				}
				return
			}
			if trs == 0 || skipped != 0 {
				t.Fatalf("transcripts %d, skipped %v: want transcribed", trs, skipped)
			}
		})
	}
}

// lagConsumer is a consumer whose lag the test sets.
type lagConsumer struct {
	mu  sync.Mutex
	lag int64
}

func (c *lagConsumer) Run(ctx context.Context, _ bus.Handler) error { <-ctx.Done(); return nil }
func (c *lagConsumer) Close() error                                 { return nil }
func (c *lagConsumer) Lag(context.Context) ([]bus.PartitionLag, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return []bus.PartitionLag{{Topic: event.TopicAudio, Lag: c.lag}}, nil
}
func (c *lagConsumer) set(n int64) { c.mu.Lock(); c.lag = n; c.mu.Unlock() }

// TestWorkerLagAlert: lag over the threshold raises one operational alert
// per overload, and the metrics follow; it clears under half the
// threshold.
func TestWorkerLagAlert(t *testing.T) {
	cons := &lagConsumer{}
	out := &bustest.Capture{}
	reg := prometheus.NewRegistry()
	w, err := NewWorker(WorkerConfig{Consumer: cons, Sender: out, Engine: &fakeEngine{}, Producer: event.Producer{Name: "t", Instance: "w1"},
		Keys: testKeys, Metrics: reg, Backlog: Backlog{LagAlert: 100, CheckInterval: 20 * time.Millisecond},
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn + 10}))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	wait := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 30 s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	alerts := func() int { return len(out.Topic(event.TopicOps)) }
	cons.set(50)
	wait("lag gauge", func() bool { return metricValue(w.m.lag) == 50 })
	if alerts() != 0 || w.Overloaded() {
		t.Fatal("alert under the threshold")
	}
	cons.set(150)
	wait("overload", w.Overloaded)
	wait("alert", func() bool { return alerts() == 1 })
	cons.set(80) // under the threshold, over half: stays raised, no new alert
	wait("lag gauge", func() bool { return metricValue(w.m.lag) == 80 })
	cons.set(160)
	wait("lag gauge", func() bool { return metricValue(w.m.lag) == 160 })
	if alerts() != 1 || !w.Overloaded() {
		t.Fatalf("%d alerts, overloaded %v: want one alert per overload", alerts(), w.Overloaded())
	}
	cons.set(10)
	wait("recovery", func() bool { return !w.Overloaded() })
	if metricValue(w.m.overloaded) != 0 || metricValue(w.m.lagAlerts) != 1 {
		t.Fatal("metrics do not follow")
	}
	if n := len(out.Topic(event.TopicAlerts)); n != 0 {
		t.Fatalf("%d records on the alerts topic: operational alerts go to %s, only detectors write moderation alerts", n, event.TopicOps)
	}
	e, err := event.Decode(out.Topic(event.TopicOps)[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	var a event.Alert
	if err := e.DecodePayload(&a); err != nil {
		t.Fatal(err)
	}
	if e.Type != event.TypeAlert || a.Category != CategoryLag || a.Score != 150 || e.Room != "" || e.Protected != nil {
		t.Fatalf("alert %+v payload %+v", e, a)
	}
}

// TestRoomSet: a fixed list, alerts and alert actions flag rooms; the
// worker's own lag alerts and other records do not.
func TestRoomSet(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	s := NewRoomSet(time.Hour, "r1_fixed")
	s.now = func() time.Time { return now }
	mk := func(typ event.Type, room string, payload any, at time.Time) *bus.Delivery {
		e, err := event.New(typ, event.Producer{Name: "t"}, nil, room, "ses_x", "", nil, payload, "x")
		if err != nil {
			t.Fatal(err)
		}
		e.Time = at
		b, err := e.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return &bus.Delivery{Message: bus.Message{Value: b}}
	}
	s.Handle(context.Background(), mk(event.TypeAlert, "r1_alerted", event.Alert{Category: "abuse.threat"}, now))
	s.Handle(context.Background(), mk(event.TypeAlertAction, "r1_actioned", event.AlertAction{Action: "confirm"}, now.Add(-30*time.Minute)))
	s.Handle(context.Background(), mk(event.TypeAlert, "r1_old", event.Alert{Category: "abuse.threat"}, now.Add(-2*time.Hour)))
	s.Handle(context.Background(), mk(event.TypeAlert, "r1_lag", event.Alert{Category: CategoryLag}, now))
	s.Handle(context.Background(), mk(event.TypeTranscript, "r1_talk", nil, now))
	s.Handle(context.Background(), &bus.Delivery{Message: bus.Message{Value: []byte("not json")}})
	got := map[string]bool{}
	for _, r := range []string{"r1_fixed", "r1_alerted", "r1_actioned", "r1_old", "r1_lag", "r1_talk", "r1_none"} {
		got[r] = s.Flagged(r)
	}
	want := map[string]bool{"r1_fixed": true, "r1_alerted": true, "r1_actioned": true}
	for r := range got {
		if got[r] != want[r] {
			t.Errorf("Flagged(%s) = %v, want %v", r, got[r], want[r])
		}
	}
	_ = reflect.DeepEqual
}

// metricValue reads a gauge or counter.
func metricValue(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	if m.Gauge != nil {
		return m.Gauge.GetValue()
	}
	return m.Counter.GetValue()
}

// TestPromptContext: the previous utterance of the track conditions the
// next one only when it ended within 30 s; long text keeps its end.
func TestPromptContext(t *testing.T) {
	var c promptContext
	u := func(startSec float64) Utterance {
		return Utterance{Start: sec(startSec), Samples: make([]float32, 16000)}
	}
	if p := c.prompt(u(0)); p != "" {
		t.Fatalf("first utterance prompted with %q", p)
	}
	c.update(u(0), nil)
	if c.set {
		t.Fatal("an utterance without text set the context")
	}
	c.update(u(0), []string{"Good morning.", "Welcome to the call."})
	if p := c.prompt(u(5)); p != "Good morning. Welcome to the call." {
		t.Fatalf("prompt %q", p)
	}
	if p := c.prompt(u(40)); p != "" {
		t.Fatalf("prompt %q after a 39 s gap", p)
	}
	long := strings.Repeat("word ", 100) + "end."
	c.update(u(10), []string{long})
	if p := c.prompt(u(12)); len(p) > promptMaxBytes || !strings.HasSuffix(p, "end.") || strings.HasPrefix(p, "ord") {
		t.Fatalf("long prompt %q", p)
	}
}
