package transcribe

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
)

// Backlog says what a worker does when the engines fall behind. Nothing is
// ever dropped from Kafka: the backlog stays in earshot.audio, lag is a
// metric, and a lag over LagAlert is an operational alert. Only in
// CapacityMode does the worker skip audio, and then only of rooms nobody
// flagged; it acknowledges what it skips (so the backlog shrinks) and logs
// each skipped range, which `earshot transcribe --replay` can transcribe
// later from object storage.
type Backlog struct {
	// LagAlert is the consumer lag, in records (one record is one chunk of
	// one track, ChunkDuration of audio), above which the worker raises an
	// operational alert. 0 disables the alert and capacity mode.
	LagAlert int64
	// CheckInterval is how often lag is measured (default 15 s).
	CheckInterval time.Duration
	// CapacityMode transcribes, while lag is over LagAlert, only rooms that
	// Flagged reports; other rooms' chunks are skipped.
	CapacityMode bool
	// Flagged says which rooms (pseudonyms) are flagged or reported. With
	// CapacityMode and no Flagged, every room is skipped under overload.
	Flagged FlaggedRooms
}

func (b *Backlog) setDefaults() error {
	if b.LagAlert < 0 {
		return fmt.Errorf("transcribe: backlog: LagAlert %d is negative", b.LagAlert)
	}
	if b.CheckInterval <= 0 {
		b.CheckInterval = 15 * time.Second
	}
	return nil
}

// FlaggedRooms tells whether a room is flagged or reported.
type FlaggedRooms interface {
	Flagged(room string) bool
}

// lagger is what a consumer offers to measure lag (bus.Consumer does).
type lagger interface {
	Lag(ctx context.Context) ([]bus.PartitionLag, error)
}

var _ lagger = (*bus.Consumer)(nil)

// lagState is the worker's view of its backlog.
type lagState struct {
	over    atomic.Bool // lag above LagAlert
	lag     atomic.Int64
	episode time.Time // when the current overload began
}

// CategoryLag is the category of the operational alert a worker raises
// when its consumer lag passes Backlog.LagAlert.
const CategoryLag = "ops.transcription_lag"

// monitorLag measures lag every CheckInterval until ctx ends.
func (w *Worker) monitorLag(ctx context.Context) {
	l, ok := w.cfg.Consumer.(lagger)
	if !ok {
		return
	}
	tick := time.NewTicker(w.cfg.Backlog.CheckInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		qctx, cancel := context.WithTimeout(ctx, w.cfg.Backlog.CheckInterval)
		parts, err := l.Lag(qctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				w.log.Warn("consumer lag unknown", "error", err)
			}
			continue
		}
		if parts == nil {
			continue // between generations
		}
		var total int64
		for _, p := range parts {
			total += p.Lag
		}
		w.observeLag(ctx, total)
	}
}

// observeLag records a lag measurement and raises or clears the alert. The
// alert clears below half the threshold, so a lag hovering at the threshold
// raises one alert, not one per check.
func (w *Worker) observeLag(ctx context.Context, total int64) {
	w.lag.lag.Store(total)
	w.m.lag.Set(float64(total))
	limit := w.cfg.Backlog.LagAlert
	if limit <= 0 {
		return
	}
	switch {
	case !w.lag.over.Load() && total > limit:
		w.lag.episode = time.Now().UTC()
		w.lag.over.Store(true)
		w.m.overloaded.Set(1)
		w.m.lagAlerts.Inc()
		w.log.Error("transcription is falling behind: consumer lag over the alert threshold",
			"lag_records", total, "threshold", limit, "capacity_mode", w.cfg.Backlog.CapacityMode)
		w.raiseLagAlert(ctx, total)
	case w.lag.over.Load() && total <= limit/2:
		w.lag.over.Store(false)
		w.m.overloaded.Set(0)
		w.log.Info("transcription caught up: consumer lag back under the alert threshold",
			"lag_records", total, "threshold", limit, "overloaded_for", time.Since(w.lag.episode).Round(time.Second))
	}
}

// raiseLagAlert writes an alert.raised event of category CategoryLag. It
// names no room (the lag is the worker's, not a room's) and holds no
// personal data, so it has no protected part. Its ID is derived from the
// consumer group's overload episode (its start), so it is raised once per
// episode.
func (w *Worker) raiseLagAlert(ctx context.Context, total int64) {
	e, err := event.New(event.TypeAlert, w.cfg.Producer, &event.Processing{Engine: w.cfg.Engine.Name(), Model: w.cfg.Engine.Model()},
		"", "", "", nil, event.Alert{
			Severity: "high", Category: CategoryLag, RuleID: CategoryLag,
			Score: float64(total), Confidence: 1,
		}, CategoryLag, w.lag.episode.Format(time.RFC3339Nano), w.cfg.Producer.Instance)
	if err == nil {
		var b []byte
		if b, err = e.Marshal(); err == nil {
			pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			err = w.cfg.Sender.Produce(pctx, bus.Message{Topic: w.cfg.Topics.Ops, Key: []byte(CategoryLag), Value: b})
		}
	}
	if err != nil {
		w.log.Error("lag alert not written", "error", err)
	}
}

// Overloaded reports whether the consumer lag is over the alert threshold.
func (w *Worker) Overloaded() bool { return w.lag.over.Load() }

// shed reports whether a chunk of room is skipped: capacity mode, an
// overload, and a room nobody flagged.
func (w *Worker) shed(room string) bool {
	b := w.cfg.Backlog
	if !b.CapacityMode || !w.lag.over.Load() {
		return false
	}
	return b.Flagged == nil || !b.Flagged.Flagged(room)
}

// language is the language an utterance of room is transcribed in.
func (w *Worker) language(room string) string {
	if w.cfg.RoomLanguage != nil {
		if l := w.cfg.RoomLanguage(room); l != "" {
			return l
		}
	}
	return w.cfg.Language
}

// skipped is a range of one track skipped under capacity mode.
type skipped struct {
	room, session, speaker string
	first, last            int64
	from, to               time.Time
	chunks                 int
}

// skipChunk acknowledges a chunk without transcribing it. Whatever the
// track held is dropped with it (the utterance in progress is part of the
// skipped range), and the decoder starts afresh when transcription
// resumes.
func (t *trackWorker) skipChunk(it item, final bool) {
	tl := it.e.Timeline
	if t.skip == nil {
		first := tl.FirstSample
		if p, held := t.heldFrom(); held {
			first = min(first, p)
		}
		t.skip = &skipped{room: it.e.Room, session: it.e.Session, speaker: it.e.Speaker, first: first, from: tl.Origin.Add(event.SamplesToDuration(first))}
		t.resetState()
	}
	t.skip.last, t.skip.to = tl.LastSample, tl.End()
	t.skip.chunks++
	t.w.m.skippedChunks.Inc()
	t.w.m.skippedSeconds.Add(float64(tl.Samples()) / event.SampleRate)
	for _, p := range t.pending {
		p.d.Ack()
	}
	t.pending = t.pending[:0]
	it.d.Ack()
	t.final = final
}

// heldFrom is the first timeline sample the track's segmenter still holds.
func (t *trackWorker) heldFrom() (int64, bool) {
	if t.seg == nil {
		return 0, false
	}
	return t.seg.Pending()
}

// resetState forgets the decoder and segmenter state.
func (t *trackWorker) resetState() {
	if t.dec != nil {
		_ = t.dec.Close()
	}
	t.dec, t.seg = nil, nil
}

// endSkip logs the skipped range, if any, so that it can be replayed.
func (t *trackWorker) endSkip() {
	s := t.skip
	if s == nil {
		return
	}
	t.skip = nil
	t.w.log.Warn("audio skipped under capacity mode (room not flagged); re-transcribe it with earshot transcribe --replay",
		"room", s.room, "session", s.session, "speaker", s.speaker, "track", t.id,
		"first_sample", s.first, "last_sample", s.last, "from", s.from, "to", s.to, "chunks", s.chunks,
		"replay", s.room+"/"+s.session)
}

// RoomSet is a FlaggedRooms fed from a fixed list and from events: a room
// is flagged when it is in the list or an alert or alert action about it
// was seen within TTL.
type RoomSet struct {
	mu    sync.Mutex
	fixed map[string]bool
	seen  map[string]time.Time
	ttl   time.Duration
	now   func() time.Time
}

var _ FlaggedRooms = (*RoomSet)(nil)

// NewRoomSet returns a set holding the given room pseudonyms for good and
// rooms added by Add for ttl (0: for good).
func NewRoomSet(ttl time.Duration, fixed ...string) *RoomSet {
	s := &RoomSet{fixed: map[string]bool{}, seen: map[string]time.Time{}, ttl: ttl, now: time.Now}
	for _, r := range fixed {
		s.fixed[r] = true
	}
	return s
}

// Flagged implements FlaggedRooms.
func (s *RoomSet) Flagged(room string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fixed[room] {
		return true
	}
	at, ok := s.seen[room]
	return ok && (s.ttl <= 0 || s.now().Sub(at) <= s.ttl)
}

// Add flags a room as of at.
func (s *RoomSet) Add(room string, at time.Time) {
	if room == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if at.After(s.seen[room]) {
		s.seen[room] = at
	}
}

// Handle is a bus.Handler for earshot.alerts and earshot.alert-actions:
// every alert.raised (except operational ones) and alert.action about a
// room flags it. Records that are not events are acknowledged and ignored.
func (s *RoomSet) Handle(_ context.Context, d *bus.Delivery) {
	defer d.Ack()
	e, err := event.Decode(d.Value)
	if err != nil {
		return
	}
	switch e.Type {
	case event.TypeAlert:
		var a event.Alert
		if e.DecodePayload(&a) == nil && a.Category == CategoryLag {
			return
		}
	case event.TypeAlertAction:
	default:
		return
	}
	s.Add(e.Room, e.Time)
}
