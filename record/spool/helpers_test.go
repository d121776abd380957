package spool

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/ingest/pseudonym"
	"github.com/earshot/earshot/storage"
	"github.com/earshot/earshot/storage/crypt"
)

// Identities as the recorder sees them: pseudonyms made at the ingest
// boundary from raw identities the spool must never see.
var (
	testPseudo = func() *pseudonym.Pseudonymizer {
		p, err := pseudonym.New(bytes.Repeat([]byte{7}, pseudonym.MinSecretBytes), 1)
		if err != nil {
			panic(err)
		}
		return p
	}()
	testRoom    = testPseudo.Room("room-1234")
	testSession = event.SessionID(testRoom, 1764000000)
	testOrigin  = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	testProd    = event.Producer{Name: "earshot-ingest", Version: "test"}
	// testKeys seal every test spool's entries, as a deployment's keyring
	// does.
	testKeys = crypt.NewMemory()
)

const segSamples = 30 * event.SampleRate

// testSeg describes segment seq of speaker's first track.
func testSeg(speaker string, seq int64) Segment {
	sp := testPseudo.Person(speaker)
	track := event.TrackID(testSession, sp, 0)
	first := seq * segSamples
	return Segment{
		Room:       testRoom,
		Session:    testSession,
		Speaker:    sp,
		Timeline:   event.Timeline{Track: track, FirstSample: first, LastSample: first + segSamples - 1, Origin: testOrigin, Anchor: event.AnchorRTCP},
		Seq:        seq,
		PreSkip:    312,
		GapSamples: seq * 960,
		KeyID:      "dk1_" + track[4:12],
		Recorded:   testOrigin.Add(event.SamplesToDuration(first + segSamples)),
	}
}

// testData is the content of a segment: deterministic, a few KB.
func testData(seg Segment) []byte {
	r := rand.New(rand.NewPCG(uint64(seg.Seq), uint64(len(seg.Speaker))+uint64(seg.Speaker[4])))
	b := make([]byte, 2000+r.IntN(6000))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return append([]byte("OggS"), b...)
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func openSpool(t *testing.T, dir string, mod ...func(*Config)) *Spool {
	t.Helper()
	cfg := Config{Dir: dir, Producer: testProd, Logger: testLogger(t), Sealer: testKeys}
	for _, m := range mod {
		m(&cfg)
	}
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func put(t *testing.T, s *Spool, seg Segment) Entry {
	t.Helper()
	e, err := s.Put(seg, bytes.NewReader(testData(seg)))
	if err != nil {
		t.Fatalf("Put %d: %v", seg.Seq, err)
	}
	return e
}

// testLogger sends logs to the test's output, and lets tests look for lines.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tlogWriter struct{ t *testing.T }

func (w tlogWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// logBuffer collects log lines for assertions.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// fakeSender records what it is asked to produce; it fails the first
// failN calls, and every call while down is set.
type fakeSender struct {
	mu    sync.Mutex
	msgs  []bus.Message
	calls int
	failN int
	down  bool
}

func (f *fakeSender) Produce(_ context.Context, msgs ...bus.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.down || f.calls <= f.failN {
		return errors.New("kafka: broker not available (fake)")
	}
	f.msgs = append(f.msgs, msgs...)
	return nil
}

func (f *fakeSender) setDown(down bool) { f.mu.Lock(); f.down = down; f.mu.Unlock() }

func (f *fakeSender) sent() []bus.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]bus.Message(nil), f.msgs...)
}

func (f *fakeSender) attempts() int { f.mu.Lock(); defer f.mu.Unlock(); return f.calls }

// flakyStore fails puts while fail says so (ErrUnavailable, as an
// unreachable S3 would), and records every put's options.
type flakyStore struct {
	Store
	mu    sync.Mutex
	calls int
	opts  []storage.PutOptions
	fail  func(call int) bool
}

func (f *flakyStore) Put(ctx context.Context, key string, r io.Reader, size int64, opts storage.PutOptions) (storage.ObjectInfo, error) {
	f.mu.Lock()
	f.calls++
	call := f.calls
	f.opts = append(f.opts, opts)
	fail := f.fail != nil && f.fail(call)
	f.mu.Unlock()
	if fail {
		return storage.ObjectInfo{}, &storage.Error{Op: "put", Key: key, Err: fmt.Errorf("%w: s3 endpoint http://127.0.0.1:1: connection refused (fake)", storage.ErrUnavailable)}
	}
	return f.Store.Put(ctx, key, r, size, opts)
}

func (f *flakyStore) putCalls() (int, []storage.PutOptions) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls, append([]storage.PutOptions(nil), f.opts...)
}

func openLocal(t *testing.T) *storage.Local {
	t.Helper()
	l, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// startUploader runs an uploader until the test ends or the returned stop
// is called; stop returns Run's error.
func startUploader(t *testing.T, cfg UploaderConfig) (*Uploader, func() error) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	cfg.BackoffMin = cmpOr(cfg.BackoffMin, 2*time.Millisecond)
	cfg.BackoffMax = cmpOr(cfg.BackoffMax, 20*time.Millisecond)
	cfg.Rescan = cmpOr(cfg.Rescan, 50*time.Millisecond)
	u, err := NewUploader(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- u.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-errc:
			case <-time.After(time.Minute):
				runErr = errors.New("Run did not return within a minute of cancel")
			}
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	})
	return u, stop
}

func cmpOr[T comparable](a, b T) T {
	var zero T
	if a != zero {
		return a
	}
	return b
}

// waitFor polls cond until it holds; the deadline is generous, it only
// guards against hangs.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// announced decodes the announcements, checks each is a valid
// audio.segment_stored on the segments topic keyed by its track, and
// returns them deduplicated by event ID, in the order first seen.
func announced(t *testing.T, msgs []bus.Message) []*event.Envelope {
	t.Helper()
	seen := map[string]bool{}
	var out []*event.Envelope
	for _, m := range msgs {
		e, err := event.Decode(m.Value)
		if err != nil {
			t.Fatalf("announcement does not decode: %v", err)
		}
		if m.Topic != event.TopicSegments || e.Type != event.TypeSegmentStored || e.Timeline == nil || string(m.Key) != e.Timeline.Track {
			t.Fatalf("announcement topic %q key %q type %q: want %q keyed by track", m.Topic, m.Key, e.Type, event.TopicSegments)
		}
		if !seen[e.EventID] {
			seen[e.EventID] = true
			out = append(out, e)
		}
	}
	return out
}

func payloadOf(t *testing.T, e *event.Envelope) event.SegmentStored {
	t.Helper()
	var p event.SegmentStored
	if err := e.DecodePayload(&p); err != nil {
		t.Fatal(err)
	}
	return p
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var names []string
	for _, d := range des {
		names = append(names, d.Name())
	}
	return names
}

func pendingNames(t *testing.T, s *Spool) []string {
	t.Helper()
	return dirNames(t, filepath.Join(s.Dir(), pendingDir))
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o640); err != nil {
		t.Fatal(err)
	}
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o640); err != nil {
		t.Fatal(err)
	}
}

func slogTo(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

// checkNothingSpooled asserts that a failed or aborted write left no trace:
// no entry, no temporary, nothing counted.
func checkNothingSpooled(t *testing.T, s *Spool) {
	t.Helper()
	if got, err := s.Pending(); err != nil || len(got) != 0 {
		t.Errorf("Pending = %v, %v; want nothing", got, err)
	}
	if p := pendingNames(t, s); len(p) != 0 {
		t.Errorf("pending/ = %v", p)
	}
	if left := dirNames(t, filepath.Join(s.Dir(), tmpDir)); len(left) != 0 {
		t.Errorf("tmp/ = %v", left)
	}
	if u := s.Usage(); u != (Usage{}) {
		t.Errorf("Usage = %+v", u)
	}
}

// unsealed reads an entry's segment file at path, checks that it holds
// nothing of the plaintext want in the clear, and returns what it opens
// to under the speaker's key.
func unsealed(t *testing.T, path string, e Entry, want []byte) []byte {
	t.Helper()
	onDisk, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if e.Sealed == "" {
		t.Fatalf("%s: entry not sealed", path)
	}
	if probe := want[len(want)/2:][:min(64, len(want)/2)]; len(probe) > 0 && bytes.Contains(onDisk, probe) {
		t.Fatalf("%s: segment bytes on disk in the clear", path)
	}
	r, err := testKeys.OpenFrom(t.Context(), e.Event.KeyRef(), e.Sealed, bytes.NewReader(onDisk))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return got
}
