package rebroadcast

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/bustest"
	"github.com/earshot/earshot/internal/speech/speechtest"
	"github.com/earshot/earshot/internal/testbed"
	"github.com/earshot/earshot/policy/fingerprint"
	"github.com/earshot/earshot/storage/crypt"
)

// fakeStreams serves PCM per URL: each URL's first Open plays its audio
// (as fast as it is read) and ends; later Opens fail, or block until ctx
// ends when hold is set.
type fakeStreams struct {
	mu    sync.Mutex
	audio map[string][]float32
	opens map[string]int
	hold  bool
}

func (f *fakeStreams) Open(ctx context.Context, url string) (PCMStream, error) {
	f.mu.Lock()
	f.opens[url]++
	pcm, ok := f.audio[url]
	again := f.opens[url] > 1
	f.mu.Unlock()
	if !ok || again {
		if f.hold && ok {
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: %s: 404 Not Found", ErrUndecodable, RedactURL(url))
	}
	return &pcmStream{pcm: pcm}, nil
}

type pcmStream struct{ pcm []float32 }

func (p *pcmStream) Read(b []float32) (int, error) {
	n := copy(b, p.pcm)
	p.pcm = p.pcm[n:]
	if len(p.pcm) == 0 {
		return n, fmt.Errorf("%w: end of stream", ErrStreamEnded)
	}
	return n, nil
}

func (p *pcmStream) Close() error { return nil }

// TestWatchedStreamsMatchLikeRooms: room A's speech (a private room) is
// indexed; three outside streams are watched: "leak" carries A's speech
// at -12 dB, "mirror" the same, "other" different speech of the same
// voice. Exactly two alerts: A heard in "leak" and in "mirror", critical,
// on room A, naming the streams by name; "leak" and "mirror" share audio
// but are both outside streams, so they raise nothing. A stream that
// never answers raises one ops alert, without its URL's credentials.
func TestWatchedStreamsMatchLikeRooms(t *testing.T) {
	s := speechtest.New(t)
	keys := crypt.NewMemory()
	feed, out := bustest.NewFeed(), &bustest.Capture{}
	text := s.Text(101, 55)
	const secret = "hunter2pw"
	urls := map[string]string{
		"leak":   "http://watch:" + secret + "@127.0.0.1:1/leak.ogg",
		"mirror": "http://127.0.0.1:1/mirror.mp3?token=" + secret,
		"other":  "http://127.0.0.1:1/other.ogg",
		"gone":   "http://watch:" + secret + "@127.0.0.1:1/gone.ogg",
	}
	streams := &fakeStreams{opens: map[string]int{}, hold: true, audio: map[string][]float32{
		urls["leak"]:   s.Samples(s.Say(text, "leak"), 16000, "gain", "-12"),
		urls["mirror"]: s.Samples(s.Say(text, "mirror"), 16000, "gain", "-12"),
		urls["other"]:  s.Samples(s.Say(s.Text(202, 55), "other"), 16000),
	}}
	var watch []Watch
	for _, n := range []string{"leak", "mirror", "other", "gone"} {
		watch = append(watch, Watch{Name: n, URL: urls[n]})
	}
	ra := room{name: "room_a", session: "ses_a", speaker: "spk_a", track: "trk_a", origin: time.Now().Add(-time.Minute)}
	rc := room{name: "room_c", session: "ses_c", speaker: "spk_c", track: "trk_c", origin: time.Now().Add(-time.Minute)}
	// The watchers start once the rooms are indexed (the next ownership
	// check, within 5 s), so the streams are matched against them.
	var roomsIn atomic.Bool
	logw := &testbed.SyncBuffer{}
	st, err := New(Config{Consumer: feed, Log: noLog{}, Sender: out, Keys: keys, Secret: make([]byte, 32), QueryDelay: time.Millisecond, Producer: event.Producer{Name: "test"},
		Private: func(r string) bool { return r == ra.name }, Logger: slog.New(slog.NewTextHandler(logw, nil)),
		Watch: watch, Streams: streams, OwnsWatch: roomsIn.Load})
	if err != nil {
		t.Fatal(err)
	}
	// The rooms are indexed before the stage (and its watchers) start.
	offs := feed.Push(append(chunks(t, keys, ra, say(s, "a", text), 32), chunks(t, keys, rc, say(s, "c", s.Text(303, 55)), 32)...)...)
	stop := bustest.Start(t, st.Run)
	defer stop()
	feed.WaitAcked(t, offs...)
	roomsIn.Store(true)
	defer func() {
		if t.Failed() {
			t.Logf("streams %+v, %d ops alerts; log:\n%s", st.Watching(), len(out.Topic(event.TopicOps)), logw.String())
		}
	}()
	waitFor(t, 40*time.Second, "every stream played and the gone one failed three times", func() bool {
		done := 0
		for _, w := range st.Watching() {
			if (w.Name == "gone" && w.Failures >= unavailableAfter) || (w.Name != "gone" && w.Connections == 1 && !w.Connected) {
				done++
			}
		}
		return done == 4 && len(out.Topic(event.TopicOps)) > 0
	})
	time.Sleep(500 * time.Millisecond) // the last queries (1 ms delay, 100 ms ticks)
	stop()

	al := out.Topic(event.TopicAlerts)
	got := map[string]bool{}
	for _, m := range al {
		e, err := event.Decode(m.Value)
		if err != nil {
			t.Fatal(err)
		}
		var p AlertPayload
		if err := e.DecodePayload(&p); err != nil {
			t.Fatal(err)
		}
		if err := e.VerifySealed(context.Background(), keys); err != nil {
			t.Errorf("alert not sealed under the room's speaker: %v", err)
		}
		t.Logf("alert %s/%s: %s %s ↔ %s (%s), matched %.1f s, confidence %.3f", p.Category, p.Severity, e.Room, p.Original.Room, p.Copy.Room, p.External, p.MatchedS, p.Confidence)
		got[p.External] = true
		if p.Category != fingerprint.CategoryRebroadcast || p.Severity != "critical" || e.Room != ra.name || p.Original.Room != ra.name ||
			p.Original.Track != ra.track || p.Copy.Room != ExternalRoom(p.External) || e.EventID != ExternalAlertID(ra.track, p.External) {
			t.Errorf("alert %s/%s on %s: original %s, copy %s (%s), want leak.rebroadcast/critical on %s from an outside stream", p.Category, p.Severity, e.Room, p.Original.Room, p.Copy.Room, p.External, ra.name)
		}
		if p.Copy.Session != "" || p.Copy.Speaker != "" {
			t.Errorf("the outside stream's span names a session or speaker: %+v", p.Copy)
		}
		if s := float64(p.Original.LastSample-p.Original.FirstSample) / 48000; s < 3 {
			t.Errorf("room span %.1f s", s)
		}
	}
	if len(al) != 2 || !got["leak"] || !got["mirror"] {
		t.Errorf("%d alerts naming %v, want one for leak and one for mirror", len(al), got)
	}

	ops := out.Topic(event.TopicOps)
	if len(ops) != 1 {
		t.Fatalf("%d ops alerts, want 1 (the gone stream's outage)", len(ops))
	}
	e, err := event.Decode(ops[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	var wa WatchAlert
	if err := e.DecodePayload(&wa); err != nil {
		t.Fatal(err)
	}
	if wa.Category != CategoryWatchUnavailable || wa.Stream != "gone" || e.Room != "" || e.Protected != nil || !strings.Contains(wa.Error, "404") {
		t.Errorf("ops alert %+v (room %q)", wa, e.Room)
	}
	// No URL credential anywhere: records, alerts, logs. Fingerprint
	// records and alerts name streams, never their addresses; the ops
	// alert may say which server failed (the URL without credentials).
	for _, m := range out.All() {
		if bytes.Contains(m.Value, []byte(secret)) || (m.Topic != event.TopicOps && bytes.Contains(m.Value, []byte("127.0.0.1:1"))) {
			t.Errorf("a record on %s carries a watched URL", m.Topic)
		}
	}
	if strings.Contains(logw.String(), secret) {
		t.Errorf("the logs carry a URL credential")
	}
	if !strings.Contains(logw.String(), "http://127.0.0.1:1/leak.ogg") {
		t.Errorf("the registration is not logged with its redacted URL:\n%s", logw.String())
	}
}

// makeAudio renders a 440 Hz tone with ffmpeg into dir in the given
// container (args are the output options).
func makeAudio(t *testing.T, ffmpeg, out string, seconds float64, args ...string) {
	t.Helper()
	cmd := exec.Command(ffmpeg, append([]string{"-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
		fmt.Sprintf("sine=frequency=440:sample_rate=48000:duration=%g", seconds)}, append(args, out)...)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
}

// readAll reads a stream to its end and returns the samples and the
// end's error.
func readAll(s PCMStream) (int, error) {
	buf := make([]float32, 4096)
	total := 0
	for {
		n, err := s.Read(buf)
		total += n
		if err != nil {
			return total, err
		}
	}
}

// TestFFmpegReader: what ffmpeg decodes (MP3, Ogg/Opus and HLS over
// HTTP) comes out as 16 kHz mono until the end, which is ErrStreamEnded;
// what it cannot (nothing listening, 404, not audio, a server that
// accepts and sends nothing, a non-HTTP URL) is ErrUndecodable, within
// the stall timeout and not a hang, and no error carries the URL's
// credentials.
func TestFFmpegReader(t *testing.T) {
	ffmpeg := testbed.RequireTool(t, "ffmpeg")
	dir := t.TempDir()
	makeAudio(t, ffmpeg, filepath.Join(dir, "tone.mp3"), 3, "-c:a", "libmp3lame", "-b:a", "64k")
	makeAudio(t, ffmpeg, filepath.Join(dir, "tone.ogg"), 3, "-c:a", "libopus", "-b:a", "32k")
	if err := os.Mkdir(filepath.Join(dir, "hls"), 0o755); err != nil {
		t.Fatal(err)
	}
	makeAudio(t, ffmpeg, filepath.Join(dir, "hls", "live.m3u8"), 6, "-c:a", "aac", "-b:a", "64k", "-f", "hls", "-hls_time", "2", "-hls_list_size", "0")
	if err := os.WriteFile(filepath.Join(dir, "page.html"), bytes.Repeat([]byte("<p>not audio</p>\n"), 200), 0o644); err != nil {
		t.Fatal(err)
	}
	files := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer files.Close()
	// A server that accepts and never answers.
	mute, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	var held []net.Conn
	var hmu sync.Mutex
	go func() {
		for {
			c, err := mute.Accept()
			if err != nil {
				return
			}
			hmu.Lock()
			held = append(held, c)
			hmu.Unlock()
		}
	}()
	defer func() {
		hmu.Lock()
		defer hmu.Unlock()
		for _, c := range held {
			_ = c.Close()
		}
	}()
	closed := fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t))
	cred := func(u string) string {
		return strings.Replace(u, "http://", "http://watch:sesame77@", 1) + "?key=sesame77"
	}

	cases := []struct {
		name    string
		url     string
		want    error
		seconds float64 // audio expected (±0.5 s)
	}{
		{"mp3", cred(files.URL + "/tone.mp3"), ErrStreamEnded, 3},
		{"ogg opus", files.URL + "/tone.ogg", ErrStreamEnded, 3},
		{"hls", files.URL + "/hls/live.m3u8", ErrStreamEnded, 6},
		{"nothing listening", cred("http://" + closed + "/live.ogg"), ErrUndecodable, 0},
		{"404", cred(files.URL + "/missing.ogg"), ErrUndecodable, 0},
		{"not audio", files.URL + "/page.html", ErrUndecodable, 0},
		{"silent server", cred("http://" + mute.Addr().String() + "/live.ogg"), ErrUndecodable, 0},
		{"file url", "file:///etc/passwd", ErrUndecodable, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			start := time.Now()
			var n int
			src, err := FFmpeg{Path: ffmpeg, Stall: 3 * time.Second}.Open(ctx, c.url)
			if err == nil {
				n, err = readAll(src)
				_ = src.Close()
			}
			if ctx.Err() != nil {
				t.Fatalf("no answer within a minute: %v", err)
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("error %v, want %v", err, c.want)
			}
			if strings.Contains(err.Error(), "sesame77") {
				t.Errorf("the error carries the URL's credentials: %v", err)
			}
			got := float64(n) / fingerprint.SampleRate
			if math.Abs(got-c.seconds) > 0.5 {
				t.Errorf("%.2f s of audio, want %.1f", got, c.seconds)
			}
			t.Logf("%.2f s in %v: %v", got, time.Since(start).Round(time.Millisecond), err)
		})
	}
}

// TestWatcherReconnects: a stream that ends (an HTTP server handing out
// a 2 s file) is opened again after the backoff, each connection a new
// track, through the real ffmpeg reader; the status counts both.
func TestWatcherReconnects(t *testing.T) {
	ffmpeg := testbed.RequireTool(t, "ffmpeg")
	dir := t.TempDir()
	makeAudio(t, ffmpeg, filepath.Join(dir, "tone.mp3"), 2, "-c:a", "libmp3lame", "-b:a", "64k")
	var hits atomic.Int32
	fs := http.FileServer(http.Dir(dir))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		fs.ServeHTTP(w, r)
	}))
	defer srv.Close()
	out := &bustest.Capture{}
	st, err := New(Config{Consumer: bustest.NewFeed(), Log: noLog{}, Sender: out, Keys: crypt.NewMemory(), Secret: make([]byte, 32),
		Watch: []Watch{{Name: "radio", URL: srv.URL + "/tone.mp3"}}, Streams: FFmpeg{Path: ffmpeg}})
	if err != nil {
		t.Fatal(err)
	}
	stop := bustest.Start(t, st.Run)
	defer stop()
	// A third connection starts after the second ended: two whole files.
	waitFor(t, time.Minute, "a third connection", func() bool { return st.Watching()[0].Connections >= 3 })
	w := st.Watching()[0]
	if w.Failures != 0 || w.Seconds < 3.9 || !strings.Contains(w.LastError, "ended") {
		t.Errorf("status %+v: want two connections' audio and no failures", w)
	}
	tracks := map[string]bool{}
	for _, m := range out.Topic(TopicFingerprints) {
		r, err := DecodeRecord(m.Value)
		if err != nil {
			t.Fatal(err)
		}
		if r.Room != ExternalRoom("radio") || r.Session != "" || r.Speaker != "" {
			t.Errorf("record of room %q session %q speaker %q", r.Room, r.Session, r.Speaker)
		}
		tracks[r.Track] = true
	}
	if len(tracks) < 2 || hits.Load() < 2 {
		t.Errorf("%d tracks over %d requests, want one per connection", len(tracks), hits.Load())
	}
}

// TestRedactURL: what may be a credential never shows.
func TestRedactURL(t *testing.T) {
	cases := []struct{ in, want string }{
		{"http://u:p4ss@host:8000/live.ogg?token=abc", "http://host:8000/live.ogg?…"},
		{"https://cdn.example/a/b.m3u8", "https://cdn.example/a/b.m3u8"},
		{"not a url", "(not a URL)"},
		{"http://host/x#frag", "http://host/x"},
	}
	for _, c := range cases {
		if got := RedactURL(c.in); got != c.want {
			t.Errorf("RedactURL(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	msg := RedactIn("http://u:p4ss@host:8000/live.ogg?token=abc: 401 for u:p4ss and token=abc", "http://u:p4ss@host:8000/live.ogg?token=abc")
	if strings.Contains(msg, "p4ss") || strings.Contains(msg, "token=abc") {
		t.Errorf("RedactIn left a credential: %q", msg)
	}
}

// FuzzRedactURL: whatever an operator writes, its password and query
// do not survive redaction (unless they are also part of the host or
// path, which are shown).
func FuzzRedactURL(f *testing.F) {
	f.Add("http://u:secretpw@host:8000/live.ogg?token=secretqq")
	f.Add("https://host/%zz?x")
	f.Add("http://[::1]:80/a?b#c")
	f.Fuzz(func(t *testing.T, raw string) {
		out := RedactURL(raw)
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			if out != "(not a URL)" {
				t.Fatalf("%q is not a URL with a host but redacts to %q", raw, out)
			}
			return
		}
		shown := u.Scheme + "://" + u.Host + u.EscapedPath() + "?…"
		if p, ok := u.User.Password(); ok && len(p) >= 3 && strings.Contains(out, p) && !strings.Contains(shown, p) {
			t.Fatalf("password %q survives in %q", p, out)
		}
		if q := u.RawQuery; len(q) >= 3 && strings.Contains(out, q) && !strings.Contains(shown, q) {
			t.Fatalf("query %q survives in %q", q, out)
		}
	})
}

var _ bus.Sender = (*bustest.Capture)(nil)
