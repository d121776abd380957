package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/ingest/janus"
	"github.com/earshot/earshot/ingest/lease"
	"github.com/earshot/earshot/ingest/pseudonym"
	"github.com/earshot/earshot/internal/bustest"
	"github.com/earshot/earshot/record"
	"github.com/earshot/earshot/record/spool"
	"github.com/earshot/earshot/storage"
	"github.com/earshot/earshot/storage/crypt"
)

// newTestStage builds a stage that is never run against Janus: enough to
// drive room and session logic directly.
func newTestStage(t *testing.T, edit func(*Config)) *Stage {
	t.Helper()
	p, err := pseudonym.New(make([]byte, 32), 1)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	sp, err := spool.Open(spool.Config{Dir: t.TempDir(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sp.Close() })
	cfg := Config{
		JanusURL: "http://127.0.0.1:9/janus", IdentityField: "feed_id", BotDisplay: "rec",
		Pseudonym: p, Sender: &bustest.Capture{}, Spool: sp, Logger: log,
		Producer: event.Producer{Name: "test", Instance: "i"},
	}
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// queued returns the lifecycle events the stage queued (its outbox is not
// running in these tests).
func queued(t *testing.T, s *Stage) []*event.Envelope {
	t.Helper()
	var out []*event.Envelope
	for {
		select {
		case m := <-s.out.ch:
			e, err := event.Decode(m.Value)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, e)
		default:
			return out
		}
	}
}

func newMemLease(t *testing.T, log *lease.MemoryLog, instance string) *lease.Manager {
	t.Helper()
	m, err := lease.NewMemory(log, lease.Config{Instance: instance})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

func TestSessionContinuesAcrossInstances(t *testing.T) {
	ctx := context.Background()
	mlog := lease.NewMemoryLog()
	la := newMemLease(t, mlog, "a")
	a := newTestStage(t, func(c *Config) { c.Coordinator = la })
	ref := videoRoomRef(janus.Room{Room: janus.NumID(1300)})
	ra := newRoomRun(a, ref, a.cfg.Pseudonym.Room(ref.name()))
	if _, err := la.Acquire(ctx, ra.pRoom); err != nil {
		t.Fatal(err)
	}
	s1, err := ra.openSession(ctx, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if s1.stay != 0 {
		t.Fatalf("first stay %d", s1.stay)
	}
	// A rejoin in the same process continues the session.
	s2, err := ra.openSession(ctx, time.Now())
	if err != nil || s2.id != s1.id || s2.stay != 1 {
		t.Fatalf("rejoin: %+v %v", s2, err)
	}
	_ = la.Close() // a dies

	// b takes over (the lease expired) within the gap: same session.
	lb := newMemLease(t, mlog, "b")
	b := newTestStage(t, func(c *Config) { c.Coordinator = lb })
	rb := newRoomRun(b, ref, ra.pRoom)
	s3, err := rb.openSession(ctx, time.Now())
	if err != nil || s3.id != s1.id || s3.stay != 2 {
		t.Fatalf("takeover: %+v %v (want session %s, stay 2)", s3, err, s1.id)
	}
	if evs := queued(t, b); len(evs) != 0 {
		t.Errorf("continuing a session emitted %d events", len(evs))
	}

	// c comes after a longer gap: a new session, and the old one ends.
	lc := newMemLease(t, mlog, "c")
	c := newTestStage(t, func(c *Config) { c.Coordinator = lc; c.SessionGap = time.Millisecond })
	time.Sleep(10 * time.Millisecond)
	rc := newRoomRun(c, ref, ra.pRoom)
	s4, err := rc.openSession(ctx, time.Now())
	if err != nil || s4.id == s1.id || s4.stay != 0 {
		t.Fatalf("after the gap: %+v %v", s4, err)
	}
	evs := queued(t, c)
	if len(evs) != 1 || evs[0].Type != event.TypeSessionEnded || evs[0].Session != s1.id {
		t.Errorf("after the gap: events %v, want session_ended of %s", evs, s1.id)
	}
	if st, ok := lc.Session(ra.pRoom); !ok || st.ID != s4.id || st.Ended {
		t.Errorf("stored session %+v", st)
	}
}

func TestWithoutCoordinatorEveryStayIsASession(t *testing.T) {
	s := newTestStage(t, nil)
	r := newRoomRun(s, videoRoomRef(janus.Room{Room: janus.NumID(1301)}), "r1_x")
	s1, _ := r.openSession(context.Background(), time.Now())
	s2, _ := r.openSession(context.Background(), time.Now().Add(time.Millisecond))
	if s1.id == s2.id || s2.stay != 0 {
		t.Errorf("sessions %s and %s (stay %d)", s1.id, s2.id, s2.stay)
	}
}

func TestRoomNamesAndMetadata(t *testing.T) {
	vr := videoRoomRef(janus.Room{Room: janus.NumID(7), Description: "Ann's room", AudioCodec: "opus", MaxPublishers: 3})
	ab := audioBridgeRef(janus.AudioRoom{Room: janus.NumID(7), Description: "bridge", SamplingRate: 48000})
	if vr.name() != "7" || ab.name() != "audiobridge:7" {
		t.Errorf("names %q %q", vr.name(), ab.name())
	}
	if _, ok := vr.metadata(false)["description"]; ok {
		t.Error("description included while not configured")
	}
	if got := vr.metadata(true); got["description"] != "Ann's room" || got["audio_codec"] != "opus" || got["max_publishers"] != "3" {
		t.Errorf("videoroom metadata %v", got)
	}
	if got := ab.metadata(true); got["mixed"] != "true" || got["sampling_rate"] != "48000" || got["description"] != "bridge" {
		t.Errorf("audiobridge metadata %v", got)
	}
	s := newTestStage(t, func(c *Config) {
		c.Rooms = Selection{Mode: "pattern", Pattern: regexp.MustCompile(`^audiobridge:`), Skip: []string{"audiobridge:9"}}
	})
	for name, want := range map[string][2]bool{"7": {false, false}, "audiobridge:7": {true, false}, "audiobridge:9": {false, true}} {
		ok, skipped := s.selected(name)
		if ok != want[0] || skipped != want[1] {
			t.Errorf("selected(%q) = %v, %v; want %v", name, ok, skipped, want)
		}
	}
}

func TestManifestMergesGapsAndEncodes(t *testing.T) {
	m := newManifest("r1_x", "ses_x", ConnectorVideoRoom, time.Unix(100, 0))
	m.join("i", time.Unix(101, 0))
	m.trackStarted("trk_a", "p1_a", 0, event.Timeline{Track: "trk_a"}, time.Unix(102, 0))
	for _, g := range []record.GapSpan{
		{FirstSample: 0, LastSample: 959, Cause: record.GapMute},
		{FirstSample: 960, LastSample: 1919, Cause: record.GapMute},
		{FirstSample: 1920, LastSample: 2879, Cause: record.GapLoss},
		{FirstSample: 4800, LastSample: 5759, Cause: record.GapLoss},
	} {
		m.gap("trk_a", g)
	}
	m.trackEnded("trk_a", "publisher left", event.Timeline{Track: "trk_a", FirstSample: 0, LastSample: 9599}, record.Stats{Lost: 2}, time.Unix(110, 0))
	m.leave("i", "room ended", time.Unix(111, 0))
	m.end("room ended", time.Unix(111, 0))
	b, err := m.encode()
	if err != nil {
		t.Fatal(err)
	}
	var got Manifest
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Version != 1 || len(got.Tracks) != 1 || got.Ended == nil || len(got.Stays) != 1 || got.Stays[0].Left == nil {
		t.Fatalf("manifest %s", b)
	}
	tr := got.Tracks[0]
	want := []record.GapSpan{{FirstSample: 0, LastSample: 1919, Cause: "mute"}, {FirstSample: 1920, LastSample: 2879, Cause: "loss"}, {FirstSample: 4800, LastSample: 5759, Cause: "loss"}}
	if len(tr.Gaps) != len(want) {
		t.Fatalf("gaps %+v, want %+v", tr.Gaps, want)
	}
	for i := range want {
		if tr.Gaps[i] != want[i] {
			t.Errorf("gap %d: %+v, want %+v", i, tr.Gaps[i], want[i])
		}
	}
	if tr.Packets.Lost != 2 || tr.LastSample != 9599 || tr.Speaker != "p1_a" {
		t.Errorf("track %+v", tr)
	}
}

// TestMixGatedWhileSkippedParticipantAudible: an AudioBridge mix is not
// recorded while a participant who must not be recorded is in the room
// and not muted.
func TestMixGatedWhileSkippedParticipantAudible(t *testing.T) {
	s := newTestStage(t, func(c *Config) { c.SkipParticipants = ParticipantSkip{Display: regexp.MustCompile(`^private-`)} })
	r := newRoomRun(s, audioBridgeRef(janus.AudioRoom{Room: janus.NumID(1302)}), "r1_x")
	p := &presence{r: r, sess: &sessionState{id: "ses_x"}, ctx: context.Background(), log: s.log, skips: map[string]int{}}
	m := &mixRun{p: p, parts: map[janus.ID]janus.AudioParticipant{}, skip: map[janus.ID]bool{}}
	alice := janus.AudioParticipant{ID: janus.NumID(1), Display: "alice"}
	secret := janus.AudioParticipant{ID: janus.NumID(2), Display: "private-bob"}
	steps := []struct {
		name  string
		parts []janus.AudioParticipant
		left  *janus.ID
		open  bool
	}{
		{"alice alone", []janus.AudioParticipant{alice}, nil, true},
		{"bob joins", []janus.AudioParticipant{secret}, nil, false},
		{"bob mutes", []janus.AudioParticipant{{ID: secret.ID, Display: secret.Display, Muted: true}}, nil, true},
		{"bob unmutes", []janus.AudioParticipant{secret}, nil, false},
		{"bob leaves", nil, &secret.ID, true},
	}
	for _, st := range steps {
		m.update(st.parts, st.left)
		if m.gate.open() != st.open {
			t.Errorf("%s: gate open %v, want %v", st.name, m.gate.open(), st.open)
		}
	}
	evs := queued(t, s)
	if len(evs) != 1 || evs[0].Type != event.TypeRecordingSkipped || evs[0].Speaker != s.cfg.Pseudonym.Person("2") {
		t.Errorf("events %v: want one recording_skipped naming bob's pseudonym", evs)
	}
}

// TestManifestDropsErasedSpeaker: a person erased while the bot still
// records the session does not come back when the bot rewrites the
// manifest, not even through a later segment or gap of their track.
func TestManifestDropsErasedSpeaker(t *testing.T) {
	store, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	keys := crypt.NewMemory()
	s := newTestStage(t, func(c *Config) { c.Manifests = store; c.Keys = keys })
	const room, session = "r1_x", "ses_x"
	m := newManifest(room, session, ConnectorVideoRoom, time.Unix(100, 0))
	m.trackStarted("trk_a", "p1_alice", 0, event.Timeline{Track: "trk_a"}, time.Unix(101, 0))
	m.trackStarted("trk_b", "p1_bobby", 1, event.Timeline{Track: "trk_b"}, time.Unix(102, 0))
	read := func() Manifest {
		t.Helper()
		s.writeManifest(context.Background(), m)
		rc, _, err := store.Get(context.Background(), event.ManifestKey(room, session))
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		var got Manifest
		if err := json.NewDecoder(rc).Decode(&got); err != nil {
			t.Fatal(err)
		}
		return got
	}
	speakers := func(mf Manifest) (out []string) {
		for _, tr := range mf.Tracks {
			out = append(out, tr.Speaker+"/"+tr.Track)
		}
		return out
	}
	if got := speakers(read()); !slices.Equal(got, []string{"p1_alice/trk_a", "p1_bobby/trk_b"}) {
		t.Fatalf("before erasure: tracks %v", got)
	}
	keys.Shred(event.KeyID(session, "p1_bobby"))
	// Bob's track goes on producing updates after the erasure.
	m.gap("trk_b", record.GapSpan{FirstSample: 0, LastSample: 959, Cause: record.GapLoss})
	if got := speakers(read()); !slices.Equal(got, []string{"p1_alice/trk_a"}) {
		t.Fatalf("after erasure: tracks %v, want only alice's", got)
	}
	m.gap("trk_b", record.GapSpan{FirstSample: 960, LastSample: 1919, Cause: record.GapLoss})
	m.trackEnded("trk_b", "publisher left", event.Timeline{Track: "trk_b", LastSample: 1919}, record.Stats{}, time.Unix(110, 0))
	got := read()
	if tr := speakers(got); !slices.Equal(tr, []string{"p1_alice/trk_a"}) {
		t.Fatalf("after more updates: tracks %v, want only alice's", tr)
	}
	b, _ := json.Marshal(got)
	if strings.Contains(string(b), "trk_b") || strings.Contains(string(b), "p1_bobby") {
		t.Errorf("manifest still names the erased speaker: %s", b)
	}
}

// downPutter fails every Put while down, as an unreachable store does.
type downPutter struct {
	storage.Putter
	down atomic.Bool
}

func (p *downPutter) Put(ctx context.Context, key string, r io.Reader, size int64, opts storage.PutOptions) (storage.ObjectInfo, error) {
	if p.down.Load() {
		return storage.ObjectInfo{}, fmt.Errorf("%w: test store is down", storage.ErrUnavailable)
	}
	return p.Putter.Put(ctx, key, r, size, opts)
}

// A manifest whose write fails (the store is down) is written again once
// the store is back, in its latest state, with no later track or session
// end to carry it; one written since leaves nothing pending.
func TestManifestWrittenAgainAfterStoreOutage(t *testing.T) {
	local, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	store := &downPutter{Putter: local}
	s := newTestStage(t, func(c *Config) { c.Manifests = store })
	const room, session = "r1_x", "ses_x"
	m := newManifest(room, session, ConnectorVideoRoom, time.Unix(100, 0))
	m.trackStarted("trk_a", "p1_alice", 0, event.Timeline{Track: "trk_a"}, time.Unix(101, 0))
	store.down.Store(true)
	s.writeManifest(context.Background(), m)
	m.trackEnded("trk_a", "publisher left", event.Timeline{Track: "trk_a", LastSample: 959}, record.Stats{}, time.Unix(110, 0))
	s.flushManifests(context.Background()) // still down: stays pending
	if _, _, err := local.Get(context.Background(), event.ManifestKey(room, session)); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("manifest stored while the store was down: %v", err)
	}
	store.down.Store(false)
	s.flushManifests(context.Background())
	rc, _, err := local.Get(context.Background(), event.ManifestKey(room, session))
	if err != nil {
		t.Fatalf("manifest not written after the store came back: %v", err)
	}
	defer rc.Close()
	var got Manifest
	if err := json.NewDecoder(rc).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if len(got.Tracks) != 1 || got.Tracks[0].Ended == nil {
		t.Fatalf("manifest written is not the latest state (track ended): %+v", got.Tracks)
	}
	s.manMu.Lock()
	n := len(s.manPending)
	s.manMu.Unlock()
	if n != 0 {
		t.Fatalf("%d manifests still pending after a successful write", n)
	}
}
