package policy

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func policyYAML(version, terms string) string {
	return `version: "` + version + `"
rules:
  - id: threat
    category: abuse.threat
    severity: high
    lexicon:
      terms: [` + terms + `]
      files: [more.txt]
`
}

func write(t *testing.T, path, data string) {
	t.Helper()
	// Write then rename, as editors and config managers do.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func threatFound(p *Policy, text string) bool {
	for _, f := range p.Evaluate(&Segment{Text: text, Speech: true}) {
		if f.RuleID == "threat" {
			return true
		}
	}
	return false
}

// TestLoaderReload is the must-show: a changed file is picked up, a broken
// one keeps the previous policy running and says exactly what is wrong,
// and a fixed one is picked up again. Lexicon files named by the policy
// count as part of it.
func TestLoaderReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.yaml")
	write(t, filepath.Join(dir, "more.txt"), "watch your step\n")
	write(t, path, policyYAML("v1", "kill you"))
	var logs bytes.Buffer // Reload runs on this goroutine: no locking needed
	var changes []string
	l, err := NewLoader(LoaderConfig{
		Path:     path,
		Logger:   slog.New(slog.NewTextHandler(&logs, nil)),
		OnChange: func(p *Policy) { changes = append(changes, p.Version()) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if v := l.Policy().Version(); v != "v1" {
		t.Fatalf("version %q", v)
	}
	if changed, err := l.Reload(); changed || err != nil {
		t.Fatalf("unchanged file: changed %v, err %v", changed, err)
	}

	// A good change.
	write(t, path, policyYAML("v2", "kill you, hurt you"))
	if changed, err := l.Reload(); !changed || err != nil {
		t.Fatalf("v2: changed %v, err %v", changed, err)
	}
	if p := l.Policy(); p.Version() != "v2" || !threatFound(p, "i will hurt you") {
		t.Fatalf("v2 not in force: %q", p.Version())
	}

	// A broken file: two problems, both reported; v2 stays in force.
	broken := strings.Replace(policyYAML("v3", "kill you"), "severity: high", "severity: severe\n    colour: red", 1)
	write(t, path, broken)
	changed, err := l.Reload()
	var le *LoadError
	if changed || !errors.As(err, &le) {
		t.Fatalf("broken file: changed %v, err %v", changed, err)
	}
	msg := err.Error()
	for _, want := range []string{"policy.yaml: 2 problems", `line 6: a rule: unknown key "colour"`, `rules[0] (threat).severity: bad severity "severe" — fix: use low, medium, high or critical`} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if p := l.Policy(); p.Version() != "v2" || !threatFound(p, "i will hurt you") {
		t.Errorf("after a broken file the policy is %q, want v2 still working", p.Version())
	}
	if l.Err() == nil {
		t.Error("Err() is nil while a broken file is on disk")
	}
	if !strings.Contains(logs.String(), "previous policy stays in force") || !strings.Contains(logs.String(), "colour") {
		t.Errorf("log lacks the rejection:\n%s", logs.String())
	}
	// Polling the same broken file again does not log again.
	before := strings.Count(logs.String(), "rejected")
	if _, err := l.Reload(); err == nil {
		t.Error("second look at the broken file: no error")
	}
	if after := strings.Count(logs.String(), "rejected"); after != before {
		t.Errorf("rejection logged %d times, want once", after)
	}

	// A missing file also keeps v2.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Reload(); err == nil || l.Policy().Version() != "v2" {
		t.Errorf("missing file: err %v, version %q", err, l.Policy().Version())
	}

	// Fixed: v3 is picked up and the error clears.
	write(t, path, policyYAML("v3", "kill you"))
	if changed, err := l.Reload(); !changed || err != nil || l.Err() != nil {
		t.Fatalf("fixed file: changed %v, err %v, Err %v", changed, err, l.Err())
	}

	// Changing only a lexicon file the policy names reloads too.
	if threatFound(l.Policy(), "mind the gap") {
		t.Fatal("term found before it was added")
	}
	write(t, filepath.Join(dir, "more.txt"), "mind the gap\n")
	if changed, err := l.Reload(); !changed || err != nil {
		t.Fatalf("lexicon change: changed %v, err %v", changed, err)
	}
	if !threatFound(l.Policy(), "please mind the gap") {
		t.Error("new lexicon term not in force")
	}
	if got := strings.Join(changes, ","); got != "v2,v3,v3" {
		t.Errorf("OnChange saw %q", got)
	}
}

// TestLoaderRun: Run polls and picks a change up by itself.
func TestLoaderRun(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.yaml")
	write(t, filepath.Join(dir, "more.txt"), "x y z\n")
	write(t, path, policyYAML("v1", "kill you"))
	l, err := NewLoader(LoaderConfig{Path: path, Interval: 10 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	write(t, path, policyYAML("v2", "kill you"))
	deadline := time.Now().Add(30 * time.Second)
	for l.Policy().Version() != "v2" {
		if time.Now().After(deadline) {
			t.Fatal("Run did not pick up v2")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	// Close is idempotent and stops a Run.
	go func() { done <- l.Run(context.Background()) }()
	l.Close()
	l.Close()
	if err := <-done; err != nil {
		t.Errorf("Run after Close: %v", err)
	}
}

func TestNewLoaderBroken(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.yaml")
	write(t, path, "version: x\nrules: []\n")
	if _, err := NewLoader(LoaderConfig{Path: path, Logger: slog.New(slog.DiscardHandler)}); err == nil || !strings.Contains(err.Error(), "no rules") {
		t.Errorf("err = %v", err)
	}
	if _, err := NewLoader(LoaderConfig{Path: filepath.Join(dir, "nope.yaml")}); err == nil {
		t.Error("missing file accepted")
	}
}
