package rebroadcast

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/speech/speechtest"
	"github.com/earshot/earshot/internal/testbed"
	"github.com/earshot/earshot/policy/fingerprint"
	"github.com/earshot/earshot/storage"
	"github.com/earshot/earshot/storage/crypt"
	"github.com/earshot/earshot/storage/storagetest"
)

// TestWatcherOnIcecast is the outside-stream path end to end on the test
// bed: room A (private) carries espeak-ng speech as live chunks on Kafka;
// ffmpeg feeds the same speech (gain -6 dB, Ogg/Opus 24 kbit/s) as an
// Icecast source on loopback at real-time speed, and different speech of
// the same voice (MP3) on a second mount; room C carries other speech.
// The stage watches both mounts (as the owner of the audio topic's
// partition 0) through URLs holding a password. Exactly one alert:
// leak.rebroadcast, critical, on room A, with the stream by its
// registered name; the second stream, decoded for as long, raises none,
// and the password is in no record and no log line.
func TestWatcherOnIcecast(t *testing.T) {
	ice := testbed.IcecastServer(t)
	s := speechtest.New(t)
	b := newBed(t, 1)
	ops := b.opsTopic()

	origin := time.Now().Add(-2 * time.Minute).UTC().Truncate(time.Millisecond)
	mk := func(name string) room {
		return room{name: "room_" + name, session: "ses_" + name, speaker: "spk_" + name, track: b.trackOn(name, 0), origin: origin}
	}
	ra, rc := mk("a"), mk("c")
	texts := map[string]string{"x": s.Text(101, 55), "c": s.Text(303, 55), "d": s.Text(404, 55)}
	disjoint(t, texts)
	x := say(s, "x", texts["x"])
	b.sessionStarted(ra, true)
	b.produce(append(chunks(t, b.keys, ra, x, 32), chunks(t, b.keys, rc, say(s, "c", texts["c"]), 32)...)...)

	// The sources: the same speech as room A, and different speech.
	tag := strings.TrimPrefix(b.alerts, "t.rb.alerts.")
	leakMount, otherMount := "/leak-"+tag+".ogg", "/other-"+tag+".mp3"
	xRaw := writeF32(t, s.Path("x-src.f32"), x)
	dRaw := writeF32(t, s.Path("d-src.f32"), say(s, "d", texts["d"]))
	source(t, ice, xRaw, leakMount, "-af", "volume=-6dB", "-c:a", "libopus", "-b:a", "24k", "-f", "ogg", "-content_type", "application/ogg")
	source(t, ice, dRaw, otherMount, "-c:a", "libmp3lame", "-b:a", "48k", "-f", "mp3", "-content_type", "audio/mpeg")
	for _, m := range []string{leakMount, otherMount} {
		waitFor(t, time.Minute, "the Icecast mount "+m, func() bool { return mountUp(ice.URL, m) })
	}

	const secret = "listener-pw-42"
	withCred := func(mount string) string {
		return strings.Replace(ice.URL, "http://", "http://watcher:"+secret+"@", 1) + mount + "?auth=" + secret
	}
	// Evidence: the test bed's S3 through the encrypting store, as a
	// deployment has it.
	raw := storagetest.NewS3(t, storagetest.S3Bucket(t, "rb-clips"))
	var kekBytes [32]byte
	_, _ = crand.Read(kekBytes[:])
	kek, err := crypt.NewLocalKEK(kekBytes[:])
	if err != nil {
		t.Fatal(err)
	}
	keyring, err := crypt.NewKeyring(crypt.KeyringConfig{KEK: kek, Store: raw})
	if err != nil {
		t.Fatal(err)
	}
	evidence := crypt.NewStore(raw, keyring)
	logw := &testbed.SyncBuffer{}
	cons, err := bus.NewConsumer(bus.ConsumerConfig{Cluster: b.brokers, GroupID: b.group, Topics: []string{b.audio},
		SessionTimeout: 6 * time.Second, HeartbeatInterval: time.Second, DrainTimeout: 3 * time.Second, RebalanceTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	st, err := New(Config{Consumer: cons, Log: bus.LogReader{Cluster: b.brokers}, Sender: b.prod, Keys: b.keys,
		Producer: event.Producer{Name: "test"}, Secret: b.secret, Logger: slog.New(slog.NewTextHandler(logw, nil)),
		Topics:  Topics{Fingerprints: b.fps, Alerts: b.alerts, DeadLetter: b.dead, Lifecycle: b.life, Audio: b.audio, Ops: ops},
		Watch:   []Watch{{Name: "leak", URL: withCred(leakMount)}, {Name: "other", URL: withCred(otherMount)}},
		Streams: FFmpeg{Path: ice.FFmpeg}, Evidence: evidence})
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- st.Run(rctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("stage: %v", err)
		}
		_ = st.Close()
	})

	start := time.Now()
	waitFor(t, 3*time.Minute, "a rebroadcast alert", func() bool { es, _ := b.alertPayloads(); return len(es) > 0 })
	t.Logf("first alert %v after the stage started", time.Since(start).Round(100*time.Millisecond))
	// Both streams decoded for as long as the leaked one needed, and more.
	waitFor(t, 3*time.Minute, "20 s of each stream decoded", func() bool {
		for _, w := range st.Watching() {
			if w.Seconds < 20 {
				return false
			}
		}
		return true
	})
	time.Sleep(3 * time.Second) // the last queries' delay

	es, ps := b.alertPayloads()
	for i, p := range ps {
		t.Logf("alert %s/%s on %s: original %s, copy %s (%s), matched %.1f s, %d hits, confidence %.3f, speed %.2f",
			p.Category, p.Severity, es[i].Room, p.Original.Room, p.Copy.Room, p.External, p.MatchedS, p.Hits, p.Confidence, p.Speed)
	}
	if len(es) != 1 {
		t.Fatalf("%d alerts, want exactly 1 (room A in the leak stream)", len(es))
	}
	e, p := es[0], ps[0]
	if p.Category != fingerprint.CategoryRebroadcast || p.Severity != "critical" || !p.Original.Private {
		t.Errorf("%s/%s (room private %v), want leak.rebroadcast/critical from a private room", p.Category, p.Severity, p.Original.Private)
	}
	if e.Room != ra.name || p.Original.Room != ra.name || p.Original.Track != ra.track || p.External != "leak" || p.Copy.Room != ExternalRoom("leak") {
		t.Errorf("alert on %s: original %s/%s, copy %s (%q); want room %s and stream leak", e.Room, p.Original.Room, p.Original.Track, p.Copy.Room, p.External, ra.name)
	}
	if e.EventID != ExternalAlertID(ra.track, "leak") {
		t.Errorf("alert ID %s is not the room track's and stream's", e.EventID)
	}
	if rs, re := float64(p.Original.FirstSample)/48000, float64(p.Original.LastSample)/48000; rs < -1.5 || re > float64(len(x))/48000+1.5 || re-rs < 3 {
		t.Errorf("room span %.1f–%.1f s of %.1f s", rs, re, float64(len(x))/48000)
	}
	checkStreamClip(t, evidence, raw, p, s.Samples(s.Say(texts["x"], "x16"), fingerprint.SampleRate))
	for _, w := range st.Watching() {
		t.Logf("stream %s: %d connections, %.1f s decoded, %d failures", w.Name, w.Connections, w.Seconds, w.Failures)
	}
	for _, topic := range []string{b.fps, b.alerts, ops, b.dead} {
		for _, m := range b.read(topic) {
			if bytes.Contains(m.Value, []byte(secret)) || bytes.Contains(m.Value, []byte(leakMount)) {
				t.Errorf("a record on %s carries the watched URL", topic)
			}
		}
	}
	if strings.Contains(logw.String(), secret) {
		t.Errorf("a log line carries the URL's password")
	}
}

// checkStreamClip reads the alert's stream clip back: stored encrypted
// (the raw object is not the WAV), decodable, as long as it says, and its
// audio is the room's audio of the alert's original span: fingerprinted,
// it matches the room's speech (x, 16 kHz) where the span says.
func checkStreamClip(t *testing.T, evidence *crypt.Store, raw storage.Store, p AlertPayload, x []float32) {
	t.Helper()
	c := p.StreamClip
	if c == nil {
		t.Fatal("the alert holds no stream clip")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if c.Key != StreamClipKey(ExternalAlertID(p.Original.Track, p.External)) {
		t.Errorf("clip key %s", c.Key)
	}
	rc, _, err := raw.Get(ctx, c.Key)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := io.ReadAll(rc)
	_ = rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.HasPrefix(stored, []byte("RIFF")) || bytes.Contains(stored, []byte("WAVEfmt")) {
		t.Error("the clip is stored in the clear")
	}
	rc, _, err = evidence.Get(ctx, c.Key)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(rc)
	_ = rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != c.SHA256 {
		t.Error("the clip's SHA-256 is not the alert's")
	}
	pcm, rate, err := ReadWAV(data)
	if err != nil {
		t.Fatal(err)
	}
	if rate != fingerprint.SampleRate || int64(len(pcm))*ratio != c.LastSample-c.FirstSample+1 {
		t.Errorf("clip of %d samples at %d Hz; the alert says %d samples at 48 kHz", len(pcm), rate, c.LastSample-c.FirstSample+1)
	}
	if c.FirstSample > p.Copy.FirstSample || c.LastSample < p.Copy.LastSample {
		t.Errorf("clip %d–%d does not hold the copy span %d–%d", c.FirstSample, c.LastSample, p.Copy.FirstSample, p.Copy.LastSample)
	}
	idx, err := fingerprint.NewIndex(fingerprint.IndexConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ref := idx.AddTrack(fingerprint.TrackInfo{Track: "room", Room: "room"})
	pairs, levels := fingerprintPCM(x)
	idx.AddLevels(ref, levels)
	if err := idx.Add(ref, pairs); err != nil {
		t.Fatal(err)
	}
	q := idx.AddTrack(fingerprint.TrackInfo{Track: "clip", Room: "clip"})
	qp, ql := fingerprintPCM(pcm)
	idx.AddLevels(q, ql)
	m, err := fingerprint.NewMatcher(fingerprint.DefaultMatcherConfig(), idx, q)
	if err != nil {
		t.Fatal(err)
	}
	m.Push(qp)
	m.Flush()
	ms := m.Matches()
	if len(ms) != 1 {
		t.Fatalf("the clip matches the room's speech %d times, want once", len(ms))
	}
	// Where in the room's speech the clip matched, on the 48 kHz timeline,
	// against the alert's original span (the room track starts at 0).
	rs := int64(ms[0].RefFrames[0]) * fingerprint.Hop * ratio
	re := int64(ms[0].RefFrames[1]+1) * fingerprint.Hop * ratio
	t.Logf("stream clip: %.1f s, matches the room's speech at %.1f–%.1f s (confidence %.2f); alert's original span %.1f–%.1f s",
		float64(len(pcm))/float64(rate), float64(rs)/48000, float64(re)/48000, ms[0].Confidence, float64(p.Original.FirstSample)/48000, float64(p.Original.LastSample)/48000)
	if ov := min(re, p.Original.LastSample) - max(rs, p.Original.FirstSample); float64(ov) < 0.5*float64(p.Original.LastSample-p.Original.FirstSample) {
		t.Errorf("the clip's audio is the room's at %.1f–%.1f s, not the alert's span %.1f–%.1f s",
			float64(rs)/48000, float64(re)/48000, float64(p.Original.FirstSample)/48000, float64(p.Original.LastSample)/48000)
	}
}

// fingerprintPCM extracts pairs and levels of 16 kHz audio in 256 ms blocks.
func fingerprintPCM(x []float32) ([]fingerprint.Pair, []int8) {
	e := fingerprint.NewExtractor()
	var pairs []fingerprint.Pair
	var levels []int8
	for i := 0; i < len(x); i += watchBlock {
		pairs, levels = e.Push(x[i:min(i+watchBlock, len(x))], pairs, levels)
	}
	return e.Flush(pairs), levels
}

// disjoint fails the test when two of the texts share a word 4-gram.
func disjoint(t *testing.T, texts map[string]string) {
	t.Helper()
	for k1, t1 := range texts {
		for k2, t2 := range texts {
			for g := range fourGrams(t1) {
				if k1 < k2 && fourGrams(t2)[g] {
					t.Fatalf("texts %s and %s share the 4-gram %q", k1, k2, g)
				}
			}
		}
	}
}

// writeF32 writes 48 kHz float samples to p as raw f32le for ffmpeg.
func writeF32(t *testing.T, p string, pcm []float32) string {
	t.Helper()
	b := make([]byte, 4*len(pcm))
	for i, v := range pcm {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// source runs ffmpeg as an Icecast source on mount: raw 48 kHz audio at
// real-time speed, looped three times (the watcher starts on its first
// ownership check), stopped when the test ends.
func source(t *testing.T, ice testbed.IcecastEndpoint, raw, mount string, args ...string) {
	t.Helper()
	u := fmt.Sprintf("icecast://%s:%s@%s%s", ice.SourceUser, ice.SourcePassword, strings.TrimPrefix(ice.URL, "http://"), mount)
	all := append([]string{"-nostdin", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "2",
		"-f", "f32le", "-ar", "48000", "-ac", "1", "-i", raw}, args...)
	cmd := exec.Command(ice.FFmpeg, append(all, u)...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() && errb.Len() > 0 {
			t.Logf("source %s: %s", mount, errb.String())
		}
	})
}

// mountUp reports whether Icecast serves mount (a source is connected).
func mountUp(base, mount string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+mount, nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
