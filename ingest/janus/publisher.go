package janus

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// PublisherConfig configures a VideoRoom publisher with one Opus track.
type PublisherConfig struct {
	// API builds the PeerConnection (see NewAPI). Required.
	API *webrtc.API
	// Room to join. Required.
	Room ID
	// ID is the participant ID to register; zero lets Janus pick one.
	// Reusing an ID after leaving lets a rejoining speaker keep its identity.
	ID      ID
	Display string
	// OnEvent, when set, receives the publisher handle's events (room
	// notifications, webrtcup, hangup) from the publisher's goroutine.
	// Without it they are drained and discarded.
	OnEvent func(*Event)
}

// Publisher is a participant that publishes one Opus track into a VideoRoom.
// Write RTP packets with WriteRTP; Close leaves the room.
type Publisher struct {
	vr     *VideoRoom
	peer   *peer
	track  *webrtc.TrackLocalStaticRTP
	joined *VideoRoomEvent

	closeOnce sync.Once
	closeErr  error
}

// Publish attaches a VideoRoom handle, joins cfg.Room, negotiates a
// send-only Opus PeerConnection (complete offer, then trickle completed) and
// returns once both pion and Janus (webrtcup) report it up, so the feed can
// be subscribed to and packets written from then on reach Janus.
func Publish(ctx context.Context, s *Session, cfg PublisherConfig) (_ *Publisher, err error) {
	vr, err := AttachVideoRoom(ctx, s)
	if err != nil {
		return nil, fmt.Errorf("janus: publish: %w", err)
	}
	p := &Publisher{vr: vr}
	defer func() {
		if err != nil {
			_ = p.Close()
			err = fmt.Errorf("janus: publish: %w", err)
		}
	}()
	if p.peer, err = newPeer(cfg.API); err != nil {
		return nil, err
	}
	if p.joined, err = vr.Join(ctx, PublisherJoin{Room: cfg.Room, ID: cfg.ID, Display: cfg.Display}); err != nil {
		return nil, err
	}
	p.peer.handleEvents(vr.Handle, cfg.OnEvent)
	if p.track, err = p.peer.addSendTrack(webrtc.RTPTransceiverDirectionSendonly); err != nil {
		return nil, err
	}
	offer, err := OfferGathered(ctx, p.peer.pc)
	if err != nil {
		return nil, err
	}
	answer, err := vr.Publish(ctx, offer, PublishOptions{AudioCodec: "opus"})
	if err != nil {
		return nil, err
	}
	if err := SetRemoteAnswer(p.peer.pc, answer); err != nil {
		return nil, err
	}
	if err := vr.TrickleComplete(ctx); err != nil {
		return nil, err
	}
	if err := p.peer.waitUp(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// FeedID is our participant ID in the room (the feed subscribers name).
func (p *Publisher) FeedID() ID { return p.joined.ID }

// PrivateID is our private participant ID (for subscriptions in rooms that
// require one).
func (p *Publisher) PrivateID() uint64 { return p.joined.PrivateID }

// Joined is the room's "joined" reply: description and active publishers.
func (p *Publisher) Joined() *VideoRoomEvent { return p.joined }

// VideoRoom is the publisher's handle, for requests this type does not
// wrap (configure, a bare leave).
func (p *Publisher) VideoRoom() *VideoRoom { return p.vr }

// PeerConnection exposes the PeerConnection (stats, state).
func (p *Publisher) PeerConnection() *webrtc.PeerConnection { return p.peer.pc }

// WriteRTP sends one RTP packet. Sequence number, timestamp and marker are
// the caller's; SSRC and payload type are set by pion.
func (p *Publisher) WriteRTP(pkt *rtp.Packet) error {
	return p.track.WriteRTP(pkt)
}

// Close unpublishes, leaves the room, detaches the handle and closes the
// PeerConnection. It is idempotent.
func (p *Publisher) Close() error {
	p.closeOnce.Do(func() {
		var leave func(context.Context) []error
		if p.joined != nil {
			leave = func(ctx context.Context) []error {
				var errs []error
				// Unpublish first: Janus 1.1 renegotiates subscribers by
				// itself (autoupdate) after an unpublish, not after a bare
				// leave.
				if err := p.vr.Unpublish(ctx); err != nil && !notInRoom(err) {
					errs = append(errs, err)
				}
				if err := p.vr.Leave(ctx); err != nil && !notInRoom(err) {
					errs = append(errs, err)
				}
				return errs
			}
		}
		if err := closePeer(p.vr.Handle, p.peer, leave); err != nil {
			p.closeErr = fmt.Errorf("janus: close publisher: %w", err)
		}
	})
	return p.closeErr
}

// notInRoom reports the errors of leaving a room we are no longer in (we
// left already, or the room is gone).
func notInRoom(err error) bool {
	var pe *PluginError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case VideoRoomErrJoinFirst, VideoRoomErrNoSuchRoom, VideoRoomErrNotPublished:
		return true
	}
	return false
}
