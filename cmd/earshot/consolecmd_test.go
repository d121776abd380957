package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/earshot/earshot/compliance/audit"
	"github.com/earshot/earshot/ingest/pseudonym"
	"github.com/earshot/earshot/internal/bustest"
	"github.com/earshot/earshot/internal/compliancetest"
	"github.com/earshot/earshot/internal/config"
	"github.com/earshot/earshot/serve"
	"github.com/earshot/earshot/serve/complianceview"
	"github.com/earshot/earshot/serve/evidence/evidencetest"
	"github.com/earshot/earshot/storage"
	"github.com/earshot/earshot/storage/crypt"
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

// TestConsoleComplianceBackend: the console's compliance views act on the
// same holds, audit chain and signed exports as the commands.
func TestConsoleComplianceBackend(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	store, err := storage.OpenLocal(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	keys, cstore := compliancetest.NewCrypt(t, store, filepath.Join(dir, "secrets", "kek.key"))
	t0 := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	compliancetest.Build(t, cstore, keys, compliancetest.Session{Room: cliRoom, ID: "ses_one", Speakers: []string{cliAlice}, Start: t0, Ended: t0.Add(time.Hour), Alert: true})
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.ResolvePaths()
	rt, err := commandRuntime(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	c, err := newCompliance(ctx, rt)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := consoleCompliance(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := cc.SetHold(ctx, "cora", cliRoom, "", "litigation 42"); err != nil {
		t.Fatal(err)
	}
	holds, err := cc.Holds(ctx)
	if err != nil || len(holds) != 1 || holds[0].Room != cliRoom || holds[0].Operator != "cora" {
		t.Fatalf("holds %+v (%v), want cora's on the room", holds, err)
	}
	var bundle bytes.Buffer
	name, err := cc.Export(ctx, "cora", cliRoom, "", "subpoena", &bundle)
	if err != nil || !strings.HasSuffix(name, ".tar") {
		t.Fatalf("export %q: %v", name, err)
	}
	bf, pub := filepath.Join(dir, "b.tar"), filepath.Join(dir, "pub")
	_, key, _ := run(t, "signing-key", "-data-dir", dir)
	if err := errors.Join(os.WriteFile(bf, bundle.Bytes(), 0o600), os.WriteFile(pub, []byte(key), 0o600)); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := run(t, "verify", bf, "--key", pub); code != 0 {
		t.Errorf("the console's bundle does not verify: %s %s", out, errOut)
	}
	if existed, err := cc.LiftHold(ctx, "cora", holds[0], "case closed"); err != nil || !existed {
		t.Errorf("lift: %v, existed %v", err, existed)
	}
	st, err := cc.AuditStatus(ctx, 2)
	if err != nil || !st.Intact || st.Entries < 3 || len(st.Recent) != 2 || st.Recent[0].Action != audit.ActionHoldLift || st.Recent[0].Seq != st.Entries {
		t.Errorf("audit status %+v (%v): want an intact chain, newest first, ending with the lift", st, err)
	}
}

// TestComplianceViewKinds: the console's compliance views name ID kinds
// as ingest/pseudonym does (serve may not import ingest, so it keeps its
// own copy).
func TestComplianceViewKinds(t *testing.T) {
	if complianceview.KindRoom != pseudonym.KindRoom || complianceview.KindPerson != pseudonym.KindPerson {
		t.Fatalf("complianceview kinds %q/%q, pseudonym kinds %q/%q", complianceview.KindRoom, complianceview.KindPerson, pseudonym.KindRoom, pseudonym.KindPerson)
	}
}
