package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/earshot/earshot/policy"
)

const labelledSet = "../../policy/testdata/labelled/labelled.jsonl"

func rules(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(context.Background(), append([]string{"rules"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRulesCheck(t *testing.T) {
	good := writeFile(t, "good.yaml", string(policy.DefaultYAML()))
	bad := writeFile(t, "bad.yaml", `version: "t1"
phone_regions: [US]
rules:
  - id: ok.rule
    category: abuse.threat
    severity: high
    lexicon: {terms: [i will hurt you]}
  - id: Bad Rule
    category: abuse.threat
    severity: high
    lexicon: {terms: [x]}
  - id: no.category
    category: abuse.nonsense
    severity: extreme
    regex: {patterns: ['(']}
`)
	tests := []struct {
		name      string
		file      string
		code      int
		wantLines []string // each must appear in stdout
	}{
		{"the default policy", good, 0, []string{"ok"}},
		{"every problem with its line", bad, 1, []string{"bad.yaml:line 8:", "bad.yaml:line 12:", "abuse.nonsense", "extreme", "bad pattern"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := rules(t, "check", tc.file)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, tc.code, out, errOut)
			}
			for _, w := range tc.wantLines {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
	if code, _, _ := rules(t, "check"); code != 2 {
		t.Errorf("no file: exit %d, want 2", code)
	}
}

func TestRulesExplain(t *testing.T) {
	tests := []struct {
		text string
		want []string
	}{
		{"Call me on (202) 555-0143!", []string{"normalised call me on 202 555 0143", "FIRED", "pii.phone"}},
		{"my order number is 415 867 5309", []string{"SUPPRESSED", `("order")`}},
		{"It's 415 867 530", []string{"no rule matches", "near miss", "415867530 (9 digits)"}},
		{"she lives at forty two elm street", []string{"SIGNAL", "pii.address.en", "FIRED", "leak.doxxing"}},
	}
	for _, tc := range tests {
		t.Run(tc.text, func(t *testing.T) {
			code, out, errOut := rules(t, "explain", tc.text)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestRulesTestBaseline(t *testing.T) {
	dir := t.TempDir()
	def := filepath.Join(dir, "default.yaml")
	if err := os.WriteFile(def, policy.DefaultYAML(), 0o644); err != nil {
		t.Fatal(err)
	}
	// A change that stops phone numbers from alerting.
	weakYAML := strings.Replace(string(policy.DefaultYAML()), "    detector: phone\n", "    detector: phone\n    min_score: 1\n", 1)
	if weakYAML == string(policy.DefaultYAML()) {
		t.Fatal("test policy edit did not apply")
	}
	weak := filepath.Join(dir, "weak.yaml")
	if err := os.WriteFile(weak, []byte(weakYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(dir, "report.json")
	code, out, errOut := rules(t, "test", labelledSet, "-report", report)
	if code != 0 || !strings.Contains(out, "pii.phone") || !strings.Contains(out, "precision") {
		t.Fatalf("default policy on its own set: exit %d\n%s%s", code, out, errOut)
	}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"same policy against its saved report", []string{"-baseline", report}, 0, "no category regresses"},
		{"same policy against its file", []string{"-policy", def, "-baseline", def}, 0, "no category regresses"},
		{"a change that loses phone numbers", []string{"-policy", weak, "-baseline", def}, 1, "pii.phone: precision"},
		{"held-out lines are counted, not listed", []string{"-policy", weak, "-split", "heldout"}, 0, "on held-out lines, not listed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := rules(t, append([]string{"test", labelledSet}, tc.args...)...)
			if code != tc.code || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d (want %d), output lacks %q?\n%s%s", code, tc.code, tc.want, out, errOut)
			}
		})
	}
	bad := writeFile(t, "bad.jsonl", `{"id":"a","text":"x","labels":["pii.nonsense"]}
{"id":"a","text":"","labels":[],"extra":1}
`)
	code, _, errOut = rules(t, "test", bad)
	if code != 1 || !strings.Contains(errOut, "line 1") || !strings.Contains(errOut, "line 2") {
		t.Fatalf("a bad labelled set: exit %d, %s", code, errOut)
	}
}
