// Package cluster runs Earshot as a deployment runs it, for the fault
// tests of `make cluster-test`: every stage as its own processes (the
// built earshot binary, each with its own configuration file and its own
// Kafka principal) against the test bed's three-node Kafka cluster
// (SASL_SSL, ACLs applied by `earshot kafka acls -apply`), versitygw and
// the Whisper fixture, with a webhook receiver as the alert sink, and a
// load of speaker bots in Janus whose publish logs are the ground truth.
//
// Everything a run creates is its own (rooms, bucket, identity secret,
// KEK); the topics are the deployment's (earshot.*), since the stages have
// no topic prefix, so a run reads only the records of its own rooms.
package cluster

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/ingest/pseudonym"
	"github.com/earshot/earshot/internal/bustest"
	"github.com/earshot/earshot/internal/e2e"
	"github.com/earshot/earshot/internal/testbed"
	"github.com/earshot/earshot/storage"
	"github.com/earshot/earshot/storage/crypt"
)

// Config is the shape of a run: how many processes of each scaled stage
// (serve and compliance run once each) and the load.
type Config struct {
	// Ingest, Transcribe and Policy are the process counts (default 2).
	Ingest, Transcribe, Policy int
	// Rooms and Speakers (per room) of the load (default 3 × 2).
	Rooms, Speakers int
	// Set are extra -set flags (key=value) per stage.
	Set map[string][]string
	// StageS3, when set, maps versitygw's endpoint (host:port) to the one
	// the stages are given: a fault row puts a proxy it can cut between.
	StageS3 func(t testing.TB, endpoint string) string
	// IngestArgs, when set, gives ingest process i extra flags (its own
	// spool folder, say).
	IngestArgs func(t testing.TB, i int) []string
}

func (c *Config) defaults() {
	for _, p := range []*int{&c.Ingest, &c.Transcribe, &c.Policy} {
		if *p == 0 {
			*p = 2
		}
	}
	if c.Rooms == 0 {
		c.Rooms = 3
	}
	if c.Speakers == 0 {
		c.Speakers = 2
	}
}

// Harness is a running deployment.
type Harness struct {
	t       testing.TB
	cfg     Config
	dir     string
	bin     string
	conf    string // the shared configuration file
	Cluster *testbed.Cluster
	// Admin is the cluster as its super user (reading topics back).
	Admin bus.Cluster
	Janus testbed.JanusEndpoint
	S3    storage.S3Config
	// Store is the run's bucket as the stages see it (decrypted).
	Store storage.Store
	// Keys open the run's sealed events (what a transcript says).
	Keys  event.Keys
	Pseud *pseudonym.Pseudonymizer
	// Rooms are the run's VideoRooms.
	Rooms []uint64
	Hook  *Webhook
	// From are the ends of the transcripts and alerts topics when the run
	// started: records before them are other runs'.
	From  map[string]map[int]int64
	procs []*Proc
}

// Proc is one earshot process.
type Proc struct {
	Name, Stage string
	Metrics     string // host:port of its /metrics and /healthz
	cmd         *exec.Cmd
	log         string
	done        chan struct{}
	err         error
}

// Start builds earshot, applies the ACLs, and starts every process; it
// returns once each is healthy. The processes are stopped (SIGTERM, then
// SIGKILL) when the test ends.
func Start(t testing.TB, cfg Config) *Harness {
	t.Helper()
	cfg.defaults()
	cl := testbed.KafkaCluster(t)
	for _, c := range []string{testbed.Janus, testbed.Whisper, testbed.Speech, testbed.S3} {
		testbed.Require(t, c)
	}
	h := &Harness{t: t, cfg: cfg, dir: t.TempDir(), Cluster: cl, Admin: bustest.Cluster(t, cl.Endpoint), Janus: testbed.JanusServer(t)}
	h.bin = filepath.Join(h.dir, "earshot")
	build := exec.Command("go", "build", "-o", h.bin, "./cmd/earshot")
	build.Dir = testbed.RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/earshot: %v\n%s", err, out)
	}

	// Shared secrets: one identity secret and one KEK for every process,
	// as a deployment mounts them.
	secrets := filepath.Join(h.dir, "secrets")
	if err := os.MkdirAll(secrets, 0o700); err != nil {
		t.Fatal(err)
	}
	idFile, kekFile := filepath.Join(secrets, "pseudonym.key"), filepath.Join(secrets, "kek.key")
	secret, err := pseudonym.LoadOrCreateSecret(idFile)
	if err != nil {
		t.Fatal(err)
	}
	if h.Pseud, err = pseudonym.New(secret, 1); err != nil {
		t.Fatal(err)
	}
	kek, err := crypt.LoadLocalKEK(kekFile, true)
	if err != nil {
		t.Fatal(err)
	}
	h.S3 = e2e.FreshBucket(t, "earshot-cluster")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	raw, err := storage.NewS3(ctx, h.S3)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := crypt.NewKeyring(crypt.KeyringConfig{KEK: kek, Store: raw, CacheTTL: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kr.Close() })
	h.Store = crypt.NewStore(raw, kr)
	h.Keys = kr

	for range cfg.Rooms {
		room := 190000 + randN(10000)
		e2e.CreateRoom(t, h.Janus, room)
		h.Rooms = append(h.Rooms, room)
	}
	h.Hook = newWebhook(t)
	h.writeConfig(idFile, kekFile)

	// The admin creates the topics (RF 3 from the cluster's default) and
	// adds every stage principal's ACLs.
	apply := exec.Command(h.bin, append([]string{"kafka", "acls", "-apply", "-config", h.conf, "-data-dir", filepath.Join(h.dir, "admin")},
		h.kafkaArgs("")...)...)
	if out, err := apply.CombinedOutput(); err != nil {
		t.Fatalf("earshot kafka acls -apply: %v\n%s", err, out)
	}
	if err := bus.CheckReplication(ctx, h.Admin, []string{event.TopicTranscripts, event.TopicAlerts, event.TopicAudio}, 3); err != nil {
		t.Fatalf("topics: %v", err)
	}
	h.From = map[string]map[int]int64{}
	for _, topic := range []string{event.TopicTranscripts, event.TopicAlerts, event.TopicSegments} {
		if h.From[topic], err = e2e.EndOffsets(ctx, h.Admin, topic); err != nil {
			t.Fatal(err)
		}
	}

	for i := range cfg.Ingest {
		args := []string{"-set", "ingest.lease.instance=" + fmt.Sprintf("ingest-%d", i)}
		if cfg.IngestArgs != nil {
			args = append(args, cfg.IngestArgs(t, i)...)
		}
		h.start("ingest", i, args...)
	}
	for i := range cfg.Transcribe {
		h.start("transcribe", i)
	}
	for i := range cfg.Policy {
		h.start("policy", i)
	}
	h.start("serve", 0, "-set", "serve.listen=127.0.0.1:"+strconv.Itoa(testbed.FreePort(t)))
	h.start("compliance", 0)
	t.Cleanup(h.stopAll)
	for _, p := range h.procs {
		h.waitHealthy(p, 2*time.Minute)
	}
	// Consumer groups join in the background: let them settle before the
	// load, so that the first lines are not waiting on a rebalance.
	e2e.WaitFor(t, "every ingest process polls Janus", time.Minute, func() bool {
		for _, p := range h.Procs("ingest") {
			if _, err := p.Metric("earshot_ingest_rooms"); err != nil {
				return false
			}
		}
		return true
	})
	return h
}

// kafkaArgs are the -set flags that log a command in as stage's principal
// (the admin when stage is empty).
func (h *Harness) kafkaArgs(stage string) []string {
	e := h.Cluster.Endpoint
	user, pw := e.AdminUser, e.AdminPassword
	if stage != "" {
		up, ok := e.Users[stage]
		if !ok {
			h.t.Fatalf("kafka-cluster.env has no user for stage %s", stage)
		}
		user, pw = up[0], up[1]
	}
	pwFile := filepath.Join(h.dir, "secrets", "kafka-"+user+".password")
	if err := os.WriteFile(pwFile, []byte(pw+"\n"), 0o600); err != nil {
		h.t.Fatal(err)
	}
	return []string{"-set", "kafka.sasl.username=" + user, "-set", "kafka.sasl.password_file=" + pwFile}
}

// writeConfig writes the configuration every process shares; what differs
// per process (principal, metrics address, lease instance) is set on its
// command line.
func (h *Harness) writeConfig(idFile, kekFile string) {
	t := h.t
	var rooms []string
	for _, r := range h.Rooms {
		rooms = append(rooms, strconv.Quote(strconv.FormatUint(r, 10)))
	}
	token := filepath.Join(h.dir, "secrets", "operator.token")
	whsec := filepath.Join(h.dir, "secrets", "webhook.secret")
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	if err := os.WriteFile(whsec, []byte("whsec_"+base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(token, []byte(e2e.RandHex(24)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s3Secret := filepath.Join(h.dir, "secrets", "s3.secret")
	if err := os.WriteFile(s3Secret, []byte(h.S3.SecretKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := h.Cluster.Endpoint
	var brokers []string
	for _, b := range e.Brokers {
		brokers = append(brokers, strconv.Quote(b))
	}
	s3Endpoint := h.S3.Endpoint
	if h.cfg.StageS3 != nil {
		s3Endpoint = h.cfg.StageS3(t, s3Endpoint)
	}
	region := h.S3.Region
	if region == "" {
		region = "us-east-1"
	}
	h.conf = filepath.Join(h.dir, "earshot.yaml")
	y := fmt.Sprintf(`# Generated by internal/cluster: every stage's shared configuration.
log: {level: info, format: text}
kafka:
  embedded: false
  brokers: [%s]
  tls: {enabled: true, ca_file: %q}
  sasl: {mechanism: SCRAM-SHA-512}
storage:
  backend: s3
  s3: {endpoint: %q, region: %q, bucket: %q, access_key: %q, secret_key_file: %q, path_style: true}
identity: {secret_file: %q, require_secret: true, key_version: 1}
crypto: {kek_file: %q}
ingest:
  janus: {url: %q, interface: %q}
  rooms: {mode: list, list: [%s]}
transcribe: {engine: http, url: %q, language: en}
alerts:
  # Off: every scripted alert line must reach the sink, however close
  # together the load puts them.
  rate_limit: {every: 0s}
  sinks:
    - {name: hook, type: webhook, url: %q, secret_file: %q}
serve:
  operators:
    - {name: mod, token_file: %q, role: admin}
`, strings.Join(brokers, ", "), e.CAFile, s3Endpoint, region, h.S3.Bucket, h.S3.AccessKey, s3Secret,
		idFile, kekFile, h.Janus.URL, h.Janus.HostIface, strings.Join(rooms, ", "), testbed.WhisperURL(t),
		h.Hook.URL, whsec, token)
	if err := os.WriteFile(h.conf, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
}

// start starts process i of stage as stage's principal.
func (h *Harness) start(stage string, i int, extra ...string) *Proc {
	t := h.t
	p := &Proc{Name: fmt.Sprintf("%s-%d", stage, i), Stage: stage, Metrics: "127.0.0.1:" + strconv.Itoa(testbed.FreePort(t)), done: make(chan struct{})}
	p.log = filepath.Join(h.dir, p.Name+".log")
	f, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{stage, "-config", h.conf, "-data-dir", filepath.Join(h.dir, p.Name), "-set", "metrics.listen=" + p.Metrics},
		h.kafkaArgs(stage)...)
	for _, kv := range h.cfg.Set[stage] {
		args = append(args, "-set", kv)
	}
	p.cmd = exec.Command(h.bin, append(args, extra...)...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		f.Close()
		close(p.done)
	}()
	h.procs = append(h.procs, p)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s log (last 25 lines):\n%s", p.Name, e2e.Tail(p.Log(), 25))
		}
	})
	return p
}

func (h *Harness) waitHealthy(p *Proc, within time.Duration) {
	h.t.Helper()
	deadline := time.Now().Add(within)
	for {
		code, body := get("http://" + p.Metrics + "/healthz")
		if code == http.StatusOK {
			return
		}
		if !p.Running() {
			h.t.Fatalf("%s exited (%v) before it was healthy:\n%s", p.Name, p.err, e2e.Tail(p.Log(), 30))
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%s: /healthz %d %s after %v:\n%s", p.Name, code, body, within, e2e.Tail(p.Log(), 30))
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// stopAll ends every process still running: SIGTERM (drain and flush),
// SIGKILL after 60 s.
func (h *Harness) stopAll() {
	for _, p := range h.procs {
		if p.Running() {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, p := range h.procs {
		select {
		case <-p.done:
		case <-time.After(60 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
}

// Procs returns the processes of stage, in start order.
func (h *Harness) Procs(stage string) []*Proc {
	var out []*Proc
	for _, p := range h.procs {
		if p.Stage == stage {
			out = append(out, p)
		}
	}
	return out
}

// All returns every process.
func (h *Harness) All() []*Proc { return h.procs }

// Running reports whether the process has not exited.
func (p *Proc) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Exited returns how the process ended (nil while it runs).
func (p *Proc) Exited() error {
	if p.Running() {
		return nil
	}
	if p.err == nil {
		return errors.New("exited 0")
	}
	return p.err
}

// Kill ends the process with SIGKILL, as a crash or the OOM killer would.
func (p *Proc) Kill() error {
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	<-p.done
	return nil
}

// Log returns what the process wrote to stdout and stderr.
func (p *Proc) Log() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// Metric returns the sum of a metric family's samples on the process's
// /metrics (0 when it has none).
func (p *Proc) Metric(name string) (float64, error) {
	resp, err := http.Get("http://" + p.Metrics + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s /metrics: %s", p.Name, resp.Status)
	}
	return sumMetric(resp.Body, name)
}

// sumMetric sums the samples of family name in the Prometheus text format.
func sumMetric(r io.Reader, name string) (float64, error) {
	var sum float64
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' || !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue // another family sharing the prefix
		}
		if rest[0] == '{' {
			end := strings.LastIndexByte(rest, '}')
			if end < 0 {
				return 0, fmt.Errorf("metric line %q: unterminated labels", line)
			}
			rest = rest[end+1:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return 0, fmt.Errorf("metric line %q: no value", line)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return 0, fmt.Errorf("metric line %q: %w", line, err)
		}
		sum += v
	}
	return sum, sc.Err()
}

func get(url string) (int, string) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(b)
}

func randN(n uint64) uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:]) % n
}

// --- Webhook -------------------------------------------------------------------

// Webhook is the alert sink: it keeps every POST it is sent.
type Webhook struct {
	URL   string
	mu    sync.Mutex
	posts []Post
}

// Post is one delivery.
type Post struct {
	At time.Time
	// ID is the webhook-id header (Standard Webhooks): the alert's event
	// ID, the same on every retry and redelivery, for receivers to drop
	// repeats.
	ID   string
	Body []byte
}

func newWebhook(t testing.TB) *Webhook {
	w := &Webhook{}
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			rw.WriteHeader(http.StatusBadRequest)
			return
		}
		w.mu.Lock()
		w.posts = append(w.posts, Post{At: time.Now(), ID: r.Header.Get("webhook-id"), Body: b})
		w.mu.Unlock()
		rw.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	w.URL = srv.URL
	return w
}

// Posts returns every delivery so far.
func (w *Webhook) Posts() []Post {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Post(nil), w.posts...)
}
