package spool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/storage"
	"github.com/earshot/earshot/storage/crypt"
)

func segKey(seg Segment) string { return event.SegmentKey(seg.Room, seg.Session, seg.Timeline) }

func segEventID(seg Segment) string {
	return event.EventID(event.TypeSegmentStored, "rev_0", &seg.Timeline, seg.Room, seg.Session, seg.Speaker)
}

// checkStored asserts that the store holds seg's bytes under its key, with
// its SHA-256 and metadata.
func checkStored(t *testing.T, store storage.Getter, seg Segment) {
	t.Helper()
	rc, info, err := store.Get(t.Context(), segKey(seg))
	if err != nil {
		t.Fatalf("Get %s: %v", segKey(seg), err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatalf("read %s: %v", segKey(seg), err)
	}
	want := testData(seg)
	if !bytes.Equal(got, want) {
		t.Errorf("%s: stored bytes differ from the spooled segment", segKey(seg))
	}
	if info.SHA256 != sha(want) || info.ContentType != ContentType {
		t.Errorf("%s: sha256 %q content type %q, want %s %s", segKey(seg), info.SHA256, info.ContentType, sha(want), ContentType)
	}
	md := info.Metadata
	if md["track"] != seg.Timeline.Track || md["first-sample"] != itoa(seg.Timeline.FirstSample) || md["last-sample"] != itoa(seg.Timeline.LastSample) || md["seq"] != itoa(seg.Seq) || md["event-id"] != segEventID(seg) ||
		md["room"] != seg.Room || md["session"] != seg.Session || md["speaker"] != seg.Speaker {
		t.Errorf("%s: metadata %v", segKey(seg), md)
	}
}

// checkAnnounced asserts the announcements are exactly segs (after dedupe),
// each with the right payload, and in seq order per track.
func checkAnnounced(t *testing.T, envs []*event.Envelope, segs ...Segment) {
	t.Helper()
	if len(envs) != len(segs) {
		t.Fatalf("%d announcements, want %d", len(envs), len(segs))
	}
	byID := map[string]*event.Envelope{}
	lastSeq := map[string]int64{}
	for _, e := range envs {
		byID[e.EventID] = e
		p := payloadOf(t, e)
		if last, ok := lastSeq[e.Timeline.Track]; ok && p.Seq <= last {
			t.Errorf("track %s: segment %d announced after %d", e.Timeline.Track, p.Seq, last)
		}
		lastSeq[e.Timeline.Track] = p.Seq
	}
	for _, seg := range segs {
		e := byID[segEventID(seg)]
		if e == nil {
			t.Errorf("segment %s %d not announced", seg.Speaker, seg.Seq)
			continue
		}
		data := testData(seg)
		want := event.SegmentStored{Key: segKey(seg), Size: int64(len(data)), SHA256: sha(data), Seq: seg.Seq, PreSkip: seg.PreSkip, GapSamples: seg.GapSamples, KeyID: seg.KeyID}
		if p := payloadOf(t, e); p != want {
			t.Errorf("payload\n got %+v\nwant %+v", p, want)
		}
		if e.Room != seg.Room || e.Session != seg.Session || e.Speaker != seg.Speaker || *e.Timeline != seg.Timeline || e.Producer != testProd || e.Revision != "rev_0" {
			t.Errorf("envelope %+v", e)
		}
		if e.Hops.Stored == nil || e.Hops.Recorded == nil || !e.Hops.Recorded.Equal(seg.Recorded) || e.Time.Before(e.Hops.Stored.Truncate(time.Second)) {
			t.Errorf("hops %+v time %v: want recorded kept, stored set, written after stored", e.Hops, e.Time)
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func testRoundTrip(t *testing.T, store storage.Store) {
	s := openSpool(t, t.TempDir())
	snd := &fakeSender{}
	segs := []Segment{testSeg("alice", 0), testSeg("bob", 0), testSeg("alice", 1), testSeg("bob", 1), testSeg("alice", 2)}
	for _, seg := range segs {
		put(t, s, seg)
	}
	u, _ := startUploader(t, UploaderConfig{Spool: s, Store: store, Sender: snd})
	waitFor(t, "the spool to drain", func() bool { return s.Usage().Entries == 0 && u.Stats().Uploaded == int64(len(segs)) })
	if n := len(snd.sent()); n != len(segs) {
		t.Errorf("%d records produced, want one per segment (%d)", n, len(segs))
	}
	checkAnnounced(t, announced(t, snd.sent()), segs...)
	for _, seg := range segs {
		checkStored(t, store, seg)
	}
	if st := u.Stats(); st.Uploaded != int64(len(segs)) || st.Conflicts != 0 || st.AlreadyStored != 0 || st.PendingEntries != 0 || st.PendingBytes != 0 {
		t.Errorf("Stats = %+v", st)
	}
	if p := pendingNames(t, s); len(p) != 0 {
		t.Errorf("pending/ = %v", p)
	}

	// Later segments are picked up as they arrive.
	late := testSeg("bob", 2)
	put(t, s, late)
	waitFor(t, "the late segment", func() bool { return s.Usage().Entries == 0 && u.Stats().Uploaded == int64(len(segs)+1) })
	checkAnnounced(t, announced(t, snd.sent()), append(segs, late)...)
	checkStored(t, store, late)
}

func TestRoundTripLocal(t *testing.T) { testRoundTrip(t, openLocal(t)) }

// A restart (a new Spool and Uploader on the same folder) uploads and
// announces what the crashed run left, and an object the crashed run had
// already stored is announced without being overwritten.
func TestRestartAfterCrash(t *testing.T) { testRestart(t, openLocal(t)) }

func testRestart(t *testing.T, local storage.Store) {
	dir := t.TempDir()
	a := openSpool(t, dir)
	segs := []Segment{testSeg("alice", 0), testSeg("alice", 1), testSeg("bob", 0)}
	for _, seg := range segs {
		put(t, a, seg)
	}
	// The crashed run had uploaded alice 0 but not announced it...
	first := testData(segs[0])
	if _, err := local.Put(t.Context(), segKey(segs[0]), bytes.NewReader(first), int64(len(first)), storage.PutOptions{IfAbsent: true, Metadata: map[string]string{"written-by": "first-run"}}); err != nil {
		t.Fatal(err)
	}
	// ...and was writing another segment when it died.
	w, err := a.Create(segmentRef(testSeg("alice", 0)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(testData(testSeg("bob", 1))[:500]); err != nil {
		t.Fatal(err)
	}
	a.Close()

	b := openSpool(t, dir)
	store := &flakyStore{Store: local}
	snd := &fakeSender{}
	u, _ := startUploader(t, UploaderConfig{Spool: b, Store: store, Sender: snd})
	waitFor(t, "the spool to drain", func() bool { return b.Usage().Entries == 0 && u.Stats().Uploaded == int64(len(segs)) })
	checkAnnounced(t, announced(t, snd.sent()), segs...)
	for _, seg := range segs[1:] {
		checkStored(t, local, seg)
	}
	info, err := local.Stat(t.Context(), segKey(segs[0]))
	if err != nil || info.Metadata["written-by"] != "first-run" || info.SHA256 != sha(first) {
		t.Errorf("object stored before the crash was replaced: %+v, %v", info, err)
	}
	_, opts := store.putCalls()
	for _, o := range opts {
		if !o.IfAbsent || o.SHA256 == "" {
			t.Errorf("put without IfAbsent or SHA256: %+v", o)
		}
	}
	if st := u.Stats(); st.Uploaded != 3 || st.AlreadyStored != 1 || st.Conflicts != 0 {
		t.Errorf("Stats = %+v", st)
	}
	if left := dirNames(t, filepath.Join(dir, tmpDir)); len(left) != 0 {
		t.Errorf("tmp/ = %v", left)
	}
}

// A key that holds other bytes is never overwritten: the entry moves to
// conflicts/ (kept, not announced) and the others go on.
func TestConflictNeverOverwritten(t *testing.T) { testConflict(t, openLocal(t)) }

func testConflict(t *testing.T, local storage.Store) {
	s := openSpool(t, t.TempDir())
	segs := []Segment{testSeg("alice", 0), testSeg("alice", 1), testSeg("alice", 2)}
	other := []byte("bytes some other writer stored under this key")
	if _, err := local.Put(t.Context(), segKey(segs[1]), bytes.NewReader(other), int64(len(other)), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	var entries []Entry
	for _, seg := range segs {
		entries = append(entries, put(t, s, seg))
	}
	var logs logBuffer
	snd := &fakeSender{}
	u, _ := startUploader(t, UploaderConfig{Spool: s, Store: local, Sender: snd, Logger: slogTo(&logs)})
	waitFor(t, "the spool to drain", func() bool { return s.Usage().Entries == 0 && u.Stats().Uploaded == 2 })
	checkAnnounced(t, announced(t, snd.sent()), segs[0], segs[2])
	rc, _, err := local.Get(t.Context(), segKey(segs[1]))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, other) {
		t.Error("the conflicting object was overwritten")
	}
	if kept := unsealed(t, filepath.Join(s.Dir(), conflictsDir, entries[1].Name, dataFile), entries[1], testData(segs[1])); !bytes.Equal(kept, testData(segs[1])) {
		t.Error("conflicting segment not kept in conflicts/")
	}
	reason, _ := os.ReadFile(filepath.Join(s.Dir(), conflictsDir, entries[1].Name, reasonFile))
	if !strings.Contains(string(reason), sha(other)) || !strings.Contains(string(reason), sha(testData(segs[1]))) {
		t.Errorf("reason %q does not name both hashes", reason)
	}
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "conflict") {
		t.Errorf("no error logged: %s", logs.String())
	}
	if st := u.Stats(); st.Conflicts != 1 || st.Uploaded != 2 {
		t.Errorf("Stats = %+v", st)
	}
}

// While the store is unavailable nothing is lost or reordered; the spool
// drains once it is back.
func TestStoreUnavailable(t *testing.T) {
	var rmu sync.Mutex
	rnd := rand.New(rand.NewPCG(1, 2))
	tests := []struct {
		name string
		fail func(call int) bool
	}{
		{"first puts fail", func(call int) bool { return call <= 8 }},
		{"every other put fails", func(call int) bool { return call%2 == 1 }},
		{"random puts fail", func(int) bool { rmu.Lock(); defer rmu.Unlock(); return rnd.IntN(2) == 0 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			local := openLocal(t)
			store := &flakyStore{Store: local, fail: tc.fail}
			s := openSpool(t, t.TempDir())
			var segs []Segment
			for seq := range int64(4) {
				for _, sp := range []string{"alice", "bob", "carol"} {
					segs = append(segs, testSeg(sp, seq))
					put(t, s, segs[len(segs)-1])
				}
			}
			snd := &fakeSender{}
			u, _ := startUploader(t, UploaderConfig{Spool: s, Store: store, Sender: snd, Workers: 2})
			waitFor(t, "the spool to drain", func() bool { return s.Usage().Entries == 0 && u.Stats().Uploaded == int64(len(segs)) })
			// Per track, announcements come in seq order (checkAnnounced).
			checkAnnounced(t, announced(t, snd.sent()), segs...)
			for _, seg := range segs {
				checkStored(t, local, seg)
			}
			calls, _ := store.putCalls()
			if st := u.Stats(); st.Retries == 0 || st.Retries != int64(calls-len(segs)) {
				t.Errorf("Stats = %+v after %d puts for %d segments", st, calls, len(segs))
			}
		})
	}
}

// While the broker is down the entry stays in the spool, already stored;
// it goes only once the announcement is acknowledged, whether the broker
// comes back during this run or after a restart.
func TestBrokerDown(t *testing.T) {
	for _, restart := range []bool{false, true} {
		name := map[bool]string{false: "recovers while running", true: "recovers after a restart"}[restart]
		t.Run(name, func(t *testing.T) {
			local := openLocal(t)
			dir := t.TempDir()
			s := openSpool(t, dir)
			seg := testSeg("alice", 0)
			put(t, s, seg)
			snd := &fakeSender{down: true}
			u, stop := startUploader(t, UploaderConfig{Spool: s, Store: local, Sender: snd})
			waitFor(t, "announce attempts", func() bool { return snd.attempts() >= 3 })
			checkStored(t, local, seg)
			if got, _ := s.Pending(); len(got) != 1 {
				t.Fatalf("entry left the spool before it was announced: %d pending", len(got))
			}
			if st := u.Stats(); st.Uploaded != 0 || st.Retries < 2 {
				t.Errorf("Stats while the broker is down = %+v", st)
			}
			if restart {
				if err := stop(); err != nil {
					t.Fatal(err)
				}
				s.Close()
				s = openSpool(t, dir)
				snd = &fakeSender{}
				u, _ = startUploader(t, UploaderConfig{Spool: s, Store: local, Sender: snd})
			} else {
				snd.setDown(false)
			}
			waitFor(t, "the spool to drain", func() bool { return s.Usage().Entries == 0 && u.Stats().Uploaded == 1 })
			checkAnnounced(t, announced(t, snd.sent()), seg)
			if st := u.Stats(); restart && st.AlreadyStored != 1 {
				t.Errorf("after a restart the upload should find its object: Stats = %+v", st)
			}
		})
	}
}

// blockingStore holds each put until released (or its context ends).
type blockingStore struct {
	Store
	started chan string
	release chan struct{}
}

func (b *blockingStore) Put(ctx context.Context, key string, r io.Reader, size int64, opts storage.PutOptions) (storage.ObjectInfo, error) {
	b.started <- key
	select {
	case <-b.release:
	case <-ctx.Done():
		return storage.ObjectInfo{}, &storage.Error{Op: "put", Key: key, Err: ctx.Err()}
	}
	return b.Store.Put(ctx, key, r, size, opts)
}

// Stopping finishes the entry in flight (upload and announcement), starts
// nothing new, and leaves the rest for the next start; an attempt that
// outlasts DrainTimeout is abandoned and its entry kept.
func TestShutdownIsTwoPhase(t *testing.T) {
	for _, finish := range []bool{true, false} {
		name := map[bool]string{true: "in-flight entry finishes", false: "drain timeout"}[finish]
		t.Run(name, func(t *testing.T) {
			local := openLocal(t)
			s := openSpool(t, t.TempDir())
			segs := []Segment{testSeg("alice", 0), testSeg("alice", 1)}
			for _, seg := range segs {
				put(t, s, seg)
			}
			store := &blockingStore{Store: local, started: make(chan string, 4), release: make(chan struct{})}
			snd := &fakeSender{}
			u, err := NewUploader(UploaderConfig{Spool: s, Store: store, Sender: snd, Logger: testLogger(t), DrainTimeout: 200 * time.Millisecond})
			if finish {
				u.cfg.DrainTimeout = time.Hour
			}
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			errc := make(chan error, 1)
			go func() { errc <- u.Run(ctx) }()
			if key := <-store.started; key != segKey(segs[0]) {
				t.Fatalf("first upload is %s, want %s", key, segKey(segs[0]))
			}
			cancel()
			if finish {
				close(store.release)
			}
			select {
			case err := <-errc:
				if err != nil {
					t.Fatalf("Run = %v", err)
				}
			case <-time.After(time.Minute):
				t.Fatal("Run did not return")
			}
			left, _ := s.Pending()
			if finish {
				checkAnnounced(t, announced(t, snd.sent()), segs[0])
				if len(left) != 1 || left[0].Key != segKey(segs[1]) {
					t.Errorf("left in the spool: %v, want only the second segment", left)
				}
			} else {
				if len(snd.sent()) != 0 || len(left) != 2 {
					t.Errorf("after an abandoned attempt: %d announced, %d left; want 0 and 2", len(snd.sent()), len(left))
				}
			}
			if len(store.started) != 0 {
				t.Error("an upload started after the stop")
			}
			if err := u.Close(); err != nil {
				t.Error(err)
			}
		})
	}
}

// A segment whose bytes changed on disk after spooling is never uploaded.
func TestCorruptSegmentRejected(t *testing.T) {
	local := openLocal(t)
	s := openSpool(t, t.TempDir())
	bad := put(t, s, testSeg("alice", 0))
	good := testSeg("alice", 1)
	put(t, s, good)
	p := filepath.Join(s.Dir(), pendingDir, bad.Name, dataFile)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[100] ^= 0xff
	if err := os.WriteFile(p, b, 0o640); err != nil {
		t.Fatal(err)
	}
	snd := &fakeSender{}
	u, _ := startUploader(t, UploaderConfig{Spool: s, Store: local, Sender: snd})
	waitFor(t, "the spool to drain", func() bool { return s.Usage().Entries == 0 && u.Stats().Uploaded == 1 })
	checkAnnounced(t, announced(t, snd.sent()), good)
	if _, err := local.Stat(t.Context(), bad.Key); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("corrupt segment was stored: %v", err)
	}
	if st := u.Stats(); st.Rejected != 1 {
		t.Errorf("Stats = %+v", st)
	}
	if r := dirNames(t, filepath.Join(s.Dir(), rejectedDir)); len(r) != 1 || r[0] != bad.Name {
		t.Errorf("rejected/ = %v", r)
	}
}

// erasingStore refuses puts of one speaker's segments as a crypt.Store does
// once that speaker's data key was shredded.
type erasingStore struct {
	Store
	speaker string
}

func (e erasingStore) Put(ctx context.Context, key string, r io.Reader, size int64, opts storage.PutOptions) (storage.ObjectInfo, error) {
	if opts.Metadata["speaker"] == e.speaker {
		return storage.ObjectInfo{}, &storage.Error{Op: "put", Key: key, Err: fmt.Errorf("crypt: data key k: destroyed (%w)", storage.ErrErased)}
	}
	return e.Store.Put(ctx, key, r, size, opts)
}

// A segment of a speaker erased while it waited in the spool is dropped:
// not stored, not announced, not kept in rejected/, and it does not hold up
// the segments behind it.
func TestErasedSegmentDropped(t *testing.T) {
	local := openLocal(t)
	s := openSpool(t, t.TempDir())
	erased := []Segment{testSeg("bob", 0), testSeg("bob", 1)}
	kept := []Segment{testSeg("alice", 0), testSeg("alice", 1)}
	for _, seg := range []Segment{erased[0], kept[0], erased[1], kept[1]} {
		put(t, s, seg)
	}
	snd := &fakeSender{}
	u, _ := startUploader(t, UploaderConfig{Spool: s, Store: erasingStore{Store: local, speaker: erased[0].Speaker}, Sender: snd})
	waitFor(t, "the spool to drain", func() bool { return s.Usage().Entries == 0 && u.Stats().Uploaded == 2 })
	checkAnnounced(t, announced(t, snd.sent()), kept...)
	for _, seg := range erased {
		if _, err := local.Stat(t.Context(), segKey(seg)); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("erased segment stored: %v", err)
		}
	}
	if st := u.Stats(); st.Erased != 2 || st.Rejected != 0 || st.Conflicts != 0 {
		t.Errorf("Stats = %+v, want 2 erased", st)
	}
	if r := dirNames(t, filepath.Join(s.Dir(), rejectedDir)); len(r) != 0 {
		t.Errorf("rejected/ = %v: erased speech kept on disk", r)
	}
}

func TestUploaderLifecycle(t *testing.T) {
	s := openSpool(t, t.TempDir())
	cfg := UploaderConfig{Spool: s, Store: openLocal(t), Sender: &fakeSender{}, Logger: testLogger(t)}
	if _, err := NewUploader(UploaderConfig{}); err == nil || !strings.Contains(err.Error(), "Spool") || !strings.Contains(err.Error(), "Sender") {
		t.Errorf("NewUploader with nothing = %v", err)
	}

	u, err := NewUploader(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Close(); err != nil {
		t.Fatal(err)
	}
	if err := u.Close(); err != nil {
		t.Fatal(err)
	}
	if err := u.Run(t.Context()); err == nil {
		t.Error("Run after Close succeeded")
	}

	u, err = NewUploader(cfg)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- u.Run(t.Context()) }()
	waitFor(t, "Run to start", func() bool { u.mu.Lock(); defer u.mu.Unlock(); return u.running })
	if err := u.Run(t.Context()); err == nil {
		t.Error("second Run succeeded")
	}
	if err := u.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Errorf("Run after Close = %v", err)
	}
	if err := u.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestMetrics(t *testing.T) {
	local := openLocal(t)
	s := openSpool(t, t.TempDir())
	segs := []Segment{testSeg("alice", 0), testSeg("alice", 1)}
	other := []byte("other")
	if _, err := local.Put(t.Context(), segKey(segs[1]), bytes.NewReader(other), int64(len(other)), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, seg := range segs {
		put(t, s, seg)
	}
	u, _ := startUploader(t, UploaderConfig{Spool: s, Store: local, Sender: &fakeSender{}})
	waitFor(t, "the spool to drain", func() bool { return s.Usage().Entries == 0 && u.Stats().Uploaded == 1 && u.Stats().Conflicts == 1 })
	put(t, s, testSeg("bob", 0)) // may or may not be uploaded yet: read Stats after Gather

	reg := prometheus.NewRegistry()
	if err := reg.Register(u); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		if c := m.GetCounter(); c != nil {
			got[mf.GetName()] = c.GetValue()
		} else {
			got[mf.GetName()] = m.GetGauge().GetValue()
		}
	}
	if got["earshot_spool_conflicts_total"] != 1 || got["earshot_spool_uploaded_total"] < 1 {
		t.Errorf("metrics = %v", got)
	}
	for _, name := range []string{"earshot_spool_retries_total", "earshot_spool_rejected_total", "earshot_spool_already_stored_total", "earshot_spool_pending_entries", "earshot_spool_pending_bytes"} {
		if _, ok := got[name]; !ok {
			t.Errorf("metric %s missing", name)
		}
	}
}

// A speaker erased while their segments wait: the spool's own copies no
// longer open (their key is gone, whatever the store says), so they are
// dropped, not stored, announced or kept aside, and the other speaker's
// go through.
func TestSpoolUnreadableAfterErasure(t *testing.T) {
	local := openLocal(t)
	keys := crypt.NewMemory()
	s := openSpool(t, t.TempDir(), func(c *Config) { c.Sealer = keys })
	erased := []Segment{testSeg("carol", 0), testSeg("carol", 1)}
	kept := []Segment{testSeg("dave", 0)}
	for _, seg := range append(slices.Clone(erased), kept...) {
		put(t, s, seg)
	}
	keys.Shred(segmentRef(erased[0]).ID)
	snd := &fakeSender{}
	u, _ := startUploader(t, UploaderConfig{Spool: s, Store: local, Sender: snd})
	// The uploader counts a dropped entry after deleting it: wait for the
	// count too, or the spool can be empty a moment before it is 2.
	waitFor(t, "the spool to drain", func() bool {
		st := u.Stats()
		return s.Usage().Entries == 0 && st.Uploaded == 1 && st.Erased+st.Rejected == 2
	})
	checkAnnounced(t, announced(t, snd.sent()), kept...)
	for _, seg := range erased {
		if _, err := local.Stat(t.Context(), segKey(seg)); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("erased segment stored: %v", err)
		}
	}
	if st := u.Stats(); st.Erased != 2 || st.Rejected != 0 {
		t.Errorf("Stats = %+v, want 2 erased", st)
	}
	if r := dirNames(t, filepath.Join(s.Dir(), rejectedDir)); len(r) != 0 {
		t.Errorf("rejected/ = %v", r)
	}
}

// Entries set aside are deleted once older than KeepAside, not before.
func TestExpireAside(t *testing.T) {
	s := openSpool(t, t.TempDir(), func(c *Config) { c.KeepAside = time.Hour })
	old, young := put(t, s, testSeg("alice", 0)), put(t, s, testSeg("alice", 1))
	for _, e := range []Entry{old, young} {
		if err := s.moveAside(rejectedDir, e.Name, errors.New("test")); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(filepath.Join(s.Dir(), rejectedDir, old.Name), past, past); err != nil {
		t.Fatal(err)
	}
	n, err := s.ExpireAside(time.Now())
	if err != nil || n != 1 {
		t.Fatalf("ExpireAside = %d, %v; want 1", n, err)
	}
	if left := dirNames(t, filepath.Join(s.Dir(), rejectedDir)); !slices.Equal(left, []string{young.Name}) {
		t.Fatalf("rejected/ after expiry: %v, want %s", left, young.Name)
	}
}
