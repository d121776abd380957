// Package notify delivers alerts to the people who act on them: signed
// webhooks (Standard Webhooks), Slack-compatible chat webhooks and stdout.
// A Stage consumes the alerts topic in its own consumer group and
// acknowledges an alert only once every sink it is routed to has it or the
// alert is on the dead-letter topic with the reason, so nothing is dropped.
//
// What leaves the deployment is chosen per sink: minimal content (category,
// severity, room pseudonym, a signed evidence link) by default, the
// transcript excerpt only where a sink is configured for full content.
package notify

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Notifier is one destination of alerts. Notify makes one attempt; the
// Stage retries, backs off and dead-letters. An error wrapping Permanent
// is not retried (the receiver refused the request itself).
type Notifier interface {
	// Name identifies the sink in logs, metrics and dead letters.
	Name() string
	// Notify delivers a once.
	Notify(ctx context.Context, a *Alert) error
}

// Linker makes the link a notification carries to an alert's evidence: a
// short-lived signed URL of the evidence endpoint, never a raw object-store
// URL. It is implemented by the serve package.
type Linker interface {
	Link(alertID string) (string, error)
}

// Content says how much of an alert a sink receives.
type Content string

// Content levels.
const (
	// Minimal is the ID, category, severity, room pseudonym, time and
	// link: safe for third-party chat. The default.
	Minimal Content = "minimal"
	// Full adds rule, policy version, scores, the speaker pseudonym, the
	// matched words and the transcript excerpt.
	Full Content = "full"
)

// Alert is an alert as sinks render it.
type Alert struct {
	ID       string    `json:"id"`
	Category string    `json:"category"`
	Severity string    `json:"severity"`
	Room     string    `json:"room"`
	Time     time.Time `json:"time"` // when it was said (the alert's timeline start)
	Link     string    `json:"link,omitempty"`

	// Full content only.
	RuleID        string  `json:"rule_id,omitempty"`
	PolicyVersion string  `json:"policy_version,omitempty"`
	Session       string  `json:"session,omitempty"`
	Speaker       string  `json:"speaker,omitempty"`
	Score         float64 `json:"score,omitempty"`
	// Suppressed counts similar findings the rate limit folded into this
	// alert.
	Suppressed int    `json:"suppressed,omitempty"`
	Text       string `json:"text,omitempty"`
	Excerpt    []Line `json:"excerpt,omitempty"`
}

// Line is one excerpt line.
type Line struct {
	Speaker string    `json:"speaker"`
	At      time.Time `json:"at,omitzero"` // on the alert's own track only
	Text    string    `json:"text,omitempty"`
	// Unreadable marks a line whose speaker's key was destroyed (erased).
	Unreadable bool `json:"unreadable,omitempty"`
}

// View returns the alert cut down to content c.
func (a *Alert) View(c Content) *Alert {
	if c == Full {
		return a
	}
	return &Alert{ID: a.ID, Category: a.Category, Severity: a.Severity, Room: a.Room, Time: a.Time, Link: a.Link}
}

// PermanentError is a delivery the receiver refused for good (HTTP 4xx
// other than 408, 425 and 429): retrying would not help, so the alert goes
// to the dead-letter topic at once.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return "permanent: " + e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent marks err as not worth retrying.
func Permanent(err error) error { return &PermanentError{Err: err} }

// IsPermanent reports whether err is marked Permanent.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// RetryAfterError asks for the next attempt no sooner than After (an HTTP
// Retry-After header).
type RetryAfterError struct {
	Err   error
	After time.Duration
}

func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("%v (retry after %v)", e.Err, e.After)
}
func (e *RetryAfterError) Unwrap() error { return e.Err }
