package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/earshot/earshot/internal/testbed"
)

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = Main(context.Background(), args, &o, &e)
	return code, o.String(), e.String()
}

func TestCommands(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("kafka:\n  brokerz: [x:1]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		code     int
		out, err string
	}{
		{"no args", nil, 2, "", "usage"},
		{"unknown", []string{"fly"}, 2, "", `unknown command "fly"`},
		{"version", []string{"version"}, 0, "earshot ", ""},
		{"config check", []string{"config", "check", "-data-dir", dir}, 0, "valid", ""},
		{"config keys", []string{"config", "keys"}, 0, "EARSHOT_STORAGE_S3_ENDPOINT", ""},
		{"strict yaml", []string{"config", "check", "-config", bad}, 2, "", "brokerz"},
		{"invalid value", []string{"config", "check", "-set", "storage.backend=tape"}, 2, "", "storage.backend"},
		{"bad flag", []string{"config", "check", "-nope"}, 2, "", "nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(t, tt.args...)
			if code != tt.code || !strings.Contains(out, tt.out) || !strings.Contains(errOut, tt.err) {
				t.Fatalf("exit %d (want %d)\nstdout: %s\nstderr: %s", code, tt.code, out, errOut)
			}
		})
	}
}

func TestConfigShowRedactsSecrets(t *testing.T) {
	t.Setenv("EARSHOT_STORAGE_S3_SECRET_KEY", "s3cr3t-value-XYZ")
	code, out, errOut := run(t, "config", "show")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if strings.Contains(out, "s3cr3t-value-XYZ") || !strings.Contains(out, "<redacted>") {
		t.Fatalf("secret not redacted:\n%s", out)
	}
}

// TestRunOnEmbeddedDefaults starts `earshot run` with no configuration (the
// embedded broker, a local store, the stages that need nothing more) and
// stops it the way SIGTERM does.
func TestRunOnEmbeddedDefaults(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	var stderr testbed.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"run", "-data-dir", dir, "-summary", filepath.Join(dir, "summary.txt"),
			"-set", "metrics.listen=127.0.0.1:0", "-set", "serve.listen=127.0.0.1:0"}, &bytes.Buffer{}, &stderr)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(stderr.String(), "policy engine started") {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("earshot run did not start:\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr.String())
	}
	out := stderr.String()
	// No Janus and no Whisper URL: ingest and transcribe are skipped, the
	// stages that need nothing more run.
	for _, want := range []string{"embedded Kafka-protocol broker", "stage not configured", `stages="[policy rebroadcast serve compliance]"`, "envelope encryption"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	for _, f := range []string{"pseudonym.key", "kek.key"} {
		if _, err := os.Stat(filepath.Join(dir, "secrets", f)); err != nil {
			t.Errorf("no %s was created: %v", f, err)
		}
	}
	// Nothing was recorded: the summary says so rather than being absent.
	if b, err := os.ReadFile(filepath.Join(dir, "summary.txt")); err != nil || !strings.Contains(string(b), "segments_stored=0\n") || !strings.Contains(string(b), "alerts=0\n") {
		t.Errorf("summary file: %v\n%s", err, b)
	}
}
