package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/compliance/audit"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/ingest/pseudonym"
	"github.com/earshot/earshot/internal/config"
	"github.com/earshot/earshot/storage"
	"github.com/earshot/earshot/storage/crypt"
)

// Stage is one pipeline stage as the binary runs it: Run blocks until ctx
// ends or the stage fails; Close releases what it holds and is idempotent.
type Stage interface {
	Run(ctx context.Context) error
	Close() error
}

// Runtime is what every stage is built from: the configuration and the
// shared clients. One process builds one Runtime, whichever stages it runs.
type Runtime struct {
	Config config.Config
	Log    *slog.Logger
	// Cluster is how this process reaches Kafka, as its own principal.
	Cluster  bus.Cluster
	Producer *bus.Producer
	// Store encrypts what it keeps under protected prefixes (crypt.Store
	// over the configured backend): stages see plaintext, the object store
	// only ciphertext.
	Store     storage.Store
	Pseudonym *pseudonym.Pseudonymizer
	Metrics   *prometheus.Registry
	Self      event.Producer // names this process in the events it writes
	// Keys seals and opens speech and identity (event.Keys): the Keyring.
	Keys event.Keys
	// Keyring is Keys with its erasure side (Shred, ShredSpeaker,
	// ShredRoom, List), for the compliance stage and commands.
	Keyring *crypt.Keyring
	// Raw is the backend under Store, for what must act on the stored
	// objects themselves (S3 legal holds on versions). Never for speech.
	Raw storage.Store

	closers []func() error

	auditMu sync.Mutex
	audit   *audit.Log // built on first use by auditLog
}

// stageBuilder builds one stage on the process's runtime. A builder that
// fails releases what it opened itself (see cleanup).
type stageBuilder func(ctx context.Context, rt *Runtime) (Stage, error)

// stageTable lists the pipeline stages in the order `earshot run` starts
// them (producers before their consumers).
func stageTable() []struct {
	name  string
	build stageBuilder
} {
	return []struct {
		name  string
		build stageBuilder
	}{
		{"ingest", newIngestStage},
		{"transcribe", newTranscribeStage},
		{"policy", newPolicyStage},
		{"rebroadcast", newRebroadcastStage},
		{"serve", newServeStage},
		{"compliance", newComplianceStage},
	}
}

// stageNames returns the stages' names in start order.
func stageNames() []string {
	var names []string
	for _, s := range stageTable() {
		names = append(names, s.name)
	}
	return names
}

// stageByName returns the builder of the named stage.
func stageByName(name string) (stageBuilder, bool) {
	for _, s := range stageTable() {
		if s.name == name {
			return s.build, true
		}
	}
	return nil, false
}

// errNotConfigured marks a stage whose required settings are missing:
// `earshot run` then runs the other stages, a single-stage command fails.
var errNotConfigured = errors.New("not configured")

// shutdownGrace bounds the second phase of shutdown (flush, upload, ack)
// after SIGTERM has stopped intake.
const shutdownGrace = 30 * time.Second

func runStages(names ...string) func(ctx context.Context, e *env) error {
	return func(ctx context.Context, e *env) error {
		var summaryPath string
		cfg, _, err := e.loadConfig(names[0], func(fs *flag.FlagSet) {
			fs.StringVar(&summaryPath, "summary", "", "on exit, write what this process did to `file` as name=value lines (segments stored, transcript lines, alerts by category)")
		})
		if err != nil {
			return err
		}
		log := newLogger(cfg, e.stderr)
		// The metrics and health endpoint comes up first, so that a probe
		// sees why a process that is still connecting is not ready.
		hl := newHealth()
		hl.set("stages", "starting")
		reg := newRegistry()
		runCtx, cancel := context.WithCancel(ctx)
		g, gctx := errgroup.WithContext(runCtx)
		defer func() { cancel(); _ = g.Wait() }()
		if cfg.Metrics.Listen != "" {
			g.Go(func() error { return serveMetrics(gctx, cfg.Metrics.Listen, reg, hl, log) })
		}
		rt, err := newRuntime(gctx, cfg, log, reg, hl)
		if err != nil {
			if ctx.Err() != nil && errors.Is(err, context.Canceled) {
				return nil // stopped while connecting
			}
			return err
		}
		defer rt.Close()

		var (
			stages  []Stage
			running []string
		)
		for _, n := range names {
			build, ok := stageByName(n)
			if !ok {
				return usageError{fmt.Errorf("unknown stage %q", n)}
			}
			s, err := build(gctx, rt)
			if errors.Is(err, errNotConfigured) && len(names) > 1 {
				log.Warn("stage not configured; it is skipped", "stage", n, "reason", err)
				continue
			}
			if err != nil {
				return fmt.Errorf("start %s: %w", n, err)
			}
			defer s.Close()
			stages = append(stages, s)
			running = append(running, n)
		}
		if len(stages) == 0 {
			return usageError{errors.New("no stage is configured: set ingest.janus.url, transcribe.url or run the policy stage")}
		}
		log.Info("earshot started", "stages", running, "version", Version(),
			"kafka", brokerMode(cfg), "storage", cfg.Storage.Backend)
		hl.set("stages", "")
		for _, s := range stages {
			g.Go(func() error { return s.Run(gctx) })
		}
		<-gctx.Done()
		if ctx.Err() != nil {
			log.Info("shutting down: intake stopped, flushing", "grace", shutdownGrace)
		}
		err = g.Wait()
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			err = nil
		}
		// After every stage has returned: their flushes are counted.
		if serr := writeSummary(rt.Metrics, summaryPath, log); serr != nil {
			err = errors.Join(err, serr)
		}
		return err
	}
}

func brokerMode(cfg config.Config) string {
	if cfg.Kafka.Embedded {
		return "embedded (in memory, evaluation only)"
	}
	return "kafka"
}

// newRuntime connects the shared clients. An embedded broker is started
// here when configured, so every stage uses the same kafka-go code path.
func newRuntime(ctx context.Context, cfg config.Config, log *slog.Logger, reg *prometheus.Registry, hl *health) (*Runtime, error) {
	rt := &Runtime{Config: cfg, Log: log, Metrics: reg}
	host, _ := os.Hostname()
	rt.Self = event.Producer{Name: "earshot", Version: Version(), Instance: host}
	fail := func(err error) (*Runtime, error) { rt.Close(); return nil, err }

	secret, err := loadSecret(cfg.Identity)
	if err != nil {
		return fail(err)
	}
	if rt.Pseudonym, err = pseudonym.New(secret, cfg.Identity.KeyVersion); err != nil {
		return fail(err)
	}

	if rt.Cluster, err = kafkaCluster(cfg.Kafka); err != nil {
		return fail(err)
	}
	if cfg.Kafka.Embedded {
		emb, err := bus.NewEmbedded(ctx, bus.EmbeddedConfig{Partitions: cfg.Kafka.Partitions, AutoCreateTopics: true, Logger: log})
		if err != nil {
			return fail(fmt.Errorf("start embedded broker: %w", err))
		}
		rt.closers = append(rt.closers, emb.Close)
		rt.Cluster = emb.Cluster()
		log.Warn("using the embedded Kafka-protocol broker: events are kept in memory, for evaluation only", "addr", emb.Addr())
	}
	if cfg.Kafka.CreateTopics {
		var specs []bus.TopicSpec
		for _, t := range event.Topics(cfg.Kafka.Partitions) {
			specs = append(specs, bus.TopicSpec{Name: t.Name, Partitions: t.Partitions, ReplicationFactor: cfg.Kafka.ReplicationFactor,
				Compact: t.Compact, Retention: t.Retention, Config: t.Config})
		}
		if err := ensureTopics(ctx, rt.Cluster, specs, hl, log); err != nil {
			return fail(err)
		}
	}
	rt.Producer, err = bus.NewProducer(bus.ProducerConfig{Cluster: rt.Cluster, BatchTimeout: cfg.Kafka.BatchTimeout, ClientID: cfg.Kafka.ClientID, Logger: log})
	if err != nil {
		return fail(err)
	}
	rt.closers = append(rt.closers, rt.Producer.Close)

	raw, err := openStore(ctx, cfg.Storage)
	if err != nil {
		return fail(err)
	}
	if rt.Keyring, err = openKeyring(ctx, cfg.Crypto, raw, log); err != nil {
		return fail(err)
	}
	rt.closers = append(rt.closers, rt.Keyring.Close)
	rt.Keys = rt.Keyring
	rt.Raw = raw
	rt.Store = crypt.NewStore(raw, rt.Keyring)
	return rt, nil
}

// consumer joins group on topics, reading from the start of retention
// when the group has no committed offset.
func (rt *Runtime) consumer(group string, topics ...string) (*bus.Consumer, error) {
	return bus.NewConsumer(bus.ConsumerConfig{
		Cluster: rt.Cluster, GroupID: group, Topics: topics,
		StartOffset: bus.FirstOffset, ClientID: rt.Config.Kafka.ClientID, Logger: rt.Log,
	})
}

// openKeyring loads the KEK and returns the keyring whose wrapped data keys
// live in the object store every instance shares (unencrypted objects under
// keys/: they are wrapped already).
func openKeyring(ctx context.Context, c config.Crypto, raw storage.Store, log *slog.Logger) (*crypt.Keyring, error) {
	kek, err := crypt.LoadLocalKEK(c.KEKFile, c.CreateKEK)
	if err != nil {
		return nil, err
	}
	ttl := c.KeyCacheTTL
	if ttl == 0 {
		ttl = -1 // the keyring's "no cache"; its zero means its default
	}
	var prev []crypt.KEK
	for _, f := range c.PreviousKEKFiles {
		p, err := crypt.LoadLocalKEK(f, false)
		if err != nil {
			return nil, fmt.Errorf("crypto.previous_kek_files: %w", err)
		}
		prev = append(prev, p)
	}
	k, err := crypt.NewKeyring(crypt.KeyringConfig{KEK: kek, Previous: prev, Store: raw, CacheTTL: ttl, Logger: log})
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := k.CheckKEK(cctx); err != nil {
		return nil, err
	}
	log.Info("envelope encryption", "kek", kek.ID(), "previous_keks", len(prev), "key_cache_ttl", c.KeyCacheTTL)
	return k, nil
}

// commandRuntime is the runtime of a one-shot command (erase, export,
// alert, ...): no metrics endpoint, nobody probing its health.
func commandRuntime(ctx context.Context, cfg config.Config, log *slog.Logger) (*Runtime, error) {
	return newRuntime(ctx, cfg, log, newRegistry(), newHealth())
}

// newRegistry is the process's metrics registry with the Go runtime and
// process collectors.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// ensureTopics creates Earshot's topics, waiting for the cluster with
// backoff while it cannot be reached (the stage starts once it can, and
// /healthz says why it has not yet), and failing at once when the brokers
// refuse the request itself: no retry would change that.
func ensureTopics(ctx context.Context, cl bus.Cluster, specs []bus.TopicSpec, hl *health, log *slog.Logger) error {
	const maxBackoff = 30 * time.Second
	backoff := 500 * time.Millisecond
	for {
		err := bus.EnsureTopics(ctx, cl, specs...)
		if err == nil && len(specs) > 0 {
			// Topics that existed already keep their replica count: say so
			// when it is less than the deployment asks for.
			names := make([]string, len(specs))
			for i, s := range specs {
				names[i] = s.Name
			}
			err = bus.CheckReplication(ctx, cl, names, specs[0].ReplicationFactor)
		}
		if err == nil {
			hl.set("kafka", "")
			return nil
		}
		if bus.Permanent(err) || ctx.Err() != nil {
			return fmt.Errorf("create topics: %w", err)
		}
		hl.set("kafka", fmt.Sprintf("cannot create topics yet (retrying in %s): %v", backoff, err))
		log.Warn("kafka not ready; retrying", "error", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return fmt.Errorf("create topics: %w (last: %v)", ctx.Err(), err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// Close releases the shared clients in reverse order of creation.
func (rt *Runtime) Close() error {
	var errs []error
	for i := len(rt.closers) - 1; i >= 0; i-- {
		errs = append(errs, rt.closers[i]())
	}
	rt.closers = nil
	return errors.Join(errs...)
}

func loadSecret(id config.Identity) ([]byte, error) {
	if id.RequireSecret {
		return pseudonym.LoadSecret(id.SecretFile)
	}
	return pseudonym.LoadOrCreateSecret(id.SecretFile)
}

func serveMetrics(ctx context.Context, addr string, reg *prometheus.Registry, hl *health, log *slog.Logger) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.Handle("/healthz", hl)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics: listen %s: %w", addr, err)
	}
	log.Info("metrics endpoint", "addr", ln.Addr().String())
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}

// openStore opens the configured object store.
func openStore(ctx context.Context, c config.Storage) (storage.Store, error) {
	switch c.Backend {
	case "local":
		return storage.OpenLocal(c.Local.Dir)
	case "s3":
		secret := c.S3.SecretKey.Reveal()
		if secret == "" {
			b, err := os.ReadFile(c.S3.SecretKeyFile)
			if err != nil {
				return nil, fmt.Errorf("storage: read storage.s3.secret_key_file: %w", err)
			}
			secret = strings.TrimSpace(string(b))
		}
		return storage.NewS3(ctx, storage.S3Config{
			Endpoint: c.S3.Endpoint, Region: c.S3.Region, Bucket: c.S3.Bucket, Prefix: c.S3.Prefix,
			AccessKey: c.S3.AccessKey.Reveal(), SecretKey: secret, UseTLS: c.S3.UseTLS, PathStyle: c.S3.PathStyle,
			SSE: c.S3.SSE, CreateBucket: c.S3.CreateBucket, Versioning: c.S3.Versioning, ObjectLock: c.S3.ObjectLock,
		})
	default:
		return nil, fmt.Errorf("storage: unknown backend %q", c.Backend)
	}
}
