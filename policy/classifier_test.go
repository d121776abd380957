package policy

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/storage/crypt"
)

// moderation is an OpenAI-moderation-compatible server: it flags a text
// containing "threat" as harassment/threatening and fails with status
// while fail is set.
type moderation struct {
	calls atomic.Int32
	fail  atomic.Int32 // HTTP status to fail with; 0 answers
	delay time.Duration
	mu    sync.Mutex
	last  map[string]any
}

func (m *moderation) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.calls.Add(1)
	var req map[string]any
	b, _ := io.ReadAll(r.Body)
	_ = json.Unmarshal(b, &req)
	m.mu.Lock()
	m.last = req
	m.mu.Unlock()
	if m.delay > 0 {
		select {
		case <-time.After(m.delay):
		case <-r.Context().Done():
			return
		}
	}
	if s := m.fail.Load(); s != 0 {
		w.WriteHeader(int(s))
		return
	}
	in, _ := req["input"].(string)
	threat := strings.Contains(in, "threat")
	score := 0.01
	if threat {
		score = 0.93
	}
	_ = json.NewEncoder(w).Encode(map[string]any{
		"id": "modr-1", "model": "omni-moderation-latest",
		"results": []any{map[string]any{
			"flagged":         threat,
			"categories":      map[string]bool{"harassment": false, "harassment/threatening": threat, "sexual": false},
			"category_scores": map[string]float64{"harassment": 0.2, "harassment/threatening": score, "sexual": 0.7},
		}},
	})
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestClassifierParse(t *testing.T) {
	m := &moderation{}
	srv := httptest.NewServer(m)
	defer srv.Close()
	var logs strings.Builder
	c, err := NewClassifier(ClassifierConfig{URL: srv.URL + "/v1/moderations", Model: "omni", Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "transcript text leaves this deployment") {
		t.Fatalf("turning the classifier on was not logged as a warning: %q", logs.String())
	}
	hits, err := c.Classify(context.Background(), "this is a threat")
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) != 1 || hits[0].Category != "abuse.threat" || hits[0].Name != "harassment/threatening" || hits[0].Score != 0.93 {
		t.Fatalf("hits %+v", hits)
	}
	if m.last["input"] != "this is a threat" || m.last["model"] != "omni" {
		t.Fatalf("request %v", m.last)
	}
	// "sexual" scores 0.7 but is not mapped; harassment is under MinScore.
	if hits, err := c.Classify(context.Background(), "hello"); err != nil || len(hits) != 0 {
		t.Fatalf("benign text: %+v, %v", hits, err)
	}
}

func TestClassifierBadResponses(t *testing.T) {
	for _, body := range []string{`not json`, `{"results":[]}`, `{}`} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, body) }))
		c, err := NewClassifier(ClassifierConfig{URL: srv.URL, Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Classify(context.Background(), "x"); err == nil {
			t.Errorf("%q: no error", body)
		}
		srv.Close()
	}
	if _, err := NewClassifier(ClassifierConfig{URL: "ftp://x", Logger: quiet()}); err == nil {
		t.Error("an ftp URL was accepted")
	}
}

func TestClassifierTimeoutAndBreaker(t *testing.T) {
	m := &moderation{delay: 2 * time.Second}
	srv := httptest.NewServer(m)
	defer srv.Close()
	c, err := NewClassifier(ClassifierConfig{URL: srv.URL, Timeout: 50 * time.Millisecond, FailureThreshold: 3, CoolDown: 300 * time.Millisecond, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := c.Classify(context.Background(), "threat"); err == nil || errors.Is(err, ErrClassifierOpen) {
			t.Fatalf("call %d: want a timeout, got %v", i, err)
		}
	}
	if c.State() != "open" {
		t.Fatalf("after 3 failures the circuit is %s", c.State())
	}
	before := m.calls.Load()
	if _, err := c.Classify(context.Background(), "threat"); !errors.Is(err, ErrClassifierOpen) {
		t.Fatalf("open circuit: %v", err)
	}
	if m.calls.Load() != before {
		t.Fatal("an open circuit still called the service")
	}
	// After the cool-down one trial goes through; it succeeds and closes
	// the circuit.
	m2 := &moderation{}
	srv.Config.Handler = m2
	deadline := time.Now().Add(10 * time.Second)
	for c.State() != "half-open" {
		if time.Now().After(deadline) {
			t.Fatalf("circuit never half-open: %s", c.State())
		}
		time.Sleep(20 * time.Millisecond)
	}
	hits, err := c.Classify(context.Background(), "threat")
	if err != nil || len(hits) != 1 {
		t.Fatalf("trial request: %v, %v", hits, err)
	}
	if c.State() != "closed" {
		t.Fatalf("after a good trial the circuit is %s", c.State())
	}
	// A failing trial opens it again.
	m2.fail.Store(http.StatusInternalServerError)
	for range 3 {
		_, _ = c.Classify(context.Background(), "threat")
	}
	if c.State() != "open" {
		t.Fatalf("after 3 HTTP 500s the circuit is %s", c.State())
	}
}

func TestStageWithClassifier(t *testing.T) {
	m := &moderation{}
	srv := httptest.NewServer(m)
	defer srv.Close()
	c, err := NewClassifier(ClassifierConfig{URL: srv.URL, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	keys := crypt.NewMemory()
	recs := []bus.Message{
		// only the classifier sees this one
		transcript(t, keys, seg("", "p1_x", "trk_x", 0, "this is a veiled threat", 0.9), "m"),
		// the lexicon and the classifier both: one alert
		transcript(t, keys, seg("", "p1_x", "trk_x", 100, "a threat i will kill you", 0.9), "m"),
		transcript(t, keys, seg("", "p1_x", "trk_x", 200, "nice weather", 0.9), "m"),
	}
	alerts := runStage(t, StageConfig{Keys: keys, Classifier: c, Logger: quiet()}, recs)
	if len(alerts) != 2 {
		t.Fatalf("%d alerts, want 2", len(alerts))
	}
	var a AlertPayload
	if err := alerts[0].DecodePayload(&a); err != nil {
		t.Fatal(err)
	}
	if a.RuleID != "classifier.harassment.threatening" || a.Category != "abuse.threat" || a.Severity != "high" {
		t.Fatalf("classifier alert %+v", a)
	}
	if m.calls.Load() != 3 {
		t.Fatalf("%d classifier calls, want 3", m.calls.Load())
	}
	// A dead classifier does not stop the policy's own alerts.
	srv.Close()
	alerts = runStage(t, StageConfig{Keys: keys, Classifier: c, Logger: quiet()}, recs[1:2])
	if len(alerts) != 1 {
		t.Fatalf("with the classifier down: %d alerts", len(alerts))
	}
}

func FuzzClassifierParse(f *testing.F) {
	f.Add([]byte(`{"results":[{"flagged":true,"categories":{"hate":true},"category_scores":{"hate":0.9}}]}`))
	f.Add([]byte(`{"results":[{"categories":{"violence":false},"category_scores":{"violence":1e309}}]}`))
	f.Add([]byte(`{"results":[]}`))
	c, err := NewClassifier(ClassifierConfig{URL: "http://127.0.0.1:9/v1/moderations", Logger: quiet()})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		hits, err := c.parse(b)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, h := range hits {
			if h.Score < 0 || h.Score > 1 || h.Category == "" || seen[h.Category] {
				t.Fatalf("bad hit %+v in %+v", h, hits)
			}
			seen[h.Category] = true
		}
	})
}
