package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/policy"
	"github.com/earshot/earshot/storage"
)

// consumer is the part of bus.Consumer the stage uses.
type consumer interface {
	Run(ctx context.Context, h bus.Handler) error
	Close() error
}

var _ consumer = (*bus.Consumer)(nil)

// Retry is how often and how patiently a sink is retried.
type Retry struct {
	// Attempts is the number of tries in all before the dead letter
	// (default 6).
	Attempts int
	// Initial is the first pause (default 1 s); each next one is twice as
	// long, at most Max (default 1 min), with ±50 % jitter so that many
	// alerts retrying at once do not arrive in waves.
	Initial, Max time.Duration
}

func (r *Retry) defaults() {
	if r.Attempts <= 0 {
		r.Attempts = 6
	}
	if r.Initial <= 0 {
		r.Initial = time.Second
	}
	if r.Max <= 0 {
		r.Max = time.Minute
	}
}

// Route sends alerts to one sink.
type Route struct {
	Notifier Notifier
	// Content is Minimal (default) or Full.
	Content Content
	// Rooms limits the route to these room pseudonyms (a room's own
	// moderators' webhook); empty means every room.
	Rooms []string
	Retry Retry
}

// HeaderSink names, on a dead letter of the alerts topic, the sink that
// did not take the alert (the others did), so a replay from the dead-letter
// topic can go to that sink alone.
const HeaderSink = "earshot-notify-sink"

// StageConfig configures the notify stage.
type StageConfig struct {
	// Consumer delivers the alerts topic, in its own consumer group.
	Consumer consumer
	// Sender writes dead letters.
	Sender bus.Sender
	Routes []Route
	// Keys opens the alerts' protected data for full-content sinks.
	Keys event.Keys
	// Linker makes evidence links; nil sends no link.
	Linker Linker
	// DeadLetterTopic defaults to event.TopicDeadLetter.
	DeadLetterTopic string
	// OpsTopic is where operational alerts arrive (default
	// event.TopicOps): unsealed by design (no room, no speech), trusted
	// because only the transcription stage may write there.
	OpsTopic string
	// MaxConcurrent bounds alerts in delivery at once (default 64).
	MaxConcurrent int
	Logger        *slog.Logger
	Metrics       prometheus.Registerer
}

// Stage delivers each alert on the alerts topic to every route that wants
// it, retrying with exponential backoff and jitter, and acknowledges the
// record only once every route delivered it or it is on the dead-letter
// topic with the failed sink and the reason. On shutdown, deliveries in
// retry stop and their records are delivered again on the next start
// (webhook-id stays the alert ID, so receivers can drop the repeat).
type Stage struct {
	cfg   StageConfig
	log   *slog.Logger
	rooms []map[string]bool
	done  *bus.Dedupe
	sem   chan struct{}

	mu       sync.Mutex
	inflight map[string]chan struct{}
	wg       sync.WaitGroup
	closed   sync.Once

	delivered, retries, deadLetters *prometheus.CounterVec
}

// NewStage builds the stage.
func NewStage(cfg StageConfig) (*Stage, error) {
	if cfg.Consumer == nil || cfg.Sender == nil {
		return nil, errors.New("notify: stage needs a Consumer and a Sender")
	}
	if len(cfg.Routes) == 0 {
		return nil, errors.New("notify: stage has no sinks")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.OpsTopic == "" {
		cfg.OpsTopic = event.TopicOps
	}
	if cfg.DeadLetterTopic == "" {
		cfg.DeadLetterTopic = event.TopicDeadLetter
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = 64
	}
	s := &Stage{cfg: cfg, log: cfg.Logger.With("stage", "notify"), done: bus.NewDedupe(0), sem: make(chan struct{}, cfg.MaxConcurrent), inflight: map[string]chan struct{}{}}
	names := map[string]bool{}
	for i := range s.cfg.Routes {
		r := &s.cfg.Routes[i]
		if r.Notifier == nil {
			return nil, fmt.Errorf("notify: route %d has no sink", i)
		}
		if names[r.Notifier.Name()] {
			return nil, fmt.Errorf("notify: two sinks are named %q; names identify dead letters", r.Notifier.Name())
		}
		names[r.Notifier.Name()] = true
		switch r.Content {
		case "":
			r.Content = Minimal
		case Minimal, Full:
		default:
			return nil, fmt.Errorf("notify: sink %s: content %q is not minimal or full", r.Notifier.Name(), r.Content)
		}
		if r.Content == Full && cfg.Keys == nil {
			return nil, fmt.Errorf("notify: sink %s wants full content but no keys are configured to open alerts", r.Notifier.Name())
		}
		r.Retry.defaults()
		var rooms map[string]bool
		if len(r.Rooms) > 0 {
			rooms = map[string]bool{}
			for _, room := range r.Rooms {
				rooms[room] = true
			}
		}
		s.rooms = append(s.rooms, rooms)
	}
	vec := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "earshot", Subsystem: "notify", Name: name, Help: help}, []string{"sink"})
	}
	s.delivered = vec("delivered_total", "Alerts a sink accepted.")
	s.retries = vec("retries_total", "Failed attempts that were retried.")
	s.deadLetters = vec("dead_letters_total", "Alerts a sink did not take after all attempts, written to the dead-letter topic.")
	if cfg.Metrics != nil {
		for _, c := range []prometheus.Collector{s.delivered, s.retries, s.deadLetters} {
			if err := cfg.Metrics.Register(c); err != nil {
				var are prometheus.AlreadyRegisteredError
				if !errors.As(err, &are) {
					return nil, fmt.Errorf("notify: metrics: %w", err)
				}
			}
		}
	}
	return s, nil
}

// Run consumes alerts until ctx ends, then waits for deliveries in flight
// (they stop at the consumer's drain deadline and are delivered again).
func (s *Stage) Run(ctx context.Context) error {
	var names []string
	for _, r := range s.cfg.Routes {
		names = append(names, r.Notifier.Name()+"("+string(r.Content)+")")
	}
	s.log.Info("alert notifications started", "sinks", names, "links", s.cfg.Linker != nil)
	err := s.cfg.Consumer.Run(ctx, s.handle)
	s.wg.Wait()
	return err
}

// Close stops the consumer; idempotent.
func (s *Stage) Close() error {
	var err error
	s.closed.Do(func() { err = s.cfg.Consumer.Close() })
	return err
}

func (s *Stage) handle(ctx context.Context, d *bus.Delivery) {
	e, err := event.Decode(d.Value)
	if err == nil && e.Type == event.TypeAlertUpdated {
		// Shown with its alert, never notified again: the moderators
		// already have the alert, and an update never withdraws it.
		d.Ack()
		return
	}
	if err == nil && e.Type != event.TypeAlert {
		err = fmt.Errorf("notify: %s on the alerts topic is not an alert", e.Type)
	}
	ops := d.Topic == s.cfg.OpsTopic
	if err == nil {
		// Before the dedupe: a forged or broken record carrying a real
		// alert's ID must not make the real one look delivered.
		var p policy.AlertPayload
		if perr := e.DecodePayload(&p); perr != nil {
			err = fmt.Errorf("notify: alert payload: %w", perr)
		} else if ops {
			// Operational alerts hold nothing to seal; they are taken only
			// as such, and their IDs are kept apart from moderation alerts'.
			if e.Protected != nil || e.Room != "" || e.Session != "" || !strings.HasPrefix(p.Category, "ops.") {
				err = fmt.Errorf("notify: %s on %s is not an operational alert (category %q, room %q, protected part %v)", e.EventID, d.Topic, p.Category, e.Room, e.Protected != nil)
			}
		} else if verr := s.verifySealed(ctx, e); verr != nil {
			err = fmt.Errorf("notify: alert %s not sealed by this deployment: %w", e.EventID, verr)
		}
	}
	if err != nil {
		if s.deadLetter(ctx, d, "", err) {
			d.Ack()
		}
		return
	}
	id := e.EventID
	if ops {
		id = "ops/" + id
	}
	if s.done.Seen(id) {
		d.Ack() // delivered already (a redelivery, or the stage raised it twice)
		return
	}
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() { <-s.sem }()
		for {
			wait, mine := s.claim(id)
			if !mine {
				// The same alert is being delivered from another record:
				// this one is finished when that one is.
				select {
				case <-wait:
				case <-ctx.Done():
					return
				}
				if s.done.Seen(id) {
					d.Ack()
					return
				}
				continue
			}
			finished, delivered := s.deliver(ctx, d, e)
			if delivered {
				s.done.Add(id)
			}
			if finished {
				d.Ack()
			}
			s.release(id)
			return
		}
	}()
}

// verifySealed checks the alert's seal. A key store that cannot be
// reached (an object-store outage) says nothing about the alert: the check
// is tried again, backing off up to 30 s, until the store answers or the
// stage stops, rather than dead-lettering a real alert as forged.
func (s *Stage) verifySealed(ctx context.Context, e *event.Envelope) error {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval = time.Second, 30*time.Second
	for {
		err := e.VerifySealed(ctx, s.cfg.Keys)
		if err == nil || !errors.Is(err, storage.ErrUnavailable) || ctx.Err() != nil {
			return err
		}
		wait := b.NextBackOff()
		s.log.Warn("alert seal not checked: the key store is unreachable; trying again", "alert", e.EventID, "retry_in", wait, "error", err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return err
		}
	}
}

// claim makes this goroutine the one delivering alert id, or returns a
// channel closed when the one that is has finished.
func (s *Stage) claim(id string) (wait <-chan struct{}, mine bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ch, ok := s.inflight[id]; ok {
		return ch, false
	}
	s.inflight[id] = make(chan struct{})
	return nil, true
}

func (s *Stage) release(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.inflight[id])
	delete(s.inflight, id)
}

// deliver sends one alert to its routes and reports whether the record is
// finished (every route delivered or dead-lettered).
func (s *Stage) deliver(ctx context.Context, d *bus.Delivery, e *event.Envelope) (finished, delivered bool) {
	a, full, err := s.build(ctx, e)
	if a == nil {
		// Not even the minimal view decodes (handle checked the payload:
		// a fault of this build): no sink can be given anything.
		// Dead-letter it once, and let a good record of the ID through.
		s.log.Error("alert payload unreadable; dead-lettered", "alert", e.EventID, "error", err)
		return s.deadLetter(ctx, d, "", fmt.Errorf("notify: alert payload: %w", err)), false
	}
	if err != nil {
		s.log.Warn("alert not readable; sinks get what is readable", "alert", e.EventID, "error", err)
	}
	type outcome struct {
		route int
		err   error
	}
	var (
		mu   sync.Mutex
		outs []outcome
		wg   sync.WaitGroup
	)
	for i, r := range s.cfg.Routes {
		if s.rooms[i] != nil && !s.rooms[i][e.Room] {
			continue
		}
		view := a.View(r.Content)
		if r.Content == Full && full != nil {
			view = full
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.send(ctx, r, view)
			mu.Lock()
			outs = append(outs, outcome{i, err})
			mu.Unlock()
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return false, false // shutting down: delivered again after the restart
	}
	slices.SortFunc(outs, func(a, b outcome) int { return a.route - b.route })
	ok := true
	for _, o := range outs {
		name := s.cfg.Routes[o.route].Notifier.Name()
		if o.err == nil {
			s.delivered.WithLabelValues(name).Inc()
			continue
		}
		s.deadLetters.WithLabelValues(name).Inc()
		s.log.Error("alert not delivered; dead-lettered", "sink", name, "alert", e.EventID, "error", o.err)
		if !s.deadLetter(ctx, d, name, o.err) {
			ok = false
		}
	}
	// Every route delivered or dead-lettered it: the alert is done with.
	return ok, ok
}

// send delivers to one route with retries.
func (s *Stage) send(ctx context.Context, r Route, a *Alert) error {
	b := &backoff.ExponentialBackOff{InitialInterval: r.Retry.Initial, RandomizationFactor: 0.5, Multiplier: 2, MaxInterval: r.Retry.Max}
	name := r.Notifier.Name()
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		err := r.Notifier.Notify(ctx, a)
		var ra *RetryAfterError
		switch {
		case err == nil:
			return struct{}{}, nil
		case IsPermanent(err):
			return struct{}{}, backoff.Permanent(err)
		case errors.As(err, &ra):
			return struct{}{}, &backoff.RetryAfterError{Duration: ra.After}
		}
		return struct{}{}, err
	}, backoff.WithBackOff(b), backoff.WithMaxTries(uint(r.Retry.Attempts)), backoff.WithMaxElapsedTime(0),
		backoff.WithNotify(func(err error, next time.Duration) {
			s.retries.WithLabelValues(name).Inc()
			s.log.Warn("alert delivery failed; retrying", "sink", name, "alert", a.ID, "error", err, "next", next.Round(time.Millisecond))
		}))
	return err
}

// build reads an alert event: the minimal view always, the full one when a
// route wants it (nil when the protected data does not open).
func (s *Stage) build(ctx context.Context, e *event.Envelope) (*Alert, *Alert, error) {
	var p policy.AlertPayload
	if err := e.DecodePayload(&p); err != nil {
		return nil, nil, err
	}
	a := &Alert{ID: e.EventID, Category: p.Category, Severity: p.Severity, Room: e.Room}
	if e.Timeline != nil {
		a.Time = e.Timeline.Start()
	}
	var errs []error
	if s.cfg.Linker != nil {
		link, err := s.cfg.Linker.Link(e.EventID)
		if err != nil {
			errs = append(errs, fmt.Errorf("link: %w", err))
		}
		a.Link = link
	}
	wantFull := false
	for _, r := range s.cfg.Routes {
		wantFull = wantFull || r.Content == Full
	}
	if !wantFull {
		return a, nil, errors.Join(errs...)
	}
	full := *a
	full.RuleID, full.Score, full.Suppressed = p.RuleID, p.Score, p.Suppressed
	full.Session, full.Speaker = e.Session, e.Speaker
	if e.Processing != nil {
		full.PolicyVersion = e.Processing.PolicyVersion
	}
	var data event.AlertData
	if err := e.Open(ctx, s.cfg.Keys, &data); err != nil {
		// The speaker was erased: the full view keeps its metadata.
		errs = append(errs, err)
		return a, &full, errors.Join(errs...)
	}
	full.Text = data.Text
	if _, err := policy.OpenExcerpt(ctx, s.cfg.Keys, e, data.Excerpt); err != nil {
		errs = append(errs, err)
	}
	for _, l := range data.Excerpt {
		line := Line{Speaker: l.Speaker, Text: l.Text, Unreadable: l.Text == "" && len(l.Sealed) > 0}
		if e.Timeline != nil && l.Track == e.Timeline.Track {
			// Other tracks' origins are not in the excerpt line.
			line.At = e.Timeline.Sub(l.FirstSample, l.LastSample).Start()
		}
		full.Excerpt = append(full.Excerpt, line)
	}
	return a, &full, errors.Join(errs...)
}

// deadLetter writes the alert record to the dead-letter topic with the
// sink and reason; false when that failed too (the record stays unacked
// and is delivered again).
func (s *Stage) deadLetter(ctx context.Context, d *bus.Delivery, sink string, reason error) bool {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	orig := d.Message
	if sink != "" {
		orig.Headers = append(slices.Clone(orig.Headers), bus.Header{Key: HeaderSink, Value: []byte(sink)})
	}
	if err := bus.DeadLetter(dctx, s.cfg.Sender, s.cfg.DeadLetterTopic, orig, reason.Error()); err != nil {
		s.log.Error("dead letter failed; the alert will be delivered again", "error", err)
		return false
	}
	return true
}
