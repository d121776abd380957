package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Formats of a webhook's body.
const (
	// FormatStandard is the Standard Webhooks event shape:
	// {"type": "alert.raised", "timestamp": ..., "data": <Alert>}.
	FormatStandard = "standard"
	// FormatSlack is a Slack-compatible incoming-webhook message:
	// {"text": ..., "blocks": [...]}.
	FormatSlack = "slack"
)

// SecretPrefix starts a Standard Webhooks signing secret.
const SecretPrefix = "whsec_"

// ParseSecret decodes a signing secret "whsec_<base64>" into the HMAC key.
// A secret without the prefix is read as base64 too.
func ParseSecret(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, SecretPrefix)
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("notify: webhook secret is not whsec_<base64>: %w", err)
	}
	if len(key) < 24 || len(key) > 64 {
		return nil, fmt.Errorf("notify: webhook secret has %d bytes; Standard Webhooks secrets have 24 to 64", len(key))
	}
	return key, nil
}

// Sign returns the webhook-signature header value for one delivery:
// "v1,<base64 HMAC-SHA256 of id.timestamp.body>".
func Sign(key []byte, id string, timestamp int64, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(strconv.FormatInt(timestamp, 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// WebhookConfig configures a Webhook.
type WebhookConfig struct {
	// Name identifies the sink (default the URL's host).
	Name string
	// URL receives a POST per alert.
	URL string
	// Secret is the HMAC key (see ParseSecret); without it requests are
	// not signed (chat services that do not verify).
	Secret []byte
	// Format is FormatStandard (default) or FormatSlack.
	Format string
	// Timeout bounds one attempt (default 10 s).
	Timeout time.Duration
	// HTTPClient defaults to one with Timeout that does not follow
	// redirects (a redirect could carry the alert somewhere unintended).
	HTTPClient *http.Client
	// Now is the clock for webhook-timestamp (default time.Now).
	Now func() time.Time
}

// Webhook posts alerts to an HTTP endpoint, signed per the Standard
// Webhooks specification: webhook-id (the alert ID, the same on every
// retry, so receivers can drop duplicates), webhook-timestamp (Unix
// seconds of this attempt) and webhook-signature.
type Webhook struct {
	cfg WebhookConfig
	hc  *http.Client
}

var _ Notifier = (*Webhook)(nil)

// NewWebhook builds a webhook sink.
func NewWebhook(cfg WebhookConfig) (*Webhook, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("notify: webhook URL %q is not an http(s) URL", cfg.URL)
	}
	switch cfg.Format {
	case "":
		cfg.Format = FormatStandard
	case FormatStandard, FormatSlack:
	default:
		return nil, fmt.Errorf("notify: webhook format %q is not %s or %s", cfg.Format, FormatStandard, FormatSlack)
	}
	if cfg.Name == "" {
		cfg.Name = cfg.Format + ":" + u.Host
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: cfg.Timeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	return &Webhook{cfg: cfg, hc: hc}, nil
}

// Name implements Notifier.
func (w *Webhook) Name() string { return w.cfg.Name }

// Notify implements Notifier: one POST.
func (w *Webhook) Notify(ctx context.Context, a *Alert) error {
	var v any = standardEvent{Type: "alert.raised", Timestamp: a.Time.UTC(), Data: a}
	if w.cfg.Format == FormatSlack {
		v = SlackMessage(a)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // Slack's links are <url|text>
	if err := enc.Encode(v); err != nil {
		return Permanent(fmt.Errorf("notify: %s: encode: %w", w.cfg.Name, err))
	}
	body := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return Permanent(fmt.Errorf("notify: %s: %w", w.cfg.Name, err))
	}
	ts := w.cfg.Now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "earshot-notify")
	req.Header.Set("webhook-id", a.ID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	if w.cfg.Secret != nil {
		req.Header.Set("webhook-signature", Sign(w.cfg.Secret, a.ID, ts, body))
	}
	resp, err := w.hc.Do(req)
	if err != nil {
		// Never the URL in the error: chat webhook URLs are credentials.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("notify: %s: %w", w.cfg.Name, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	err = fmt.Errorf("notify: %s: HTTP %d", w.cfg.Name, resp.StatusCode)
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
		if s, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && s > 0 {
			return &RetryAfterError{Err: err, After: time.Duration(min(s, 300)) * time.Second}
		}
		return err
	case resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooEarly:
		return err
	case resp.StatusCode/100 == 4:
		return Permanent(err)
	}
	return err
}

type standardEvent struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      *Alert    `json:"data"`
}

// slackBlock is one Slack Block Kit block (the subset used here).
type slackBlock struct {
	Type     string      `json:"type"`
	Text     *slackText  `json:"text,omitempty"`
	Fields   []slackText `json:"fields,omitempty"`
	Elements []slackText `json:"elements,omitempty"`
}

type slackText struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// Slack is a Slack-compatible incoming-webhook message.
type Slack struct {
	Text   string       `json:"text"`
	Blocks []slackBlock `json:"blocks"`
}

// slackEscape escapes the three characters Slack's mrkdwn reserves.
var slackEscape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// SlackMessage renders a as a Slack message: a plain-text summary (shown
// in notifications) and blocks with the fields, the excerpt when a carries
// one, and the evidence link.
func SlackMessage(a *Alert) Slack {
	summary := fmt.Sprintf("Earshot alert: %s %s in room %s", a.Severity, a.Category, a.Room)
	m := Slack{Text: summary}
	head := fmt.Sprintf("*%s* %s", slackEscape.Replace(strings.ToUpper(a.Severity)), slackEscape.Replace(a.Category))
	if a.Link != "" {
		head += fmt.Sprintf(" — <%s|evidence>", a.Link)
		m.Text += " " + a.Link
	}
	m.Blocks = append(m.Blocks, slackBlock{Type: "section", Text: &slackText{Type: "mrkdwn", Text: head}})
	fields := []slackText{
		{Type: "mrkdwn", Text: "*Room*\n" + slackEscape.Replace(a.Room)},
		{Type: "mrkdwn", Text: "*When*\n" + a.Time.UTC().Format(time.RFC3339)},
	}
	if a.Speaker != "" {
		fields = append(fields, slackText{Type: "mrkdwn", Text: "*Speaker*\n" + slackEscape.Replace(a.Speaker)})
	}
	if a.RuleID != "" {
		fields = append(fields, slackText{Type: "mrkdwn", Text: fmt.Sprintf("*Rule*\n%s (score %.2f)", slackEscape.Replace(a.RuleID), a.Score)})
	}
	m.Blocks = append(m.Blocks, slackBlock{Type: "section", Fields: fields})
	if len(a.Excerpt) > 0 {
		var b strings.Builder
		for _, l := range a.Excerpt {
			text := l.Text
			if l.Unreadable {
				text = "(erased)"
			}
			fmt.Fprintf(&b, "> %s: %s\n", slackEscape.Replace(l.Speaker), slackEscape.Replace(text))
		}
		m.Blocks = append(m.Blocks, slackBlock{Type: "section", Text: &slackText{Type: "mrkdwn", Text: b.String()}})
	}
	ctx := "alert " + a.ID
	if a.Suppressed > 0 {
		ctx += fmt.Sprintf(" · %d similar held back", a.Suppressed)
	}
	m.Blocks = append(m.Blocks, slackBlock{Type: "context", Elements: []slackText{{Type: "mrkdwn", Text: slackEscape.Replace(ctx)}}})
	return m
}
