package config

import (
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Alerts configures alert de-duplication, rate limits, sinks and the external classifier.
type Alerts struct {
	// RateLimit bounds alerts per room, rule and speaker.
	RateLimit AlertRateLimit `yaml:"rate_limit"`
	// ExcerptContext is the transcript context kept on each side of a
	// finding in the alert's excerpt.
	ExcerptContext time.Duration `yaml:"excerpt_context"`
	// Rebuild says how far back the policy stage reads Kafka when it starts
	// on a partition, to restore its windows and what it already alerted.
	Rebuild AlertRebuild `yaml:"rebuild"`
	// Sinks receive every alert (or a room's alerts); from the file only.
	Sinks []AlertSink `yaml:"sinks"`
	// Notify tunes delivery to the sinks.
	Notify AlertNotify `yaml:"notify"`
	// Classifier is the external moderation service (off by default).
	Classifier AlertClassifier `yaml:"classifier"`
}

// AlertRateLimit is at most Burst alerts within Every of room time per
// room, rule and speaker; further findings are counted and folded into the
// next alert.
type AlertRateLimit struct {
	Every time.Duration `yaml:"every"` // 0s turns the limit off
	Burst int           `yaml:"burst"`
}

// AlertRebuild bounds the state rebuild from Kafka.
type AlertRebuild struct {
	// Transcripts is how much of a partition's transcripts before the first
	// record delivered is replayed into the room windows.
	Transcripts time.Duration `yaml:"transcripts"`
	// Alerts is how much of the alerts topic is read back for
	// de-duplication (across transcript revisions too: a session's final
	// revision may come hours after its live one) and the rate limiter.
	Alerts time.Duration `yaml:"alerts"`
}

// AlertSink is one destination of alerts.
type AlertSink struct {
	// Name identifies the sink in logs, metrics and dead letters (default
	// type and position, e.g. webhook-0).
	Name string `yaml:"name"`
	// Type is webhook (Standard Webhooks, signed), slack (a Slack-compatible
	// incoming webhook) or stdout (JSON lines).
	Type string `yaml:"type"`
	// URL is the receiver; chat webhook URLs carry their credential in the
	// path, so it never prints.
	URL Secret `yaml:"url"`
	// SecretFile holds the signing secret, whsec_<base64> (webhook: needed;
	// slack: optional).
	SecretFile string `yaml:"secret_file"`
	// Content is minimal (category, severity, room pseudonym, evidence
	// link) or full (adds speaker, rule, matched words and excerpt).
	Content string `yaml:"content"`
	// Rooms limits the sink to these room IDs, as the room server names
	// them (a room's own moderators' webhook); empty means every room.
	Rooms []string `yaml:"rooms"`
}

// AlertNotify tunes delivery.
type AlertNotify struct {
	// Attempts per sink before the alert goes to the dead-letter topic.
	Attempts int `yaml:"attempts"`
	// Backoff is the first pause between attempts; each next one doubles
	// up to MaxBackoff, with jitter.
	Backoff    time.Duration `yaml:"backoff"`
	MaxBackoff time.Duration `yaml:"max_backoff"`
	// Timeout bounds one HTTP attempt.
	Timeout time.Duration `yaml:"timeout"`
}

// AlertClassifier is an OpenAI-moderation-compatible HTTP service.
// Turning it on sends transcript text out of the deployment.
type AlertClassifier struct {
	Enabled    bool   `yaml:"enabled"`
	URL        Secret `yaml:"url"` // e.g. https://api.openai.com/v1/moderations
	APIKeyFile string `yaml:"api_key_file"`
	Model      string `yaml:"model"`
	// Timeout bounds one request; the segment waits for it.
	Timeout time.Duration `yaml:"timeout"`
	// FailureThreshold consecutive failures open the circuit; CoolDown
	// later one trial request may close it.
	FailureThreshold int           `yaml:"failure_threshold"`
	CoolDown         time.Duration `yaml:"cool_down"`
}

func defaultAlerts() Alerts {
	return Alerts{
		RateLimit:      AlertRateLimit{Every: time.Minute, Burst: 1},
		ExcerptContext: 10 * time.Second,
		Rebuild:        AlertRebuild{Transcripts: 2 * time.Minute, Alerts: 24 * time.Hour},
		Notify:         AlertNotify{Attempts: 6, Backoff: time.Second, MaxBackoff: time.Minute, Timeout: 10 * time.Second},
		Classifier:     AlertClassifier{Timeout: 2 * time.Second, FailureThreshold: 5, CoolDown: 30 * time.Second},
	}
}

// validate reports every problem of the section through bad.
func (x *Alerts) validate(bad func(key, format string, a ...any)) {
	if x.RateLimit.Every < 0 {
		bad("alerts.rate_limit.every", "%v is negative; use e.g. 60s, or 0s to turn the rate limit off", x.RateLimit.Every)
	}
	if x.RateLimit.Burst < 1 {
		bad("alerts.rate_limit.burst", "%d must be at least 1 (alerts allowed per window)", x.RateLimit.Burst)
	}
	if x.ExcerptContext < 0 || x.ExcerptContext > 5*time.Minute {
		bad("alerts.excerpt_context", "%v must be between 0s and 5m (e.g. 10s)", x.ExcerptContext)
	}
	if x.Rebuild.Transcripts < 0 || x.Rebuild.Alerts < 0 {
		bad("alerts.rebuild", "durations must not be negative (transcripts e.g. 2m, alerts e.g. 24h)")
	}
	if x.Rebuild.Alerts > 0 && x.Rebuild.Alerts < x.RateLimit.Every {
		bad("alerts.rebuild.alerts", "%v is shorter than alerts.rate_limit.every %v; read back at least one rate-limit window", x.Rebuild.Alerts, x.RateLimit.Every)
	}
	names := map[string]bool{}
	for i, s := range x.Sinks {
		key := "alerts.sinks[" + strconv.Itoa(i) + "]"
		name := s.SinkName(i)
		if names[name] {
			bad(key+".name", "%q is used twice; give each sink its own name (dead letters name the sink)", name)
		}
		names[name] = true
		switch s.Type {
		case "webhook", "slack":
			if u, err := url.Parse(s.URL.Reveal()); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				bad(key+".url", "%q is not an http(s) URL; set the receiver's address", redactedURL(s.URL))
			}
			if s.Type == "webhook" && s.SecretFile == "" {
				bad(key+".secret_file", "is empty; point it at a file holding the signing secret (whsec_ followed by base64 of 24-64 random bytes)")
			}
		case "stdout":
			if s.URL != "" {
				bad(key+".url", "is set on a stdout sink; remove it or use type webhook")
			}
		default:
			bad(key+".type", "%q is not webhook, slack or stdout", s.Type)
		}
		switch s.Content {
		case "", "minimal", "full":
		default:
			bad(key+".content", "%q is not minimal or full (minimal leaves the transcript out)", s.Content)
		}
		for j, r := range s.Rooms {
			if strings.TrimSpace(r) == "" {
				bad(key+".rooms["+strconv.Itoa(j)+"]", "is empty; list room IDs as the room server names them")
			}
		}
	}
	if x.Notify.Attempts < 1 || x.Notify.Attempts > 100 {
		bad("alerts.notify.attempts", "%d must be between 1 and 100", x.Notify.Attempts)
	}
	if x.Notify.Backoff <= 0 || x.Notify.MaxBackoff < x.Notify.Backoff {
		bad("alerts.notify.backoff", "backoff %v must be positive and at most max_backoff %v", x.Notify.Backoff, x.Notify.MaxBackoff)
	}
	if x.Notify.Timeout <= 0 {
		bad("alerts.notify.timeout", "%v must be positive (e.g. 10s)", x.Notify.Timeout)
	}
	c := x.Classifier
	if c.Enabled {
		if u, err := url.Parse(c.URL.Reveal()); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("alerts.classifier.url", "%q is not an http(s) URL; set the moderation endpoint, e.g. https://api.openai.com/v1/moderations", redactedURL(c.URL))
		}
	}
	if c.Timeout <= 0 || c.Timeout > time.Minute {
		bad("alerts.classifier.timeout", "%v must be between 1ms and 1m (each segment waits for it)", c.Timeout)
	}
	if c.FailureThreshold < 1 {
		bad("alerts.classifier.failure_threshold", "%d must be at least 1", c.FailureThreshold)
	}
	if c.CoolDown <= 0 {
		bad("alerts.classifier.cool_down", "%v must be positive (e.g. 30s)", c.CoolDown)
	}
}

// SinkName is the sink's name, or its type and position.
func (s AlertSink) SinkName(i int) string {
	if s.Name != "" {
		return s.Name
	}
	return s.Type + "-" + strconv.Itoa(i)
}
