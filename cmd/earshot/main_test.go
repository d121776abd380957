package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
