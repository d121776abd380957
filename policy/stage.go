package policy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
)

// consumer is the part of bus.Consumer the stage uses.
type consumer interface {
	Run(ctx context.Context, h bus.Handler) error
	Close() error
}

var _ consumer = (*bus.Consumer)(nil)

// Provider gives the policy in force (a Loader, or a fixed policy).
type Provider interface {
	Policy() *Policy
}

var _ Provider = (*Loader)(nil)

// Fixed is a Provider that never changes.
type Fixed struct{ P *Policy }

// Policy implements Provider.
func (f Fixed) Policy() *Policy { return f.P }

// StageConfig configures the policy stage.
type StageConfig struct {
	// Consumer delivers earshot.transcripts (key = room, so a room's
	// transcripts arrive in order on one partition).
	Consumer consumer
	// Sender writes alerts and dead letters.
	Sender   bus.Sender
	Policy   Provider
	Producer event.Producer
	// Keys opens transcripts and seals alerts (package crypt).
	Keys   event.Keys
	Logger *slog.Logger
	Window WindowConfig
	// ExcerptContext widens an alert's excerpt on each side (default 10 s).
	ExcerptContext time.Duration
}

// Stage evaluates transcripts against the policy and raises alerts. A
// transcript record is acknowledged once its alerts are produced; alert IDs
// derive from the rule, the policy version and the timeline, so a replayed
// transcript does not raise the same alert twice downstream.
type Stage struct {
	cfg StageConfig
	log *slog.Logger

	mu      sync.Mutex
	windows map[string]*Window // by room pseudonym

	closeOnce sync.Once
}

// NewStage builds the stage.
func NewStage(cfg StageConfig) (*Stage, error) {
	if cfg.Consumer == nil || cfg.Sender == nil || cfg.Policy == nil || cfg.Policy.Policy() == nil {
		return nil, errors.New("policy: stage needs a Consumer, a Sender and a Policy")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ExcerptContext <= 0 {
		cfg.ExcerptContext = 10 * time.Second
	}
	return &Stage{cfg: cfg, log: cfg.Logger.With("stage", "policy"), windows: map[string]*Window{}}, nil
}

// Run consumes transcripts until ctx ends.
func (s *Stage) Run(ctx context.Context) error {
	s.log.Info("policy engine started", "policy_version", s.cfg.Policy.Policy().Version())
	return s.cfg.Consumer.Run(ctx, s.handle)
}

// Close releases the stage; idempotent.
func (s *Stage) Close() error {
	var err error
	s.closeOnce.Do(func() { err = s.cfg.Consumer.Close() })
	return err
}

func (s *Stage) window(room string) *Window {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, ok := s.windows[room]
	if !ok {
		w = NewWindow(s.cfg.Window)
		s.windows[room] = w
	}
	return w
}

// handle runs on the partition's goroutine, in order. A room lives on one
// partition, so its window is only touched from here.
func (s *Stage) handle(ctx context.Context, d *bus.Delivery) {
	e, err := event.Decode(d.Value)
	if err == nil && (e.Type != event.TypeTranscript || e.Timeline == nil) {
		err = fmt.Errorf("policy: %s on the transcripts topic is not a transcript", e.Type)
	}
	var seg Segment
	if err == nil {
		seg, err = SegmentFromEvent(ctx, s.cfg.Keys, e)
	}
	if err != nil {
		s.deadLetter(ctx, d, err)
		return
	}
	p := s.cfg.Policy.Policy()
	w := s.window(e.Room)
	findings := w.Push(p, seg)
	var msgs []bus.Message
	for _, f := range findings {
		m, err := s.alert(ctx, e, w, f)
		if err != nil {
			s.log.Error("alert not built", "rule", f.RuleID, "error", err)
			continue
		}
		msgs = append(msgs, m)
	}
	if len(msgs) > 0 {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		err := s.cfg.Sender.Produce(pctx, msgs...)
		cancel()
		if err != nil {
			// Not acked: the transcript is redelivered and re-evaluated;
			// the same alerts get the same IDs.
			s.log.Error("alerts not produced; the transcript will be redelivered", "error", err)
			return
		}
	}
	d.Ack()
}

// alert turns a finding into an alert.raised event on earshot.alerts.
func (s *Stage) alert(ctx context.Context, src *event.Envelope, w *Window, f Finding) (bus.Message, error) {
	first := f.Spans[0]
	tl := first.Timeline
	segs := make([]string, 0, len(f.Spans))
	for _, sp := range f.Spans {
		segs = append(segs, sp.Segment)
	}
	proc := &event.Processing{PolicyVersion: f.PolicyVersion}
	e, err := event.New(event.TypeAlert, s.cfg.Producer, proc, f.Room, f.Session, first.Speaker, &tl, event.Alert{
		Severity: f.Severity.String(), Category: f.Category, RuleID: f.RuleID,
		Score: f.Score, Confidence: f.Confidence, Segments: segs,
	}, f.RuleID)
	if err != nil {
		return bus.Message{}, err
	}
	now := time.Now()
	e.Hops = src.Hops
	e.Hops.Evaluated = event.Stamp(now)
	e.Hops.Alerted = event.Stamp(now)
	var excerpt []event.ExcerptLine
	for _, l := range w.Excerpt(f, s.cfg.ExcerptContext) {
		excerpt = append(excerpt, event.ExcerptLine{Speaker: l.Speaker, Track: l.Timeline.Track,
			FirstSample: l.Timeline.FirstSample, LastSample: l.Timeline.LastSample, Text: l.Text})
	}
	if err := e.Seal(ctx, s.cfg.Keys, event.AlertData{Value: f.Value, Text: f.Text, Excerpt: excerpt}); err != nil {
		return bus.Message{}, err
	}
	b, err := e.Marshal()
	if err != nil {
		return bus.Message{}, err
	}
	s.log.Info("alert", "category", f.Category, "severity", f.Severity.String(), "rule", f.RuleID,
		"room", f.Room, "speaker", first.Speaker, "score", fmt.Sprintf("%.2f", f.Score), "alert", e.EventID)
	return bus.Message{Topic: event.TopicAlerts, Key: []byte(f.Room), Value: b}, nil
}

func (s *Stage) deadLetter(ctx context.Context, d *bus.Delivery, reason error) {
	s.log.Warn("transcript dead-lettered", "partition", d.Partition, "offset", d.Offset, "reason", reason)
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := bus.DeadLetter(dctx, s.cfg.Sender, event.TopicDeadLetter, d.Message, reason.Error()); err != nil {
		s.log.Error("dead letter failed; the record will be redelivered", "error", err)
		return
	}
	d.Ack()
}

// SegmentFromEvent converts a transcript.segment event into a Segment,
// opening its protected text with k.
func SegmentFromEvent(ctx context.Context, k event.Keys, e *event.Envelope) (Segment, error) {
	var p event.TranscriptSegment
	if err := e.DecodePayload(&p); err != nil {
		return Segment{}, err
	}
	var data event.TranscriptSegmentData
	if err := e.Open(ctx, k, &data); err != nil {
		return Segment{}, err
	}
	seg := Segment{
		ID: e.EventID, Room: e.Room, Session: e.Session, Speaker: e.Speaker, Timeline: *e.Timeline,
		Language: p.Language, AvgLogProb: p.AvgLogProb, NoSpeechProb: p.NoSpeechProb, Speech: p.Speech,
		Text: data.Text,
	}
	for _, w := range data.Words {
		seg.Words = append(seg.Words, Word{Text: w.Word, FirstSample: w.FirstSample, LastSample: w.LastSample, Probability: w.Probability})
	}
	return seg, nil
}
