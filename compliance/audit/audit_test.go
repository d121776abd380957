package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/bustest"
	"github.com/earshot/earshot/storage"
)

func newStore(t *testing.T) *storage.Local {
	t.Helper()
	s, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func record(t *testing.T, l *Log, n int) {
	t.Helper()
	for i := range n {
		err := l.Record(context.Background(), event.AuditEntry{
			Operator: "alice", Action: ActionExport, Subject: fmt.Sprintf("r1_room%d", i), Reason: "case 42", Outcome: OutcomeOK,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestRecordChainsAndPublishes(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	cap := &bustest.Capture{}
	l, err := New(ctx, Config{Store: s, Sender: cap, Producer: event.Producer{Name: "test"}})
	if err != nil {
		t.Fatal(err)
	}
	record(t, l, 3)
	rep, err := Verify(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Entries != 3 {
		t.Fatalf("entries = %d, want 3", rep.Entries)
	}
	msgs := cap.Topic(event.TopicAudit)
	if len(msgs) != 3 {
		t.Fatalf("published %d, want 3", len(msgs))
	}
	env, err := event.Decode(msgs[2].Value)
	if err != nil {
		t.Fatal(err)
	}
	var e event.AuditEntry
	if err := env.DecodePayload(&e); err != nil {
		t.Fatal(err)
	}
	if env.Type != event.TypeAudit || e.Seq != 3 || e.Hash != rep.Head || e.Prev == "" {
		t.Fatalf("published %s %+v, want entry 3 with head %s", env.Type, e, rep.Head)
	}

	// A new log (a restart) continues the chain.
	l2, err := New(ctx, Config{Store: s})
	if err != nil {
		t.Fatal(err)
	}
	if seq, h := l2.Head(); seq != 3 || h != rep.Head {
		t.Fatalf("head after restart = %d %s", seq, h)
	}
	record(t, l2, 1)
	if rep, err := Verify(ctx, s); err != nil || rep.Entries != 4 {
		t.Fatalf("after restart: %+v %v", rep, err)
	}
}

func TestVerifyNamesTheBrokenEntry(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		tamper  func(t *testing.T, s *storage.Local)
		wantSeq int64
		want    string
	}{
		{"removed", func(t *testing.T, s *storage.Local) {
			if err := s.DeleteAll(ctx, Key(3)); err != nil {
				t.Fatal(err)
			}
		}, 3, "missing"},
		{"edited", func(t *testing.T, s *storage.Local) {
			rewrite(t, s, 2, func(e *event.AuditEntry) { e.Reason = "nothing to see" })
		}, 2, "altered"},
		{"edited and rehashed", func(t *testing.T, s *storage.Local) {
			rewrite(t, s, 2, func(e *event.AuditEntry) { e.Operator = "mallory"; e.Hash = Hash(*e) })
		}, 3, "does not follow"},
		{"garbage", func(t *testing.T, s *storage.Local) {
			put(t, s, Key(4), []byte("{"))
		}, 4, "not an audit entry"},
		{"renumbered", func(t *testing.T, s *storage.Local) {
			e := get(t, s, 5)
			if err := s.DeleteAll(ctx, Key(4)); err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(e)
			put(t, s, Key(4), b)
			if err := s.DeleteAll(ctx, Key(5)); err != nil {
				t.Fatal(err)
			}
		}, 4, "holds entry 5"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			l, err := New(ctx, Config{Store: s})
			if err != nil {
				t.Fatal(err)
			}
			record(t, l, 5)
			if _, err := Verify(ctx, s); err != nil {
				t.Fatalf("intact chain: %v", err)
			}
			tc.tamper(t, s)
			_, err = Verify(ctx, s)
			var ce *ChainError
			if !errors.As(err, &ce) {
				t.Fatalf("Verify = %v, want a ChainError", err)
			}
			if ce.Seq != tc.wantSeq || !strings.Contains(ce.Problem, tc.want) || !strings.Contains(err.Error(), Key(tc.wantSeq)) {
				t.Fatalf("Verify = %v, want entry %d %q", err, tc.wantSeq, tc.want)
			}
		})
	}
}

func TestVerifyAnchorsDetectACutTail(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	l, _ := New(ctx, Config{Store: s})
	record(t, l, 3)
	head := get(t, s, 3)
	if err := s.DeleteAll(ctx, Key(3)); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(ctx, s); err != nil {
		t.Fatalf("without an anchor a cut tail looks intact, got %v", err)
	}
	_, err := Verify(ctx, s, VerifyOptions{Anchors: []event.AuditEntry{head}})
	var ce *ChainError
	if !errors.As(err, &ce) || ce.Seq != 3 {
		t.Fatalf("with the anchor: %v, want entry 3 missing", err)
	}
	if _, err := Verify(ctx, s, VerifyOptions{MinEntries: 3}); !errors.As(err, &ce) || ce.Seq != 3 {
		t.Fatalf("with MinEntries: %v", err)
	}
}

func TestConcurrentWritersKeepOneChain(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	var wg sync.WaitGroup
	for w := range 4 {
		l, err := New(ctx, Config{Store: s})
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			for i := range 10 {
				if err := l.Record(ctx, event.AuditEntry{Action: ActionHoldSet, Subject: fmt.Sprint(w, i), Outcome: OutcomeOK}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	rep, err := Verify(ctx, s)
	if err != nil || rep.Entries != 40 {
		t.Fatalf("Verify = %+v, %v; want 40 entries", rep, err)
	}
}

func TestRecordRejectsIncompleteEntries(t *testing.T) {
	l, _ := New(context.Background(), Config{Store: newStore(t), Now: func() time.Time { return time.Unix(0, 0) }})
	if err := l.Record(context.Background(), event.AuditEntry{Action: ActionErase}); err == nil {
		t.Fatal("an entry without outcome was recorded")
	}
}

func FuzzDecode(f *testing.F) {
	b, _ := json.Marshal(event.AuditEntry{Seq: 1, Action: "erase", Outcome: "ok", Hash: "x"})
	f.Add(b)
	f.Add([]byte(`{"seq":1}{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Decode(b)
		if err != nil {
			return
		}
		// What decodes re-encodes to an entry with the same hash.
		out, _ := json.Marshal(e)
		e2, err := Decode(out)
		if err != nil || Hash(e2) != Hash(e) {
			t.Fatalf("round trip changed the entry: %v", err)
		}
	})
}

func get(t *testing.T, s *storage.Local, seq int64) event.AuditEntry {
	t.Helper()
	rc, _, err := s.Get(context.Background(), Key(seq))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	e, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func put(t *testing.T, s *storage.Local, key string, b []byte) {
	t.Helper()
	if _, err := s.Put(context.Background(), key, bytes.NewReader(b), int64(len(b)), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

func rewrite(t *testing.T, s *storage.Local, seq int64, edit func(*event.AuditEntry)) {
	t.Helper()
	e := get(t, s, seq)
	edit(&e)
	b, _ := json.Marshal(e)
	put(t, s, Key(seq), b)
}

// TestHugeFieldsKeepTheChainReadable: an entry whose fields came from
// outside at any size (a 70,000-character request path) is stored bounded,
// so the chain still verifies and a new Log still starts on it.
func TestHugeFieldsKeepTheChainReadable(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	l, err := New(ctx, Config{Store: s})
	if err != nil {
		t.Fatal(err)
	}
	huge := "/evidence/" + strings.Repeat("A", 70_000)
	if err := l.Record(ctx, event.AuditEntry{Operator: "anonymous", Action: "evidence.read", Subject: huge, Outcome: OutcomeDenied, Detail: huge, Reason: huge}); err != nil {
		t.Fatal(err)
	}
	record(t, l, 1)
	if _, err := Verify(ctx, s); err != nil {
		t.Fatalf("verify after a huge entry: %v", err)
	}
	l2, err := New(ctx, Config{Store: s})
	if err != nil {
		t.Fatalf("a new log on that chain: %v", err)
	}
	record(t, l2, 1)
	if _, err := Verify(ctx, s); err != nil {
		t.Fatal(err)
	}
}

// hangingStore never answers a Put until its context ends.
type hangingStore struct{ Store }

func (h hangingStore) Put(ctx context.Context, key string, r io.Reader, size int64, o storage.PutOptions) (storage.ObjectInfo, error) {
	<-ctx.Done()
	return storage.ObjectInfo{}, ctx.Err()
}

// TestHungStoreFailsTheEntry: the chain's lock is never held past the
// store timeout, so a hung store fails entries instead of queueing every
// audited access behind it forever.
func TestHungStoreFailsTheEntry(t *testing.T) {
	l, err := New(context.Background(), Config{Store: hangingStore{newStore(t)}, StoreTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			errs <- l.Record(context.Background(), event.AuditEntry{Action: ActionExport, Outcome: OutcomeOK})
		}()
	}
	for range 2 {
		select {
		case err := <-errs:
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("record on a hung store: %v, want the deadline", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Record blocked on a hung store")
		}
	}
}
