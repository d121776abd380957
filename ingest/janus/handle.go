package janus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/pion/webrtc/v4"
)

// Handle is a plugin attachment within a session.
type Handle struct {
	s      *Session
	id     uint64
	plugin string

	mu      sync.Mutex // guards events against send-after-close
	events  chan *Event
	closed  bool
	dropped atomic.Uint64

	detachOnce sync.Once
	detachErr  error
}

// ID returns the server's handle id.
func (h *Handle) ID() uint64 { return h.id }

// Plugin returns the plugin package name the handle is attached to.
func (h *Handle) Plugin() string { return h.plugin }

// Session returns the session the handle belongs to.
func (h *Handle) Session() *Session { return h.s }

// Events delivers what Janus sends for this handle other than replies to
// Message: plugin notifications, webrtcup, media, slowlink, hangup,
// detached. The channel is bounded (Config.EventBuffer): when the consumer
// falls behind, new events are dropped, counted (Dropped) and logged rather
// than stalling every other handle of the session. It is closed when the
// handle is detached or the session ends.
func (h *Handle) Events() <-chan *Event { return h.events }

// Dropped counts events lost because Events was full.
func (h *Handle) Dropped() uint64 { return h.dropped.Load() }

func (h *Handle) deliver(ev *Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	select {
	case h.events <- ev:
	default:
		h.dropped.Add(1)
		h.s.c.log.Warn("janus: handle event buffer full; event dropped",
			"session", h.s.id, "handle", h.id, "kind", ev.Kind)
	}
}

func (h *Handle) closeEvents() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.closed = true
		close(h.events)
	}
}

func (h *Handle) path() string { return handlePath(h.s.id, h.id) }

// Message sends a plugin request (body) with an optional JSEP and returns
// the plugin's reply: the "success" of a synchronous request, or the event
// that carries the same transaction for an asynchronous one (Janus first
// acknowledges those). ctx bounds the whole exchange. A plugin-level error
// is returned as *PluginError together with the event.
func (h *Handle) Message(ctx context.Context, body any, jsep *JSEP) (*Event, error) {
	tx := newTransaction()
	ch, err := h.s.await(tx)
	if err != nil {
		return nil, fmt.Errorf("janus: message: %w", err)
	}
	defer h.s.unawait(tx)
	req := map[string]any{"janus": "message", "transaction": tx, "body": body}
	if jsep != nil {
		req["jsep"] = jsep
	}
	ev, err := h.s.c.request(ctx, h.path(), req)
	if err != nil {
		return nil, fmt.Errorf("janus: message: %w", err)
	}
	switch ev.Kind {
	case KindSuccess, KindEvent:
		return ev, ev.pluginError()
	case KindAck:
	default:
		return nil, fmt.Errorf("janus: message: unexpected reply %q", ev.Kind)
	}
	select {
	case ev := <-ch:
		if ev.Kind == KindError && ev.Error != nil {
			return nil, fmt.Errorf("janus: message: %w", ev.Error)
		}
		return ev, ev.pluginError()
	case <-ctx.Done():
		return nil, fmt.Errorf("janus: message: waiting for the reply: %w", ctx.Err())
	case <-h.s.done:
		return nil, fmt.Errorf("janus: message: waiting for the reply: %w", h.s.Err())
	}
}

// Trickle sends ICE candidates to Janus.
func (h *Handle) Trickle(ctx context.Context, candidates ...webrtc.ICECandidateInit) error {
	req := map[string]any{"janus": "trickle"}
	switch len(candidates) {
	case 0:
		return nil
	case 1:
		req["candidate"] = candidates[0]
	default:
		req["candidates"] = candidates
	}
	if _, err := h.s.c.request(ctx, h.path(), req); err != nil {
		return fmt.Errorf("janus: trickle: %w", err)
	}
	return nil
}

// TrickleComplete tells Janus that no more candidates will follow. Send it
// after a non-trickle offer or answer too: Janus otherwise waits ("trickle
// pending") for candidates that never come.
func (h *Handle) TrickleComplete(ctx context.Context) error {
	req := map[string]any{"janus": "trickle", "candidate": map[string]bool{"completed": true}}
	if _, err := h.s.c.request(ctx, h.path(), req); err != nil {
		return fmt.Errorf("janus: trickle completed: %w", err)
	}
	return nil
}

// Hangup closes the handle's PeerConnection on the server, keeping the
// handle.
func (h *Handle) Hangup(ctx context.Context) error {
	if _, err := h.s.c.request(ctx, h.path(), map[string]any{"janus": "hangup"}); err != nil {
		return fmt.Errorf("janus: hangup: %w", err)
	}
	return nil
}

// Detach detaches the handle from its plugin and closes Events. It is
// idempotent, and succeeds when the server had already forgotten the
// handle or the session.
func (h *Handle) Detach(ctx context.Context) error {
	h.detachOnce.Do(func() {
		h.s.forget(h.id)
		defer h.closeEvents()
		if h.s.Err() != nil {
			return
		}
		_, err := h.s.c.request(ctx, h.path(), map[string]any{"janus": "detach"})
		if err != nil && !errors.Is(err, ErrHandleGone) && !errors.Is(err, ErrSessionGone) {
			h.detachErr = fmt.Errorf("janus: detach: %w", err)
		}
	})
	return h.detachErr
}
