package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/testbed"
	"github.com/earshot/earshot/transcribe"
)

// TestOpsAlertsReachTheSinks: an operational alert on earshot.ops
// (transcription falling behind; transcribe may not write the alerts
// topic) reaches the alert sinks although it is not sealed, and a
// moderation alert written to that topic (unsealed, naming a room) does
// not.
func TestOpsAlertsReachTheSinks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	emb, err := bus.NewEmbedded(ctx, bus.EmbeddedConfig{Partitions: 2, AutoCreateTopics: true})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()

	posts := make(chan string, 8)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		posts <- string(b)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer hook.Close()

	dir := t.TempDir()
	secret := filepath.Join(dir, "webhook.secret")
	token := filepath.Join(dir, "operator.token")
	if err := os.WriteFile(secret, []byte("whsec_"+base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32)))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(token, []byte(strings.Repeat("t", 40)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "earshot.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`serve:
  operators:
    - {name: mod, token_file: %s}
alerts:
  sinks:
    - {name: hook, type: webhook, url: %s, secret_file: %s}
`, token, hook.URL, secret)), 0o600); err != nil {
		t.Fatal(err)
	}

	var stderr testbed.SyncBuffer
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan int, 1)
	go func() {
		done <- Main(runCtx, []string{"run", "-config", cfg, "-data-dir", filepath.Join(dir, "data"),
			"-set", "kafka.embedded=false", "-set", "kafka.brokers=" + emb.Addr(), "-set", "metrics.listen=", "-set", "serve.listen=127.0.0.1:0"}, &bytes.Buffer{}, &stderr)
	}()
	defer func() {
		stop()
		if code := <-done; code != 0 {
			t.Errorf("earshot run exited %d:\n%s", code, stderr.String())
		}
	}()
	for !strings.Contains(stderr.String(), "policy engine started") {
		if ctx.Err() != nil {
			t.Fatalf("earshot run did not start:\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	prod, err := bus.NewProducer(bus.ProducerConfig{Cluster: emb.Cluster()})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	send := func(room string, a event.Alert, id ...string) string {
		t.Helper()
		e, err := event.New(event.TypeAlert, event.Producer{Name: "earshot-transcribe", Instance: "w1"}, nil, room, "", "", nil, a, id...)
		if err != nil {
			t.Fatal(err)
		}
		b, err := e.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if err := prod.Produce(ctx, bus.Message{Topic: event.TopicOps, Key: []byte(a.Category), Value: b}); err != nil {
			t.Fatal(err)
		}
		return e.EventID
	}
	forged := send("r1_room", event.Alert{Severity: "critical", Category: "abuse.threat", RuleID: "abuse.threat.en", Score: 1, Confidence: 1}, "forged")
	// The alert as a transcription worker writes it (transcribe/backlog.go).
	lag := send("", event.Alert{Severity: "high", Category: transcribe.CategoryLag, RuleID: transcribe.CategoryLag, Score: 150, Confidence: 1},
		transcribe.CategoryLag, time.Now().Format(time.RFC3339Nano), "w1")

	select {
	case body := <-posts:
		if !strings.Contains(body, transcribe.CategoryLag) || !strings.Contains(body, lag) || strings.Contains(body, forged) {
			t.Errorf("webhook got %s, want only the %s alert %s", body, transcribe.CategoryLag, lag)
		}
	case <-ctx.Done():
		t.Fatalf("the webhook got no POST for the ops alert:\n%s", stderr.String())
	}
	select {
	case body := <-posts:
		t.Errorf("a second POST: %s", body)
	case <-time.After(2 * time.Second):
	}
}
