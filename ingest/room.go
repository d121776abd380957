package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/ingest/janus"
)

// roomRun records one VideoRoom: the bot's presence, one multistream
// subscription following the publishers, and a goroutine per track.
type roomRun struct {
	st    *Stage
	room  janus.Room // raw; never logged or emitted
	pRoom string     // the room's pseudonym
	log   *slog.Logger

	mu       sync.Mutex
	ordinals map[string]int // speaker pseudonym -> tracks so far this session
}

func newRoomRun(st *Stage, r janus.Room, pRoom string) *roomRun {
	return &roomRun{st: st, room: r, pRoom: pRoom, log: st.log.With("room", pRoom), ordinals: map[string]int{}}
}

// loop records the room until it ends or ctx does, rejoining with backoff
// when the Janus session is lost.
func (r *roomRun) loop(ctx context.Context) {
	backoff := time.Second
	for {
		began := time.Now()
		err := r.session(ctx)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errRoomGone) {
			r.log.Info("room ended")
			return
		}
		if time.Since(began) > rejoinReset {
			// A stay that lasted was not part of a failure streak: rejoin
			// at once-ish, as after the first failure.
			backoff = time.Second
		}
		r.log.Warn("lost the room; rejoining", "error", safeErr(err), "retry_in", backoff)
		if !sleep(ctx, backoff) {
			return
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

var errRoomGone = errors.New("room gone")

// rejoinReset is how long a stay in the room must last for the rejoin
// backoff to start over.
const rejoinReset = time.Minute

// session is one stay of the bot in the room: one recording session.
func (r *roomRun) session(ctx context.Context) error {
	st := r.st
	opened := time.Now().UTC()
	sessionID := event.SessionID(r.pRoom, opened.UnixNano())
	log := r.log.With("session", sessionID)

	js, err := st.client.CreateSession(ctx)
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	defer js.Close()
	vr, err := janus.AttachVideoRoom(ctx, js)
	if err != nil {
		return fmt.Errorf("attach: %w", err)
	}
	// The recording notice: a participant that never publishes, named so
	// everyone in the room sees that it is recorded.
	joined, err := vr.Join(ctx, janus.PublisherJoin{Room: r.room.Room, Display: st.cfg.BotDisplay})
	if err != nil {
		var pe *janus.PluginError
		if errors.As(err, &pe) && pe.Code == janus.VideoRoomErrNoSuchRoom {
			return errRoomGone
		}
		return fmt.Errorf("join: %w", err)
	}
	st.m.rooms.Inc()
	defer st.m.rooms.Dec()
	log.Info("room joined", "publishers", len(joined.Publishers))
	st.lifecycle(ctx, r.pRoom, sessionID, event.TypeSessionStarted, event.SessionStarted{Connector: "janus-videoroom"})
	st.lifecycle(ctx, r.pRoom, sessionID, event.TypeBotJoined, event.BotPresence{Instance: st.cfg.Producer.Instance}, "joined", opened.Format(time.RFC3339Nano))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var tracks sync.WaitGroup
	sub := &subscription{r: r, js: js, session: sessionID, tracks: &tracks, ctx: ctx, log: log, feeds: map[string]bool{}}
	reason := "room ended"
	defer func() {
		sub.close()
		tracks.Wait() // every track flushed its final chunk and segment
		st.lifecycle(ctx, r.pRoom, sessionID, event.TypeBotLeft, event.BotPresence{Instance: st.cfg.Producer.Instance, Reason: reason}, "left")
		st.lifecycle(ctx, r.pRoom, sessionID, event.TypeSessionEnded, event.SessionEnded{Reason: reason})
		lctx, lcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = vr.Leave(lctx)
		lcancel()
		log.Info("room left", "reason", reason)
	}()
	if err := sub.add(ctx, joined.Publishers); err != nil {
		log.Warn("subscribing failed", "error", safeErr(err))
	}
	for {
		select {
		case <-ctx.Done():
			reason = "shutdown"
			return ctx.Err()
		case <-js.Done():
			reason = "janus session lost"
			return fmt.Errorf("janus session: %w", js.Err())
		case ev, ok := <-vr.Events():
			if !ok {
				reason = "janus handle closed"
				return errors.New("videoroom handle closed")
			}
			gone, err := sub.handle(ctx, ev)
			if gone {
				return errRoomGone
			}
			if err != nil {
				log.Warn("room event failed", "error", safeErr(err))
			}
		}
	}
}

// subscription follows a room's publishers with one multistream
// subscriber, created when the first publisher with audio appears.
type subscription struct {
	r       *roomRun
	js      *janus.Session
	session string
	tracks  *sync.WaitGroup
	ctx     context.Context // the session's; tracks stop with it
	log     *slog.Logger

	mu    sync.Mutex
	sub   *janus.Subscriber
	feeds map[string]bool // feed IDs subscribed (raw; never logged)
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
	var refs []janus.StreamRef
	s.mu.Lock()
	for _, p := range pubs {
		if s.feeds[p.ID.String()] {
			continue
		}
		for _, ps := range p.Streams {
			if ps.Type == "audio" && !ps.Disabled {
				refs = append(refs, janus.StreamRef{Feed: p.ID, Mid: ps.Mid})
				s.feeds[p.ID.String()] = true
			}
		}
	}
	sub := s.sub
	s.mu.Unlock()
	if len(refs) == 0 {
		return nil
	}
	if sub != nil {
		if err := sub.Update(ctx, refs, nil); err != nil {
			s.forget(refs) // so the next publishers event retries them
			return err
		}
		return nil
	}
	st := s.r.st
	sub, err := janus.Subscribe(ctx, s.js, janus.SubscriberConfig{
		API: st.api, Room: s.r.room.Room, Streams: refs, OnTrack: s.onTrack, Logger: st.log,
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
		s.log.Warn("track without a publisher in the layout; not recorded", "mid", t.Mid)
		go drainTrack(t)
		return
	}
	identity := t.Feed().String()
	if s.r.st.cfg.IdentityField == "display" {
		if t.Stream.FeedDisplay != "" {
			identity = t.Stream.FeedDisplay
		} else {
			// The prefix keeps a feed ID from colliding with a display name.
			identity = "feed:" + identity
			s.log.Warn("publisher has no display name; identified by feed ID instead")
		}
	}
	speaker := s.r.st.cfg.Pseudonym.Person(identity)
	s.r.mu.Lock()
	ordinal := s.r.ordinals[speaker]
	s.r.ordinals[speaker]++
	s.r.mu.Unlock()
	tr := &trackRun{
		st: s.r.st, room: s.r.pRoom, session: s.session, speaker: speaker,
		id: event.TrackID(s.session, speaker, ordinal), ordinal: ordinal, remote: t,
	}
	s.tracks.Add(1)
	go func() {
		defer s.tracks.Done()
		tr.run(s.ctx)
	}()
}
