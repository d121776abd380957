package notify

import (
	"fmt"
	"io"
	"time"
)

// SinkConfig is one configured destination, as the deployment's
// configuration names it, with its secret already read.
type SinkConfig struct {
	Name string
	// Type is webhook (Standard Webhooks), slack or stdout.
	Type string
	URL  string
	// Secret is the signing secret of a webhook ("whsec_" + base64), or
	// empty for unsigned deliveries.
	Secret string
	// Timeout bounds one delivery attempt.
	Timeout time.Duration
	// Stdout is where a stdout sink writes.
	Stdout io.Writer
}

// NewSink builds the notifier a sink's configuration asks for.
func NewSink(c SinkConfig) (Notifier, error) {
	switch c.Type {
	case "stdout":
		return NewStdout(c.Name, c.Stdout), nil
	case "webhook", "slack":
		var key []byte
		if c.Secret != "" {
			var err error
			if key, err = ParseSecret(c.Secret); err != nil {
				return nil, fmt.Errorf("notify: sink %s: secret: %w", c.Name, err)
			}
		}
		format := FormatStandard
		if c.Type == "slack" {
			format = FormatSlack
		}
		return NewWebhook(WebhookConfig{Name: c.Name, URL: c.URL, Secret: key, Format: format, Timeout: c.Timeout})
	default:
		return nil, fmt.Errorf("notify: sink %s: type %q is not webhook, slack or stdout", c.Name, c.Type)
	}
}
