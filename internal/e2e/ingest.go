package e2e

import (
	"context"
	"crypto/rand"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/ingest"
	"github.com/earshot/earshot/ingest/pseudonym"
	"github.com/earshot/earshot/internal/testbed"
	"github.com/earshot/earshot/record/spool"
	"github.com/earshot/earshot/storage"
	"github.com/earshot/earshot/storage/crypt"
)

// IngestConfig says how to run the ingest stage for a test.
type IngestConfig struct {
	Room    uint64 // VideoRoom number (CreateRoom it first)
	Cluster bus.Cluster
	Topics  Topics
	Keys    event.Keys
	// ChunkDuration of live chunks (default 1 s) and SegmentDuration of
	// stored segments (default 30 s).
	ChunkDuration, SegmentDuration time.Duration
	// Bucket is where segments go; a FreshBucket when empty.
	Bucket *storage.S3Config
}

// Ingest is the ingest stage as `earshot ingest` wires it (bots in Janus,
// the spool and its uploader into versitygw, events into Kafka), writing
// to the run's topics.
type Ingest struct {
	t     testing.TB
	Janus testbed.JanusEndpoint
	Pseud *pseudonym.Pseudonymizer
	RoomP string // the room's pseudonym
	S3    storage.S3Config
	Store *storage.S3
	Reg   *prometheus.Registry
	Logs  *testbed.SyncBuffer
	// SpoolDir is the spool's directory (entries sealed, as shipped).
	SpoolDir string
	cfg      IngestConfig
	stage    *ingest.Stage
	spool    *spool.Spool
	up       *spool.Uploader
	cancel   context.CancelFunc
	done     chan error
	upStop   context.CancelFunc
	upDone   chan error
	stopped  bool
}

// StartIngest builds the stage with its own pseudonym secret and starts it
// and its uploader.
func StartIngest(t testing.TB, cfg IngestConfig) *Ingest {
	t.Helper()
	h := &Ingest{t: t, cfg: cfg, Janus: testbed.JanusServer(t), Logs: &testbed.SyncBuffer{}, Reg: prometheus.NewRegistry()}
	log := slog.New(slog.NewJSONHandler(h.Logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("ingest log (last 40 lines):\n%s", Tail(h.Logs.String(), 40))
		}
	})
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	var err error
	if h.Pseud, err = pseudonym.New(secret, 1); err != nil {
		t.Fatal(err)
	}
	h.RoomP = h.Pseud.Room(strconv.FormatUint(cfg.Room, 10))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if cfg.Bucket != nil {
		h.S3 = *cfg.Bucket
	} else {
		h.S3 = FreshBucket(t, "earshot-tre2e")
	}
	if h.Store, err = storage.NewS3(ctx, h.S3); err != nil {
		t.Fatalf("open bucket: %v", err)
	}
	prod := event.Producer{Name: "earshot-ingest", Version: "e2e", Instance: "e2e-" + RandHex(4)}
	producer, err := bus.NewProducer(bus.ProducerConfig{Cluster: cfg.Cluster, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = producer.Close() })
	sender := cfg.Topics.Sender(producer)
	// The spool seals every entry under its speaker's data key, as
	// `earshot ingest` has it (the keyring that seals events). Keys that
	// cannot seal a stream (DerivedKeys) get a keyring of the harness's
	// own: only this process's uploader reads the spool back.
	sealer, ok := cfg.Keys.(spool.Sealer)
	if !ok {
		sealer = crypt.NewMemory()
	}
	h.SpoolDir = t.TempDir()
	if h.spool, err = spool.Open(spool.Config{Dir: h.SpoolDir, Producer: prod, Logger: log, Sealer: sealer}); err != nil {
		t.Fatal(err)
	}
	if h.up, err = spool.NewUploader(spool.UploaderConfig{Spool: h.spool, Store: h.Store, Sender: sender,
		Topic: cfg.Topics.Of(event.TopicSegments), Logger: log}); err != nil {
		t.Fatal(err)
	}
	h.stage, err = ingest.New(ingest.Config{
		JanusURL: h.Janus.URL, Interface: h.Janus.HostIface, IdentityField: "feed_id",
		BotDisplay:   "Recording — Trust & Safety",
		Rooms:        ingest.Selection{Mode: "list", List: []string{strconv.FormatUint(cfg.Room, 10)}},
		PollInterval: time.Second, ChunkDuration: cfg.ChunkDuration, SegmentDuration: cfg.SegmentDuration,
		Pseudonym: h.Pseud, Sender: sender, Spool: h.spool, Producer: prod, Keys: cfg.Keys,
		Logger: log, Metrics: h.Reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	sctx, scancel := context.WithCancel(context.Background())
	h.cancel = scancel
	h.done = make(chan error, 1)
	go func() { h.done <- h.stage.Run(sctx) }()
	uctx, ucancel := context.WithCancel(context.Background())
	h.upStop = ucancel
	h.upDone = make(chan error, 1)
	go func() { h.upDone <- h.up.Run(uctx) }()
	t.Cleanup(h.Stop)
	return h
}

// Speaker returns the pseudonym the stage gives a feed ID.
func (h *Ingest) Speaker(feed uint64) string { return h.Pseud.Person(strconv.FormatUint(feed, 10)) }

// Metric returns the sum of a gathered metric family's values (0 when
// absent).
func (h *Ingest) Metric(name string) float64 { return Metric(h.t, h.Reg, name) }

// Metric returns the sum of a gathered metric family's values in reg.
func Metric(t testing.TB, reg prometheus.Gatherer, name string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
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
			case m.GetHistogram() != nil:
				sum += m.GetHistogram().GetSampleSum()
			}
		}
	}
	return sum
}

// WaitJoined waits until the stage's bot is in the room.
func (h *Ingest) WaitJoined() {
	h.t.Helper()
	WaitFor(h.t, "the ingest stage joins the room", time.Minute, func() bool { return h.Metric("earshot_ingest_rooms") >= 1 })
}

// WaitTracksEnded waits until no track is being recorded.
func (h *Ingest) WaitTracksEnded() {
	h.t.Helper()
	WaitFor(h.t, "every track ends", time.Minute, func() bool { return h.Metric("earshot_ingest_tracks") == 0 })
}

// Stop stops the stage (tracks flush) and then drains the spool into the
// bucket. Idempotent.
func (h *Ingest) Stop() {
	if h.stopped {
		return
	}
	h.stopped = true
	h.cancel()
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("ingest Run: %v", err)
		}
	case <-time.After(90 * time.Second):
		h.t.Errorf("the ingest stage did not stop within 90 s")
	}
	deadline := time.Now().Add(2 * time.Minute)
	for h.spool.Usage().Entries > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	h.upStop()
	select {
	case <-h.upDone:
	case <-time.After(time.Minute):
		h.t.Errorf("the uploader did not stop")
	}
	_ = h.stage.Close()
	_ = h.up.Close()
	_ = h.spool.Close()
}
