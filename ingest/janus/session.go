package janus

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Session is a Janus session. It long-polls the server for events and
// routes them: replies to the request that waits for them (by transaction),
// everything else to the handle's Events channel. It sends keepalives so
// the server does not time it out.
//
// A session ends when Close is called, when the server reports it gone
// (timeout, restart) or when the server has been unreachable for longer
// than its session timeout; Done is closed then and Err says why.
type Session struct {
	c  *Client
	id uint64

	ctx    context.Context // cancelled when the session ends; bounds the loops
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	handles map[uint64]*Handle
	pending map[string]chan *Event
	err     error

	done      chan struct{}
	endOnce   sync.Once
	closeOnce sync.Once
	closeErr  error

	malformed atomic.Uint64
	orphans   atomic.Uint64
}

func startSession(c *Client, id uint64) *Session {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Session{
		c:       c,
		id:      id,
		ctx:     ctx,
		cancel:  cancel,
		handles: map[uint64]*Handle{},
		pending: map[string]chan *Event{},
		done:    make(chan struct{}),
	}
	s.wg.Add(2)
	go s.pollLoop()
	go s.keepaliveLoop()
	return s
}

// ID returns the server's session id.
func (s *Session) ID() uint64 { return s.id }

// Done is closed when the session has ended.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err returns why the session ended (nil while it runs). It matches
// ErrClosed after Close and ErrSessionGone when the server dropped it.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Malformed counts long-poll events that could not be parsed (they are
// skipped and logged).
func (s *Session) Malformed() uint64 { return s.malformed.Load() }

// Orphans counts events for handles this session does not know (e.g. that
// arrive after Detach).
func (s *Session) Orphans() uint64 { return s.orphans.Load() }

// Close destroys the session on the server (when it still exists), stops
// its loops and closes every handle's event channel. It is idempotent; only
// the first call reports the destroy error.
func (s *Session) Close() error {
	s.closeOnce.Do(func() {
		alive := s.Err() == nil
		s.end(ErrClosed)
		if alive {
			ctx, cancel := context.WithTimeout(context.Background(), s.c.cfg.RequestTimeout)
			defer cancel()
			_, err := s.c.request(ctx, sessionPath(s.id), map[string]any{"janus": "destroy"})
			if err != nil && !errors.Is(err, ErrSessionGone) {
				s.closeErr = fmt.Errorf("janus: destroy session: %w", err)
			}
		}
		s.wg.Wait()
	})
	return s.closeErr
}

// end records why the session ended, stops the loops and closes the
// handles. Only the first cause is kept.
func (s *Session) end(cause error) {
	s.endOnce.Do(func() {
		s.mu.Lock()
		s.err = cause
		handles := make([]*Handle, 0, len(s.handles))
		for _, h := range s.handles {
			handles = append(handles, h)
		}
		s.handles = map[uint64]*Handle{}
		s.mu.Unlock()
		s.cancel()
		close(s.done)
		for _, h := range handles {
			h.closeEvents()
		}
	})
}

// Attach attaches a handle to plugin (e.g. "janus.plugin.videoroom").
func (s *Session) Attach(ctx context.Context, plugin string) (*Handle, error) {
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("janus: attach %s: %w", plugin, err)
	}
	ev, err := s.c.request(ctx, sessionPath(s.id), map[string]any{"janus": "attach", "plugin": plugin})
	if err != nil {
		return nil, fmt.Errorf("janus: attach %s: %w", plugin, err)
	}
	id, err := replyID(ev)
	if err != nil {
		return nil, fmt.Errorf("janus: attach %s: %w", plugin, err)
	}
	h := &Handle{s: s, id: id, plugin: plugin, events: make(chan *Event, s.c.cfg.EventBuffer)}
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("janus: attach %s: %w", plugin, s.err)
	}
	s.handles[id] = h
	s.mu.Unlock()
	return h, nil
}

// forget removes a handle from routing (after detach).
func (s *Session) forget(id uint64) {
	s.mu.Lock()
	delete(s.handles, id)
	s.mu.Unlock()
}

// await registers a reply channel for a transaction before the request is
// sent, so a reply that overtakes the HTTP response is not lost.
func (s *Session) await(tx string) (chan *Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	ch := make(chan *Event, 1)
	s.pending[tx] = ch
	return ch, nil
}

func (s *Session) unawait(tx string) {
	s.mu.Lock()
	delete(s.pending, tx)
	s.mu.Unlock()
}

func (s *Session) pollLoop() {
	defer s.wg.Done()
	path := sessionPath(s.id) + "?maxev=" + strconv.Itoa(s.c.cfg.MaxEvents)
	backoff := 100 * time.Millisecond
	var failingSince time.Time
	for s.ctx.Err() == nil {
		// Janus holds a long poll for up to 30 s before answering keepalive.
		body, err := s.c.do(s.ctx, http.MethodGet, path, nil, 30*time.Second+s.c.cfg.RequestTimeout)
		if err == nil {
			events, bad, perr := parseEvents(body)
			if perr != nil {
				s.malformed.Add(uint64(bad))
				s.c.log.Warn("janus: skipped malformed events", "session", s.id, "err", perr)
				if len(events) == 0 && !isPartial(body) {
					// Nothing usable: back off as for a failed request.
					err = fmt.Errorf("janus: long poll: %w", perr)
				}
			}
			for _, ev := range events {
				if ev.Kind == KindError && ev.Error != nil {
					err = ev.Error
					continue
				}
				s.dispatch(ev)
			}
		}
		if err == nil {
			failingSince, backoff = time.Time{}, 100*time.Millisecond
			continue
		}
		if s.ctx.Err() != nil {
			return
		}
		if errors.Is(err, ErrSessionGone) {
			s.end(fmt.Errorf("janus: session %d: %w", s.id, err))
			return
		}
		// Janus (1.1.2) answers a long poll on a session it does not know,
		// e.g. after a restart, with a bare 404 rather than error 458: the
		// session is gone, and waiting out SessionTimeout only delays the
		// rejoin.
		if errors.Is(err, errNotFound) {
			s.end(fmt.Errorf("janus: session %d: long poll: %w: %w", s.id, err, ErrSessionGone))
			return
		}
		if failingSince.IsZero() {
			failingSince = time.Now()
		}
		if time.Since(failingSince) > s.c.cfg.SessionTimeout {
			s.end(fmt.Errorf("janus: session %d: server unreachable for %s (%w): %w",
				s.id, s.c.cfg.SessionTimeout, err, ErrSessionGone))
			return
		}
		s.c.log.Warn("janus: long poll failed; retrying", "session", s.id, "err", err, "retry_in", backoff)
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(backoff):
		}
		// A short cap: after a restart Janus answers this poll with 404,
		// which is how a bot learns that it must rejoin, so the cap is part
		// of the time to rejoin. A failed poll of a server that is down is
		// a refused connection, cheap for both sides.
		backoff = min(backoff*2, time.Second)
	}
}

// isPartial reports whether a body is an array, where ParseEvents can skip
// a bad element and still return the rest (an empty array is valid too).
func isPartial(body []byte) bool {
	for _, b := range body {
		switch b {
		case ' ', '\t', '\r', '\n':
			continue
		case '[':
			return true
		}
		return false
	}
	return false
}

func (s *Session) keepaliveLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.c.cfg.KeepAlive)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		_, err := s.c.request(s.ctx, sessionPath(s.id), map[string]any{"janus": "keepalive"})
		switch {
		case err == nil || s.ctx.Err() != nil:
		case errors.Is(err, ErrSessionGone):
			s.end(fmt.Errorf("janus: session %d: keepalive: %w", s.id, err))
			return
		default:
			s.c.log.Warn("janus: keepalive failed", "session", s.id, "err", err)
		}
	}
}

// dispatch routes one event from the long poll.
func (s *Session) dispatch(ev *Event) {
	switch ev.Kind {
	case KindKeepalive, KindAck:
		return
	case KindTimeout:
		s.end(fmt.Errorf("janus: session %d timed out on the server: %w", s.id, ErrSessionGone))
		return
	}
	s.mu.Lock()
	if ev.Transaction != "" {
		if ch, ok := s.pending[ev.Transaction]; ok {
			delete(s.pending, ev.Transaction)
			s.mu.Unlock()
			ch <- ev // capacity 1, one send per transaction
			return
		}
	}
	h := s.handles[ev.Sender]
	s.mu.Unlock()
	if h == nil {
		s.orphans.Add(1)
		s.c.log.Debug("janus: event for unknown handle", "session", s.id, "handle", ev.Sender, "kind", ev.Kind)
		return
	}
	h.deliver(ev)
	if ev.Kind == KindDetached {
		s.forget(h.id)
		h.closeEvents()
	}
}
