package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/bustest"
	"github.com/earshot/earshot/policy"
	"github.com/earshot/earshot/storage/crypt"
)

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

var keys = crypt.NewMemory()

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// alertRecord makes a sealed alert.raised record of room.
func alertRecord(t *testing.T, room string, first int64) bus.Message {
	t.Helper()
	tl := event.Timeline{Track: "trk_a", FirstSample: first, LastSample: first + 48000, Origin: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC), Anchor: event.AnchorRTCP}
	e, err := event.New(event.TypeAlert, event.Producer{Name: "t"}, &event.Processing{PolicyVersion: "v1"}, room, "ses_1", "p1_spk", &tl,
		policy.AlertPayload{Alert: event.Alert{Severity: "high", Category: "abuse.threat", RuleID: "abuse.threat.en", Score: 0.8}, Suppressed: 2}, "abuse.threat.en")
	if err != nil {
		t.Fatal(err)
	}
	data := event.AlertData{Text: "i will kill you", Excerpt: []event.ExcerptLine{{Speaker: "p1_spk", Track: "trk_a", FirstSample: first, LastSample: first + 48000, Text: "i will kill you"}}}
	if err := e.Seal(context.Background(), keys, data); err != nil {
		t.Fatal(err)
	}
	b, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return bus.Message{Topic: event.TopicAlerts, Key: []byte(room), Value: b}
}

// receiver verifies Standard Webhooks signatures with its own code (not
// the package's Sign) and records what it got.
type receiver struct {
	secret []byte
	fail   atomic.Int32 // status to answer with; 0 = 204
	calls  atomic.Int32
	mu     sync.Mutex
	bodies [][]byte
	ids    []string
	bad    []string
}

func newReceiver(t *testing.T) *receiver {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(testSecret, "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	return &receiver{secret: key}
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.calls.Add(1)
	body, _ := io.ReadAll(req.Body)
	id, ts, sigs := req.Header.Get("webhook-id"), req.Header.Get("webhook-timestamp"), req.Header.Get("webhook-signature")
	problem := ""
	sec, err := strconv.ParseInt(ts, 10, 64)
	switch {
	case id == "" || ts == "" || sigs == "":
		problem = "missing header"
	case err != nil:
		problem = "timestamp not an integer"
	case time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute:
		problem = "timestamp outside tolerance"
	default:
		mac := hmac.New(sha256.New, r.secret)
		mac.Write([]byte(id + "." + ts + "." + string(body)))
		want := mac.Sum(nil)
		ok := false
		for _, s := range strings.Fields(sigs) {
			v, b64, found := strings.Cut(s, ",")
			got, derr := base64.StdEncoding.DecodeString(b64)
			if found && v == "v1" && derr == nil && hmac.Equal(got, want) {
				ok = true
			}
		}
		if !ok {
			problem = "bad signature"
		}
	}
	r.mu.Lock()
	if problem != "" {
		r.bad = append(r.bad, problem)
	}
	r.bodies = append(r.bodies, body)
	r.ids = append(r.ids, id)
	r.mu.Unlock()
	if problem != "" {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if s := r.fail.Load(); s != 0 {
		w.WriteHeader(int(s))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) got() (bodies [][]byte, ids, bad []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.bodies...), append([]string(nil), r.ids...), append([]string(nil), r.bad...)
}

func TestSignMatchesSpecExample(t *testing.T) {
	// The example of the Standard Webhooks specification.
	key, err := ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	got := Sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
	for _, bad := range []string{"whsec_!!!", "whsec_c2hvcnQ="} {
		if _, err := ParseSecret(bad); err == nil {
			t.Errorf("ParseSecret(%q) accepted", bad)
		}
	}
}

func TestWebhookSignedAndMinimal(t *testing.T) {
	rcv := newReceiver(t)
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	key, _ := ParseSecret(testSecret)
	for _, format := range []string{FormatStandard, FormatSlack} {
		t.Run(format, func(t *testing.T) {
			wh, err := NewWebhook(WebhookConfig{URL: srv.URL, Secret: key, Format: format})
			if err != nil {
				t.Fatal(err)
			}
			a := &Alert{ID: "evt_x", Category: "pii.phone", Severity: "high", Room: "r1_room", Time: time.Now(), Link: "https://earshot.example/e/evt_x?t=abc",
				Speaker: "p1_spk", Text: "two oh two five five five", Excerpt: []Line{{Speaker: "p1_spk", Text: "call two oh two five five five"}}}
			if err := wh.Notify(context.Background(), a.View(Minimal)); err != nil {
				t.Fatal(err)
			}
			bodies, ids, bad := rcv.got()
			if len(bad) > 0 {
				t.Fatalf("receiver rejected: %v", bad)
			}
			body := bodies[len(bodies)-1]
			if ids[len(ids)-1] != "evt_x" {
				t.Fatalf("webhook-id %q", ids[len(ids)-1])
			}
			if bytes.Contains(body, []byte("five")) || bytes.Contains(body, []byte("p1_spk")) {
				t.Fatalf("minimal content carries the excerpt or speaker: %s", body)
			}
			var m map[string]any
			if err := json.Unmarshal(body, &m); err != nil {
				t.Fatal(err)
			}
			switch format {
			case FormatStandard:
				data, _ := m["data"].(map[string]any)
				if m["type"] != "alert.raised" || data["category"] != "pii.phone" || data["room"] != "r1_room" || data["link"] != a.Link {
					t.Fatalf("standard body %s", body)
				}
			case FormatSlack:
				if !strings.Contains(m["text"].(string), "pii.phone") || len(m["blocks"].([]any)) < 2 || !bytes.Contains(body, []byte("|evidence>")) {
					t.Fatalf("slack body %s", body)
				}
			}
			// Full content carries the excerpt.
			if err := wh.Notify(context.Background(), a.View(Full)); err != nil {
				t.Fatal(err)
			}
			bodies, _, _ = rcv.got()
			if !bytes.Contains(bodies[len(bodies)-1], []byte("call two oh two five five five")) {
				t.Fatalf("full content lacks the excerpt: %s", bodies[len(bodies)-1])
			}
		})
	}
	// A wrong secret is caught by the receiver's own check.
	wrong, _ := ParseSecret("whsec_" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)))
	wh, _ := NewWebhook(WebhookConfig{URL: srv.URL, Secret: wrong})
	err := wh.Notify(context.Background(), &Alert{ID: "evt_y"})
	if err == nil || !IsPermanent(err) {
		t.Fatalf("wrong secret: %v (a 401 should be permanent)", err)
	}
}

// fakeConsumer hands recs to the handler and counts acknowledgements: it
// wraps each delivery's Ack through a real consumer would; here ack is
// observed by the record landing in acked.
type fakeConsumer struct {
	recs []bus.Message
}

func (f *fakeConsumer) Run(ctx context.Context, h bus.Handler) error {
	for i, m := range f.recs {
		m.Partition, m.Offset = 0, int64(i)
		h(ctx, &bus.Delivery{Message: m})
	}
	<-ctx.Done()
	return nil
}

func (f *fakeConsumer) Close() error { return nil }

func TestStageRoutes(t *testing.T) {
	rcvAll, rcvRoom := newReceiver(t), newReceiver(t)
	srvAll, srvRoom := httptest.NewServer(rcvAll), httptest.NewServer(rcvRoom)
	defer srvAll.Close()
	defer srvRoom.Close()
	key, _ := ParseSecret(testSecret)
	whAll, _ := NewWebhook(WebhookConfig{Name: "all", URL: srvAll.URL, Secret: key})
	whRoom, _ := NewWebhook(WebhookConfig{Name: "room-2-mods", URL: srvRoom.URL, Secret: key, Format: FormatSlack})
	var out bytes.Buffer
	var outMu sync.Mutex
	std := NewStdout("stdout", writerFunc(func(p []byte) (int, error) { outMu.Lock(); defer outMu.Unlock(); return out.Write(p) }))
	dl := &bustest.Capture{}
	ctx, cancel := context.WithCancel(context.Background())
	st, err := NewStage(StageConfig{
		Consumer: &fakeConsumer{recs: []bus.Message{alertRecord(t, "r1_one", 0), alertRecord(t, "r1_two", 0), alertRecord(t, "r1_one", 0)}},
		Sender:   dl, Keys: keys, Logger: quiet(), Linker: linker{},
		Routes: []Route{
			{Notifier: whAll},
			{Notifier: whRoom, Rooms: []string{"r1_two"}},
			{Notifier: std, Content: Full},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()
	waitFor(t, func() bool { return rcvAll.calls.Load() >= 2 && rcvRoom.calls.Load() >= 1 })
	time.Sleep(200 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := rcvAll.calls.Load(); n != 2 {
		t.Errorf("catch-all sink got %d alerts, want 2 (the third record repeats the first)", n)
	}
	_, ids, _ := rcvRoom.got()
	if len(ids) != 1 {
		t.Fatalf("room sink got %d alerts, want 1", len(ids))
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("stdout: %q", out.String())
	}
	var a Alert
	if err := json.Unmarshal([]byte(lines[0]), &a); err != nil {
		t.Fatal(err)
	}
	if a.Text != "i will kill you" || len(a.Excerpt) != 1 || a.Excerpt[0].At.IsZero() || a.Suppressed != 2 || a.Speaker != "p1_spk" || a.Link != "https://e/"+a.ID {
		t.Fatalf("full stdout line: %+v", a)
	}
	if len(dl.All()) != 0 {
		t.Fatalf("dead letters: %d", len(dl.All()))
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

type linker struct{}

func (linker) Link(id string) (string, error) { return "https://e/" + id, nil }

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 60 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func FuzzParseSecret(f *testing.F) {
	f.Add(testSecret)
	f.Add("whsec_")
	f.Add("c2hvcnQ=")
	f.Fuzz(func(t *testing.T, s string) {
		key, err := ParseSecret(s)
		if err != nil {
			return
		}
		if len(key) < 24 || len(key) > 64 {
			t.Fatalf("accepted a %d-byte key", len(key))
		}
		if sig := Sign(key, "id", 1, nil); !strings.HasPrefix(sig, "v1,") {
			t.Fatalf("signature %q", sig)
		}
	})
}
