package config

import (
	"strings"
	"testing"
	"time"
)

func TestRetentionAndComplianceChecks(t *testing.T) {
	tests := []struct {
		name string
		edit func(c *Config)
		want string // "" = valid
	}{
		{"defaults", func(c *Config) {}, ""},
		{"unknown default class", func(c *Config) { c.Retention.DefaultClass = "gold" }, "retention.default_class"},
		{"bad mode", func(c *Config) { c.Retention.Classes["x"] = RetentionClass{Mode: "forever"} }, "retention.classes.x.mode"},
		{"ephemeral without grace", func(c *Config) { c.Retention.Classes["x"] = RetentionClass{Mode: RetentionEphemeral} }, "retention.classes.x.grace"},
		{"fixed without days", func(c *Config) { c.Retention.Classes["x"] = RetentionClass{Mode: RetentionFixed} }, "retention.classes.x.days"},
		{"confirmed shorter", func(c *Config) {
			c.Retention.Classes["x"] = RetentionClass{Mode: RetentionFixed, Days: 30, ConfirmedDays: 10}
		}, "retention.classes.x.confirmed_days"},
		{"rule class", func(c *Config) { c.Retention.Rooms = []RoomClass{{Class: "nope", Rooms: []string{"1"}}} }, "names class \"nope\""},
		{"rule pattern", func(c *Config) { c.Retention.Rooms = []RoomClass{{Class: "ephemeral", Pattern: "("}} }, "not a regular expression"},
		{"empty rule", func(c *Config) { c.Retention.Rooms = []RoomClass{{Class: "ephemeral"}} }, "matches nothing"},
		{"sweep interval", func(c *Config) { c.Retention.SweepInterval = time.Millisecond }, "retention.sweep_interval"},
		{"kafka topic", func(c *Config) { c.Retention.KafkaTopics = map[string]time.Duration{"t": 0} }, "retention.kafka_topics"},
		{"consumer group", func(c *Config) { c.Compliance.ConsumerGroup = "" }, "compliance.consumer_group"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			c.Retention.Classes = map[string]RetentionClass{}
			for k, v := range Default().Retention.Classes {
				c.Retention.Classes[k] = v
			}
			tc.edit(&c)
			c.ResolvePaths()
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("valid config rejected: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Validate = %v, want a problem with %q", err, tc.want)
			}
		})
	}
}

func TestRetentionFromYAML(t *testing.T) {
	var c Config = Default()
	y := `
retention:
  default_class: standard
  classes:
    ephemeral: {mode: ephemeral, grace: 1m}
  rooms:
    - {class: ephemeral, rooms: ["1234"]}
  kafka_topics: {earshot.audio: 12h}
compliance:
  signing_key_file: /keys/export.pem
`
	if err := Decode(strings.NewReader(y), &c); err != nil {
		t.Fatal(err)
	}
	c.ResolvePaths()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Retention.Classes["ephemeral"].Grace != time.Minute || c.Retention.Classes["standard"].Days != 30 ||
		c.Retention.KafkaTopics["earshot.audio"] != 12*time.Hour || c.Compliance.SigningKeyFile != "/keys/export.pem" {
		t.Fatalf("decoded %+v %+v", c.Retention, c.Compliance)
	}
	d := Default()
	d.DataDir = "/data"
	d.ResolvePaths()
	if d.Compliance.SigningKeyFile != "/data/secrets/export.ed25519" {
		t.Fatalf("default signing key file %q", d.Compliance.SigningKeyFile)
	}
}
