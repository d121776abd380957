package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestServeSection(t *testing.T) {
	hash := strings.Repeat("ab", 32)
	tests := []struct {
		name string
		edit func(*Serve)
		want string // "" = valid
	}{
		{"defaults", func(*Serve) {}, ""},
		{"disabled", func(s *Serve) { s.Listen = "" }, ""},
		{"bad listen", func(s *Serve) { s.Listen = "8470" }, "serve.listen"},
		{"bad public url", func(s *Serve) { s.PublicURL = "earshot.example.org" }, "serve.public_url"},
		{"ttl too long", func(s *Serve) { s.LinkTTL = 48 * time.Hour }, "serve.link_ttl"},
		{"operator ok", func(s *Serve) { s.Operators = []Operator{{Name: "alice", TokenSHA256: hash}} }, ""},
		{"operator without token", func(s *Serve) { s.Operators = []Operator{{Name: "alice"}} }, "neither token_file nor token_sha256"},
		{"operator with both", func(s *Serve) { s.Operators = []Operator{{Name: "a", TokenSHA256: hash, TokenFile: "f"}} }, "keep one"},
		{"bad hash", func(s *Serve) { s.Operators = []Operator{{Name: "a", TokenSHA256: "abc"}} }, "64 hex digits"},
		{"twice", func(s *Serve) {
			s.Operators = []Operator{{Name: "a", TokenSHA256: hash}, {Name: "a", TokenFile: "f"}}
		}, "listed twice"},
		{"no name", func(s *Serve) { s.Operators = []Operator{{TokenFile: "f"}} }, "has no name"},
		{"roles and rooms", func(s *Serve) {
			s.Operators = []Operator{{Name: "a", TokenSHA256: hash, Role: RoleCompliance, Rooms: []string{"lobby"}}}
		}, ""},
		{"bad role", func(s *Serve) { s.Operators = []Operator{{Name: "a", TokenSHA256: hash, Role: "root"}} }, "not moderator, compliance or admin"},
		{"empty room", func(s *Serve) { s.Operators = []Operator{{Name: "a", TokenSHA256: hash, Rooms: []string{" "}}} }, "rooms is empty"},
		{"proxy header without ranges", func(s *Serve) { s.Console.ProxyHeader = "X-Forwarded-User" }, "serve.console.proxy_cidrs"},
		{"proxy ranges without header", func(s *Serve) { s.Console.ProxyCIDRs = []string{"10.0.0.0/8"} }, "serve.console.proxy_header"},
		{"proxy ok", func(s *Serve) {
			s.Console.ProxyHeader, s.Console.ProxyCIDRs = "X-Forwarded-User", []string{"10.0.0.0/8", "::1/128"}
		}, ""},
		{"bad range", func(s *Serve) { s.Console.ProxyHeader, s.Console.ProxyCIDRs = "X-Forwarded-User", []string{"10.0.0.0"} }, "not an address range"},
		{"idle too short", func(s *Serve) { s.Console.SessionIdle = time.Second }, "serve.console.session_idle"},
		{"max under idle", func(s *Serve) { s.Console.SessionMax = time.Minute }, "serve.console.session_max"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.edit(&c.Serve)
			c.ResolvePaths()
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want one about %q", err, tc.want)
			}
		})
	}
}

func TestServePaths(t *testing.T) {
	c := Default()
	c.DataDir = "/var/lib/earshot"
	c.ResolvePaths()
	if want := filepath.Join("/var/lib/earshot", "secrets", "links.key"); c.Serve.LinkSecretFile != want {
		t.Errorf("link key %s, want %s", c.Serve.LinkSecretFile, want)
	}
	if c.Serve.PublicURL != "http://127.0.0.1:8470" {
		t.Errorf("public URL %s", c.Serve.PublicURL)
	}
	c = Default()
	c.Serve.PublicURL = "https://earshot.example.org/"
	c.ResolvePaths()
	if c.Serve.PublicURL != "https://earshot.example.org" {
		t.Errorf("trailing slash kept: %s", c.Serve.PublicURL)
	}
}

func TestServeOperatorsFromYAML(t *testing.T) {
	cfg := Default()
	err := Decode(strings.NewReader("serve:\n  operators:\n    - {name: alice, token_file: /run/secrets/alice}\n  link_ttl: 5m\n"), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Serve.Operators) != 1 || cfg.Serve.Operators[0].TokenFile != "/run/secrets/alice" || cfg.Serve.LinkTTL != 5*time.Minute {
		t.Errorf("decoded %+v", cfg.Serve)
	}
}
