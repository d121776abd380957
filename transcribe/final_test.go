package transcribe

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/bustest"
	"github.com/earshot/earshot/storage"
)

// TestFinalPass: after session_ended, the final pass waits for the
// segments the manifest lists (the last one is uploaded late), replays the
// session in one batch as a new revision, and goes on past a session
// with no stored audio.
func TestFinalPass(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	fs := newFoxSession(t, "ses_f", 3)
	store, keys := fs.store, fs.keys
	fs.putSegments(t, keys[:2]...)
	man, _ := json.Marshal(map[string]any{"tracks": []any{map[string]any{"segments": []any{
		map[string]any{"key": keys[0]}, map[string]any{"key": keys[1]}, map[string]any{"key": keys[2]}}}}})
	fs.put(t, event.ManifestKey("r1_room", "ses_f"), man)

	ended := func(session, manifest string) bus.Message {
		e, err := event.New(event.TypeSessionEnded, event.Producer{Name: "t"}, nil, "r1_room", session, "", nil, event.SessionEnded{Reason: "room closed", Manifest: manifest}, "end")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := e.Marshal()
		return bus.Message{Topic: event.TopicLifecycle, Key: []byte("r1_room"), Value: b}
	}
	brokers := bustest.Preload(t, ctx, event.TopicLifecycle,
		ended("ses_empty", ""), ended("ses_f", event.ManifestKey("r1_room", "ses_f")))
	cons, err := bus.NewConsumer(bus.ConsumerConfig{Cluster: brokers, GroupID: "final", Topics: []string{event.TopicLifecycle}, StartOffset: bus.FirstOffset})
	if err != nil {
		t.Fatal(err)
	}
	eng, out := &wordEngine{}, &bustest.Capture{}
	f, err := NewFinal(FinalConfig{Consumer: cons, Poll: 50 * time.Millisecond, Wait: 20 * time.Second, Replay: ReplayConfig{
		Store: store, Engine: eng, Sender: out, Producer: event.Producer{Name: "t"}, Keys: testKeys, Language: "en", Batch: 25 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	time.Sleep(500 * time.Millisecond)
	if got := len(out.Topic(event.TopicTranscripts)); got != 0 {
		t.Fatalf("%d transcripts before the manifest's last segment was stored", got)
	}
	fs.putSegments(t, keys[2]) // the late upload
	deadline := time.Now().Add(time.Minute)
	for len(out.Topic(event.TopicTranscripts)) < 3 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	evs := out.Topic(event.TopicTranscripts)
	if len(evs) != 3 || eng.calls != 1 {
		t.Fatalf("%d transcripts from %d engine calls: want 3 utterances' transcripts from one batch", len(evs), eng.calls)
	}
	for _, m := range evs {
		e, err := event.Decode(m.Value)
		if err != nil {
			t.Fatal(err)
		}
		if e.Session != "ses_f" || e.Processing.Options["batch"] != "25s" || e.Processing.Options[ReplayMarker] != "1" || !e.Processing.IsFinalPass() {
			t.Errorf("transcript %+v: want the batched replay revision of ses_f", e)
		}
	}
}

func TestNewFinalChecksConfig(t *testing.T) {
	if _, err := NewFinal(FinalConfig{}); err == nil {
		t.Error("empty config accepted")
	}
	cons := &bus.Consumer{}
	if _, err := NewFinal(FinalConfig{Consumer: cons, Replay: ReplayConfig{Store: &storage.Local{}, Engine: &wordEngine{}, Sender: &bustest.Capture{}}}); err == nil {
		t.Error("no batch accepted")
	}
}

// failingEngine fails every call, as an engine that is down does.
type failingEngine struct{ calls atomic.Int32 }

func (e *failingEngine) Transcribe(context.Context, Audio) (Result, error) {
	e.calls.Add(1)
	return Result{}, errors.New("engine unavailable")
}
func (e *failingEngine) Name() string  { return "failing" }
func (e *failingEngine) Model() string { return "test" }

// TestFinalPassDeadLettersWhatItCannotReplay: a session_ended record that
// is malformed, or whose session cannot be replayed after the configured
// attempts, is dead-lettered with a reason and acked, so that the
// sessions after it on the partition still get their final revision.
func TestFinalPassDeadLettersWhatItCannotReplay(t *testing.T) {
	fs := newFoxSession(t, "ses_g", 2)
	fs.putSegments(t, fs.keys...)
	ended := func(room, session string, mutate func(m map[string]any)) bus.Message {
		e, err := event.New(event.TypeSessionEnded, event.Producer{Name: "t"}, nil, "r1_room", session, "", nil, event.SessionEnded{Reason: "room closed"}, "end-"+session)
		if err != nil {
			t.Fatal(err)
		}
		e.Room = room
		b, _ := e.Marshal()
		if mutate != nil {
			var m map[string]any
			_ = json.Unmarshal(b, &m)
			mutate(m)
			b, _ = json.Marshal(m)
		}
		return bus.Message{Topic: event.TopicLifecycle, Key: []byte(room), Value: b}
	}
	tests := []struct {
		name   string
		bad    bus.Message
		engine Engine
		reason string
	}{
		{"room with a path", ended("../r1_room", "ses_x", nil), &wordEngine{}, "storage key"},
		{"payload of the wrong type", ended("r1_room", "ses_x", func(m map[string]any) { m["payload"] = []any{true} }), &wordEngine{}, "session_ended"},
		{"engine down for every attempt", ended("r1_room", "ses_g", nil), &failingEngine{}, "failed 3 times"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			feed, out := bustest.NewFeed(), &bustest.Capture{}
			f, err := NewFinal(FinalConfig{Consumer: feed, Poll: 10 * time.Millisecond, Wait: 10 * time.Millisecond, Retry: 5 * time.Millisecond, Attempts: 3,
				Replay: ReplayConfig{Store: fs.store, Engine: tt.engine, Sender: out, Producer: event.Producer{Name: "t"}, Keys: testKeys, Language: "en", Batch: 25 * time.Second}})
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- f.Run(ctx) }()
			offs := feed.Push(tt.bad)
			feed.WaitAcked(t, offs...)
			cancel()
			<-done
			dead := out.Topic(event.TopicDeadLetter)
			if len(dead) != 1 {
				t.Fatalf("%d dead letters, want 1", len(dead))
			}
			if r, _ := dead[0].Header(bus.HeaderDLQReason); !strings.Contains(string(r), tt.reason) {
				t.Errorf("reason %q, want it to mention %q", r, tt.reason)
			}
			if fe, ok := tt.engine.(*failingEngine); ok && fe.calls.Load() != 3 {
				t.Errorf("%d engine calls, want one per attempt (3)", fe.calls.Load())
			}
		})
	}
	// And a good session after a bad one is replayed.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	feed, out := bustest.NewFeed(), &bustest.Capture{}
	f, err := NewFinal(FinalConfig{Consumer: feed, Poll: 10 * time.Millisecond, Wait: 10 * time.Millisecond, Retry: 5 * time.Millisecond, Attempts: 2,
		Replay: ReplayConfig{Store: fs.store, Engine: &wordEngine{}, Sender: out, Producer: event.Producer{Name: "t"}, Keys: testKeys, Language: "en", Batch: 25 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	offs := feed.Push(ended("../r1_room", "ses_x", nil), ended("r1_room", "ses_g", nil))
	feed.WaitAcked(t, offs...)
	cancel()
	<-done
	if len(out.Topic(event.TopicDeadLetter)) != 1 || len(out.Topic(event.TopicTranscripts)) == 0 {
		t.Fatalf("%d dead letters and %d transcripts: want the bad record dead-lettered and the good session replayed",
			len(out.Topic(event.TopicDeadLetter)), len(out.Topic(event.TopicTranscripts)))
	}
}
