package ingest_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/ingest"
	"github.com/earshot/earshot/ingest/janus"
	"github.com/earshot/earshot/ingest/lease"
	"github.com/earshot/earshot/ingest/pseudonym"
	"github.com/earshot/earshot/internal/bustest"
	kit "github.com/earshot/earshot/internal/e2e"
	"github.com/earshot/earshot/internal/speakerbot"
	"github.com/earshot/earshot/internal/speech"
	"github.com/earshot/earshot/internal/testbed"
	"github.com/earshot/earshot/record/spool"
	"github.com/earshot/earshot/storage"
	"github.com/earshot/earshot/storage/crypt"
)

// These tests run stages with the coordination, AudioBridge and manifest
// features on the test bed's Janus, in rooms they create themselves
// (1300-1399), with events captured in memory and manifests in a local
// store. Real-time: run them under the shared lock.

// instance is one ingest stage of a test.
type instance struct {
	t       *testing.T
	stage   *ingest.Stage
	events  *bustest.Capture
	spDir   string
	keys    *crypt.Memory // seals events and spool entries
	reg     *prometheus.Registry
	logs    *testbed.SyncBuffer
	cancel  context.CancelFunc
	done    chan error
	stopped bool
}

type instanceConfig struct {
	name      string
	room      string // selection name
	connector string
	pseud     *pseudonym.Pseudonymizer
	coord     ingest.Coordinator
	store     storage.Putter
	skip      ingest.ParticipantSkip
}

func startInstance(t *testing.T, ep testbed.JanusEndpoint, c instanceConfig) *instance {
	t.Helper()
	in := &instance{t: t, events: &bustest.Capture{}, spDir: t.TempDir(), keys: crypt.NewMemory(), reg: prometheus.NewRegistry(), logs: &testbed.SyncBuffer{}, done: make(chan error, 1)}
	log := slog.New(slog.NewJSONHandler(in.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	prod := event.Producer{Name: "earshot-ingest", Version: "test", Instance: c.name}
	sp, err := openSpool(in.spDir, prod, log, in.keys)
	if err != nil {
		t.Fatal(err)
	}
	in.stage, err = ingest.New(ingest.Config{
		JanusURL: ep.URL, Interface: ep.HostIface, IdentityField: "feed_id", BotDisplay: botDisplay,
		Rooms:        ingest.Selection{Mode: "list", List: []string{c.room}},
		PollInterval: time.Second, SegmentDuration: 2 * time.Second,
		Connectors:  []string{c.connector},
		Coordinator: c.coord, Manifests: c.store, SkipParticipants: c.skip, RoomDescription: true,
		Pseudonym: c.pseud, Sender: in.events, Spool: sp, Producer: prod, Keys: in.keys, Logger: log, Metrics: in.reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	in.cancel = cancel
	go func() { in.done <- in.stage.Run(ctx) }()
	t.Cleanup(func() {
		in.stop()
		_ = in.stage.Close()
		_ = sp.Close()
		if t.Failed() {
			t.Logf("%s log (last 40 lines):\n%s", c.name, tail(in.logs.String(), 40))
		}
	})
	return in
}

func (in *instance) stop() {
	if in.stopped {
		return
	}
	in.stopped = true
	in.cancel()
	select {
	case <-in.done:
	case <-time.After(90 * time.Second):
		in.t.Error("stage did not stop within 90 s")
	}
}

// gauge reads a gauge or counter of the stage.
func (in *instance) gauge(name string) float64 {
	mfs, err := in.reg.Gather()
	if err != nil {
		in.t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetGauge().GetValue() + m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// lifecycle returns the stage's lifecycle events so far.
func (in *instance) lifecycle() []*event.Envelope {
	var out []*event.Envelope
	for _, m := range in.events.Topic(event.TopicLifecycle) {
		e, err := event.Decode(m.Value)
		if err != nil {
			in.t.Fatalf("lifecycle event: %v", err)
		}
		out = append(out, e)
	}
	return out
}

func ofType(evs []*event.Envelope, typ event.Type) []*event.Envelope {
	var out []*event.Envelope
	for _, e := range evs {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// testRoomNumber picks a room number in 1300-1399.
func testRoomNumber() uint64 {
	n, _ := rand.Int(rand.Reader, big.NewInt(100))
	return 1300 + n.Uint64()
}

// createRoom creates a temporary room of the connector, destroyed at the
// end of the test.
func createRoom(t *testing.T, ep testbed.JanusEndpoint, connector string) janus.ID {
	t.Helper()
	c, err := janus.New(janus.Config{URL: ep.URL, LocalAddr: ep.HostAddr})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := c.CreateSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var destroy func(context.Context, janus.ID) error
	var room janus.ID
	for try := 0; ; try++ {
		room = janus.NumID(testRoomNumber())
		if connector == ingest.ConnectorAudioBridge {
			ab, err2 := janus.AttachAudioBridge(ctx, s)
			if err2 != nil {
				t.Fatal(err2)
			}
			err, destroy = ab.Create(ctx, room, "Earshot coordination test "+kit.RandHex(3)), ab.Destroy
		} else {
			vr, err2 := janus.AttachVideoRoom(ctx, s)
			if err2 != nil {
				t.Fatal(err2)
			}
			err, destroy = vr.Create(ctx, room, "Earshot coordination test "+kit.RandHex(3), 10), vr.Destroy
		}
		if err == nil {
			break
		}
		if try > 10 {
			t.Fatalf("create %s room: %v", connector, err)
		}
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = destroy(ctx, room)
		_ = s.Close()
	})
	return room
}

// playSpeech runs a speaker bot playing the test speech file once, and
// returns its feed ID.
func playSpeech(t *testing.T, ep testbed.JanusEndpoint, room janus.ID, bridge bool, display string) uint64 {
	t.Helper()
	var plog testbed.SyncBuffer
	if display == "" {
		display = "speaker-" + kit.RandHex(4)
	}
	feed := randomFeedID()
	bot, err := speakerbot.New(speakerbot.Config{
		JanusURL: ep.URL, LocalAddr: ep.HostAddr, Interface: ep.HostIface, Room: room,
		Display: display, FeedID: janus.NumID(feed),
		File: "janus/testdata/speech.opus", Log: &plog, LeadIn: time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run := bot.Run
	if bridge {
		run = bot.RunAudioBridge
	}
	if err := run(ctx); err != nil {
		t.Fatalf("speaker bot: %v", err)
	}
	return feed
}

// TestE2ELeaseOneBotPerRoom: two instances coordinate through Kafka; only
// one records the room, and when it dies without releasing its lease the
// other takes over after the TTL and continues the same session.
func TestE2ELeaseOneBotPerRoom(t *testing.T) {
	ep := testbed.JanusServer(t)
	brokers := bustest.Kafka(t)
	topic := "earshot-ingest-lease-test-" + kit.RandHex(4)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := bus.EnsureTopics(ctx, brokers, bus.TopicSpec{Name: topic, Partitions: 3, Compact: true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = bus.DeleteTopics(ctx, brokers, topic)
	})
	leaseCfg := func(name string) *lease.Manager {
		m, err := lease.NewKafka(ctx, lease.KafkaConfig{
			Config: lease.Config{Instance: name, TTL: 3 * time.Second, Renew: time.Second}, Cluster: brokers, Topic: topic,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Close() })
		return m
	}
	room := createRoom(t, ep, ingest.ConnectorVideoRoom)
	pseud := newPseudonymizer(t)
	store, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	la, lb := leaseCfg("inst-a"), leaseCfg("inst-b")
	a := startInstance(t, ep, instanceConfig{name: "inst-a", room: room.String(), connector: ingest.ConnectorVideoRoom, pseud: pseud, coord: la, store: store})
	waitFor(t, "a joins the room", time.Minute, func() bool { return a.gauge("earshot_ingest_rooms") == 1 })
	b := startInstance(t, ep, instanceConfig{name: "inst-b", room: room.String(), connector: ingest.ConnectorVideoRoom, pseud: pseud, coord: lb, store: store})

	playSpeech(t, ep, room, false, "")
	waitFor(t, "a's track ends", time.Minute, func() bool { return len(ofType(a.lifecycle(), event.TypeTrackEnded)) == 1 })
	if n := b.gauge("earshot_ingest_rooms"); n != 0 {
		t.Fatalf("b is in the room too (%v) while a holds the lease", n)
	}
	if n := len(b.lifecycle()); n != 0 {
		t.Fatalf("b wrote %d lifecycle events while a holds the lease", n)
	}
	started := ofType(a.lifecycle(), event.TypeSessionStarted)
	if len(started) != 1 {
		t.Fatalf("a: %d session_started events", len(started))
	}
	session := started[0].Session

	// a dies: its lease is neither renewed nor released (as after kill -9).
	_ = la.Close()
	died := time.Now()
	a.stop()
	waitFor(t, "b takes the room over", time.Minute, func() bool { return b.gauge("earshot_ingest_rooms") == 1 })
	t.Logf("b joined %v after a died (lease TTL 3 s, poll 1 s)", time.Since(died).Round(time.Millisecond))

	playSpeech(t, ep, room, false, "")
	waitFor(t, "b's track ends", time.Minute, func() bool { return len(ofType(b.lifecycle(), event.TypeTrackEnded)) == 1 })
	b.stop()

	evB := b.lifecycle()
	if n := len(ofType(evB, event.TypeSessionStarted)); n != 0 {
		t.Errorf("b opened %d new sessions; it should continue a's", n)
	}
	for _, e := range ofType(evB, event.TypeBotJoined) {
		if e.Session != session {
			t.Errorf("b joined session %s, a's was %s", e.Session, session)
		}
	}
	var ts event.TrackStarted
	if st := ofType(evB, event.TypeTrackStarted); len(st) != 1 {
		t.Fatalf("b: %d track_started", len(st))
	} else if err := st[0].DecodePayload(&ts); err != nil || ts.Ordinal < 100_000 {
		t.Errorf("b's track ordinal %d (%v): a continued session's tracks must not reuse the first stay's ordinals", ts.Ordinal, err)
	}
	for _, in := range []*instance{a, b} {
		if n := len(ofType(in.lifecycle(), event.TypeSessionEnded)); n != 0 {
			t.Errorf("%d session_ended events: the room did not end", n)
		}
	}
	// The manifest, extended by b, holds both stays and both tracks.
	m := readManifest(t, store, pseud.Room(room.String()), session)
	if len(m.Stays) != 2 || len(m.Tracks) != 2 || m.Ended != nil {
		t.Errorf("manifest: %d stays, %d tracks, ended %v; want 2, 2, open", len(m.Stays), len(m.Tracks), m.Ended)
	}
}

// TestE2EAudioBridgeMix: an AudioBridge room is joined muted and its mix
// recorded as one track of the room (speaker ""); the stored segments
// decode to the track's duration, and the manifest lists them.
func TestE2EAudioBridgeMix(t *testing.T) {
	ep := testbed.JanusServer(t)
	room := createRoom(t, ep, ingest.ConnectorAudioBridge)
	name := "audiobridge:" + room.String()
	pseud := newPseudonymizer(t)
	store, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	in := startInstance(t, ep, instanceConfig{name: "inst-ab", room: name, connector: ingest.ConnectorAudioBridge, pseud: pseud, store: store})
	waitFor(t, "the stage joins the bridge", time.Minute, func() bool { return in.gauge("earshot_ingest_rooms") == 1 })
	playSpeech(t, ep, room, true, "")
	time.Sleep(time.Second)
	in.stop()

	evs := in.lifecycle()
	started := ofType(evs, event.TypeSessionStarted)
	if len(started) != 1 {
		t.Fatalf("%d session_started", len(started))
	}
	var ss event.SessionStarted
	if err := started[0].DecodePayload(&ss); err != nil {
		t.Fatal(err)
	}
	if ss.Connector != "janus-audiobridge" || ss.Metadata["description"] == "" || ss.Metadata["mixed"] != "true" {
		t.Errorf("session_started payload %+v", ss)
	}
	if started[0].Room != pseud.Room(name) {
		t.Errorf("room pseudonym %s, want that of %q", started[0].Room, name)
	}
	ended := ofType(evs, event.TypeTrackEnded)
	if len(ended) != 1 {
		t.Fatalf("%d track_ended events, want 1 (the mix)", len(ended))
	}
	if ended[0].Speaker != "" {
		t.Errorf("mix track speaker %q, want \"\" (the room)", ended[0].Speaker)
	}
	var te event.TrackEnded
	if err := ended[0].DecodePayload(&te); err != nil {
		t.Fatal(err)
	}

	// Decode the spooled segments in order; they must give the timeline.
	segs := spooledSegments(t, in)
	if len(segs) == 0 {
		t.Fatal("no segment spooled")
	}
	var pcm []int16
	for _, s := range segs {
		pcm = append(pcm, decodeOgg(t, s)...)
	}
	got := float64(len(pcm)) / event.SampleRate
	want := float64(te.Samples) / event.SampleRate
	if math.Abs(got-want) > 0.01*want {
		t.Errorf("segments decode to %.3f s, the track is %.3f s (more than 1 %% apart)", got, want)
	}
	// The timeline keeps pace with wall-clock time: from its origin to
	// the track's end.
	if tl := ended[0].Timeline; tl != nil {
		wall := ended[0].Time.Sub(tl.Origin).Seconds()
		if math.Abs(wall-want) > 0.01*want+0.15 {
			t.Errorf("the mix timeline lasts %.3f s, wall-clock from its origin to its end %.3f s", want, wall)
		}
	}
	if want < 5 {
		t.Errorf("mix track of %.3f s is shorter than the 5.2 s the speaker played", want)
	}
	if r := rms(pcm, 0, int64(len(pcm))); r < 0.01 {
		t.Errorf("mix RMS %.1f: the speaker was not recorded", r)
	}
	t.Logf("mix: %d segments, %.3f s decoded, %.3f s on the timeline, RMS %.3f of full scale", len(segs), got, want, rms(pcm, 0, int64(len(pcm))))

	m := readManifest(t, store, pseud.Room(name), started[0].Session)
	if m.Version != 1 || len(m.Tracks) != 1 || m.Ended == nil || m.Connector != "audiobridge" {
		t.Fatalf("manifest: %+v", m)
	}
	if tr := m.Tracks[0]; len(tr.Segments) != len(segs) || tr.Speaker != "" || tr.LastSample+1 != te.Samples {
		t.Errorf("manifest track: %d segments (spooled %d), speaker %q, last sample %d (track %d samples)", len(tr.Segments), len(segs), tr.Speaker, tr.LastSample, te.Samples)
	}
}

// TestE2ESkipParticipant: a publisher whose display name matches the skip
// pattern is not subscribed; the skip is an event and a log line that name
// the participant's pseudonym only.
func TestE2ESkipParticipant(t *testing.T) {
	ep := testbed.JanusServer(t)
	room := createRoom(t, ep, ingest.ConnectorVideoRoom)
	pseud := newPseudonymizer(t)
	in := startInstance(t, ep, instanceConfig{
		name: "inst-skip", room: room.String(), connector: ingest.ConnectorVideoRoom, pseud: pseud,
		skip: ingest.ParticipantSkip{Display: regexp.MustCompile(`^private-`)},
	})
	waitFor(t, "the stage joins the room", time.Minute, func() bool { return in.gauge("earshot_ingest_rooms") == 1 })
	display := "private-" + kit.RandHex(6)
	feed := playSpeech(t, ep, room, false, display)
	recorded := playSpeech(t, ep, room, false, "")
	waitFor(t, "the other speaker's track ends", time.Minute, func() bool { return len(ofType(in.lifecycle(), event.TypeTrackEnded)) == 1 })
	in.stop()

	evs := in.lifecycle()
	skips := ofType(evs, event.TypeRecordingSkipped)
	if len(skips) != 1 {
		t.Fatalf("%d recording_skipped events, want 1", len(skips))
	}
	var rs event.RecordingSkipped
	if err := skips[0].DecodePayload(&rs); err != nil || rs.Scope != "participant" {
		t.Errorf("skip payload %+v (%v)", rs, err)
	}
	if want := pseud.Person(strconv.FormatUint(feed, 10)); skips[0].Speaker != want {
		t.Errorf("skip names speaker %q, want the pseudonym %q", skips[0].Speaker, want)
	}
	for _, e := range ofType(evs, event.TypeTrackStarted) {
		if e.Speaker != pseud.Person(strconv.FormatUint(recorded, 10)) {
			t.Errorf("a track of speaker %s was recorded", e.Speaker)
		}
	}
	for _, m := range in.events.All() {
		if strings.Contains(string(m.Value), display) || strings.Contains(string(m.Value), strconv.FormatUint(feed, 10)) {
			t.Errorf("an event on %s carries the skipped participant's display name or feed ID", m.Topic)
		}
	}
	if logs := in.logs.String(); strings.Contains(logs, display) || strings.Contains(logs, strconv.FormatUint(feed, 10)) {
		t.Error("the stage's log carries the skipped participant's display name or feed ID")
	}
}

func newPseudonymizer(t *testing.T) *pseudonym.Pseudonymizer {
	t.Helper()
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	p, err := pseudonym.New(secret, 1)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func readManifest(t *testing.T, store storage.Getter, room, session string) ingest.Manifest {
	t.Helper()
	rc, info, err := store.Get(context.Background(), event.ManifestKey(room, session))
	if err != nil {
		t.Fatalf("manifest: %v", err)
	}
	defer rc.Close()
	var m ingest.Manifest
	if err := json.NewDecoder(rc).Decode(&m); err != nil {
		t.Fatalf("manifest: %v", err)
	}
	if info.Metadata["room"] != room || info.Metadata["session"] != session {
		t.Errorf("manifest metadata %v: want room and session", info.Metadata)
	}
	return m
}

// spooledSegments returns the spooled segments in timeline order, each
// opened with the instance's keys into a file of its own. It fails the
// test when a segment rests on the spool's disk in the clear (unsealed, or
// with Ogg pages in it).
func spooledSegments(t *testing.T, in *instance) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(in.spDir, "pending", "*", "segment.ogg"))
	if err != nil {
		t.Fatal(err)
	}
	first := map[string]int64{}
	var out []string
	for _, p := range paths {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(p), "descriptor.json"))
		if err != nil {
			t.Fatal(err)
		}
		var d spool.Descriptor
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatal(err)
		}
		if d.Event == nil || d.Event.Timeline == nil {
			t.Fatalf("%s: descriptor without an event timeline", p)
		}
		sealed, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if d.Sealed == "" || looksLikeOgg(sealed) {
			t.Fatalf("%s rests on the spool's disk in the clear (sealed for %q)", p, d.Sealed)
		}
		r, err := in.keys.OpenFrom(context.Background(), d.Event.KeyRef(), d.Sealed, bytes.NewReader(sealed))
		if err != nil {
			t.Fatalf("open %s: %v", p, err)
		}
		plain, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("open %s: %v", p, err)
		}
		if int64(len(plain)) != d.Size || !bytes.HasPrefix(plain, []byte("OggS")) {
			t.Fatalf("%s opens to %d bytes, the descriptor says %d, of Ogg", p, len(plain), d.Size)
		}
		q := filepath.Join(t.TempDir(), "segment.ogg")
		if err := os.WriteFile(q, plain, 0o600); err != nil {
			t.Fatal(err)
		}
		first[q] = d.Event.Timeline.FirstSample
		out = append(out, q)
	}
	sort.Slice(out, func(i, j int) bool { return first[out[i]] < first[out[j]] })
	return out
}

// looksLikeOgg says b holds Ogg/Opus in the clear: an Ogg page header
// (capture pattern and stream structure version 0) or the Opus
// identification header. Ciphertext holds either by chance about once in
// 10^12 bytes.
func looksLikeOgg(b []byte) bool {
	return bytes.Contains(b, []byte("OggS\x00")) || bytes.Contains(b, []byte("OpusHead"))
}

// decodeOgg decodes an Ogg/Opus file with opusdec (48 kHz).
func decodeOgg(t *testing.T, path string) []int16 {
	t.Helper()
	opusdec := testbed.RequireTool(t, "opusdec")
	wav := filepath.Join(t.TempDir(), "out.wav")
	if out, err := exec.Command(opusdec, "--quiet", "--rate", "48000", path, wav).CombinedOutput(); err != nil {
		t.Fatalf("opusdec %s: %v: %s", path, err, out)
	}
	pcm, err := speech.ReadWAVFile(wav)
	if err != nil {
		t.Fatal(err)
	}
	if pcm.Channels != 1 || pcm.Rate != event.SampleRate {
		t.Fatalf("%s decodes to %d channels at %d Hz", path, pcm.Channels, pcm.Rate)
	}
	return pcm.Samples
}

// openSpool opens a spool that seals its entries, as `earshot ingest`
// does, under the keys that seal the stage's events.
func openSpool(dir string, prod event.Producer, log *slog.Logger, keys spool.Sealer) (*spool.Spool, error) {
	return spool.Open(spool.Config{Dir: dir, Producer: prod, Logger: log, Sealer: keys})
}
