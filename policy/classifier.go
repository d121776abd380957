package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/earshot/earshot/policy/detect"
)

// ClassifierConfig configures the external classifier.
type ClassifierConfig struct {
	// URL is the moderation endpoint (OpenAI-compatible, e.g.
	// http://127.0.0.1:8080/v1/moderations). Required.
	URL string
	// APIKey is sent as a bearer token when set.
	APIKey string
	// Model is sent as "model" when set.
	Model string
	// Timeout bounds one request (default 2 s): the stage waits for it
	// before alerting on the segment.
	Timeout time.Duration
	// FailureThreshold consecutive failures open the circuit (default 5);
	// while open, segments are not sent at all.
	FailureThreshold int
	// CoolDown is how long the circuit stays open before one trial request
	// (half-open) decides whether to close it (default 30 s).
	CoolDown time.Duration
	// MinScore is the category score that counts as a hit when the service
	// did not flag the category itself (default 0.5).
	MinScore float64
	// Categories maps the service's categories to Earshot's; categories not
	// in the map are ignored. Default DefaultClassifierCategories.
	Categories map[string]string
	// HTTPClient defaults to one with Timeout.
	HTTPClient *http.Client
	Logger     *slog.Logger
}

// DefaultClassifierCategories maps OpenAI moderation categories to
// Earshot's abuse categories.
var DefaultClassifierCategories = map[string]string{
	"harassment":             "abuse.harassment",
	"harassment/threatening": "abuse.threat",
	"hate":                   "abuse.hate",
	"hate/threatening":       "abuse.threat",
	"violence":               "abuse.threat",
}

// ClassifierHit is one category the classifier found.
type ClassifierHit struct {
	// Name is the service's category, Category Earshot's.
	Name, Category string
	Score          float64
}

// ErrClassifierOpen is returned while the circuit is open: the classifier
// failed too often and is given a rest.
var ErrClassifierOpen = errors.New("policy: classifier circuit open")

// Classifier asks an OpenAI-moderation-compatible HTTP service about
// transcript text, behind a circuit breaker so that a slow or broken
// service costs each segment at most one timeout until it trips, and then
// nothing until the cool-down has passed.
type Classifier struct {
	cfg  ClassifierConfig
	hc   *http.Client
	cb   *gobreaker.CircuitBreaker[[]ClassifierHit]
	host string
}

// NewClassifier builds a classifier. Turning it on sends transcript text
// out of the deployment, which it logs as a warning.
func NewClassifier(cfg ClassifierConfig) (*Classifier, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("policy: classifier: URL %q is not an http(s) URL", cfg.URL)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.FailureThreshold <= 0 {
		cfg.FailureThreshold = 5
	}
	if cfg.CoolDown <= 0 {
		cfg.CoolDown = 30 * time.Second
	}
	if cfg.MinScore <= 0 {
		cfg.MinScore = 0.5
	}
	if cfg.Categories == nil {
		cfg.Categories = DefaultClassifierCategories
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: cfg.Timeout}
	}
	c := &Classifier{cfg: cfg, hc: hc, host: u.Host}
	log := cfg.Logger.With("stage", "policy", "classifier", u.Host)
	threshold := uint32(cfg.FailureThreshold)
	c.cb = gobreaker.NewCircuitBreaker[[]ClassifierHit](gobreaker.Settings{
		Name:        "classifier",
		MaxRequests: 1,
		Timeout:     cfg.CoolDown,
		ReadyToTrip: func(n gobreaker.Counts) bool { return n.ConsecutiveFailures >= threshold },
		IsExcluded:  func(err error) bool { return errors.Is(err, context.Canceled) },
		OnStateChange: func(_ string, from, to gobreaker.State) {
			log.Warn("classifier circuit changed state", "from", from.String(), "to", to.String(), "cool_down", cfg.CoolDown)
		},
	})
	log.Warn("external classifier enabled: transcript text leaves this deployment", "endpoint", u.Scheme+"://"+u.Host+u.Path)
	return c, nil
}

// Endpoint is the service's host, for logs.
func (c *Classifier) Endpoint() string { return c.host }

// State is the circuit's state: closed, half-open or open.
func (c *Classifier) State() string { return c.cb.State().String() }

type moderationRequest struct {
	Input string `json:"input"`
	Model string `json:"model,omitempty"`
}

type moderationResponse struct {
	Results []struct {
		Flagged        bool               `json:"flagged"`
		Categories     map[string]bool    `json:"categories"`
		CategoryScores map[string]float64 `json:"category_scores"`
	} `json:"results"`
}

// Classify returns the mapped categories the service found in text,
// highest score first. While the circuit is open it returns
// ErrClassifierOpen at once.
func (c *Classifier) Classify(ctx context.Context, text string) ([]ClassifierHit, error) {
	hits, err := c.cb.Execute(func() ([]ClassifierHit, error) { return c.call(ctx, text) })
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		return nil, fmt.Errorf("%w (%v)", ErrClassifierOpen, err)
	}
	return hits, err
}

func (c *Classifier) call(ctx context.Context, text string) ([]ClassifierHit, error) {
	body, err := json.Marshal(moderationRequest{Input: text, Model: c.cfg.Model})
	if err != nil {
		return nil, fmt.Errorf("policy: classifier: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("policy: classifier: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if c.cfg.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.cfg.APIKey)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("policy: classifier %s: %w", c.host, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("policy: classifier %s: read: %w", c.host, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("policy: classifier %s: HTTP %d", c.host, resp.StatusCode)
	}
	return c.parse(b)
}

// parse reads a moderation response.
func (c *Classifier) parse(b []byte) ([]ClassifierHit, error) {
	var r moderationResponse
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("policy: classifier %s: bad response: %w", c.host, err)
	}
	if len(r.Results) == 0 {
		return nil, fmt.Errorf("policy: classifier %s: response has no results", c.host)
	}
	res := r.Results[0]
	best := map[string]ClassifierHit{}
	for name, ours := range c.cfg.Categories {
		score, hasScore := res.CategoryScores[name]
		if math.IsNaN(score) {
			continue
		}
		flagged := res.Categories[name]
		if !flagged && (!hasScore || score < c.cfg.MinScore) {
			continue
		}
		if !hasScore {
			score = 1
		}
		score = min(max(score, 0), 1)
		if h, ok := best[ours]; !ok || score > h.Score {
			best[ours] = ClassifierHit{Name: name, Category: ours, Score: score}
		}
	}
	hits := make([]ClassifierHit, 0, len(best))
	for _, h := range best {
		hits = append(hits, h)
	}
	slices.SortFunc(hits, func(a, b ClassifierHit) int {
		if a.Score != b.Score {
			if a.Score > b.Score {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Category, b.Category)
	})
	return hits, nil
}

// classifierFindings turns hits on one segment into findings covering the
// whole segment. Their strength is the service's score; confidence and the
// policy's threshold apply as to any rule.
func classifierFindings(p *Policy, seg *Segment, hits []ClassifierHit) []Finding {
	conf := min(max(1-seg.NoSpeechProb, 0), 1) * (0.5 + 0.5*min(max(math.Exp(seg.AvgLogProb), 0), 1))
	var out []Finding
	for _, h := range hits {
		score := h.Score * conf
		if score < p.MinScore() {
			continue
		}
		sev := Severity(0)
		if s, err := parseSeverityFor(h.Category); err == nil {
			sev = s
		}
		out = append(out, Finding{
			Room: seg.Room, Session: seg.Session,
			RuleID: "classifier." + strings.ReplaceAll(h.Name, "/", "."), Category: h.Category, Severity: sev,
			PolicyVersion: p.Version(), Strength: h.Score, Confidence: conf, Score: score, Text: seg.Text,
			Spans: []Span{{Segment: seg.ID, Speaker: seg.Speaker, Timeline: seg.Timeline, SegmentTimeline: seg.Timeline, FirstWord: -1, LastWord: -1}},
		})
	}
	return out
}

// parseSeverityFor gives classifier findings a severity by category:
// threats high, the rest medium.
func parseSeverityFor(category string) (Severity, error) {
	if category == "abuse.threat" {
		return detect.ParseSeverity("high")
	}
	return detect.ParseSeverity("medium")
}
