package janus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// PluginAudioBridge is the AudioBridge plugin's package name.
const PluginAudioBridge = "janus.plugin.audiobridge"

// AudioBridge error codes (janus_audiobridge.c) callers act on.
const (
	AudioBridgeErrNoSuchRoom    = 485
	AudioBridgeErrNotJoined     = 487
	AudioBridgeErrUnauthorized  = 489
	AudioBridgeErrIDExists      = 490
	AudioBridgeErrAlreadyJoined = 491
)

// AudioBridge is a handle attached to the AudioBridge plugin, which mixes
// every participant into one stream per listener.
type AudioBridge struct {
	*Handle
}

// AttachAudioBridge attaches a new AudioBridge handle to the session.
func AttachAudioBridge(ctx context.Context, s *Session) (*AudioBridge, error) {
	h, err := s.Attach(ctx, PluginAudioBridge)
	if err != nil {
		return nil, err
	}
	return &AudioBridge{Handle: h}, nil
}

// AudioRoom is one entry of the AudioBridge list.
type AudioRoom struct {
	Room            ID     `json:"room"`
	Description     string `json:"description"`
	PinRequired     bool   `json:"pin_required"`
	SamplingRate    int    `json:"sampling_rate"`
	SpatialAudio    bool   `json:"spatial_audio"`
	Record          bool   `json:"record"`
	Muted           bool   `json:"muted"`
	NumParticipants int    `json:"num_participants"`
}

// AudioParticipant is an AudioBridge participant.
type AudioParticipant struct {
	ID        ID     `json:"id"`
	Display   string `json:"display,omitempty"`
	Setup     bool   `json:"setup"`
	Muted     bool   `json:"muted"`
	Suspended bool   `json:"suspended,omitempty"`
	Talking   bool   `json:"talking,omitempty"`
}

// AudioBridgeEvent is the AudioBridge plugin's part of a reply or event
// ("joined", "event", "left", "participants", "success", "talking",
// "destroyed", ...).
type AudioBridgeEvent struct {
	Kind         string             `json:"audiobridge"`
	Room         ID                 `json:"room"`
	ID           ID                 `json:"id"`
	Display      string             `json:"display,omitempty"`
	Participants []AudioParticipant `json:"participants,omitempty"`
	// Leaving is the participant that left.
	Leaving *ID    `json:"leaving,omitempty"`
	Result  string `json:"result,omitempty"`
	// List answers "list" (Janus 1.1 names it "list"; newer docs "rooms").
	List  []AudioRoom `json:"list,omitempty"`
	Rooms []AudioRoom `json:"rooms,omitempty"`

	ErrorCode int    `json:"error_code,omitempty"`
	Error     string `json:"error,omitempty"`
}

// ParseAudioBridgeEvent parses AudioBridge plugin data. It never panics.
func ParseAudioBridgeEvent(data []byte) (*AudioBridgeEvent, error) {
	var e AudioBridgeEvent
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("janus: parse audiobridge event: %w", err)
	}
	if e.Kind == "" {
		return nil, errors.New(`janus: parse audiobridge event: no "audiobridge" field`)
	}
	return &e, nil
}

// AudioBridge returns the event's AudioBridge data, or an error when the
// event carries none.
func (e *Event) AudioBridge() (*AudioBridgeEvent, error) {
	if e.PluginData == nil || e.PluginData.Plugin != PluginAudioBridge {
		return nil, fmt.Errorf("janus: %q event has no audiobridge data", e.Kind)
	}
	return ParseAudioBridgeEvent(e.PluginData.Data)
}

func (a *AudioBridge) call(ctx context.Context, op string, body any, jsep *JSEP) (*AudioBridgeEvent, *JSEP, error) {
	ev, err := a.Message(ctx, body, jsep)
	if err != nil {
		return nil, nil, fmt.Errorf("audiobridge %s: %w", op, err)
	}
	ab, err := ev.AudioBridge()
	if err != nil {
		return nil, nil, fmt.Errorf("audiobridge %s: %w", op, err)
	}
	return ab, ev.JSEP, nil
}

// List returns the public AudioBridge rooms.
func (a *AudioBridge) List(ctx context.Context) ([]AudioRoom, error) {
	ab, _, err := a.call(ctx, "list", map[string]any{"request": "list"}, nil)
	if err != nil {
		return nil, err
	}
	if len(ab.List) > 0 {
		return ab.List, nil
	}
	return ab.Rooms, nil
}

// ListParticipants returns a room's participants.
func (a *AudioBridge) ListParticipants(ctx context.Context, room ID) ([]AudioParticipant, error) {
	ab, _, err := a.call(ctx, "listparticipants", map[string]any{"request": "listparticipants", "room": room}, nil)
	if err != nil {
		return nil, err
	}
	return ab.Participants, nil
}

// AudioBridgeJoin is an AudioBridge join request.
type AudioBridgeJoin struct {
	Room    ID     `json:"room"`
	ID      ID     `json:"id,omitzero"`
	Display string `json:"display,omitempty"`
	PIN     string `json:"pin,omitempty"`
	Token   string `json:"token,omitempty"`
	// Muted joins without contributing to the mix: a listener.
	Muted bool `json:"muted"`
}

// Join joins a room. The reply ("joined") lists the other participants.
// Negotiate media afterwards with Configure.
func (a *AudioBridge) Join(ctx context.Context, j AudioBridgeJoin) (*AudioBridgeEvent, error) {
	body := struct {
		Request string `json:"request"`
		AudioBridgeJoin
	}{"join", j}
	ab, _, err := a.call(ctx, "join", body, nil)
	if err != nil {
		return nil, err
	}
	if ab.Kind != "joined" {
		return nil, fmt.Errorf("audiobridge join: unexpected %q reply", ab.Kind)
	}
	return ab, nil
}

// Configure changes our participation (muted) and, with an SDP offer,
// negotiates media: the reply then carries Janus's answer.
func (a *AudioBridge) Configure(ctx context.Context, muted bool, offer *JSEP) (*JSEP, error) {
	_, answer, err := a.call(ctx, "configure", map[string]any{"request": "configure", "muted": muted}, offer)
	if err != nil {
		return nil, err
	}
	if offer != nil && (answer == nil || answer.Type != "answer") {
		return nil, errors.New("audiobridge configure: reply has no SDP answer")
	}
	return answer, nil
}

// Leave leaves the room.
func (a *AudioBridge) Leave(ctx context.Context) error {
	_, _, err := a.call(ctx, "leave", map[string]any{"request": "leave"}, nil)
	return err
}

// AudioBridgeConfig configures an AudioBridge participant with media.
type AudioBridgeConfig struct {
	// API builds the PeerConnection (see NewAPI). Required.
	API *webrtc.API
	// Room to join. Required.
	Room    ID
	ID      ID
	Display string
	// Send adds an Opus track written with WriteRTP; without it the
	// participant only receives the mix (a listener) and joins muted.
	Send bool
	// OnTrack receives the room's mix (one audio track; Stream.Feed is
	// zero: the speaker is the mix).
	OnTrack func(*RemoteTrack)
	// OnEvent, when set, receives the handle's events (participants
	// joining, leaving, muting; webrtcup; hangup).
	OnEvent func(*Event)
}

// AudioBridgeParticipant is a joined AudioBridge participant with a
// PeerConnection: a muted listener that records the mix, or (Send) a
// talker.
type AudioBridgeParticipant struct {
	ab     *AudioBridge
	peer   *peer
	track  *webrtc.TrackLocalStaticRTP
	joined *AudioBridgeEvent

	closeOnce sync.Once
	closeErr  error
}

// JoinAudioBridge attaches an AudioBridge handle, joins cfg.Room (muted
// unless cfg.Send), negotiates an Opus PeerConnection and returns once it
// is up on both sides.
func JoinAudioBridge(ctx context.Context, s *Session, cfg AudioBridgeConfig) (_ *AudioBridgeParticipant, err error) {
	ab, err := AttachAudioBridge(ctx, s)
	if err != nil {
		return nil, fmt.Errorf("janus: audiobridge: %w", err)
	}
	p := &AudioBridgeParticipant{ab: ab}
	defer func() {
		if err != nil {
			_ = p.Close()
			err = fmt.Errorf("janus: audiobridge: %w", err)
		}
	}()
	if p.peer, err = newPeer(cfg.API); err != nil {
		return nil, err
	}
	muted := !cfg.Send
	if p.joined, err = ab.Join(ctx, AudioBridgeJoin{Room: cfg.Room, ID: cfg.ID, Display: cfg.Display, Muted: muted}); err != nil {
		return nil, err
	}
	p.peer.handleEvents(ab.Handle, cfg.OnEvent)
	p.peer.pc.OnTrack(func(track *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
		mid := p.peer.mid(receiver)
		deliverTrack(cfg.OnTrack, &RemoteTrack{Track: track, Receiver: receiver, Mid: mid, Stream: Stream{Mid: mid, Type: "audio"}})
	})
	if cfg.Send {
		if p.track, err = p.peer.addSendTrack(webrtc.RTPTransceiverDirectionSendrecv); err != nil {
			return nil, err
		}
	} else if _, err = p.peer.pc.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio,
		webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		return nil, fmt.Errorf("transceiver: %w", err)
	}
	offer, err := OfferGathered(ctx, p.peer.pc)
	if err != nil {
		return nil, err
	}
	answer, err := ab.Configure(ctx, muted, offer)
	if err != nil {
		return nil, err
	}
	if err := SetRemoteAnswer(p.peer.pc, answer); err != nil {
		return nil, err
	}
	if err := ab.TrickleComplete(ctx); err != nil {
		return nil, err
	}
	if err := p.peer.waitUp(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// ID is our participant ID in the room.
func (p *AudioBridgeParticipant) ID() ID { return p.joined.ID }

// Joined is the room's "joined" reply, with the other participants.
func (p *AudioBridgeParticipant) Joined() *AudioBridgeEvent { return p.joined }

// AudioBridge is the participant's handle, for requests such as
// ListParticipants.
func (p *AudioBridgeParticipant) AudioBridge() *AudioBridge { return p.ab }

// WriteRTP sends one RTP packet (only with AudioBridgeConfig.Send).
func (p *AudioBridgeParticipant) WriteRTP(pkt *rtp.Packet) error {
	if p.track == nil {
		return errors.New("janus: audiobridge: participant does not send")
	}
	return p.track.WriteRTP(pkt)
}

// Close leaves the room, detaches the handle and closes the PeerConnection.
// It is idempotent.
func (p *AudioBridgeParticipant) Close() error {
	p.closeOnce.Do(func() {
		var leave func(context.Context) []error
		if p.joined != nil {
			leave = func(ctx context.Context) []error {
				var pe *PluginError
				if err := p.ab.Leave(ctx); err != nil &&
					!(errors.As(err, &pe) && (pe.Code == AudioBridgeErrNotJoined || pe.Code == AudioBridgeErrNoSuchRoom)) {
					return []error{err}
				}
				return nil
			}
		}
		if err := closePeer(p.ab.Handle, p.peer, leave); err != nil {
			p.closeErr = fmt.Errorf("janus: close audiobridge participant: %w", err)
		}
	})
	return p.closeErr
}
