package config

import (
	"strings"
	"testing"
	"time"
)

func TestIngestExtChecks(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		want string // "" = valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"lease off ignores timing", func(c *Config) { c.Ingest.Lease = Lease{} }, ""},
		{"ttl too short", func(c *Config) { c.Ingest.Lease.TTL = 100 * time.Millisecond }, "ingest.lease.ttl"},
		{"renew too slow", func(c *Config) { c.Ingest.Lease.Renew = 5 * time.Second }, "ingest.lease.renew"},
		{"negative gap", func(c *Config) { c.Ingest.Lease.SessionGap = -time.Second }, "ingest.lease.session_gap"},
		{"bad pattern", func(c *Config) { c.Ingest.Participants.SkipDisplay = "(" }, "ingest.participants.skip_display"},
		{"raw identity in skip", func(c *Config) { c.Ingest.Participants.Skip = []string{"alice"} }, "ingest.participants.skip"},
		{"pseudonym in skip", func(c *Config) { c.Ingest.Participants.Skip = []string{"p1_abcdefgh"} }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			c.ResolvePaths()
			tc.edit(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("want a problem with %s, got %v", tc.want, err)
			}
		})
	}
}

func TestIngestExtFromEnv(t *testing.T) {
	c, err := Load("", []string{"EARSHOT_INGEST_LEASE_TTL=6s", "EARSHOT_INGEST_LEASE_RENEW=2s", "EARSHOT_INGEST_PARTICIPANTS_SKIP_DISPLAY=^private-"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Ingest.Lease.TTL != 6*time.Second || c.Ingest.Lease.Renew != 2*time.Second || c.Ingest.Participants.SkipDisplay != "^private-" {
		t.Errorf("loaded %+v %+v", c.Ingest.Lease, c.Ingest.Participants)
	}
}
