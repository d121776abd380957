package main

import (
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/ingest/pseudonym"
	"github.com/earshot/earshot/internal/config"
	"github.com/earshot/earshot/storage/crypt"
)

func TestPolicyStageWiresSinks(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "webhook.secret")
	if err := os.WriteFile(secret, []byte("whsec_"+base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32)))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Alerts.Sinks = []config.AlertSink{
		{Name: "tns", Type: "webhook", URL: "http://127.0.0.1:9/hook", SecretFile: secret},
		{Name: "room-mods", Type: "slack", URL: "http://127.0.0.1:9/slack", Rooms: []string{"1600"}},
		{Type: "stdout", Content: "full"},
	}
	cfg.DataDir = dir
	cfg.ResolvePaths()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ps, err := pseudonym.New([]byte(strings.Repeat("s", 32)), 1)
	if err != nil {
		t.Fatal(err)
	}
	prod, err := bus.NewProducer(bus.ProducerConfig{Cluster: bus.Plain("127.0.0.1:9")})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	rt := &Runtime{Config: cfg, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Cluster: bus.Plain("127.0.0.1:9"),
		Producer: prod, Pseudonym: ps, Metrics: prometheus.NewRegistry(), Keys: crypt.NewMemory()}
	st, err := newPolicyStage(context.Background(), rt)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if st.(*policyStage).notifier == nil {
		t.Fatal("sinks configured but no notifier")
	}

	// A webhook without a readable secret is refused at start-up.
	cfg.Alerts.Sinks[0].SecretFile = filepath.Join(dir, "missing")
	rt.Config = cfg
	if _, err := newPolicyStage(context.Background(), rt); err == nil || !strings.Contains(err.Error(), "alerts.sinks[0].secret_file") {
		t.Fatalf("missing secret file: %v", err)
	}
}
