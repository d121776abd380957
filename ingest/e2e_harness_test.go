package ingest_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/ingest"
	"github.com/earshot/earshot/ingest/pseudonym"
	"github.com/earshot/earshot/internal/bustest"
	kit "github.com/earshot/earshot/internal/e2e"
	"github.com/earshot/earshot/internal/testbed"
	"github.com/earshot/earshot/record/spool"
	"github.com/earshot/earshot/storage"
	"github.com/earshot/earshot/storage/crypt"
)

// The end-to-end tests run the ingest stage as `earshot ingest` wires it
// (cmd/earshot/ingeststage.go): bots in a real Janus room, the spool and
// its uploader into versitygw, events into Kafka. Each test gets its own
// pseudonym secret (so its room, session and speaker pseudonyms are its
// own, and records of other runs on the shared topics are told apart by
// room), its own bucket and its own spool folder.

// botDisplay is the recording notice the stage shows in the room.
const botDisplay = "Recording — Trust & Safety"

// e2eConfig says how to build a stage for one test.
type e2eConfig struct {
	room     uint64 // VideoRoom: 1236 or 1237 (1234 belongs to other packages' tests)
	identity string // ingest.Config.IdentityField
	// embedded runs the Kafka-protocol broker in process, so the test can
	// read every record the run produced; otherwise the test bed's Kafka.
	embedded bool
	segment  time.Duration // stored segment length
	// holdUploads starts the uploader only once the stage has stopped, so
	// that every segment can be inspected in the spool first.
	holdUploads bool
	// shippedPoll lists rooms at the stage's default interval (what the
	// binary does) instead of the harness's 1 s.
	shippedPoll bool
}

// e2e is one stage on the test bed, with everything around it.
type e2e struct {
	t       testing.TB
	cfg     e2eConfig
	janus   testbed.JanusEndpoint
	brokers bus.Cluster
	pseud   *pseudonym.Pseudonymizer
	roomP   string
	s3cfg   storage.S3Config
	store   *storage.S3
	spool   *spool.Spool
	spDir   string
	up      *spool.Uploader
	stage   *ingest.Stage
	reg     *prometheus.Registry
	logs    *testbed.SyncBuffer
	log     *slog.Logger
	// from is, per topic and partition, the first offset this run may
	// have written (the end of the log when the test began).
	from map[string]map[int]int64

	stalls    stallMonitor
	cancel    context.CancelFunc
	stageDone chan error
	upCancel  context.CancelFunc
	upDone    chan error
	stopped   bool
}

// e2eTopics are the topics the ingest stage writes.
var e2eTopics = []string{event.TopicAudio, event.TopicSegments, event.TopicLifecycle}

func newE2E(t testing.TB, cfg e2eConfig) *e2e {
	t.Helper()
	h := &e2e{t: t, cfg: cfg, janus: testbed.JanusServer(t), logs: &testbed.SyncBuffer{}}
	h.log = slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("stage log (last 60 lines):\n%s", tail(h.logs.String(), 60))
			if worst, n := h.stalls.result(); n > 0 {
				t.Logf("NOTE: this test process was stalled %d times for more than %v (worst %v), so packets reached the "+
					"recorder that late: it places such packets by arrival time and fills the stall with silence, which "+
					"moves the rest of a track that never pauses (see the ingest e2e report)", n, stallThreshold, worst)
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	if cfg.embedded {
		emb, err := bus.NewEmbedded(ctx, bus.EmbeddedConfig{Partitions: 3, Logger: h.log})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = emb.Close() })
		h.brokers = emb.Cluster()
	} else {
		h.brokers = bustest.Kafka(t)
	}
	var specs []bus.TopicSpec
	for _, ts := range event.Topics(3) {
		specs = append(specs, bus.TopicSpec{Name: ts.Name, Partitions: ts.Partitions, Compact: ts.Compact, Retention: ts.Retention})
	}
	if err := bus.EnsureTopics(ctx, h.brokers, specs...); err != nil {
		t.Fatalf("ensure topics: %v", err)
	}
	h.from = map[string]map[int]int64{}
	for _, topic := range e2eTopics {
		// A topic EnsureTopics just created may answer "not leader" for
		// a moment after its leaders show in the metadata.
		var err error
		for try := 0; try < 50; try++ {
			if h.from[topic], err = kit.EndOffsets(ctx, h.brokers, topic); err == nil {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("offsets of %s: %v", topic, err)
		}
	}

	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	var err error
	if h.pseud, err = pseudonym.New(secret, 1); err != nil {
		t.Fatal(err)
	}
	h.roomP = h.pseud.Room(strconv.FormatUint(cfg.room, 10))

	h.s3cfg = kit.FreshBucket(t, "earshot-e2e")
	if h.store, err = storage.NewS3(ctx, h.s3cfg); err != nil {
		t.Fatalf("open bucket: %v", err)
	}

	poll := time.Second
	if cfg.shippedPoll {
		poll = 0 // the stage's default
	}
	prod := event.Producer{Name: "earshot-ingest", Version: "e2e", Instance: "e2e-" + kit.RandHex(4)}
	producer, err := bus.NewProducer(bus.ProducerConfig{Cluster: h.brokers, Logger: h.log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = producer.Close() })
	h.spDir = t.TempDir()
	// One keyring seals events and spool entries, as `earshot ingest`
	// has it: the spool keeps every segment sealed under its speaker's
	// data key until upload.
	keys := crypt.NewMemory()
	if h.spool, err = spool.Open(spool.Config{Dir: h.spDir, Producer: prod, Logger: h.log, Sealer: keys}); err != nil {
		t.Fatal(err)
	}
	if h.up, err = spool.NewUploader(spool.UploaderConfig{Spool: h.spool, Store: h.store, Sender: producer, Topic: event.TopicSegments, Logger: h.log}); err != nil {
		t.Fatal(err)
	}
	h.reg = prometheus.NewRegistry()
	h.stage, err = ingest.New(ingest.Config{
		JanusURL:        h.janus.URL,
		Interface:       h.janus.HostIface,
		IdentityField:   cfg.identity,
		BotDisplay:      botDisplay,
		Rooms:           ingest.Selection{Mode: "list", List: []string{strconv.FormatUint(cfg.room, 10)}},
		PollInterval:    poll,
		SegmentDuration: cfg.segment,
		Pseudonym:       h.pseud,
		Sender:          producer,
		Spool:           h.spool,
		Manifests:       h.store, // as the binary does
		Producer:        prod,
		Logger:          h.log,
		Metrics:         h.reg,
		Keys:            keys,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.reg.Register(h.up); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.close)
	return h
}

// start runs the stage (and, unless held, the uploader) until stop.
func (h *e2e) start() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.stalls.start(ctx)
	h.stageDone = make(chan error, 1)
	go func() { h.stageDone <- h.stage.Run(ctx) }()
	if !h.cfg.holdUploads {
		h.startUploads()
	}
}

func (h *e2e) startUploads() {
	ctx, cancel := context.WithCancel(context.Background())
	h.upCancel = cancel
	h.upDone = make(chan error, 1)
	go func() { h.upDone <- h.up.Run(ctx) }()
}

// stop shuts down as ingeststage.go does: the bots first (tracks flush
// their final segments into the spool), then the uploader drains the
// spool. beforeUploads, when set, runs between the two (the spool then
// holds every segment when uploads were held).
func (h *e2e) stop(beforeUploads func()) {
	h.t.Helper()
	if h.stopped {
		return
	}
	h.stopped = true
	h.cancel()
	select {
	case err := <-h.stageDone:
		if err != nil {
			h.t.Errorf("stage Run: %v", err)
		}
	case <-time.After(90 * time.Second):
		h.t.Fatal("the stage did not stop within 90 s of its context ending")
	}
	if beforeUploads != nil {
		beforeUploads()
	}
	if h.upCancel == nil {
		h.startUploads()
	}
	deadline := time.Now().Add(2 * time.Minute)
	for h.spool.Usage().Entries > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if n := h.spool.Usage().Entries; n > 0 {
		h.t.Errorf("the spool still holds %d segments two minutes after the stage stopped", n)
	}
	h.upCancel()
	select {
	case err := <-h.upDone:
		if err != nil {
			h.t.Errorf("uploader Run: %v", err)
		}
	case <-time.After(time.Minute):
		h.t.Fatal("the uploader did not stop")
	}
}

func (h *e2e) close() {
	if h.cancel != nil && !h.stopped {
		h.cancel()
		select {
		case <-h.stageDone:
		case <-time.After(90 * time.Second):
		}
	}
	if h.upCancel != nil {
		h.upCancel()
	}
	_ = h.stage.Close()
	_ = h.up.Close()
	_ = h.spool.Close()
}

// metric returns the sum of a gathered metric family's values (0 when
// absent).
func (h *e2e) metric(name string) float64 {
	mfs, err := h.reg.Gather()
	if err != nil {
		h.t.Fatalf("gather metrics: %v", err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// gapSamples returns earshot_ingest_gap_samples_total for one cause.
func (h *e2e) gapSamples(cause string) float64 {
	mfs, err := h.reg.Gather()
	if err != nil {
		h.t.Fatalf("gather metrics: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "earshot_ingest_gap_samples_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "cause" && l.GetValue() == cause {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// waitFor polls cond until it holds or within passes.
func waitFor(t testing.TB, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitJoined waits until the bot is in the room.
func (h *e2e) waitJoined() {
	h.t.Helper()
	waitFor(h.t, "the stage joins the room", time.Minute, func() bool { return h.metric("earshot_ingest_rooms") >= 1 })
}

// waitTracksEnded waits until no track is being recorded (every publisher
// left and its track ended). It reports, rather than aborts, a track that
// does not end, so that the rest of the run can still be checked.
func (h *e2e) waitTracksEnded() {
	h.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for h.metric("earshot_ingest_tracks") > 0 {
		if time.Now().After(deadline) {
			h.t.Errorf("%v tracks still recording a minute after every publisher left", h.metric("earshot_ingest_tracks"))
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stallThreshold is the recorder's resync threshold: packets delayed more
// than this are placed by arrival time.
const stallThreshold = 120 * time.Millisecond

// stallMonitor measures how late this process's goroutines get to run (a
// loaded machine, the race detector, GC): a stall delays every packet the
// stage reads, just as a network delay spike would.
type stallMonitor struct {
	mu    sync.Mutex
	worst time.Duration
	count int
}

func (m *stallMonitor) start(ctx context.Context) {
	const every = 10 * time.Millisecond
	go func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		last := time.Now()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-tick.C:
				late := now.Sub(last) - every
				last = now
				m.mu.Lock()
				m.worst = max(m.worst, late)
				if late > stallThreshold {
					m.count++
				}
				m.mu.Unlock()
			}
		}
	}()
}

// result returns the worst stall and how many exceeded stallThreshold.
func (m *stallMonitor) result() (time.Duration, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.worst, m.count
}

// --- Kafka -----------------------------------------------------------------

// partitions lists a topic's partitions; topic "" lists every topic's.
func partitions(ctx context.Context, brokers bus.Cluster, topic string) (map[string][]int, error) {
	if topic == "" {
		return bus.TopicPartitions(ctx, brokers)
	}
	return bus.TopicPartitions(ctx, brokers, topic)
}

// events reads the run's events on topic: those of this test's room,
// deduplicated by event ID (delivery is at least once). dups counts the
// duplicates dropped.
func (h *e2e) events(topic string) (evs []*event.Envelope, dups int) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	recs, err := kit.ReadTopic(ctx, h.brokers, topic, h.from[topic])
	if err != nil {
		h.t.Fatalf("read %s: %v", topic, err)
	}
	seen := map[string]bool{}
	for _, r := range recs {
		e, err := event.Decode(r.Value)
		if err != nil {
			// On the shared broker, other writers' records are no concern;
			// an invalid event of this run is.
			var loose struct{ Room string }
			if h.cfg.embedded || json.Unmarshal(r.Value, &loose) == nil && loose.Room == h.roomP {
				h.t.Errorf("%s@%d: invalid event: %v", topic, r.Offset, err)
			}
			continue
		}
		if e.Room != h.roomP {
			continue
		}
		if seen[e.EventID] {
			dups++
			continue
		}
		seen[e.EventID] = true
		evs = append(evs, e)
	}
	return evs, dups
}

// --- Object store ----------------------------------------------------------

// storedObject is one object with its description and bytes.
type storedObject struct {
	storage.ObjectInfo
	Data []byte
}

// objects reads every object in the bucket: Stat for the metadata, Get
// (which verifies the stored SHA-256) for the bytes.
func (h *e2e) objects() map[string]storedObject {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var keys []string
	var listErr error
	for oi, err := range h.store.List(ctx, "") {
		if err != nil {
			listErr = err
			break
		}
		keys = append(keys, oi.Key)
	}
	if listErr != nil {
		h.t.Fatalf("list bucket: %v", listErr)
	}
	out := map[string]storedObject{}
	for _, key := range keys {
		info, err := h.store.Stat(ctx, key)
		if err != nil {
			h.t.Fatalf("stat %s: %v", key, err)
		}
		rc, _, err := h.store.Get(ctx, key)
		if err != nil {
			h.t.Fatalf("get %s: %v", key, err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			h.t.Fatalf("read %s: %v", key, err)
		}
		out[key] = storedObject{ObjectInfo: info, Data: data}
	}
	return out
}

// --- Small helpers ---------------------------------------------------------

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
