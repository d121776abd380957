package main

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/earshot/earshot/crypt"
	"github.com/earshot/earshot/evidence/evidencetest"
	"github.com/earshot/earshot/internal/bustest"
	"github.com/earshot/earshot/serve"
)

// TestConsoleLinkCommand: the link the command prints signs the operator
// in on a server reading the same link key, once.
func TestConsoleLinkCommand(t *testing.T) {
	dir := t.TempDir()
	tokFile := filepath.Join(dir, "demo.token")
	if err := os.WriteFile(tokFile, []byte("demo-operator-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "earshot.yaml")
	yaml := "data_dir: " + dir + "\nserve:\n  operators:\n    - {name: demo, token_file: " + tokFile + ", role: admin}\n"
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"no subcommand", []string{"console"}, 2},
		{"no operator", []string{"console", "link", "-config", cfgPath}, 2},
		{"unknown operator", []string{"console", "link", "-config", cfgPath, "--operator", "eve"}, 2},
		{"ttl too long", []string{"console", "link", "-config", cfgPath, "--operator", "demo", "--ttl", "2h"}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if code, _, stderr := run(t, tc.args...); code != tc.code {
				t.Errorf("exit %d, want %d: %s", code, tc.code, stderr)
			}
		})
	}
	code, out, stderr := run(t, "console", "link", "-config", cfgPath, "--operator", "demo")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	link, err := url.Parse(strings.TrimSpace(out))
	if err != nil || link.Path != "/console/signin/once" {
		t.Fatalf("printed %q, not a sign-in link", out)
	}
	key, err := serve.LoadOrCreateLinkKey(filepath.Join(dir, "secrets", "links.key"))
	if err != nil {
		t.Fatal(err)
	}
	links, err := serve.NewLinkSigner(key, "http://127.0.0.1:8470", 15*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	op, err := serve.OperatorFromFile("demo", tokFile)
	if err != nil {
		t.Fatal(err)
	}
	s, err := serve.New(serve.Config{Store: evidencetest.NewStore(), Keys: crypt.NewMemory(), Sender: &bustest.Capture{},
		Audit: &serve.KafkaAuditor{Sender: &bustest.Capture{}}, Links: links, Operators: []serve.Operator{op}, Index: serve.NewIndex(100)})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"/console/", "/console/signin"} {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest("GET", link.RequestURI(), nil))
		loc := rec.Header().Get("Location")
		if loc, _, _ = strings.Cut(loc, "?"); rec.Code != http.StatusSeeOther || loc != want {
			t.Errorf("use %d: status %d, location %q, want %s", i+1, rec.Code, loc, want)
		}
	}
}
