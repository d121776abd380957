package ingest

import (
	"context"
	"fmt"
	"sync"

	"github.com/earshot/earshot/ingest/janus"
)

// mixRun records an AudioBridge room: the bot joins muted under the
// recording notice and records the room's mix as one track whose speaker
// is "" (the room; its data key is event.KeyID(session, "")). Participants
// who must not be recorded cannot be left out of a mix, so the mix is not
// recorded (the track's timeline is filled with silence) while one of them
// is in the room and not muted.
type mixRun struct {
	p    *presence
	part *janus.AudioBridgeParticipant
	evs  chan *janus.Event
	gate gate
	done chan struct{} // closed by close: stop handing events over

	mu    sync.Mutex
	parts map[janus.ID]janus.AudioParticipant // raw; never logged
	skip  map[janus.ID]bool                   // participants not to be recorded
}

// join joins the room muted and negotiates the PeerConnection that
// carries the mix.
func (m *mixRun) join(ctx context.Context) (<-chan *janus.Event, error) {
	st := m.p.r.st
	m.skip = map[janus.ID]bool{}
	part, err := janus.JoinAudioBridge(ctx, m.p.js, janus.AudioBridgeConfig{
		API: st.api, Room: m.p.r.room.id, Display: st.cfg.BotDisplay,
		OnTrack: m.onTrack, OnEvent: m.onEvent,
	})
	if err != nil {
		return nil, err
	}
	m.part = part
	m.update(part.Joined().Participants, nil)
	return m.evs, nil
}

// start: the mix track arrives by itself (OnTrack).
func (m *mixRun) start(context.Context) error { return nil }

// onEvent runs on the participant's event goroutine.
func (m *mixRun) onEvent(ev *janus.Event) {
	select {
	case m.evs <- ev:
	case <-m.done:
	case <-m.p.ctx.Done():
	}
}

func (m *mixRun) onTrack(t *janus.RemoteTrack) {
	if t.Track.Kind().String() != "audio" {
		return
	}
	m.p.startTrack(t, "", &m.gate)
}

// handle applies one room event.
func (m *mixRun) handle(_ context.Context, ev *janus.Event) (bool, error) {
	if ev.Kind == janus.KindHangup {
		return false, fmt.Errorf("audiobridge: the mix's PeerConnection hung up")
	}
	abe, err := ev.AudioBridge()
	if err != nil {
		return false, nil
	}
	switch {
	case abe.Kind == "destroyed":
		return true, nil
	case abe.Leaving != nil:
		m.update(nil, abe.Leaving)
	case len(abe.Participants) > 0:
		m.update(abe.Participants, nil)
	}
	return false, nil
}

// update applies joins, changes (mute) and a leave, and gates the mix
// while a participant who must not be recorded can be heard in it.
func (m *mixRun) update(parts []janus.AudioParticipant, left *janus.ID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, pt := range parts {
		if m.part != nil && pt.ID == m.part.ID() {
			continue
		}
		if _, known := m.parts[pt.ID]; !known && m.p.skipParticipant(pt.ID, pt.Display) {
			m.skip[pt.ID] = true
		}
		m.parts[pt.ID] = pt
	}
	if left != nil {
		delete(m.parts, *left)
		delete(m.skip, *left)
	}
	audible := false
	for id := range m.skip {
		if pt, ok := m.parts[id]; ok && !pt.Muted && !pt.Suspended {
			audible = true
		}
	}
	if m.gate.closed.Swap(audible) != audible {
		if audible {
			m.p.log.Info("a participant who must not be recorded can be heard: the mix is not recorded meanwhile")
		} else {
			m.p.log.Info("no participant who must not be recorded can be heard: recording the mix again")
		}
	}
}

func (m *mixRun) close() {
	close(m.done)
	if m.part != nil {
		_ = m.part.Close()
	}
}
