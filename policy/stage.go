package policy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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

// Topics names the topics the stage reads and writes; empty fields take
// the event package's names.
type Topics struct {
	Transcripts string
	Alerts      string
	DeadLetter  string
}

func (t *Topics) defaults() {
	if t.Transcripts == "" {
		t.Transcripts = event.TopicTranscripts
	}
	if t.Alerts == "" {
		t.Alerts = event.TopicAlerts
	}
	if t.DeadLetter == "" {
		t.DeadLetter = event.TopicDeadLetter
	}
}

// RebuildConfig says how the stage rebuilds its state from Kafka when it
// starts on a partition (start-up, a rebalance, a redelivery).
type RebuildConfig struct {
	// Tail reads the topics back; nil disables the rebuild.
	Tail Tail
	// Transcripts is how far back before the first record delivered the
	// room windows are refilled from (default 2 min; the window itself
	// spans at most WindowConfig.MaxSpan).
	Transcripts time.Duration
	// Alerts is how far back the alerts already raised are read, for
	// de-duplication across revisions and the rate limiter (default 24 h,
	// Ledger.MaxAge's default: a session's final revision may come hours
	// after its live one, and alerts are few).
	Alerts time.Duration
}

func (r *RebuildConfig) defaults() {
	if r.Transcripts <= 0 {
		r.Transcripts = 2 * time.Minute
	}
	if r.Alerts <= 0 {
		r.Alerts = 24 * time.Hour
	}
}

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
	// RateLimit bounds alerts per room, rule and speaker.
	RateLimit RateLimit
	// Rebuild restores windows and de-duplication state from Kafka.
	Rebuild RebuildConfig
	// Classifier, when set, is asked about every segment with speech
	// (off by default: the text leaves the deployment).
	Classifier *Classifier
	// Topics defaults to the event package's topic names.
	Topics Topics
	// Metrics registers the stage's counters when set.
	Metrics prometheus.Registerer
	// Rooms bounds the room windows kept in memory.
	Rooms RoomLimits
	// Ledger bounds the memory of findings alerted per session, kept until
	// the session's final revision is done.
	Ledger LedgerConfig
	// Now defaults to time.Now (tests pin it).
	Now func() time.Time
}

// RoomLimits bound the per-room state: memory grows with the rooms live
// now, not with every room ever seen, and speech leaves memory.
type RoomLimits struct {
	// Idle drops a room's window once no transcript came for this long
	// (default 10 min; a window spans seconds, so nothing a later
	// transcript could join is lost).
	Idle time.Duration
	// Max is how many windows are kept (a room has one per revision pass;
	// default 20,000); past it the least recently used goes.
	Max int
}

func (r *RoomLimits) defaults() {
	if r.Idle <= 0 {
		r.Idle = 10 * time.Minute
	}
	if r.Max <= 0 {
		r.Max = 20_000
	}
}

// Stage evaluates transcripts against the policy and raises alerts. A
// transcript record is acknowledged once its alerts are produced. Alert
// IDs derive from what was said where (AlertID), so a redelivered or
// re-transcribed transcript maps to the alerts it already raised, which
// the stage remembers (and rebuilds from the alerts topic) and skips.
type Stage struct {
	cfg     StageConfig
	log     *slog.Logger
	limit   *limiter
	raised  *bus.Dedupe
	ledger  *ledger
	metrics stageMetrics

	mu        sync.Mutex
	windows   map[winKey]*Window   // by room pseudonym and revision pass
	roomPart  map[winKey]int       // partition each room's transcripts came from
	roomUsed  map[winKey]time.Time // when each window was last used
	lastEvict time.Time
	next      map[int]int64 // next expected offset per partition

	closeOnce sync.Once
}

// winKey names a context window: a room's transcripts of one revision
// pass. Revisions are not mixed in one window: the same words twice would
// join into matches nobody said.
type winKey struct{ room, pass string }

type stageMetrics struct {
	alerts, suppressed, duplicates *prometheus.CounterVec
	updates                        *prometheus.CounterVec
	rebuilds, rebuildErrors        prometheus.Counter
	classifierErrors               prometheus.Counter
	erasedSkipped                  prometheus.Counter
	roomsEvicted                   prometheus.Counter
}

func newStageMetrics(reg prometheus.Registerer) stageMetrics {
	m := stageMetrics{
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "earshot", Subsystem: "policy", Name: "alerts_total",
			Help: "Alerts raised, by category and the transcript revision that raised them (live, settled, final)."}, []string{"category", "pass"}),
		updates: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "earshot", Subsystem: "policy", Name: "alert_updates_total",
			Help: "alert.updated events: alerts a later revision (settled, final) no longer supports, by category and pass."}, []string{"category", "pass"}),
		suppressed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "earshot", Subsystem: "policy", Name: "alerts_suppressed_total",
			Help: "Findings held back by the rate limit (folded into the next alert of their room, rule and speaker), by category."}, []string{"category"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "earshot", Subsystem: "policy", Name: "alerts_duplicate_total",
			Help: "Findings already alerted (a redelivered or re-transcribed transcript, a later revision hearing the same thing), by category."}, []string{"category"}),
		rebuilds: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "earshot", Subsystem: "policy", Name: "rebuilds_total",
			Help: "State rebuilds from Kafka (start-up, rebalance, redelivery)."}),
		rebuildErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "earshot", Subsystem: "policy", Name: "rebuild_errors_total",
			Help: "Rebuilds that failed; the stage went on with the state it had."}),
		classifierErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "earshot", Subsystem: "policy", Name: "classifier_errors_total",
			Help: "Segments the external classifier did not answer for (errors, timeouts, open circuit)."}),
		erasedSkipped: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "earshot", Subsystem: "policy", Name: "erased_skipped_total",
			Help: "Transcripts and alerts of speakers erased (keys destroyed) before they were evaluated or raised: skipped and acked."}),
		roomsEvicted: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "earshot", Subsystem: "policy", Name: "rooms_evicted_total",
			Help: "Room windows dropped from memory: idle past policy rooms.idle, or the least recently used past rooms.max."}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.alerts, m.suppressed, m.duplicates, m.updates, m.rebuilds, m.rebuildErrors, m.classifierErrors, m.erasedSkipped, m.roomsEvicted} {
			if err := reg.Register(c); err != nil {
				var are prometheus.AlreadyRegisteredError
				if !errors.As(err, &are) {
					slog.Default().Warn("policy metric not registered", "error", err)
				}
			}
		}
	}
	return m
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
	cfg.Topics.defaults()
	cfg.Rebuild.defaults()
	cfg.Rooms.defaults()
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Stage{
		cfg: cfg, log: cfg.Logger.With("stage", "policy"),
		limit: newLimiter(cfg.RateLimit), raised: bus.NewDedupe(0), ledger: newLedger(cfg.Ledger), metrics: newStageMetrics(cfg.Metrics),
		windows: map[winKey]*Window{}, roomPart: map[winKey]int{}, roomUsed: map[winKey]time.Time{}, next: map[int]int64{},
	}, nil
}

// Run consumes transcripts until ctx ends.
func (s *Stage) Run(ctx context.Context) error {
	s.log.Info("policy engine started", "policy_version", s.cfg.Policy.Policy().Version(),
		"rate_limit_every", s.limit.cfg.Every, "rate_limit_burst", s.limit.cfg.Burst, "rebuild", s.cfg.Rebuild.Tail != nil)
	return s.cfg.Consumer.Run(ctx, s.handle)
}

// Close releases the stage; idempotent.
func (s *Stage) Close() error {
	var err error
	s.closeOnce.Do(func() { err = s.cfg.Consumer.Close() })
	return err
}

func (s *Stage) window(k winKey, partition int) *Window {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	w, ok := s.windows[k]
	if !ok {
		w = NewWindow(s.cfg.Window)
		s.windows[k] = w
	}
	s.roomPart[k] = partition
	s.roomUsed[k] = now
	if len(s.windows) > s.cfg.Rooms.Max || now.Sub(s.lastEvict) >= time.Minute {
		s.evict(now, k)
	}
	return w
}

// evict drops the windows of rooms idle for longer than Rooms.Idle, then
// the least recently used ones past Rooms.Max; keep is the room in hand.
func (s *Stage) evict(now time.Time, keep winKey) {
	s.lastEvict = now
	for room, used := range s.roomUsed {
		if room != keep && now.Sub(used) > s.cfg.Rooms.Idle {
			s.dropRoom(room)
		}
	}
	if over := len(s.windows) - s.cfg.Rooms.Max; over > 0 {
		rooms := make([]winKey, 0, len(s.windows))
		for room := range s.windows {
			if room != keep {
				rooms = append(rooms, room)
			}
		}
		slices.SortFunc(rooms, func(a, b winKey) int { return s.roomUsed[a].Compare(s.roomUsed[b]) })
		for _, room := range rooms[:min(over, len(rooms))] {
			s.dropRoom(room)
		}
	}
}

// dropRoom forgets a window (under s.mu).
func (s *Stage) dropRoom(room winKey) {
	delete(s.windows, room)
	delete(s.roomPart, room)
	delete(s.roomUsed, room)
	s.metrics.roomsEvicted.Inc()
}

// Rooms is how many windows (rooms × revision passes) the stage holds.
func (s *Stage) Rooms() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.windows)
}

// forgetSpeaker drops an erased speaker's lines from their room's window.
func (s *Stage) forgetSpeaker(room, speaker string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, w := range s.windows {
		if k.room == room {
			w.DropSpeaker(speaker)
		}
	}
}

// discontinuous records d's offset and reports whether the partition's
// records did not simply continue: the first record after start-up, after
// an assignment, or a redelivery.
func (s *Stage) discontinuous(d *bus.Delivery) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	want, ok := s.next[d.Partition]
	s.next[d.Partition] = d.Offset + 1
	return !ok || want != d.Offset
}

// handle runs on the partition's goroutine, in order. A room lives on one
// partition, so its windows are only touched from here.
//
// Every revision is evaluated: live, settled and final, each in its own
// window. A finding the ledger knows (same session and category on an
// overlapping stretch of a track, from any revision) is not alerted again;
// a new one is, marked with its pass and its delay after the speech. An
// alert a later pass covered without finding it again gets an
// alert.updated ("not in settled text"), once per pass.
func (s *Stage) handle(ctx context.Context, d *bus.Delivery) {
	if s.discontinuous(d) && s.cfg.Rebuild.Tail != nil {
		s.rebuild(ctx, d)
	}
	e, err := event.Decode(d.Value)
	if err == nil && (e.Type != event.TypeTranscript || e.Timeline == nil) {
		err = fmt.Errorf("policy: %s on the transcripts topic is not a transcript", e.Type)
	}
	var seg Segment
	if err == nil {
		seg, err = SegmentFromEvent(ctx, s.cfg.Keys, e)
	}
	if errors.Is(err, event.ErrKeyDestroyed) {
		// The speaker was erased: nothing of theirs is evaluated or kept.
		s.forgetSpeaker(e.Room, e.Speaker)
		s.metrics.erasedSkipped.Inc()
		d.Ack()
		return
	}
	if err != nil {
		s.deadLetter(ctx, d, err)
		return
	}
	pass := passOf(e.Processing)
	now := s.cfg.Now()
	s.ledger.sweep(now)
	p := s.cfg.Policy.Policy()
	w := s.window(winKey{e.Room, pass}, d.Partition)
	findings, evaluated := w.pushAll(p, seg)
	if s.cfg.Classifier != nil && pass == PassLive && p.Speech(&seg) {
		// Live text only: the later revisions would send the same speech
		// out of the deployment twice more.
		hits, err := s.cfg.Classifier.Classify(ctx, seg.Text)
		if err != nil {
			s.metrics.classifierErrors.Inc()
			s.log.Debug("classifier gave no answer; the segment is judged by the policy alone", "error", err)
		}
		for _, f := range classifierFindings(p, &seg, hits) {
			if w.admit(f) {
				findings = append(findings, f)
			}
		}
	}
	for _, f := range evaluated {
		s.ledger.found(f, pass)
	}
	findings = s.known(findings)
	var stale []*ledgerEntry
	if p.Speech(&seg) {
		stale = s.ledger.cover(seg.Session, pass, seg.Timeline, now)
	}
	var (
		msgs    []bus.Message
		raised  []Finding
		ids     []string
		updated []*ledgerEntry
		failed  []error
	)
	for _, f := range findings {
		id := AlertID(f)
		if s.raised.Seen(id) {
			s.metrics.duplicates.WithLabelValues(f.Category).Inc()
			continue
		}
		ok, folded := s.limit.allow(limitKey{f.Room, f.RuleID, f.Spans[0].Speaker}, f.Spans[0].Timeline.Start(), id)
		if !ok {
			// Remembered as decided, so a later revision hearing it again
			// is not counted (or folded) twice.
			s.ledger.add(f, "", pass, now)
			s.metrics.suppressed.WithLabelValues(f.Category).Inc()
			s.log.Debug("finding held back by the rate limit", "category", f.Category, "rule", f.RuleID, "room", f.Room)
			continue
		}
		m, err := s.alert(ctx, e, w, f, id, folded, pass)
		if errors.Is(err, event.ErrKeyDestroyed) {
			s.metrics.erasedSkipped.Inc() // the alert's own speaker was erased meanwhile
			continue
		}
		if err != nil {
			s.log.Error("alert not built", "rule", f.RuleID, "error", err)
			failed = append(failed, fmt.Errorf("rule %s: %w", f.RuleID, err))
			continue
		}
		msgs = append(msgs, m)
		raised = append(raised, f)
		ids = append(ids, id)
	}
	for _, le := range stale {
		m, err := s.update(le, pass)
		if err != nil {
			failed = append(failed, fmt.Errorf("update of %s: %w", le.id, err))
			continue
		}
		msgs = append(msgs, m)
		updated = append(updated, le)
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
		for i, id := range ids {
			s.raised.Add(id)
			s.ledger.add(raised[i], id, pass, now)
			s.metrics.alerts.WithLabelValues(raised[i].Category, pass).Inc()
		}
		for _, le := range updated {
			s.ledger.markUpdated(le.id, pass)
			s.metrics.updates.WithLabelValues(le.category, pass).Inc()
		}
	}
	if len(failed) > 0 {
		// An alert that could not be built is never acked away in
		// silence: the transcript goes to the dead letters with why.
		s.deadLetter(ctx, d, fmt.Errorf("policy: alert not built: %w", errors.Join(failed...)))
		return
	}
	d.Ack()
}

// known drops the findings the ledger already holds (alerted or held back
// from this or an earlier revision).
func (s *Stage) known(fs []Finding) []Finding {
	out := fs[:0]
	for _, f := range fs {
		if s.ledger.match(f) != nil {
			s.metrics.duplicates.WithLabelValues(f.Category).Inc()
			continue
		}
		out = append(out, f)
	}
	return out
}

// update is the alert.updated event for an alert that pass covered
// without finding it again. Its ID derives from the alert and the pass, so
// a redelivery writes the same event.
func (s *Stage) update(le *ledgerEntry, pass string) (bus.Message, error) {
	tl := le.timeline
	proc := &event.Processing{PolicyVersion: le.policyVersion}
	e, err := event.New(event.TypeAlertUpdated, s.cfg.Producer, proc, le.room, le.session, le.speaker, &tl, event.AlertUpdated{
		Alert: le.id, Reason: event.UpdateNotInRevision, Pass: pass, Note: "not in " + pass + " text",
	}, le.id, pass)
	if err != nil {
		return bus.Message{}, err
	}
	b, err := e.Marshal()
	if err != nil {
		return bus.Message{}, err
	}
	s.log.Info("alert not supported by a later revision", "alert", le.id, "category", le.category, "pass", pass)
	return bus.Message{Topic: s.cfg.Topics.Alerts, Key: []byte(le.room), Value: b}, nil
}

// alert turns a finding of revision pass into an alert.raised event on
// the alerts topic.
func (s *Stage) alert(ctx context.Context, src *event.Envelope, w *Window, f Finding, id string, folded int, pass string) (bus.Message, error) {
	first := f.Spans[0]
	tl := first.Timeline
	segs := make([]string, 0, len(f.Spans))
	spans := make([]AlertSpan, 0, len(f.Spans))
	end := tl.End()
	for _, sp := range f.Spans {
		segs = append(segs, sp.Segment)
		spans = append(spans, AlertSpan{Track: sp.Timeline.Track, FirstSample: sp.Timeline.FirstSample, LastSample: sp.Timeline.LastSample})
		if t := sp.Timeline.End(); t.After(end) {
			end = t
		}
	}
	now := time.Now()
	proc := &event.Processing{PolicyVersion: f.PolicyVersion}
	e, err := event.New(event.TypeAlert, s.cfg.Producer, proc, f.Room, f.Session, first.Speaker, &tl, AlertPayload{
		Alert: event.Alert{
			Severity: f.Severity.String(), Category: f.Category, RuleID: f.RuleID,
			Score: f.Score, Confidence: f.Confidence, Segments: segs,
		},
		Suppressed: folded,
		Pass:       pass,
		DelayS:     max(now.Sub(end).Seconds(), 0),
		Spans:      spans,
	}, f.RuleID)
	if err != nil {
		return bus.Message{}, err
	}
	// event.New derived the ID from the word-level timeline and the rule;
	// AlertID is the revision-independent one (see there).
	e.EventID = id
	e.Hops = src.Hops
	e.Hops.Evaluated = event.Stamp(now)
	e.Hops.Alerted = event.Stamp(now)
	excerpt, err := sealExcerpt(ctx, s.cfg.Keys, e, w.Excerpt(f, s.cfg.ExcerptContext))
	if err != nil {
		return bus.Message{}, err
	}
	if err := e.Seal(ctx, s.cfg.Keys, event.AlertData{Value: f.Value, Text: f.Text, Excerpt: excerpt}); err != nil {
		return bus.Message{}, err
	}
	b, err := e.Marshal()
	if err != nil {
		return bus.Message{}, err
	}
	s.log.Info("alert", "category", f.Category, "severity", f.Severity.String(), "rule", f.RuleID, "pass", pass,
		"room", f.Room, "speaker", first.Speaker, "score", fmt.Sprintf("%.2f", f.Score), "alert", e.EventID, "suppressed_before", folded)
	return bus.Message{Topic: s.cfg.Topics.Alerts, Key: []byte(f.Room), Value: b}, nil
}

func (s *Stage) deadLetter(ctx context.Context, d *bus.Delivery, reason error) {
	s.log.Warn("transcript dead-lettered", "partition", d.Partition, "offset", d.Offset, "reason", reason)
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := bus.DeadLetter(dctx, s.cfg.Sender, s.cfg.Topics.DeadLetter, d.Message, reason.Error()); err != nil {
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
	if len(data.Words) > 0 {
		seg.Words = make([]Word, 0, len(data.Words))
	}
	for _, w := range data.Words {
		seg.Words = append(seg.Words, Word{Text: w.Word, FirstSample: w.FirstSample, LastSample: w.LastSample, Probability: w.Probability})
	}
	return seg, nil
}
