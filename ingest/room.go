package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/ingest/janus"
	"github.com/earshot/earshot/ingest/lease"
	"github.com/earshot/earshot/internal/clock"
)

// roomRef is a room as listed by one plugin. Everything in it is raw and
// never logged or emitted, except what metadata() returns.
type roomRef struct {
	connector string
	id        janus.ID
	vr        janus.Room
	ab        janus.AudioRoom
}

func videoRoomRef(r janus.Room) roomRef {
	return roomRef{connector: ConnectorVideoRoom, id: r.Room, vr: r}
}

func audioBridgeRef(r janus.AudioRoom) roomRef {
	return roomRef{connector: ConnectorAudioBridge, id: r.Room, ab: r}
}

// name is the room's name for selection and pseudonymisation: the room ID
// for VideoRoom (as before AudioBridge was recorded, so pseudonyms stay
// the same), "audiobridge:<ID>" for AudioBridge, whose IDs are a numbering
// of their own.
func (r roomRef) name() string {
	if r.connector == ConnectorAudioBridge {
		return "audiobridge:" + r.id.String()
	}
	return r.id.String()
}

// metadata is the room's non-personal metadata for session_started. Janus
// exposes no roles for VideoRoom or AudioBridge rooms; the description is
// included only when configured (operators may write names into it).
func (r roomRef) metadata(description bool) map[string]string {
	md := map[string]string{}
	switch r.connector {
	case ConnectorVideoRoom:
		if description && r.vr.Description != "" {
			md["description"] = r.vr.Description
		}
		if r.vr.AudioCodec != "" {
			md["audio_codec"] = r.vr.AudioCodec
		}
		if r.vr.MaxPublishers > 0 {
			md["max_publishers"] = strconv.Itoa(r.vr.MaxPublishers)
		}
		md["pin_required"] = strconv.FormatBool(r.vr.PinRequired)
		md["private"] = strconv.FormatBool(r.vr.IsPrivate)
	case ConnectorAudioBridge:
		if description && r.ab.Description != "" {
			md["description"] = r.ab.Description
		}
		if r.ab.SamplingRate > 0 {
			md["sampling_rate"] = strconv.Itoa(r.ab.SamplingRate)
		}
		md["pin_required"] = strconv.FormatBool(r.ab.PinRequired)
		md["mixed"] = "true"
	}
	return md
}

// roomRun records one room: the bot's presence, the media (one
// subscription per VideoRoom, the mix of an AudioBridge room) and a
// goroutine per track.
type roomRun struct {
	st    *Stage
	room  roomRef // raw; never logged or emitted
	pRoom string  // the room's pseudonym
	log   *slog.Logger

	sess *sessionState // the open session, kept across rejoins

	mu       sync.Mutex
	ordinals map[string]int // speaker pseudonym -> tracks so far this stay
}

// sessionState is the session a room's bot records into.
type sessionState struct {
	id     string
	opened time.Time
	stay   int // bot stays before this one in the session
	man    *manifest
}

// ordinalStride separates the track ordinals of successive bot stays in
// one session: the k-th track of a speaker in stay s has ordinal
// s*ordinalStride + k, so a bot that continues a session after a restart
// never reuses a track ID (and so never an event ID or object key) of the
// stay before, without having to persist a counter per track.
const ordinalStride = 100_000

func newRoomRun(st *Stage, r roomRef, pRoom string) *roomRun {
	return &roomRun{st: st, room: r, pRoom: pRoom, log: st.log.With("room", pRoom), ordinals: map[string]int{}}
}

var (
	errRoomGone  = errors.New("room gone")
	errLeaseLost = errors.New("lease lost")
)

// rejoinReset is how long a stay in the room must last for the rejoin
// backoff to start over.
const rejoinReset = time.Minute

// loop records the room until it ends, ctx ends or (with a Coordinator)
// the lease is lost or held by another instance, rejoining when the Janus
// session is lost as soon as Janus answers again (see reconnector).
func (r *roomRun) loop(ctx context.Context) {
	var ls *lease.Lease
	if c := r.st.cfg.Coordinator; c != nil {
		var err error
		ls, err = c.Acquire(ctx, r.pRoom)
		var held *lease.HeldError
		if errors.As(err, &held) && time.Until(held.Until) < r.st.cfg.PollInterval {
			// The holder's lease runs out before the next poll: be there
			// when it does, rather than up to a poll interval later.
			if !clock.Sleep(ctx, time.Until(held.Until)+50*time.Millisecond) {
				return
			}
			ls, err = c.Acquire(ctx, r.pRoom)
		}
		if err != nil {
			if !errors.Is(err, lease.ErrHeld) && ctx.Err() == nil {
				r.log.Warn("cannot take the room's lease", "error", err)
			}
			return
		}
		r.log.Info("room lease taken")
		defer func() {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := ls.Release(rctx); err != nil {
				r.log.Warn("releasing the room's lease failed; it expires by itself", "error", err)
			}
		}()
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		go func() {
			select {
			case <-ls.Lost():
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	lost := func() bool {
		if ls == nil {
			return false
		}
		select {
		case <-ls.Lost():
			return true
		default:
			return false
		}
	}
	failures := 0 // stays in a row that ended in failure
	for {
		began := time.Now()
		err := r.stay(ctx, ls)
		switch {
		case lost():
			r.log.Warn("room lease lost: stopped recording")
			return
		case ctx.Err() != nil:
			return
		case errors.Is(err, errRoomGone):
			r.log.Info("room ended")
			return
		case errors.Is(err, errSpoolFull):
			// The lease is released on return: another instance takes
			// the room at its next poll and continues the session.
			r.log.Warn("left the room: the spool disk is full")
			return
		}
		if time.Since(began) > rejoinReset {
			// A stay that lasted was not part of a failure streak.
			failures = 0
		}
		failures++
		r.log.Warn("lost the room; rejoining when Janus answers", "error", safeErr(err), "failures", failures, "retry_in", retryDelay(failures))
		outage, ok := r.st.rejoin.wait(ctx, failures)
		if !ok {
			return
		}
		if outage {
			// Janus was away: that explains the failure, so the next one
			// starts a streak of its own.
			failures = 0
		}
	}
}

// openSession picks the session this stay records into. Without a
// Coordinator every stay is a session of its own. With one, the session is
// continued across rejoins of this process, and across instances and
// restarts while the room never went without a bot for longer than
// SessionGap; the choice is stored before anything is recorded.
func (r *roomRun) openSession(ctx context.Context, now time.Time) (*sessionState, error) {
	st := r.st
	c := st.cfg.Coordinator
	if c == nil {
		r.sess = &sessionState{id: event.SessionID(r.pRoom, now.UnixNano()), opened: now}
		r.sess.man = newManifest(r.pRoom, r.sess.id, r.room.connector, now)
		return r.sess, nil
	}
	var next *sessionState
	switch prev, ok := c.Session(r.pRoom); {
	case r.sess != nil:
		next = &sessionState{id: r.sess.id, opened: r.sess.opened, stay: r.sess.stay + 1, man: r.sess.man}
	case ok && !prev.Ended && r.continues(prev, now):
		next = &sessionState{id: prev.ID, opened: prev.Opened, stay: prev.Stays + 1}
		// This process has no bot in the room: a stay still open is a
		// dead bot's, which recorded until about its last renewal.
		last := prev.Held
		if last.IsZero() {
			last = prev.Updated
		}
		next.man = st.loadManifest(ctx, r.pRoom, prev.ID)
		if next.man == nil {
			// The earlier bot died before it wrote the manifest (it is
			// written at track ends): its stay is known from the session
			// record only, without its instance.
			next.man = newManifest(r.pRoom, prev.ID, r.room.connector, prev.Opened)
			next.man.join("", prev.Opened)
		}
		next.man.closeOpen(StayGone, last)
		r.log.Info("continuing the room's open session", "session", prev.ID, "stay", next.stay)
	default:
		if ok && !prev.Ended {
			// The room went without a bot for longer than the gap: that
			// session is over. Its last bot could not say so.
			reason := fmt.Sprintf("no bot in the room for longer than %v", st.cfg.SessionGap)
			st.lifecycle(ctx, r.pRoom, prev.ID, event.TypeSessionEnded, event.SessionEnded{Reason: reason, Manifest: st.manifestKey(r.pRoom, prev.ID)})
			if man := st.loadManifest(ctx, r.pRoom, prev.ID); man != nil {
				man.end(reason, prev.Held)
				st.writeManifest(ctx, man)
			}
		}
		next = &sessionState{id: event.SessionID(r.pRoom, now.UnixNano()), opened: now}
		next.man = newManifest(r.pRoom, next.id, r.room.connector, now)
	}
	if err := c.PutSession(ctx, r.pRoom, lease.Session{ID: next.id, Opened: next.opened.UTC(), Stays: next.stay}); err != nil {
		return nil, err
	}
	r.sess = next
	return next, nil
}

// continues reports whether an open session stored by another bot is
// recent enough to continue.
func (r *roomRun) continues(prev lease.Session, now time.Time) bool {
	last := prev.Held
	if last.IsZero() || prev.Updated.After(last) {
		last = prev.Updated
	}
	return now.Sub(last) <= r.st.cfg.SessionGap
}

// endSession records that the session is over: the room ended, or (without
// a Coordinator) the bot left.
func (r *roomRun) endSession(ctx context.Context, sess *sessionState, reason string) {
	st := r.st
	now := time.Now()
	sess.man.end(reason, now)
	st.writeManifest(ctx, sess.man)
	st.lifecycle(ctx, r.pRoom, sess.id, event.TypeSessionEnded, event.SessionEnded{Reason: reason, Manifest: st.manifestKey(r.pRoom, sess.id)})
	r.storeEnded(ctx, sess)
	r.sess = nil
}

// storeEnded marks the session ended in the coordinator's state.
func (r *roomRun) storeEnded(ctx context.Context, sess *sessionState) {
	c := r.st.cfg.Coordinator
	if c == nil {
		return
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := c.PutSession(sctx, r.pRoom, lease.Session{ID: sess.id, Opened: sess.opened.UTC(), Stays: sess.stay, Ended: true}); err != nil {
		r.log.Warn("could not store the session's end", "error", err)
	}
}

// stay is one stay of the bot in the room.
func (r *roomRun) stay(ctx context.Context, ls *lease.Lease) error {
	st := r.st
	joinedAt := time.Now().UTC()
	sess, err := r.openSession(ctx, joinedAt)
	if err != nil {
		return fmt.Errorf("open session: %w", err)
	}
	log := r.log.With("session", sess.id)

	js, err := st.client.CreateSession(ctx)
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	defer js.Close()
	r.mu.Lock()
	r.ordinals = map[string]int{}
	r.mu.Unlock()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var tracks sync.WaitGroup
	p := &presence{r: r, sess: sess, js: js, tracks: &tracks, ctx: ctx, log: log, skips: map[string]int{}}
	reason := "room ended"
	joined := false
	defer func() {
		p.leave()
		tracks.Wait() // every track flushed its final chunk and segment
		if !joined {
			return
		}
		st.m.rooms.Dec()
		sess.man.leave(st.cfg.Producer.Instance, reason, time.Now())
		st.lifecycle(ctx, r.pRoom, sess.id, event.TypeBotLeft, event.BotPresence{Instance: st.cfg.Producer.Instance, Reason: reason}, "left", joinedAt.Format(time.RFC3339Nano))
		if reason == "room ended" || st.cfg.Coordinator == nil {
			r.endSession(ctx, sess, reason)
		} else {
			// The session stays open: a bot (this one after a rejoin, or
			// another instance) may continue it.
			st.writeManifest(ctx, sess.man)
		}
		log.Info("room left", "reason", reason)
	}()
	events, err := p.join(ctx)
	if err != nil {
		var pe *janus.PluginError
		if errors.As(err, &pe) && (pe.Code == janus.VideoRoomErrNoSuchRoom || pe.Code == janus.AudioBridgeErrNoSuchRoom) {
			switch {
			case st.cfg.Coordinator == nil:
				r.sess = nil
			case sess.stay > 0:
				// A continued session whose room is gone has ended.
				r.endSession(ctx, sess, "room ended")
			default:
				// Never started: forget it quietly.
				r.storeEnded(ctx, sess)
				r.sess = nil
			}
			return errRoomGone
		}
		return fmt.Errorf("join: %w", err)
	}
	joined = true
	st.m.rooms.Inc()
	log.Info("room joined", "connector", r.room.connector, "stay", sess.stay)
	sess.man.join(st.cfg.Producer.Instance, joinedAt)
	if sess.stay == 0 {
		st.lifecycle(ctx, r.pRoom, sess.id, event.TypeSessionStarted, event.SessionStarted{
			Connector: "janus-" + r.room.connector, Metadata: r.room.metadata(st.cfg.RoomDescription),
		})
	}
	st.lifecycle(ctx, r.pRoom, sess.id, event.TypeBotJoined, event.BotPresence{Instance: st.cfg.Producer.Instance}, "joined", joinedAt.Format(time.RFC3339Nano))
	if err := p.start(ctx); err != nil {
		log.Warn("subscribing failed", "error", safeErr(err))
	}
	var lost <-chan struct{}
	if ls != nil {
		lost = ls.Lost()
	}
	full := st.disk.fullCh()
	for {
		select {
		case <-lost:
			reason = "lease lost"
			return errLeaseLost
		case <-full:
			reason = spoolFullReason
			return errSpoolFull
		case <-ctx.Done():
			reason = "shutdown"
			return ctx.Err()
		case <-js.Done():
			reason = "janus session lost"
			return fmt.Errorf("janus session: %w", js.Err())
		case ev, ok := <-events:
			if !ok {
				reason = "janus handle closed"
				return errors.New("room handle closed")
			}
			gone, err := p.handle(ctx, ev)
			if gone {
				return errRoomGone
			}
			if err != nil {
				log.Warn("room event failed", "error", safeErr(err))
			}
		}
	}
}

// presence is the bot's presence in a room for one stay, for either
// plugin: join, start recording, follow the room's events, leave.
type presence struct {
	r      *roomRun
	sess   *sessionState
	js     *janus.Session
	tracks *sync.WaitGroup
	ctx    context.Context // the stay's; tracks stop with it
	log    *slog.Logger

	vr  *janus.VideoRoom // VideoRoom: the bot's participant handle
	sub *subscription    // VideoRoom: the subscription
	ab  *mixRun          // AudioBridge: the mix

	skips map[string]int // speaker pseudonym -> skips reported this stay (under r.mu)
}

// join joins the room visibly under the recording notice and returns the
// room's events.
func (p *presence) join(ctx context.Context) (<-chan *janus.Event, error) {
	st := p.r.st
	if p.r.room.connector == ConnectorAudioBridge {
		p.ab = &mixRun{p: p, parts: map[janus.ID]janus.AudioParticipant{}, evs: make(chan *janus.Event, 64), done: make(chan struct{})}
		return p.ab.join(ctx)
	}
	vr, err := janus.AttachVideoRoom(ctx, p.js)
	if err != nil {
		return nil, fmt.Errorf("attach: %w", err)
	}
	// The recording notice: a participant that never publishes, named so
	// everyone in the room sees that it is recorded.
	joined, err := vr.Join(ctx, janus.PublisherJoin{Room: p.r.room.id, Display: st.cfg.BotDisplay})
	if err != nil {
		return nil, err
	}
	p.vr = vr
	p.sub = &subscription{p: p, feeds: map[string]bool{}, skipped: map[string]bool{}, initial: joined.Publishers}
	return vr.Events(), nil
}

// start begins recording what the room has now.
func (p *presence) start(ctx context.Context) error {
	if p.ab != nil {
		return p.ab.start(ctx)
	}
	return p.sub.add(ctx, p.sub.initial)
}

// handle applies one room event; gone reports that the room was destroyed.
func (p *presence) handle(ctx context.Context, ev *janus.Event) (bool, error) {
	if p.ab != nil {
		return p.ab.handle(ctx, ev)
	}
	return p.sub.handle(ctx, ev)
}

// leave stops the media and leaves the room.
func (p *presence) leave() {
	if p.ab != nil {
		p.ab.close()
		return
	}
	if p.sub != nil {
		p.sub.close()
	}
	if p.vr != nil {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(p.ctx), 5*time.Second)
		_ = p.vr.Leave(lctx)
		cancel()
	}
}

// identity is a participant's identity as configured (IdentityField).
func (s *Stage) identity(feed janus.ID, display string) (string, bool) {
	id := feed.String()
	if s.cfg.IdentityField == "display" {
		if display != "" {
			return display, true
		}
		// The prefix keeps a feed ID from colliding with a display name.
		return "feed:" + id, false
	}
	return id, true
}

// startTrack records a track of speaker (a pseudonym; "" for a room's
// mix) in its own goroutine.
func (p *presence) startTrack(t *janus.RemoteTrack, speaker string, gate *gate) {
	r := p.r
	r.mu.Lock()
	k := r.ordinals[speaker]
	r.ordinals[speaker]++
	r.mu.Unlock()
	ordinal := p.sess.stay*ordinalStride + k
	tr := &trackRun{
		st: r.st, room: r.pRoom, session: p.sess.id, speaker: speaker,
		id: event.TrackID(p.sess.id, speaker, ordinal), ordinal: ordinal, remote: t,
		man: p.sess.man, gate: gate,
	}
	p.tracks.Add(1)
	go func() {
		defer p.tracks.Done()
		tr.run(p.ctx)
	}()
}

// subscribeTimeout bounds subscribing (ICE and DTLS of a new subscription
// take about 50 ms on the test bed) and adding streams to a subscription.
const subscribeTimeout = 15 * time.Second

// subscription follows a VideoRoom's publishers with one multistream
// subscriber, created when the first publisher with audio appears.
type subscription struct {
	p       *presence
	initial []janus.PublisherInfo

	mu      sync.Mutex
	sub     *janus.Subscriber
	feeds   map[string]bool // feed IDs subscribed (raw; never logged)
	skipped map[string]bool // feed IDs not recorded by configuration (raw)
}

// handle applies one room event. gone reports that the room was destroyed.
func (s *subscription) handle(ctx context.Context, ev *janus.Event) (gone bool, err error) {
	vre, err := ev.VideoRoom()
	if err != nil {
		return false, nil // not a VideoRoom notification (webrtcup, media...)
	}
	switch {
	case vre.Kind == "destroyed":
		return true, nil
	case len(vre.Publishers) > 0:
		s.p.log.Debug("subscription: publishers event", "publishers", len(vre.Publishers))
		return false, s.add(ctx, vre.Publishers)
	case vre.Unpublished != nil && !janus.LeftSelf(vre.Unpublished):
		return false, s.remove(ctx, *vre.Unpublished)
	case vre.Leaving != nil && !janus.LeftSelf(vre.Leaving):
		return false, s.remove(ctx, *vre.Leaving)
	case vre.Kicked != nil:
		return false, s.remove(ctx, *vre.Kicked)
	}
	return false, nil
}

func (s *subscription) add(ctx context.Context, pubs []janus.PublisherInfo) error {
	st := s.p.r.st
	var refs []janus.StreamRef
	s.mu.Lock()
	for _, p := range pubs {
		feed := p.ID.String()
		if s.feeds[feed] || s.skipped[feed] {
			continue
		}
		if s.p.skipParticipant(p.ID, p.Display) {
			s.skipped[feed] = true
			continue
		}
		for _, ps := range p.Streams {
			if ps.Type == "audio" && !ps.Disabled {
				refs = append(refs, janus.StreamRef{Feed: p.ID, Mid: ps.Mid})
				s.feeds[feed] = true
			}
		}
	}
	sub := s.sub
	s.mu.Unlock()
	if len(refs) == 0 {
		return nil
	}
	// The room's events wait while this runs: bound it, so a subscription
	// whose ICE never completes does not hold up the room's other events
	// until pion gives up.
	ctx, cancel := context.WithTimeout(ctx, subscribeTimeout)
	defer cancel()
	if sub != nil {
		if err := sub.Update(ctx, refs, nil); err != nil {
			s.forget(refs) // so the next publishers event retries them
			return err
		}
		return nil
	}
	sub, err := janus.Subscribe(ctx, s.p.js, janus.SubscriberConfig{
		API: st.api, Room: s.p.r.room.id, Streams: refs, OnTrack: s.onTrack, Logger: st.log,
	})
	if err != nil {
		s.forget(refs)
		return err
	}
	s.mu.Lock()
	s.sub = sub
	s.mu.Unlock()
	return nil
}

// forget unmarks feeds whose subscription failed.
func (s *subscription) forget(refs []janus.StreamRef) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ref := range refs {
		delete(s.feeds, ref.Feed.String())
	}
}

// drainTrack reads a track we do not record, so pion's buffers do not fill.
func drainTrack(t *janus.RemoteTrack) {
	for {
		if _, _, err := t.Track.ReadRTP(); err != nil {
			return
		}
	}
}

func (s *subscription) remove(ctx context.Context, feed janus.ID) error {
	s.mu.Lock()
	had := s.feeds[feed.String()]
	delete(s.feeds, feed.String())
	delete(s.skipped, feed.String()) // a rejoin is checked (and reported) again
	sub := s.sub
	s.mu.Unlock()
	if !had || sub == nil {
		return nil
	}
	return sub.RemoveFeeds(ctx, feed)
}

func (s *subscription) close() {
	s.mu.Lock()
	sub := s.sub
	s.sub = nil
	s.mu.Unlock()
	if sub != nil {
		_ = sub.Close()
	}
}

// onTrack runs on a pion goroutine: it names the track and hands it to a
// goroutine of its own.
func (s *subscription) onTrack(t *janus.RemoteTrack) {
	if t.Track.Kind().String() != "audio" {
		return
	}
	if t.Feed().IsZero() {
		// A track we cannot attribute is not recorded: merging it under an
		// empty identity would make strangers one linkable "speaker".
		s.p.log.Warn("track without a publisher in the layout; not recorded", "mid", t.Mid)
		go drainTrack(t)
		return
	}
	st := s.p.r.st
	identity, ok := st.identity(t.Feed(), t.Stream.FeedDisplay)
	if !ok {
		s.p.log.Warn("publisher has no display name; identified by feed ID instead")
	}
	s.p.startTrack(t, st.cfg.Pseudonym.Person(identity), nil)
}
