package transcribe

import (
	"context"
	"encoding/json"
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
	cons, err := bus.NewConsumer(bus.ConsumerConfig{Brokers: brokers, GroupID: "final", Topics: []string{event.TopicLifecycle}, StartOffset: bus.FirstOffset})
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
