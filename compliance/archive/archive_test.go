package archive_test

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/compliance/archive"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/bustest"
	"github.com/earshot/earshot/internal/compliancetest"
	"github.com/earshot/earshot/storage"
)

// flaky fails the first n puts as unavailable.
type flaky struct {
	storage.Putter
	n atomic.Int32
}

func (f *flaky) Put(ctx context.Context, key string, r io.Reader, size int64, o storage.PutOptions) (storage.ObjectInfo, error) {
	if f.n.Add(-1) >= 0 {
		return storage.ObjectInfo{}, storage.ErrUnavailable
	}
	return f.Putter.Put(ctx, key, r, size, o)
}

type discard struct{}

func (discard) Put(context.Context, string, io.Reader, int64, storage.PutOptions) (storage.ObjectInfo, error) {
	return storage.ObjectInfo{}, nil
}

func TestArchiverStoresEveryEventOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	emb, err := bus.NewEmbedded(ctx, bus.EmbeddedConfig{Partitions: 1, AutoCreateTopics: true})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	brokers := emb.Cluster()
	store, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	built := compliancetest.Build(t, discard{}, compliancetest.NewKeyring(), compliancetest.Session{
		Room: "r1_room", ID: "ses_a", Speakers: []string{"p1_a", "p1_b"}, Start: time.Now(), Ended: time.Now(), Alert: true, Confirm: true})
	p, err := bus.NewProducer(bus.ProducerConfig{Cluster: brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var specs []bus.TopicSpec
	for _, tp := range archive.Topics {
		specs = append(specs, bus.TopicSpec{Name: tp, Partitions: 1})
	}
	if err := bus.EnsureTopics(ctx, brokers, specs...); err != nil {
		t.Fatal(err)
	}
	var msgs []bus.Message
	for _, e := range built.Envelopes {
		tp := event.TopicLifecycle
		switch e.Type {
		case event.TypeAlertAction:
			tp = event.TopicAlertActions
		case event.TypeAlert:
			tp = event.TopicAlerts
		case event.TypeTranscript:
			tp = event.TopicTranscripts
		}
		b, _ := e.Marshal()
		msgs = append(msgs, bus.Message{Topic: tp, Key: []byte(e.Room), Value: b})
		msgs = append(msgs, bus.Message{Topic: tp, Key: []byte(e.Room), Value: b}) // redelivered
	}
	msgs = append(msgs, bus.Message{Topic: event.TopicTranscripts, Key: []byte("x"), Value: []byte("not an event")})
	if err := p.Produce(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	dead := &bustest.Capture{}
	fl := &flaky{Putter: store}
	fl.n.Store(3)
	cons, err := bus.NewConsumer(bus.ConsumerConfig{Cluster: brokers, GroupID: "archive-test", Topics: archive.Topics})
	if err != nil {
		t.Fatal(err)
	}
	a, err := archive.New(archive.Config{Consumer: cons, Store: fl, DeadLetter: dead, Retry: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	actx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(actx) }()
	deadline := time.Now().Add(30 * time.Second)
	for len(dead.All()) == 0 || count(t, store) < len(built.Envelopes) {
		if time.Now().After(deadline) {
			t.Fatalf("archived %d of %d, dead-lettered %d", count(t, store), len(built.Envelopes), len(dead.All()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	a.Close()
	if n := count(t, store); n != len(built.Envelopes) {
		t.Fatalf("archived %d objects, want %d", n, len(built.Envelopes))
	}
	for _, e := range built.Envelopes {
		got, err := archive.Read(ctx, store, archive.Key(e))
		if err != nil {
			t.Fatal(err)
		}
		if got.EventID != e.EventID {
			t.Fatalf("%s holds %s", archive.Key(e), got.EventID)
		}
		info, err := store.Stat(ctx, archive.Key(e))
		if err != nil {
			t.Fatal(err)
		}
		if info.Metadata["room"] != e.Room || info.Metadata["session"] != e.Session || info.Metadata["speaker"] != e.Speaker {
			t.Fatalf("%s metadata %v", archive.Key(e), info.Metadata)
		}
	}
	if d := dead.All(); len(d) != 1 || d[0].Topic != event.TopicDeadLetter {
		t.Fatalf("dead letters: %+v", d)
	}
	n := 0
	for _, err := range archive.Events(ctx, store, archive.ScopePrefix("r1_room", "ses_a", "p1_a"), event.TypeTranscript) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if want := 2 * len(compliancetest.DefaultOrdinals); n != want { // two segments a track
		t.Fatalf("p1_a has %d archived transcripts, want %d", n, want)
	}
}

func count(t *testing.T, s storage.Lister) int {
	t.Helper()
	n := 0
	for _, err := range s.List(context.Background(), archive.Prefix) {
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
		n++
	}
	return n
}

func TestKeyRoundTrip(t *testing.T) {
	tests := []struct{ room, session, speaker string }{
		{"r1_x", "ses_y", "p1_z"},
		{"r1_x", "ses_y", ""},
		{"r1_x", "", ""},
	}
	for _, tc := range tests {
		e, err := event.New(event.TypeAlertAction, event.Producer{Name: "t"}, nil, tc.room, tc.session, tc.speaker, nil, nil, "x")
		if err != nil {
			t.Fatal(err)
		}
		r, ok := archive.ParseKey(archive.Key(e))
		if !ok || r.Room != tc.room || r.Session != tc.session || r.Speaker != tc.speaker || r.Type != e.Type || r.EventID != e.EventID {
			t.Fatalf("%s -> %+v %v", archive.Key(e), r, ok)
		}
		if err := storage.ValidateKey(archive.Key(e)); err != nil {
			t.Fatal(err)
		}
	}
}

func FuzzParseKey(f *testing.F) {
	f.Add("events/r/s/_/alert.raised/evt_x.json")
	f.Add("events/a/b")
	f.Fuzz(func(t *testing.T, key string) {
		r, ok := archive.ParseKey(key)
		if ok && r.Key != key {
			t.Fatal("key not kept")
		}
	})
}
