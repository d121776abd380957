package spool

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/earshot/earshot/event"
)

func TestPutThenPending(t *testing.T) {
	s := openSpool(t, t.TempDir())
	segs := []Segment{testSeg("alice", 0), testSeg("bob", 0), testSeg("alice", 1)}
	var total int64
	for _, seg := range segs {
		put(t, s, seg)
		total += int64(len(testData(seg)))
	}
	got, err := s.Pending()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(segs) {
		t.Fatalf("Pending = %d entries, want %d", len(got), len(segs))
	}
	for i, e := range got {
		seg := segs[i] // commit order
		data := testData(seg)
		if i > 0 && e.Name <= got[i-1].Name {
			t.Errorf("entry names not increasing: %s after %s", e.Name, got[i-1].Name)
		}
		if want := event.SegmentKey(seg.Room, seg.Session, seg.Timeline); e.Key != want {
			t.Errorf("entry %d key %q, want %q", i, e.Key, want)
		}
		if e.Size != int64(len(data)) || e.SHA256 != sha(data) {
			t.Errorf("entry %d size/sha %d/%s, want %d/%s", i, e.Size, e.SHA256, len(data), sha(data))
		}
		ev := e.Event
		wantID := event.EventID(event.TypeSegmentStored, "rev_0", &seg.Timeline, seg.Room, seg.Session, seg.Speaker)
		if ev.EventID != wantID || ev.Room != seg.Room || ev.Session != seg.Session || ev.Speaker != seg.Speaker || *ev.Timeline != seg.Timeline || ev.Producer != testProd || ev.Processing != nil {
			t.Errorf("entry %d event = %+v", i, ev)
		}
		if ev.Hops.Recorded == nil || !ev.Hops.Recorded.Equal(seg.Recorded) || ev.Hops.Stored != nil {
			t.Errorf("entry %d hops = %+v, want recorded only", i, ev.Hops)
		}
		p := payloadOf(t, ev)
		if p.Seq != seg.Seq || p.PreSkip != seg.PreSkip || p.GapSamples != seg.GapSamples || p.KeyID != seg.KeyID {
			t.Errorf("entry %d payload = %+v", i, p)
		}
		if got := unsealed(t, filepath.Join(s.Dir(), pendingDir, e.Name, dataFile), e, data); !bytes.Equal(got, data) {
			t.Errorf("entry %d segment file opens to %d bytes, not what was put", i, len(got))
		}
	}
	if u := s.Usage(); u.Entries != 3 || u.Bytes != total || u.Writing != 0 {
		t.Errorf("Usage = %+v, want 3 entries, %d bytes", u, total)
	}
	if left := dirNames(t, filepath.Join(s.Dir(), tmpDir)); len(left) != 0 {
		t.Errorf("tmp/ holds %v after commits", left)
	}
}

// The recorder's path: bytes streamed in a few writes, then Commit.
func TestWriterStreams(t *testing.T) {
	s := openSpool(t, t.TempDir())
	seg := testSeg("alice", 4)
	data := testData(seg)
	seg.SHA256 = sha(data)
	w, err := s.Create(segmentRef(testSeg("alice", 0)))
	if err != nil {
		t.Fatal(err)
	}
	for chunk := range slices.Chunk(data, 1000) {
		if _, err := w.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if u := s.Usage(); u.Writing != int64(len(data)) || u.Entries != 0 {
		t.Errorf("Usage while writing = %+v", u)
	}
	e, err := w.Commit(seg)
	if err != nil {
		t.Fatal(err)
	}
	w.Abort() // no-op after Commit
	if _, err := w.Write([]byte("x")); err == nil {
		t.Error("Write after Commit succeeded")
	}
	if e.SHA256 != seg.SHA256 || e.Size != int64(len(data)) {
		t.Errorf("entry %+v", e)
	}
	if u := s.Usage(); u.Entries != 1 || u.Bytes != int64(len(data)) || u.Writing != 0 {
		t.Errorf("Usage = %+v", u)
	}
}

func TestAbortLeavesNothing(t *testing.T) {
	s := openSpool(t, t.TempDir())
	w, err := s.Create(segmentRef(testSeg("alice", 0)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(bytes.Repeat([]byte{1}, 5000)); err != nil {
		t.Fatal(err)
	}
	w.Abort()
	w.Abort()
	if _, err := w.Commit(testSeg("alice", 0)); err == nil {
		t.Error("Commit after Abort succeeded")
	}
	checkNothingSpooled(t, s)
}

// Only ID-shaped pseudonyms get in; a display name is refused without being
// repeated in the error.
func TestPutRefusesInvalidSegments(t *testing.T) {
	const displayName = "Alice Canary-7f3q Smith"
	tests := []struct {
		name string
		mod  func(*Segment)
	}{
		{"display name as speaker", func(s *Segment) { s.Speaker = displayName }},
		{"display name as room", func(s *Segment) { s.Room = displayName }},
		{"empty room", func(s *Segment) { s.Room = "" }},
		{"empty session", func(s *Segment) { s.Session = "" }},
		{"empty track", func(s *Segment) { s.Timeline.Track = "" }},
		{"path in track", func(s *Segment) { s.Timeline.Track = "../../etc" }},
		{"dot-dot session", func(s *Segment) { s.Session = ".." }},
		{"timeline backwards", func(s *Segment) { s.Timeline.LastSample = s.Timeline.FirstSample - 1 }},
		{"no origin", func(s *Segment) { s.Timeline.Origin = time.Time{} }},
		{"negative seq", func(s *Segment) { s.Seq = -1 }},
		{"pre-skip too large", func(s *Segment) { s.PreSkip = 70000 }},
		{"more gap than samples", func(s *Segment) { s.GapSamples = s.Timeline.Samples() + 1 }},
		{"sha not hex", func(s *Segment) { s.SHA256 = "xyz" }},
		{"sha mismatch", func(s *Segment) { s.SHA256 = sha([]byte("other bytes")) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := openSpool(t, t.TempDir())
			seg := testSeg("alice", 1)
			tc.mod(&seg)
			_, err := s.Put(seg, bytes.NewReader(testData(testSeg("alice", 1))))
			if !errors.Is(err, ErrInvalidSegment) {
				t.Fatalf("Put = %v, want ErrInvalidSegment", err)
			}
			if strings.Contains(err.Error(), "Canary") {
				t.Errorf("error repeats the refused value: %v", err)
			}
			checkNothingSpooled(t, s)
		})
	}
}

func TestLimits(t *testing.T) {
	// Segments of 1000 bytes; each configuration holds two of them.
	data := bytes.Repeat([]byte{0x4f}, 1000)
	tests := []struct {
		name string
		cfg  func(*Config)
	}{
		{"bytes", func(c *Config) { c.MaxBytes = 2500 }},
		{"entries", func(c *Config) { c.MaxEntries = 2 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := openSpool(t, t.TempDir(), tc.cfg)
			var entries []Entry
			for i := range int64(2) {
				e, err := s.Put(testSeg("alice", i), bytes.NewReader(data))
				if err != nil {
					t.Fatal(err)
				}
				entries = append(entries, e)
			}
			_, err := s.Put(testSeg("alice", 2), bytes.NewReader(data))
			if !errors.Is(err, ErrFull) || !strings.Contains(err.Error(), s.Dir()) || !strings.Contains(err.Error(), "limit") {
				t.Fatalf("Put over the limit = %v; want ErrFull naming the spool and the limit", err)
			}
			t.Logf("error when full: %v", err)
			if p := pendingNames(t, s); len(p) != 2 {
				t.Errorf("pending/ = %v, want the 2 entries that fit", p)
			}
			if left := dirNames(t, filepath.Join(s.Dir(), tmpDir)); len(left) != 0 {
				t.Errorf("tmp/ = %v", left)
			}
			if u := s.Usage(); u.Entries != 2 || u.Bytes != 2000 || u.Writing != 0 {
				t.Errorf("Usage = %+v", u)
			}
			// Uploading makes room again.
			if err := s.remove(entries[0].Name); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Put(testSeg("alice", 2), bytes.NewReader(data)); err != nil {
				t.Errorf("Put after room was made: %v", err)
			}
		})
	}
}

func TestOpenCleansLeftoversAndKeepsOrder(t *testing.T) {
	dir := t.TempDir()
	a := openSpool(t, dir)
	e0 := put(t, a, testSeg("alice", 0))
	e1 := put(t, a, testSeg("alice", 1))
	// A crash mid-write: a writer with bytes but no commit, and a removal
	// that had moved its entry to tmp/.
	w, err := a.Create(segmentRef(testSeg("alice", 0)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("half a segment")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, tmpDir, "del-x", "00000000000000000001"), 0o750); err != nil {
		t.Fatal(err)
	}
	a.Close() // the kernel drops the lock of a killed process the same way

	b := openSpool(t, dir)
	if left := dirNames(t, filepath.Join(dir, tmpDir)); len(left) != 0 {
		t.Errorf("tmp/ after Open = %v", left)
	}
	got, err := b.Pending()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != e0.Name || got[1].Name != e1.Name {
		t.Fatalf("Pending after restart = %v, want %s, %s", got, e0.Name, e1.Name)
	}
	if u := b.Usage(); u.Entries != 2 || u.Bytes != e0.Size+e1.Size {
		t.Errorf("Usage after restart = %+v", u)
	}
	e2 := put(t, b, testSeg("alice", 2))
	if e2.Name <= e1.Name {
		t.Errorf("new entry %s sorts before the old %s", e2.Name, e1.Name)
	}
}

func TestOneProcessPerSpool(t *testing.T) {
	dir := t.TempDir()
	a := openSpool(t, dir)
	_, err := Open(Config{Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "in use") || !strings.Contains(err.Error(), dir) {
		t.Fatalf("second Open = %v; want an error saying the spool is in use", err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := a.Create(segmentRef(testSeg("alice", 0))); !errors.Is(err, ErrClosed) {
		t.Errorf("Create after Close = %v", err)
	}
	openSpool(t, dir)
}

// Entries that cannot be used move to rejected/ with a reason and a log
// line; the others are unaffected, and nothing is fatal.
func TestMalformedEntriesMoveToRejected(t *testing.T) {
	editDesc := func(f func(d *Descriptor)) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			p := filepath.Join(dir, descFile)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			d, err := ParseDescriptor(b)
			if err != nil {
				t.Fatal(err)
			}
			f(d)
			writeJSON(t, p, d)
		}
	}
	tests := []struct {
		name   string
		break_ func(t *testing.T, entryDir string)
		stray  bool // break_ gets the pending folder and adds a stray
	}{
		{"descriptor garbage", func(t *testing.T, dir string) { writeFile(t, filepath.Join(dir, descFile), "{\"format\":1,") }, false},
		{"descriptor missing", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, descFile)) }, false},
		{"segment missing", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, dataFile)) }, false},
		{"segment truncated", func(t *testing.T, dir string) { os.Truncate(filepath.Join(dir, dataFile), 10) }, false},
		{"unknown format", editDesc(func(d *Descriptor) { d.Format = 2 }), false},
		{"key points elsewhere", editDesc(func(d *Descriptor) { d.Key = "manifests/x.json" }), false},
		{"event id tampered", editDesc(func(d *Descriptor) { d.Event.EventID = event.DeriveID("evt", "other") }), false},
		{"protected data", editDesc(func(d *Descriptor) { d.Event.SetProtected("k", map[string]string{"name": "x"}) }), false},
		{"wrong type", editDesc(func(d *Descriptor) { d.Event.Type = event.TypeAudioChunk }), false},
		{"stray file", func(t *testing.T, pending string) { writeFile(t, filepath.Join(pending, "notes.txt"), "hello") }, true},
		{"stray folder", func(t *testing.T, pending string) { os.Mkdir(filepath.Join(pending, "12"), 0o750) }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var logs logBuffer
			dir := t.TempDir()
			s := openSpool(t, dir, func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
			bad := put(t, s, testSeg("alice", 0))
			good := put(t, s, testSeg("alice", 1))
			if tc.stray {
				tc.break_(t, filepath.Join(dir, pendingDir))
				os.RemoveAll(filepath.Join(dir, pendingDir, bad.Name))
				s.remove(bad.Name)
			} else {
				tc.break_(t, filepath.Join(dir, pendingDir, bad.Name))
			}
			got, err := s.Pending()
			if err != nil {
				t.Fatalf("Pending: %v", err)
			}
			if len(got) != 1 || got[0].Name != good.Name {
				t.Fatalf("Pending = %v, want only %s", got, good.Name)
			}
			rejected := dirNames(t, filepath.Join(dir, rejectedDir))
			if len(rejected) != 1 || s.Rejected() != 1 {
				t.Fatalf("rejected/ = %v, Rejected() = %d", rejected, s.Rejected())
			}
			if !tc.stray {
				reason, err := os.ReadFile(filepath.Join(dir, rejectedDir, rejected[0], reasonFile))
				if err != nil || len(reason) == 0 {
					t.Errorf("no reason file: %v", err)
				}
				t.Logf("reason: %s", reason)
			}
			if !strings.Contains(logs.String(), "rejected") {
				t.Errorf("no log line: %q", logs.String())
			}
			if u := s.Usage(); u.Entries != 1 || u.Bytes != good.Size {
				t.Errorf("Usage = %+v", u)
			}
			// Open does the same for what it finds.
			s.Close()
			s2 := openSpool(t, dir)
			if got, _ := s2.Pending(); len(got) != 1 {
				t.Errorf("after reopen: %d pending", len(got))
			}
		})
	}
}
