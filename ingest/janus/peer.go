package janus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
)

// peer is the part Publisher, Subscriber and AudioBridgeParticipant share:
// a PeerConnection, its state changes, Janus's webrtcup, and the goroutines
// that drain RTCP and the handle's events.
type peer struct {
	pc     *webrtc.PeerConnection
	states chan webrtc.PeerConnectionState
	up     chan struct{} // closed on Janus's webrtcup
	upOnce sync.Once
	wg     sync.WaitGroup
}

func newPeer(api *webrtc.API) (*peer, error) {
	if api == nil {
		return nil, errors.New("no webrtc API")
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, fmt.Errorf("peer connection: %w", err)
	}
	p := &peer{pc: pc, states: make(chan webrtc.PeerConnectionState, 16), up: make(chan struct{})}
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		select {
		case p.states <- st:
		default:
		}
	})
	return p, nil
}

// addSendTrack adds an Opus track sent in direction dir. The sender's RTCP
// is drained: pion's interceptors (NACK, reports) only see what is read.
func (p *peer) addSendTrack(dir webrtc.RTPTransceiverDirection) (*webrtc.TrackLocalStaticRTP, error) {
	track, err := webrtc.NewTrackLocalStaticRTP(OpusCodec.RTPCodecCapability, "audio", "earshot")
	if err != nil {
		return nil, fmt.Errorf("track: %w", err)
	}
	tr, err := p.pc.AddTransceiverFromTrack(track, webrtc.RTPTransceiverInit{Direction: dir})
	if err != nil {
		return nil, fmt.Errorf("transceiver: %w", err)
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		buf := make([]byte, 1500)
		for {
			if _, _, err := tr.Sender().Read(buf); err != nil {
				return
			}
		}
	}()
	return track, nil
}

// mid returns the m-line of a receiver.
func (p *peer) mid(r *webrtc.RTPReceiver) string {
	for _, tr := range p.pc.GetTransceivers() {
		if tr.Receiver() == r {
			return tr.Mid()
		}
	}
	return ""
}

// markUp records Janus's webrtcup.
func (p *peer) markUp() { p.upOnce.Do(func() { close(p.up) }) }

// handleEvents runs fn (when set) on each event of h until the handle
// closes, noting webrtcup on the way.
func (p *peer) handleEvents(h *Handle, fn func(*Event)) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for ev := range h.Events() {
			if ev.Kind == KindWebRTCUp {
				p.markUp()
			}
			if fn != nil {
				fn(ev)
			}
		}
	}()
}

// waitConnected waits until the PeerConnection is connected (ICE and
// DTLS), or fails when it fails or closes.
func (p *peer) waitConnected(ctx context.Context) error {
	if p.pc.ConnectionState() == webrtc.PeerConnectionStateConnected {
		return nil
	}
	for {
		select {
		case st := <-p.states:
			switch st {
			case webrtc.PeerConnectionStateConnected:
				return nil
			case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
				return fmt.Errorf("peer connection %s", st)
			}
		case <-ctx.Done():
			return fmt.Errorf("waiting for the peer connection (%s): %w", p.pc.ConnectionState(), ctx.Err())
		}
	}
}

// waitUp waits for the PeerConnection and for Janus's webrtcup: Janus
// makes a feed subscribable only then, which can be after pion already
// says connected.
func (p *peer) waitUp(ctx context.Context) error {
	if err := p.waitConnected(ctx); err != nil {
		return err
	}
	select {
	case <-p.up:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for webrtcup: %w", ctx.Err())
	}
}

// closePeer runs leave (when set and the session lives), detaches h,
// closes the PeerConnection (p may be nil) and waits for the goroutines.
func closePeer(h *Handle, p *peer, leave func(context.Context) []error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	if leave != nil && h.Session().Err() == nil {
		errs = append(errs, leave(ctx)...)
	}
	if err := h.Detach(ctx); err != nil {
		errs = append(errs, err)
	}
	if p != nil {
		if err := p.pc.Close(); err != nil {
			errs = append(errs, err)
		}
		p.wg.Wait()
	}
	return errors.Join(errs...)
}
