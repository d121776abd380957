package config

import (
	"strings"
	"testing"
	"time"
)

func TestAlertsValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Alerts)
		want []string // substrings of the problems; none for a valid section
	}{
		{"defaults", func(*Alerts) {}, nil},
		{"sinks", func(a *Alerts) {
			a.Sinks = []AlertSink{
				{Type: "webhook", URL: "https://h.example/x", SecretFile: "/s"},
				{Type: "slack", URL: "https://hooks.slack.com/services/T/B/SECRET", Rooms: []string{"1234"}},
				{Type: "stdout", Content: "full"},
			}
		}, nil},
		{"bad sinks", func(a *Alerts) {
			a.Sinks = []AlertSink{
				{Type: "webhook", URL: "ftp://h/x"},
				{Type: "pager"},
				{Name: "a", Type: "stdout", Content: "everything"},
				{Name: "a", Type: "slack", URL: "https://hooks.slack.com/services/T/B/SECRET-TOKEN"},
			}
		}, []string{"alerts.sinks[0].url", "alerts.sinks[0].secret_file", "alerts.sinks[1].type", "alerts.sinks[2].content", "alerts.sinks[3].name"}},
		{"rate limit", func(a *Alerts) { a.RateLimit = AlertRateLimit{Every: -time.Second, Burst: 0} }, []string{"alerts.rate_limit.every", "alerts.rate_limit.burst"}},
		{"classifier", func(a *Alerts) { a.Classifier.Enabled = true; a.Classifier.FailureThreshold = 0 }, []string{"alerts.classifier.url", "alerts.classifier.failure_threshold"}},
		{"notify", func(a *Alerts) { a.Notify.Attempts = 0; a.Notify.MaxBackoff = time.Millisecond }, []string{"alerts.notify.attempts", "alerts.notify.backoff"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := defaultAlerts()
			tt.edit(&a)
			var got []string
			a.validate(func(key, format string, args ...any) { got = append(got, key+": "+format) })
			if len(tt.want) == 0 && len(got) > 0 {
				t.Fatalf("problems in a valid section: %v", got)
			}
			all := strings.Join(got, "\n")
			for _, w := range tt.want {
				if !strings.Contains(all, w) {
					t.Errorf("no problem about %s in:\n%s", w, all)
				}
			}
			if strings.Contains(all, "SECRET") {
				t.Errorf("a webhook URL's secret path is in a message: %s", all)
			}
		})
	}
}

func TestAlertsDecode(t *testing.T) {
	cfg := Default()
	err := Decode(strings.NewReader(`
alerts:
  rate_limit: {every: 30s, burst: 2}
  sinks:
    - {name: tns, type: webhook, url: "https://h.example/x", secret_file: /s, rooms: ["1600"]}
  classifier: {enabled: true, url: "http://127.0.0.1:9/v1/moderations"}
`), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Alerts.RateLimit.Burst != 2 || len(cfg.Alerts.Sinks) != 1 || cfg.Alerts.Sinks[0].Rooms[0] != "1600" || !cfg.Alerts.Classifier.Enabled {
		t.Fatalf("decoded %+v", cfg.Alerts)
	}
	if cfg.Alerts.Notify.Attempts != 6 || cfg.Alerts.Classifier.CoolDown != 30*time.Second {
		t.Fatalf("defaults lost: %+v", cfg.Alerts)
	}
}
