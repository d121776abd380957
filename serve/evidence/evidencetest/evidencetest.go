// Package evidencetest records Ogg/Opus files into segments the way the
// recorder stores them, in an in-memory store, for tests of code that
// reads stored audio, and decodes cuts back.
package evidencetest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"iter"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/speakerbot"
	"github.com/earshot/earshot/record"
	"github.com/earshot/earshot/record/ogg"
	"github.com/earshot/earshot/record/opus"
	"github.com/earshot/earshot/storage"
)

// Store is an in-memory object store with Get and List (evidence.Source).
type Store struct {
	mu   sync.Mutex
	objs map[string][]byte
}

// NewStore returns an empty store.
func NewStore() *Store { return &Store{objs: map[string][]byte{}} }

// Get implements storage.Getter.
func (m *Store) Get(_ context.Context, key string) (io.ReadCloser, storage.ObjectInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.objs[key]
	if !ok {
		return nil, storage.ObjectInfo{}, &storage.Error{Op: "get", Key: key, Err: storage.ErrNotFound}
	}
	return io.NopCloser(bytes.NewReader(b)), storage.ObjectInfo{Key: key, Size: int64(len(b))}, nil
}

// List implements storage.Lister.
func (m *Store) List(_ context.Context, prefix string) iter.Seq2[storage.ObjectInfo, error] {
	m.mu.Lock()
	var keys []string
	for k := range m.objs {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	m.mu.Unlock()
	slices.Sort(keys)
	return func(yield func(storage.ObjectInfo, error) bool) {
		for _, k := range keys {
			if !yield(storage.ObjectInfo{Key: k}, nil) {
				return
			}
		}
	}
}

// Set stores b under key.
func (m *Store) Set(key string, b []byte) {
	m.mu.Lock()
	m.objs[key] = b
	m.mu.Unlock()
}

// Object returns the bytes under key (nil when absent).
func (m *Store) Object(key string) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.objs[key]
}

// Delete removes key.
func (m *Store) Delete(key string) {
	m.mu.Lock()
	delete(m.objs, key)
	m.mu.Unlock()
}

// Clone returns a copy of the store (objects shared, read-only).
func (m *Store) Clone() *Store {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := NewStore()
	for k, v := range m.objs {
		c.objs[k] = v
	}
	return c
}

// Track names the recorded track.
type Track struct {
	Room, Session, Track, Speaker string
	// Origin is the UTC time of sample 0 (default 2026-11-25T12:00:00Z).
	Origin time.Time
	// SegmentDuration defaults to 30 s.
	SegmentDuration time.Duration
}

// Recording is what Record stored.
type Recording struct {
	Keys []string // segment keys in timeline order
	// PreSkip is the source file's pre-skip: the timeline sample of the
	// file's offset 0 (its first decoded sample).
	PreSkip int64
	// Samples is the length of the recorded timeline.
	Samples int64
	Origin  time.Time
}

// At returns the timeline sample of the source file's offset ms.
func (r Recording) At(ms int64) int64 { return r.PreSkip + ms*event.SampleRate/1000 }

// Record plays the Ogg/Opus file at path through a record.Track (RTP
// timestamps and arrival times as from a perfect network) and stores each
// segment in s under its event.SegmentKey.
func Record(t testing.TB, s *Store, path string, tr Track) Recording {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	file, err := speakerbot.ReadOpusFile(f)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	if tr.Origin.IsZero() {
		tr.Origin = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	}
	sink := &sink{store: s, tr: tr, open: map[int64]*bytes.Buffer{}}
	rec, err := record.NewTrack(record.TrackConfig{
		Track: tr.Track, Room: tr.Room, Session: tr.Session, Speaker: tr.Speaker, Origin: tr.Origin,
		SegmentDuration: tr.SegmentDuration, Chunks: noChunks{}, Segments: sink,
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range file.Packets {
		pkt := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(i), Timestamp: uint32(p.Start), SSRC: 7}, Payload: p.Data}
		if err := rec.Push(pkt, tr.Origin.Add(event.SamplesToDuration(p.Start))); err != nil {
			t.Fatalf("push packet %d: %v", i, err)
		}
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	return Recording{Keys: sink.keys, PreSkip: file.PreSkip(), Samples: rec.Timeline().LastSample + 1, Origin: tr.Origin}
}

type sink struct {
	store *Store
	tr    Track
	open  map[int64]*bytes.Buffer
	keys  []string
}

func (s *sink) OpenSegment(st record.SegmentStart) (io.Writer, error) {
	b := &bytes.Buffer{}
	s.open[st.Seq] = b
	return b, nil
}

func (s *sink) Segment(seg *record.Segment) error {
	key := event.SegmentKey(s.tr.Room, s.tr.Session, seg.Timeline)
	s.store.Set(key, s.open[seg.Seq].Bytes())
	delete(s.open, seg.Seq)
	s.keys = append(s.keys, key)
	return nil
}

func (s *sink) AbortSegment(st record.SegmentStart, _ error) { delete(s.open, st.Seq) }

type noChunks struct{}

func (noChunks) Chunk(*record.Chunk) error { return nil }

// Decode16k decodes an Ogg/Opus stream with libopus at 16 kHz mono and
// applies its pre-skip and end trim as RFC 7845 says (what a player
// outputs).
func Decode16k(t testing.TB, stream []byte) []float32 {
	t.Helper()
	rd, err := ogg.NewOpusReader(bytes.NewReader(stream))
	if err != nil {
		t.Fatalf("no Ogg/Opus headers: %v", err)
	}
	preSkip := int64(rd.Head.PreSkip)
	dec, err := opus.NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	var pcm []float32
	buf := make([]float32, opus.MaxPacketSamples)
	final := int64(-1)
	for {
		p, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n, err := dec.Decode(p.Data, buf)
		if err != nil {
			t.Fatal(err)
		}
		pcm = append(pcm, buf[:n]...)
		if p.EOS {
			final = p.Granule
		}
	}
	from, to := preSkip/ratio, final/ratio
	if final < 0 || from > to || to > int64(len(pcm)) {
		t.Fatalf("pre-skip %d and final granule %d do not fit %d samples", preSkip, final, len(pcm)*ratio)
	}
	return pcm[from:to]
}

// ratio is the timeline rate over the decoder's.
const ratio = event.SampleRate / opus.SampleRate
