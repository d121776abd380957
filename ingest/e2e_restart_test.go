package ingest_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/ingest/pseudonym"
	"github.com/earshot/earshot/internal/bustest"
	kit "github.com/earshot/earshot/internal/e2e"
	"github.com/earshot/earshot/internal/speech"
	"github.com/earshot/earshot/internal/testbed"
	"github.com/earshot/earshot/record/spool"
	"github.com/earshot/earshot/storage"
)

// The fault tests of issue 3: kill -9 of `earshot ingest` and a restart,
// S3 unreachable for a minute, Janus restarted. They use VideoRoom 1235,
// which no other test uses. TestE2EJanusRestart removes Janus's network
// namespace for a moment, which breaks any other test bed test running at
// the same time, so it runs only with EARSHOT_E2E_DISRUPTIVE=1.

// faultRoom is the VideoRoom these tests record.
const faultRoom = 1235

// --- `earshot ingest` as a child process ---------------------------------------

// buildEarshot builds the binary as shipped.
func buildEarshot(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "earshot")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/earshot/earshot/cmd/earshot")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/earshot: %v\n%s", err, out)
	}
	return bin
}

// freeAddr returns a loopback address with a port nobody listens on.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// child is one `earshot ingest` process.
type child struct {
	cmd  *exec.Cmd
	done chan error
	err  error
	exit bool
}

// startChild runs `earshot ingest -config cfgPath`, its output into logs.
func startChild(t testing.TB, bin, cfgPath string, logs io.Writer) *child {
	t.Helper()
	cmd := exec.Command(bin, "ingest", "-config", cfgPath)
	for _, kv := range os.Environ() {
		// Only the file configures the child.
		if !strings.HasPrefix(kv, "EARSHOT_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start earshot ingest: %v", err)
	}
	c := &child{cmd: cmd, done: make(chan error, 1)}
	go func() { c.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if !c.exit {
			_ = cmd.Process.Kill()
			<-c.done
		}
	})
	return c
}

// wait waits for the process to exit and returns how it ended.
func (c *child) wait(t testing.TB, within time.Duration) error {
	t.Helper()
	select {
	case c.err = <-c.done:
		c.exit = true
		return c.err
	case <-time.After(within):
		t.Fatalf("earshot ingest did not exit within %v", within)
		return nil
	}
}

// scrape sums a metric family's samples from a /metrics endpoint (0 when
// absent or the endpoint does not answer).
func scrape(addr, name string) float64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || rest[0] != ' ' && rest[0] != '{' {
			continue
		}
		fields := strings.Fields(rest[strings.LastIndex(rest, "}")+1:])
		if len(fields) == 0 {
			continue
		}
		if v, err := strconv.ParseFloat(fields[0], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// kafkaStart ensures the topics and returns, per topic, its end offsets.
func kafkaStart(t testing.TB, brokers bus.Cluster) map[string]map[int]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var specs []bus.TopicSpec
	for _, ts := range event.Topics(3) {
		specs = append(specs, bus.TopicSpec{Name: ts.Name, Partitions: ts.Partitions, Compact: ts.Compact, Retention: ts.Retention})
	}
	if err := bus.EnsureTopics(ctx, brokers, specs...); err != nil {
		t.Fatalf("ensure topics: %v", err)
	}
	from := map[string]map[int]int64{}
	for _, topic := range e2eTopics {
		var err error
		for try := 0; try < 50; try++ {
			if from[topic], err = kit.EndOffsets(ctx, brokers, topic); err == nil {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("offsets of %s: %v", topic, err)
		}
	}
	return from
}

// pendingKeys returns the object keys of the entries in a spool folder's
// pending/.
func pendingKeys(t testing.TB, spoolDir string) []string {
	t.Helper()
	dirs, err := os.ReadDir(filepath.Join(spoolDir, "pending"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatalf("read spool: %v", err)
	}
	var keys []string
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(spoolDir, "pending", d.Name(), "descriptor.json"))
		if err != nil {
			t.Fatalf("spool entry %s: %v", d.Name(), err)
		}
		var desc struct {
			Key string `json:"key"`
		}
		if err := json.Unmarshal(b, &desc); err != nil || desc.Key == "" {
			t.Fatalf("spool entry %s: descriptor without key (%v)", d.Name(), err)
		}
		keys = append(keys, desc.Key)
	}
	return keys
}

// keyTrack returns the session and track of an audio object key
// (audio/<room>/<session>/<track>/...), or "" for other keys.
func keyTrack(key string) (session, track string) {
	parts := strings.Split(key, "/")
	if len(parts) < 5 || parts[0] != "audio" {
		return "", ""
	}
	return parts[2], parts[3]
}

// tracksSeen returns the tracks (with their session) of the room's
// lifecycle events so far and of the audio objects stored so far.
func (h *e2e) tracksSeen() map[string]string {
	h.t.Helper()
	out := map[string]string{}
	evs, _ := h.events(event.TopicLifecycle)
	for _, e := range evs {
		if e.Timeline != nil && e.Timeline.Track != "" {
			out[e.Timeline.Track] = e.Session
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for oi, err := range h.store.List(ctx, "audio/") {
		if err != nil {
			h.t.Fatalf("list bucket: %v", err)
		}
		if s, tr := keyTrack(oi.Key); tr != "" {
			out[tr] = s
		}
	}
	return out
}

// newActivity looks for the first sign of a track not in old: a
// track_started event or a stored segment. It returns a description and
// the track's session, or "" when there is none yet.
func (h *e2e) newActivity(old map[string]string) (sign, session string) {
	h.t.Helper()
	evs, _ := h.events(event.TopicLifecycle)
	for _, e := range evs {
		if e.Type == event.TypeTrackStarted && e.Timeline != nil {
			if _, seen := old[e.Timeline.Track]; !seen {
				return "track_started of track " + e.Timeline.Track + " at " + e.Time.Format(time.RFC3339Nano), e.Session
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for oi, err := range h.store.List(ctx, "audio/") {
		if err != nil {
			return "", ""
		}
		if s, tr := keyTrack(oi.Key); tr != "" {
			if _, seen := old[tr]; !seen {
				return "object " + oi.Key, s
			}
		}
	}
	return "", ""
}

// TestE2EKillAndResume is issue 3's kill -9 Must-show: `earshot ingest`
// records a speaker, is killed with SIGKILL while S3 is briefly
// unreachable (so the spool holds committed segments at the kill), and is
// started again with the same configuration. Every segment the spool held
// must then be uploaded and announced, no object may have a second
// version, and recording must go on in a new track of the same session
// (the lease and session state in earshot.state carry it across).
func TestE2EKillAndResume(t *testing.T) { killAndResume(t) }

// BenchmarkE2EKillAndResume runs TestE2EKillAndResume's scenario once,
// whatever b.N is, with the same checks, and reports the time from the
// kill to the first sign of recording in a new track (the restart
// included).
func BenchmarkE2EKillAndResume(b *testing.B) {
	b.ReportMetric(killAndResume(b).Seconds(), "record_resume_s")
}

// kafkaConfig is the kafka section of a child earshot's configuration
// for the test bed's broker, as its admin (the child creates the topics).
func kafkaConfig(t testing.TB) map[string]any {
	k := testbed.KafkaServer(t)
	c := map[string]any{"embedded": false, "brokers": k.Brokers, "create_topics": true}
	if k.CAFile != "" {
		c["tls"] = map[string]any{"enabled": true, "ca_file": k.CAFile}
		c["sasl"] = map[string]any{"mechanism": "SCRAM-SHA-512", "username": k.AdminUser, "password": k.AdminPassword}
	}
	return c
}

// killAndResume is TestE2EKillAndResume's scenario; it returns the resume
// time.
func killAndResume(t testing.TB) time.Duration {
	t.Helper()
	ep := testbed.JanusServer(t)
	brokers := bustest.Kafka(t)
	s3cfg := kit.FreshBucket(t, "earshot-e2e")
	s3cfg.Versioning = true
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	store, err := storage.NewS3(ctx, s3cfg)
	if err != nil {
		t.Fatalf("open bucket: %v", err)
	}
	t.Cleanup(func() { removeVersions(t, store) })
	from := kafkaStart(t, brokers)

	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	pseud, err := pseudonym.New(secret, 1)
	if err != nil {
		t.Fatal(err)
	}
	h := &e2e{
		t: t, cfg: e2eConfig{room: faultRoom, identity: "feed_id"}, janus: ep, brokers: brokers, pseud: pseud,
		roomP: pseud.Room(strconv.FormatUint(faultRoom, 10)), s3cfg: s3cfg, store: store, from: from, logs: &testbed.SyncBuffer{},
	}

	tools := speechTools(t)
	clips := synthesize(t, tools, t.TempDir(), map[string][]speech.Item{"a": speakerScript("en-us", 2, 5)})
	sp := &speaker{name: "a", display: "speaker-a-" + kit.RandHex(4), feed: randomFeedID(), clip: clips["a"], leadIn: 2 * time.Second}
	t.Logf("speaker a: %d ms of audio", sp.clip.DurationMS)

	bin := buildEarshot(t)
	proxy := kit.NewTCPProxy(t, s3cfg.Endpoint)
	dir := t.TempDir()
	secretPath := filepath.Join(dir, "pseudonym.key")
	if err := os.WriteFile(secretPath, []byte(hex.EncodeToString(secret)), 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(dir, "data")
	metricsAddr := freeAddr(t)
	cfg := map[string]any{
		"data_dir": dataDir,
		"log":      map[string]any{"level": "debug", "format": "json"},
		"kafka":    kafkaConfig(t),
		"storage": map[string]any{"backend": "s3", "s3": map[string]any{
			"endpoint": proxy.Addr, "region": s3cfg.Region, "bucket": s3cfg.Bucket,
			"access_key": s3cfg.AccessKey, "secret_key": s3cfg.SecretKey,
			"path_style": true, "create_bucket": true, "versioning": true,
		}},
		"identity": map[string]any{"secret_file": secretPath, "require_secret": true, "key_version": 1},
		"ingest": map[string]any{
			"janus":            map[string]any{"url": ep.URL, "interface": ep.HostIface, "identity_field": "feed_id", "videoroom": true, "audiobridge": false},
			"rooms":            map[string]any{"mode": "list", "list": []string{strconv.FormatUint(faultRoom, 10)}},
			"segment_duration": "2s",
		},
		"metrics": map[string]any{"listen": metricsAddr},
	}
	// JSON is YAML.
	cfgJSON, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "earshot.yaml")
	if err := os.WriteFile(cfgPath, cfgJSON, 0o600); err != nil {
		t.Fatal(err)
	}
	spoolDir := filepath.Join(dataDir, "spool")

	logs := &testbed.SyncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("earshot ingest log (last 80 lines):\n%s", tail(logs.String(), 80))
		}
	})
	first := startChild(t, bin, cfgPath, logs)
	waitFor(t, "earshot ingest joins the room", time.Minute, func() bool { return scrape(metricsAddr, "earshot_ingest_rooms") >= 1 })
	sp.start(t, ep, faultRoom)
	waitFor(t, "earshot ingest records the speaker", time.Minute, func() bool { return scrape(metricsAddr, "earshot_ingest_tracks") >= 1 })

	// Record a while with S3 reachable, then a while without, so that the
	// spool holds committed segments when the process dies.
	time.Sleep(5 * time.Second)
	proxy.Down()
	time.Sleep(5 * time.Second)
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	if err := first.wait(t, 30*time.Second); err == nil {
		t.Fatal("earshot ingest exited cleanly after SIGKILL")
	}
	spooled := pendingKeys(t, spoolDir)
	t.Logf("after the kill the spool holds %d committed segments", len(spooled))
	if len(spooled) == 0 {
		t.Errorf("the spool holds no segment after 5 s of recording with S3 unreachable: segments were not committed to it")
	}
	old := h.tracksSeen()
	sessions := map[string]bool{}
	for _, s := range old {
		sessions[s] = true
	}
	t.Logf("before the kill: %d tracks in %d sessions", len(old), len(sessions))
	proxy.Up()

	second := startChild(t, bin, cfgPath, logs)
	restartedAt := time.Now()
	deadline := time.Now().Add(2 * time.Minute)
	var sign, session string
	for sign, session = h.newActivity(old); sign == ""; sign, session = h.newActivity(old) {
		if time.Now().After(deadline) {
			t.Fatal("recording did not resume within 2 minutes of the restart")
		}
		time.Sleep(200 * time.Millisecond)
	}
	resume := time.Since(killedAt)
	t.Logf("restarted %v after the kill; resumed: %s", restartedAt.Sub(killedAt).Round(time.Millisecond), sign)
	t.Logf("record_resume_s=%.2f", resume.Seconds())
	if !sessions[session] {
		t.Errorf("recording resumed in session %s, not in the session open before the kill (%v): a restart split the session", session, sessions)
	}

	sp.wait(t, 2*time.Minute)
	waitFor(t, "the speaker's track ends", time.Minute, func() bool { return scrape(metricsAddr, "earshot_ingest_tracks") == 0 })
	if err := second.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := second.wait(t, 2*time.Minute); err != nil {
		t.Errorf("earshot ingest after SIGTERM: %v", err)
	}
	if left := pendingKeys(t, spoolDir); len(left) > 0 {
		t.Errorf("the spool still holds %d segments after a clean stop", len(left))
	}

	objs := h.objects()
	segs, dups := h.events(event.TopicSegments)
	announced := map[string]bool{}
	for _, e := range segs {
		var p event.SegmentStored
		if err := e.DecodePayload(&p); err != nil {
			t.Fatal(err)
		}
		announced[p.Key] = true
	}
	for _, key := range spooled {
		if _, ok := objs[key]; !ok {
			t.Errorf("%s was in the spool at the kill and is not in S3", key)
		}
		if !announced[key] {
			t.Errorf("%s was in the spool at the kill and was never announced", key)
		}
	}
	newTrack := 0
	for key := range objs {
		if !announced[key] && strings.HasPrefix(key, "audio/") {
			t.Errorf("object %s stored but never announced", key)
		}
		if _, tr := keyTrack(key); tr != "" {
			if _, seen := old[tr]; !seen {
				newTrack++
			}
		}
	}
	if newTrack == 0 {
		t.Error("no segment of a track recorded after the restart was stored")
	}
	versions := map[string]int{}
	lctx, lcancel := context.WithTimeout(context.Background(), time.Minute)
	defer lcancel()
	// Audio only: the session manifest is the one object rewritten on purpose.
	for v, err := range store.ListVersions(lctx, "audio/") {
		if err != nil {
			t.Fatalf("list versions: %v", err)
		}
		if v.DeleteMarker {
			t.Errorf("%s: delete marker (version %s)", v.Key, v.VersionID)
		}
		versions[v.Key]++
	}
	for key, n := range versions {
		if n != 1 {
			t.Errorf("%s has %d versions: an object was overwritten", key, n)
		}
	}
	t.Logf("objects: %d (%d of tracks after the restart), announced: %d (%d duplicates dropped), spooled at the kill: %d",
		len(objs), newTrack, len(announced), dups, len(spooled))
	return resume
}

// TestE2ES3Outage is issue 3's "S3 unreachable for 60 s" Must-show: the
// stage uploads through a proxy that refuses connections for a minute in
// the middle of a recording. Nothing may be lost: every track's segments
// are contiguous in S3 and announced once the spool has drained.
func TestE2ES3Outage(t *testing.T) {
	const outage = 60 * time.Second
	h := newE2E(t, e2eConfig{room: faultRoom, identity: "feed_id", segment: 2 * time.Second})
	proxy := kit.NewTCPProxy(t, h.s3cfg.Endpoint)
	viaProxy := h.s3cfg
	viaProxy.Endpoint = proxy.Addr
	viaProxy.CreateBucket = false
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store, err := storage.NewS3(ctx, viaProxy)
	if err != nil {
		t.Fatalf("open bucket through the proxy: %v", err)
	}
	producer, err := bus.NewProducer(bus.ProducerConfig{Cluster: h.brokers, Logger: h.log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = producer.Close() })
	// The harness's uploader talks to S3 directly: swap in one that goes
	// through the proxy before anything runs.
	_ = h.up.Close()
	if h.up, err = spool.NewUploader(spool.UploaderConfig{Spool: h.spool, Store: store, Sender: producer, Topic: event.TopicSegments, Logger: h.log}); err != nil {
		t.Fatal(err)
	}

	tools := speechTools(t)
	clips := synthesize(t, tools, t.TempDir(), map[string][]speech.Item{"a": speakerScript("en-us", 0, 15)})
	sp := &speaker{name: "a", display: "speaker-a-" + kit.RandHex(4), feed: randomFeedID(), clip: clips["a"], leadIn: 2 * time.Second}
	t.Logf("speaker a: %d ms of audio", sp.clip.DurationMS)
	if d := time.Duration(sp.clip.DurationMS) * time.Millisecond; d < outage+15*time.Second {
		t.Fatalf("the clip lasts %v, want the outage to end before it does", d)
	}

	h.start()
	h.waitJoined()
	sp.start(t, h.janus, faultRoom)
	waitFor(t, "the stage records the speaker", time.Minute, func() bool { return h.metric("earshot_ingest_tracks") >= 1 })
	time.Sleep(8 * time.Second)
	proxy.Down()
	t.Logf("S3 unreachable for %v", outage)
	time.Sleep(outage / 2)
	if n := h.spool.Usage().Entries; n == 0 {
		t.Errorf("S3 has been unreachable for %v and the spool is empty", outage/2)
	} else {
		t.Logf("spool entries %v into the outage: %d", outage/2, n)
	}
	time.Sleep(outage / 2)
	peak := h.spool.Usage().Entries
	proxy.Up()
	restored := time.Now()
	waitFor(t, "the spool drains after S3 is back", 3*time.Minute, func() bool { return h.spool.Usage().Entries == 0 })
	t.Logf("S3 back: %d spooled segments drained in %v", peak, time.Since(restored).Round(100*time.Millisecond))

	sp.wait(t, 3*time.Minute)
	h.waitTracksEnded()
	h.stop(nil)
	rec := h.collect(tools)
	if len(rec.tracks) != 1 {
		t.Errorf("%d tracks recorded, want 1", len(rec.tracks))
	}
	// The outage is the object store's: the live path (Kafka) is untouched.
	checkChunks(t, rec, noLiveFaults)
	pub := sp.published(t)
	for _, tr := range rec.tracks {
		if len(pub) == 1 {
			got, want := tr.duration(), pub[0].duration()
			t.Logf("track: decoded %v, published %v, %d segments", got.Round(time.Millisecond), want.Round(time.Millisecond), len(tr.segs))
			if errPct := 100 * float64((got - want).Abs()) / float64(want); errPct > maxDurationErrPct {
				t.Errorf("decoded %v, published %v: %.2f%% apart", got, want, errPct)
			}
		}
	}
	t.Logf("segments: %d announced (%d duplicates dropped), %d objects", rec.segEvents, rec.segDups, len(rec.objects))
}

// TestE2EJanusRestart is issue 3's "Janus restarted: bots rejoin"
// Must-show: with the stage in the room, Janus is stopped and started
// again (testbed/janus.sh); the stage must join the room again and record
// a speaker who joins after the restart. Stopping Janus removes its
// namespace, so this runs only with EARSHOT_E2E_DISRUPTIVE=1, when no other
// test bed test runs.
func TestE2EJanusRestart(t *testing.T) { janusRestart(t) }

// BenchmarkE2EJanusRestart runs TestE2EJanusRestart's scenario once,
// whatever b.N is, with the same checks, and reports the time from Janus
// being back to the stage's bot_joined event. Like the test it runs only
// with EARSHOT_E2E_DISRUPTIVE=1 (make bench sets it and runs one package
// at a time).
func BenchmarkE2EJanusRestart(b *testing.B) {
	b.ReportMetric(janusRestart(b).Seconds(), "record_rejoin_s")
}

// janusRestart is TestE2EJanusRestart's scenario; it returns the rejoin
// time.
func janusRestart(t testing.TB) time.Duration {
	t.Helper()
	if os.Getenv("EARSHOT_E2E_DISRUPTIVE") != "1" {
		t.Skip("restarts the test bed's Janus: set EARSHOT_E2E_DISRUPTIVE=1 (and run no other test bed test meanwhile)")
	}
	h := newE2E(t, e2eConfig{room: faultRoom, identity: "feed_id", segment: 2 * time.Second})
	tools := speechTools(t)
	clips := synthesize(t, tools, t.TempDir(), map[string][]speech.Item{
		"a": speakerScript("en-us", 0, 4),
		"b": speakerScript("en-gb", 5, 3),
	})
	a := &speaker{name: "a", display: "speaker-a-" + kit.RandHex(4), feed: randomFeedID(), clip: clips["a"], leadIn: 2 * time.Second}
	b := &speaker{name: "b", display: "speaker-b-" + kit.RandHex(4), feed: randomFeedID(), clip: clips["b"], leadIn: 2 * time.Second}

	h.start()
	h.waitJoined()
	a.start(t, h.janus, faultRoom)
	waitFor(t, "the stage records speaker a", time.Minute, func() bool { return h.metric("earshot_ingest_tracks") >= 1 })
	time.Sleep(5 * time.Second)

	joinedBefore := h.botJoins()
	root := repoRoot(t)
	script := filepath.Join(root, "testbed", "janus.sh")
	t.Cleanup(func() {
		// Leave the test bed as found, whatever happened.
		if out, err := exec.Command(script, "start").CombinedOutput(); err != nil {
			t.Logf("janus.sh start: %v\n%s", err, out)
		}
	})
	stopAt := time.Now()
	if out, err := exec.Command(script, "stop").CombinedOutput(); err != nil {
		t.Fatalf("janus.sh stop: %v\n%s", err, out)
	}
	_ = a.bot.Close() // its Janus went away
	if out, err := exec.Command(script, "start").CombinedOutput(); err != nil {
		t.Fatalf("janus.sh start: %v\n%s", err, out)
	}
	back := time.Now()
	t.Logf("Janus down for %v (stop and start)", back.Sub(stopAt).Round(100*time.Millisecond))
	ep := testbed.JanusServer(t)
	if ep != h.janus {
		t.Logf("Janus endpoint changed across the restart: %+v -> %+v", h.janus, ep)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for h.botJoins() <= joinedBefore {
		if time.Now().After(deadline) {
			t.Fatal("the stage did not rejoin the room within 2 minutes of Janus's restart")
		}
		time.Sleep(200 * time.Millisecond)
	}
	rejoin := time.Since(back)
	t.Logf("record_rejoin_s=%.2f", rejoin.Seconds())
	if rejoin > 15*time.Second {
		// Over issue 3's target: show what the stage waited on.
		for _, line := range strings.Split(h.logs.String(), "\n") {
			if strings.Contains(line, "retry_in") {
				t.Logf("stage: %s", line)
			}
		}
	}

	tracksBefore := h.trackStarts()
	b.start(t, ep, faultRoom)
	waitFor(t, "the stage records speaker b after the restart", 2*time.Minute, func() bool { return h.trackStarts() > tracksBefore })
	b.wait(t, 2*time.Minute)
	h.waitTracksEnded()
	h.stop(nil)

	// Speaker b's track, recorded after the restart, is complete.
	objs := h.objects()
	segs, _ := h.events(event.TopicSegments)
	pb := h.pseud.Person(b.identity("feed_id"))
	var bSegs int
	for _, e := range segs {
		var p event.SegmentStored
		if err := e.DecodePayload(&p); err != nil {
			t.Fatal(err)
		}
		if _, ok := objs[p.Key]; !ok {
			t.Errorf("segment %s announced but not stored", p.Key)
		}
		if e.Speaker == pb {
			bSegs++
		}
	}
	if bSegs == 0 {
		t.Error("no segment of speaker b, who spoke after the restart, was stored")
	}
	t.Logf("speaker b: %d segments after the restart", bSegs)
	return rejoin
}

// botJoins counts the room's bot_joined events so far.
func (h *e2e) botJoins() int {
	return h.countEvents(event.TypeBotJoined)
}

// trackStarts counts the room's track_started events so far.
func (h *e2e) trackStarts() int {
	return h.countEvents(event.TypeTrackStarted)
}

func (h *e2e) countEvents(typ event.Type) int {
	h.t.Helper()
	evs, _ := h.events(event.TopicLifecycle)
	n := 0
	for _, e := range evs {
		if e.Type == typ {
			n++
		}
	}
	return n
}

// repoRoot is the module's root folder (where go.mod is).
func repoRoot(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		t.Fatal("not in a module")
	}
	return filepath.Dir(mod)
}

// removeVersions deletes every version of every object, so that the
// bucket's own cleanup (which removes only current versions) can remove a
// versioned bucket.
func removeVersions(t testing.TB, store *storage.S3) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	keys := map[string]bool{}
	for v, err := range store.ListVersions(ctx, "") {
		if err != nil {
			t.Logf("cleanup: list versions: %v", err)
			return
		}
		keys[v.Key] = true
	}
	for key := range keys {
		if err := store.DeleteAll(ctx, key); err != nil {
			t.Logf("cleanup: %v", err)
		}
	}
}
