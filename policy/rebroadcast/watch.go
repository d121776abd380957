package rebroadcast

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/policy/fingerprint"
)

// ExternalPrefix starts the index room of an outside stream:
// "external:<name>". Pipeline room pseudonyms never contain a colon.
const ExternalPrefix = "external:"

// ExternalRoom is the index room of the outside stream name.
func ExternalRoom(name string) string { return ExternalPrefix + name }

// IsExternal reports whether an index room is an outside stream.
func IsExternal(room string) bool { return strings.HasPrefix(room, ExternalPrefix) }

// CategoryWatchUnavailable is the operational alert (on the ops topic)
// raised when a watched stream gives no audio several times in a row.
const CategoryWatchUnavailable = "ops.watch_unavailable"

// Watch is an outside stream the stage compares with the live rooms.
type Watch struct {
	// Name is what alerts and logs call it (never the URL).
	Name string
	// URL may carry credentials: it is never logged or published.
	URL string
}

// WatchStatus is the state of one watched stream.
type WatchStatus struct {
	Name string
	// Connected says audio is flowing now.
	Connected bool
	// Connections counts connections that gave audio; Failures counts
	// attempts in a row that gave none (0 once audio flows).
	Connections, Failures int
	// Seconds is the audio fingerprinted since the stage started.
	Seconds float64
	// LastError says why the last connection ended (credentials removed).
	LastError string
}

// watchBlock is how much audio is fingerprinted at a time: 256 ms.
const watchBlock = fingerprint.SampleRate / 4

// unavailableAfter is how many failed attempts in a row raise the ops
// alert: one failed connect is a blip, three (about 7 s with backoff) are
// an outage to look at.
const unavailableAfter = 3

// watchers runs the watch list while this instance owns the watching (see
// ownsWatch), until ctx ends. Ownership is checked every 5 s; it is given
// up after two checks without it, so a short rebalance does not restart
// the streams.
func (s *Stage) watchers(ctx context.Context) {
	if len(s.cfg.Watch) == 0 {
		return
	}
	var (
		stop    context.CancelFunc
		wg      sync.WaitGroup
		without int
	)
	halt := func() {
		if stop != nil {
			stop()
			wg.Wait()
			stop = nil
		}
	}
	defer halt()
	tk := time.NewTicker(5 * time.Second)
	defer tk.Stop()
	for {
		if s.ownsWatch() {
			without = 0
			if stop == nil {
				wctx, cancel := context.WithCancel(ctx)
				stop = cancel // called by halt
				s.log.Info("watching outside streams", "streams", len(s.cfg.Watch))
				for _, w := range s.cfg.Watch {
					wg.Add(1)
					go func() {
						defer wg.Done()
						s.watchStream(wctx, w)
					}()
				}
			}
		} else if stop != nil {
			if without++; without >= 2 {
				s.log.Info("another instance watches the outside streams now")
				halt()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
	}
}

// owner is a consumer that says which partitions it holds (bus.Consumer).
type owner interface {
	Owns(topic string, partition int) bool
}

// ownsWatch reports whether this instance watches the outside streams:
// Config.OwnsWatch, else whether its consumer holds partition 0 of the
// audio topic (one member of the group does at a time), else always.
func (s *Stage) ownsWatch() bool {
	if s.cfg.OwnsWatch != nil {
		return s.cfg.OwnsWatch()
	}
	if o, ok := s.cfg.Consumer.(owner); ok {
		return o.Owns(s.cfg.Topics.Audio, 0)
	}
	return true
}

// Watching returns the state of every watched stream.
func (s *Stage) Watching() []WatchStatus {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	out := make([]WatchStatus, 0, len(s.cfg.Watch))
	for _, w := range s.cfg.Watch {
		st := WatchStatus{Name: w.Name}
		if p := s.wstat[w.Name]; p != nil {
			st = *p
		}
		out = append(out, st)
	}
	return out
}

func (s *Stage) setStatus(name string, f func(*WatchStatus)) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.wstat == nil {
		s.wstat = map[string]*WatchStatus{}
	}
	st := s.wstat[name]
	if st == nil {
		st = &WatchStatus{Name: name}
		s.wstat[name] = st
	}
	f(st)
}

// watchStream decodes one stream until ctx ends, reconnecting with
// backoff (1 s doubling to MaxBackoff; back to 1 s after a connection
// that gave audio).
func (s *Stage) watchStream(ctx context.Context, w Watch) {
	log := s.log.With("stream", w.Name)
	log.Info("watching outside stream", "url", RedactURL(w.URL))
	backoff := time.Second
	var outage time.Time
	for ctx.Err() == nil {
		got, err := s.watchOnce(ctx, w)
		if ctx.Err() != nil {
			return
		}
		if got > 0 {
			backoff, outage = time.Second, time.Time{}
		}
		var fails int
		s.setStatus(w.Name, func(st *WatchStatus) {
			st.Connected = false
			st.LastError = err.Error()
			if got > 0 {
				st.Failures = 0
			} else {
				st.Failures++
			}
			fails = st.Failures
		})
		if got > 0 {
			log.Warn("outside stream ended; reconnecting", "error", err, "retry_in", backoff)
		} else {
			log.Error("outside stream gives no audio", "error", err, "failures", fails, "retry_in", backoff)
		}
		if fails == unavailableAfter {
			if outage.IsZero() {
				outage = s.cfg.Now().UTC()
			}
			s.raiseUnavailable(ctx, w, err, fails, outage)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, s.cfg.WatchBackoff)
	}
}

// watchOnce runs one connection: its audio is fingerprinted as a track of
// room external:<name>, indexed and published like a room's, and matched
// against the index. It returns how many samples came and why it ended.
func (s *Stage) watchOnce(ctx context.Context, w Watch) (int64, error) {
	src, err := s.cfg.Streams.Open(ctx, w.URL)
	if err != nil {
		return 0, err
	}
	defer src.Close()
	var (
		t   *localTrack
		got int64
		buf = make([]float32, watchBlock)
	)
	defer func() {
		if t != nil {
			s.feedExternal(ctx, t, nil, true)
		}
	}()
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if t == nil {
				var terr error
				if t, terr = s.externalTrack(w); terr != nil {
					return got, terr
				}
			}
			got += int64(n)
			s.setStatus(w.Name, func(st *WatchStatus) {
				if got == int64(n) {
					st.Connected, st.Failures = true, 0
					st.Connections++
				}
				st.Seconds += float64(n) / fingerprint.SampleRate
			})
			if !s.feedExternal(ctx, t, buf[:n], false) {
				// Expired (a stream silent for the whole window): a new
				// track from here.
				t = nil
			}
		}
		if err != nil {
			if !errors.Is(err, ErrUndecodable) && !errors.Is(err, ErrStreamEnded) {
				err = fmt.Errorf("%w: %w", ErrStreamEnded, err)
			}
			return got, err
		}
		if ctx.Err() != nil {
			return got, ctx.Err()
		}
	}
}

// externalTrack registers a new track of an outside stream: one per
// connection, on this instance's clock from now.
func (s *Stage) externalTrack(w Watch) (*localTrack, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	room := ExternalRoom(w.Name)
	rec := Record{V: recordVersion, Origin: s.cfg.Instance, Room: room, StartMS: now.UnixMilli(),
		Track: event.DeriveID(event.PrefixTrack, room, s.cfg.Instance, strconv.FormatInt(now.UnixNano(), 10))}
	id := s.idx.AddTrack(fingerprint.TrackInfo{Track: rec.name(), Room: room, StartMS: rec.StartMS})
	mcfg := s.mcfg
	allowed := mcfg.Allowed
	// Two outside streams carrying the same audio (a relay, a mirror) are
	// not a leak of any room: never compared.
	mcfg.Allowed = func(a, b string) bool {
		return (IsExternal(a) && IsExternal(b)) || (allowed != nil && allowed(a, b))
	}
	m, err := fingerprint.NewMatcher(mcfg, s.idx, id)
	if err != nil {
		return nil, err
	}
	s.idents[rec.name()] = rec
	if s.cfg.Evidence != nil {
		s.rings[w.Name] = newClipRing(rec.name(), s.cfg.StreamClipBuffer)
	}
	return &localTrack{ext: fingerprint.NewExtractor(), rec: rec, id: id, matcher: m, used: now}, nil
}

// feedExternal fingerprints a block of a stream's audio, indexes it,
// queues it for matching after QueryDelay and publishes its record. It
// reports false when the track is no longer in the index.
func (s *Stage) feedExternal(ctx context.Context, t *localTrack, pcm []float32, final bool) bool {
	s.mu.Lock()
	if !s.idx.Known(t.rec.name()) {
		s.mu.Unlock()
		return false
	}
	now := s.cfg.Now()
	t.used = now
	if r := s.rings[strings.TrimPrefix(t.rec.Room, ExternalPrefix)]; r != nil && r.track == t.rec.name() {
		r.write(pcm)
	}
	frame := t.ext.Frames()
	t.pairs, t.levels = t.ext.Push(pcm, t.pairs[:0], t.levels[:0])
	if final {
		t.pairs = t.ext.Flush(t.pairs)
	}
	s.idx.AddLevels(t.id, t.levels)
	if err := s.idx.Add(t.id, t.pairs); err != nil {
		s.mu.Unlock()
		return false
	}
	rec := t.rec
	rec.Frame, rec.Levels, rec.Landmarks = frame, levelBytes(t.levels), packLandmarks(fingerprint.Landmarks(t.pairs, nil), s.perm)
	t.rec.Seq++
	s.queue = append(s.queue, &query{due: now.Add(s.cfg.QueryDelay), track: t, pairs: slices.Clone(t.pairs), final: final})
	s.mu.Unlock()
	if len(rec.Landmarks) == 0 && len(rec.Levels) == 0 {
		return true
	}
	// Other instances' rooms are matched against it too (a stream ahead
	// of the room's fingerprints). Lost, it only costs that direction.
	if err := s.publish(ctx, &rec); err != nil {
		s.log.Warn("outside stream's fingerprint record not produced", "error", err)
	}
	return true
}

// WatchAlert is the payload of the ops alert for a stream that gives no
// audio: the stream's name and the reason, never its URL's credentials.
type WatchAlert struct {
	event.Alert
	Stream string `json:"stream"`
	Error  string `json:"error"`
}

// raiseUnavailable writes an ops alert: no room, no speech, so no
// protected part. Its ID derives from the stream and the outage's start:
// one per outage.
func (s *Stage) raiseUnavailable(ctx context.Context, w Watch, cause error, fails int, outage time.Time) {
	e, err := event.New(event.TypeAlert, s.cfg.Producer, nil, "", "", "", nil, WatchAlert{
		Alert:  event.Alert{Severity: "medium", Category: CategoryWatchUnavailable, RuleID: CategoryWatchUnavailable, Score: float64(fails), Confidence: 1},
		Stream: w.Name, Error: RedactIn(cause.Error(), w.URL),
	}, CategoryWatchUnavailable, w.Name, outage.Format(time.RFC3339Nano))
	if err == nil {
		var b []byte
		if b, err = e.Marshal(); err == nil {
			pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			err = s.cfg.Sender.Produce(pctx, bus.Message{Topic: s.cfg.Topics.Ops, Key: []byte(CategoryWatchUnavailable), Value: b})
		}
	}
	if err != nil {
		s.log.Error("watch alert not written", "stream", w.Name, "error", err)
	}
}

// externalAlert builds the alert for a match between a room's track and
// an outside stream (under s.mu): the room is the original and the
// alert's subject (its moderators act on it; sealed under its speaker),
// the stream the copy, named by its registered name. Its ID derives from
// the room's track and the stream's name, so another connection to the
// stream, or another instance watching it during a rebalance, raises
// the same ID.
func (s *Stage) externalAlert(ctx context.Context, m fingerprint.Match, q, r Record) (bus.Message, string, AlertPayload, bool) {
	roomRec, roomInfo, roomFrames, roomMS := r, m.Ref, m.RefFrames, m.RefMS()
	extRec, extInfo, extFrames, extMS := q, m.Query, m.QueryFrames, m.QueryMS()
	if IsExternal(r.Room) {
		roomRec, roomInfo, roomFrames, roomMS, extRec, extInfo, extFrames, extMS = extRec, extInfo, extFrames, extMS, roomRec, roomInfo, roomFrames, roomMS
	}
	name := strings.TrimPrefix(extRec.Room, ExternalPrefix)
	id := ExternalAlertID(roomRec.Track, name)
	if s.raised.Seen(id) {
		s.m.duplicates.Inc()
		return bus.Message{}, "", AlertPayload{}, false
	}
	roomInfo.Private = roomInfo.Private || s.private[roomRec.Room]
	category, severity := fingerprint.CategoryRebroadcast, "high"
	switch {
	case !m.Speech:
		category, severity = fingerprint.CategorySharedAudio, "low"
	case roomInfo.Private:
		severity = "critical"
	}
	p := AlertPayload{
		Alert:    event.Alert{Severity: severity, Category: category, RuleID: RuleID, Score: m.Confidence, Confidence: m.Confidence},
		Original: span(roomRec, roomInfo, roomFrames, roomMS), Copy: span(extRec, extInfo, extFrames, extMS),
		External: name, MatchedS: float64(m.DurationMS()) / 1000, Seconds: m.Seconds, Hits: m.Hits, Speed: m.Speed, Speech: m.Speech,
	}
	p.StreamClip = s.streamClip(id, p.Original, extRec, extFrames, extMS)
	msg, err := s.alert(ctx, id, p)
	if err != nil {
		s.log.Error("rebroadcast alert not built", "error", err)
		return bus.Message{}, "", AlertPayload{}, false
	}
	return msg, id, p, true
}

// ExternalAlertID is the event ID of the alert for a room's track heard in
// an outside stream.
func ExternalAlertID(track, stream string) string {
	return event.DeriveID(event.PrefixEvent, string(event.TypeAlert), RuleID, track, ExternalRoom(stream))
}
