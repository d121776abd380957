package janus

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
)

// RemoteTrack is a track a Subscriber receives, with the publisher it
// comes from.
type RemoteTrack struct {
	// Track delivers the RTP packets (ReadRTP).
	Track *webrtc.TrackRemote
	// Receiver delivers the RTCP for the track (ReadRTCP); sender reports
	// map RTP timestamps to wall-clock time, so read them.
	Receiver *webrtc.RTPReceiver
	// Mid is the subscription's m-line; Stream the layout entry for it.
	Mid    string
	Stream Stream
}

// Feed is the publisher the track belongs to.
func (t *RemoteTrack) Feed() ID { return t.Stream.Feed }

// SubscriberConfig configures a multistream VideoRoom subscription.
type SubscriberConfig struct {
	// API builds the PeerConnection (see NewAPI). Required.
	API *webrtc.API
	// Room to subscribe in. Required.
	Room ID
	// PrivateID of our participant, for rooms that require one.
	PrivateID uint64
	// Streams to subscribe to at first (at least one); more can be added
	// with Update.
	Streams []StreamRef
	// OnTrack is called (on a pion goroutine) for every new track. It
	// should hand the track to a goroutine of its own and return.
	OnTrack func(*RemoteTrack)
	// OnEvent, when set, receives the subscriber handle's other events
	// (media, slowlink, hangup, plugin events) from the subscriber's
	// goroutine.
	OnEvent func(*Event)
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// Subscriber is one multistream subscription in a VideoRoom on one
// PeerConnection. It answers every offer Janus sends — the first one, those
// that follow Update, and those Janus sends on its own when a subscribed
// publisher unpublishes — and keeps the mid → feed layout current, so each
// track delivered to OnTrack names its publisher.
type Subscriber struct {
	cfg  SubscriberConfig
	vr   *VideoRoom
	peer *peer
	log  *slog.Logger

	negMu     sync.Mutex // one negotiation at a time
	mu        sync.Mutex
	streams   map[string]Stream // by subscriber mid
	trickled  bool
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// Subscribe attaches a VideoRoom handle, joins cfg.Room as a subscriber to
// cfg.Streams, answers Janus's offer and returns once the PeerConnection is
// up. Tracks arrive on cfg.OnTrack as their first packets do.
func Subscribe(ctx context.Context, s *Session, cfg SubscriberConfig) (_ *Subscriber, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	vr, err := AttachVideoRoom(ctx, s)
	if err != nil {
		return nil, fmt.Errorf("janus: subscribe: %w", err)
	}
	sub := &Subscriber{
		cfg:     cfg,
		vr:      vr,
		log:     cfg.Logger.With("component", "janus-subscriber"), // no room ID: callers log its pseudonym,
		streams: map[string]Stream{},
		done:    make(chan struct{}),
	}
	defer func() {
		if err != nil {
			_ = sub.Close()
			err = fmt.Errorf("janus: subscribe: %w", err)
		}
	}()
	if sub.peer, err = newPeer(cfg.API); err != nil {
		return nil, err
	}
	sub.peer.pc.OnTrack(sub.onTrack)
	began := time.Now()
	joined, offer, err := vr.JoinSubscriber(ctx, SubscriberJoin{Room: cfg.Room, PrivateID: cfg.PrivateID, Streams: cfg.Streams})
	if err != nil {
		return nil, err
	}
	sub.log.Debug("subscription: joined, offer received", "took", time.Since(began))
	if err := sub.negotiate(ctx, joined, offer); err != nil {
		return nil, err
	}
	sub.log.Debug("subscription: answered", "took", time.Since(began))
	sub.peer.handleEvents(vr.Handle, sub.onEvent)
	go func() {
		// The event goroutine ends when the handle closes.
		sub.peer.wg.Wait()
		close(sub.done)
	}()
	if err := sub.peer.waitConnected(ctx); err != nil {
		return nil, err
	}
	sub.log.Debug("subscription: connected (ICE, DTLS)", "took", time.Since(began))
	if err := sub.peer.waitUp(ctx); err != nil {
		return nil, err
	}
	sub.log.Debug("subscription: webrtcup", "took", time.Since(began))
	return sub, nil
}

// negotiate applies a layout and answers an offer from Janus.
func (s *Subscriber) negotiate(ctx context.Context, layout *VideoRoomEvent, offer *JSEP) error {
	s.negMu.Lock()
	defer s.negMu.Unlock()
	// The layout must be known before the remote description is applied:
	// OnTrack looks tracks up by mid.
	if layout != nil && layout.Streams != nil {
		s.setStreams(layout.Streams)
	}
	if offer == nil {
		return nil
	}
	sdp, parked := parkInactive(offer.SDP)
	answer, err := AnswerGathered(ctx, s.peer.pc, &JSEP{Type: offer.Type, SDP: sdp})
	if err != nil {
		return err
	}
	answer.SDP = answerParked(answer.SDP, parked)
	if err := s.vr.Start(ctx, answer); err != nil {
		return err
	}
	s.mu.Lock()
	first := !s.trickled
	s.trickled = true
	s.mu.Unlock()
	if first {
		return s.vr.TrickleComplete(ctx)
	}
	return nil
}

func (s *Subscriber) setStreams(streams []Stream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.streams = make(map[string]Stream, len(streams))
	for _, st := range streams {
		s.streams[st.Mid] = st
	}
}

func (s *Subscriber) onTrack(track *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
	mid := s.peer.mid(receiver)
	s.mu.Lock()
	st, ok := s.streams[mid]
	s.mu.Unlock()
	if !ok {
		s.log.Warn("janus: track for an m-line not in the layout", "mid", mid)
	}
	s.log.Debug("subscription: track", "mid", mid)
	deliverTrack(s.cfg.OnTrack, &RemoteTrack{Track: track, Receiver: receiver, Mid: mid, Stream: st})
}

// deliverTrack hands a track to onTrack, or drains it when nobody reads
// (pion's buffers would fill).
func deliverTrack(onTrack func(*RemoteTrack), t *RemoteTrack) {
	if onTrack != nil {
		onTrack(t)
		return
	}
	go func() {
		for {
			if _, _, err := t.Track.ReadRTP(); err != nil {
				return
			}
		}
	}()
}

// onEvent answers offers Janus sends on its own and forwards other events.
func (s *Subscriber) onEvent(ev *Event) {
	if ev.JSEP != nil && ev.JSEP.Type == "offer" {
		s.log.Debug("subscription: offer event")
		layout, _ := ev.VideoRoom()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := s.negotiate(ctx, layout, ev.JSEP)
		cancel()
		if err != nil {
			s.log.Warn("janus: renegotiation failed", "err", err)
		}
		return
	}
	if layout, err := ev.VideoRoom(); err == nil && layout.Kind == "updated" && layout.Streams != nil {
		s.setStreams(layout.Streams)
	}
	if s.cfg.OnEvent != nil {
		s.cfg.OnEvent(ev)
	}
}

// Update adds and removes streams. When Janus answers with an offer right
// away it is negotiated before Update returns; when Janus postpones it
// ("updating"), the offer is negotiated when it arrives, so the layout
// (Streams) may change after Update returns.
func (s *Subscriber) Update(ctx context.Context, add, remove []StreamRef) error {
	if len(add) == 0 && len(remove) == 0 {
		return nil
	}
	began := time.Now()
	layout, offer, err := s.vr.Update(ctx, add, remove)
	if err != nil {
		return fmt.Errorf("janus: subscriber update: %w", err)
	}
	s.log.Debug("subscription: update answered", "offer", offer != nil, "took", time.Since(began))
	if err := s.negotiate(ctx, layout, offer); err != nil {
		return fmt.Errorf("janus: subscriber update: %w", err)
	}
	s.log.Debug("subscription: update negotiated", "took", time.Since(began))
	return nil
}

// RemoveFeeds unsubscribes every m-line that carries one of feeds, naming
// the m-lines (sub_mid) rather than the feeds: after a publisher leaves
// without unpublishing, Janus 1.1 no longer finds it by feed ID, answers an
// unsubscribe by feed with an empty "updated" and keeps the m-line.
func (s *Subscriber) RemoveFeeds(ctx context.Context, feeds ...ID) error {
	want := make(map[ID]bool, len(feeds))
	for _, f := range feeds {
		want[f] = true
	}
	var refs []StreamRef
	for _, st := range s.Streams() {
		if want[st.Feed] && (st.Active == nil || *st.Active) {
			refs = append(refs, StreamRef{SubMid: st.Mid})
		}
	}
	return s.Update(ctx, nil, refs)
}

// Streams returns the current subscription layout.
func (s *Subscriber) Streams() []Stream {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Stream, 0, len(s.streams))
	for _, st := range s.streams {
		out = append(out, st)
	}
	return out
}

// Done is closed when the subscription's handle is gone (detached, session
// ended, or Close).
func (s *Subscriber) Done() <-chan struct{} { return s.done }

// PeerConnection exposes the PeerConnection (stats, state).
func (s *Subscriber) PeerConnection() *webrtc.PeerConnection { return s.peer.pc }

// Close detaches the handle (ending the subscription) and closes the
// PeerConnection, which ends every track. It is idempotent. Do not call it
// from OnEvent.
func (s *Subscriber) Close() error {
	s.closeOnce.Do(func() {
		if err := closePeer(s.vr.Handle, s.peer, nil); err != nil {
			s.closeErr = fmt.Errorf("janus: close subscriber: %w", err)
		}
	})
	return s.closeErr
}

// parkInactive rewrites the offer's inactive audio m-lines as sendonly
// (without streams, so nothing is expected on them) and returns their
// mids. Why: Janus marks a subscription's m-line inactive when its
// publisher leaves and later recycles it for the next publisher, and pion
// (v4.2) stops a transceiver's receiver each time an offer has its m-line
// inactive and replaces a stopped receiver only when it had a track: after
// two offers with the m-line inactive (two publishers leaving one after
// the other), the recycled m-line's receiver is closed for good and the
// next publisher on it is never delivered. A sendonly m-line without
// streams leaves pion's receiver fresh and ready for the recycled stream.
func parkInactive(sdp string) (string, map[string]bool) {
	lines := strings.Split(sdp, "\r\n")
	parked := map[string]bool{}
	sdpSections(lines, func(sec []string) {
		mid := sdpMid(sec)
		if mid == "" || !strings.HasPrefix(sec[0], "m=audio ") || strings.HasPrefix(sec[0], "m=audio 0 ") {
			return
		}
		for i, l := range sec {
			if l == "a=inactive" {
				sec[i] = "a=sendonly"
				parked[mid] = true
			}
		}
	})
	return strings.Join(lines, "\r\n"), parked
}

// answerParked marks the parked m-lines inactive again in the answer sent
// to Janus, as an answer to an inactive m-line must be.
func answerParked(sdp string, parked map[string]bool) string {
	if len(parked) == 0 {
		return sdp
	}
	lines := strings.Split(sdp, "\r\n")
	sdpSections(lines, func(sec []string) {
		if !parked[sdpMid(sec)] {
			return
		}
		for i, l := range sec {
			switch l {
			case "a=recvonly", "a=sendrecv", "a=sendonly":
				sec[i] = "a=inactive"
			}
		}
	})
	return strings.Join(lines, "\r\n")
}

// sdpSections calls fn with each media section of an SDP's lines (a
// sub-slice: fn may rewrite lines in place).
func sdpSections(lines []string, fn func(sec []string)) {
	start := -1
	for i, l := range lines {
		if strings.HasPrefix(l, "m=") {
			if start >= 0 {
				fn(lines[start:i])
			}
			start = i
		}
	}
	if start >= 0 {
		fn(lines[start:])
	}
}

// sdpMid is a media section's mid ("" if none).
func sdpMid(sec []string) string {
	for _, l := range sec {
		if v, ok := strings.CutPrefix(l, "a=mid:"); ok {
			return v
		}
	}
	return ""
}
