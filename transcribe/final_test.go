package transcribe

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
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
	store, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ogg, err := os.ReadFile("testdata/fox.opus")
	if err != nil {
		t.Fatal(err)
	}
	n := int64(len(foxPackets(t))) * 960
	origin := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	var keys []string
	for i := range int64(3) {
		keys = append(keys, event.SegmentKey("r1_room", "ses_f", event.Timeline{Track: "trk_a", FirstSample: i*n - i*312, LastSample: (i+1)*n - (i+1)*312 - 1}))
	}
	put := func(key string, data []byte) {
		t.Helper()
		md := map[string]string{"origin": origin.Format(time.RFC3339Nano), "anchor": "arrival"}
		if _, err := store.Put(ctx, key, bytes.NewReader(data), int64(len(data)), storage.PutOptions{Metadata: md}); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range keys[:2] {
		put(k, ogg)
	}
	man, _ := json.Marshal(map[string]any{"tracks": []any{map[string]any{"segments": []any{
		map[string]any{"key": keys[0]}, map[string]any{"key": keys[1]}, map[string]any{"key": keys[2]}}}}})
	put(event.ManifestKey("r1_room", "ses_f"), man)

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
	put(keys[2], ogg) // the late upload
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
