package janus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// PluginVideoRoom is the VideoRoom plugin's package name.
const PluginVideoRoom = "janus.plugin.videoroom"

// VideoRoom error codes (janus_videoroom.c) callers act on.
const (
	VideoRoomErrNoSuchRoom     = 426
	VideoRoomErrNoSuchFeed     = 428
	VideoRoomErrAlreadyJoined  = 425
	VideoRoomErrJoinFirst      = 424
	VideoRoomErrPublishersFull = 432
	VideoRoomErrUnauthorized   = 433
	VideoRoomErrNotPublished   = 435
	VideoRoomErrIDExists       = 436
)

// VideoRoom is a handle attached to the VideoRoom plugin. One handle plays
// one role: a publisher (participant) or a subscriber.
type VideoRoom struct {
	*Handle
}

// AttachVideoRoom attaches a new VideoRoom handle to the session.
func AttachVideoRoom(ctx context.Context, s *Session) (*VideoRoom, error) {
	h, err := s.Attach(ctx, PluginVideoRoom)
	if err != nil {
		return nil, err
	}
	return &VideoRoom{Handle: h}, nil
}

// Room is one entry of the VideoRoom list.
type Room struct {
	Room            ID     `json:"room"`
	Description     string `json:"description"`
	PinRequired     bool   `json:"pin_required"`
	IsPrivate       bool   `json:"is_private"`
	MaxPublishers   int    `json:"max_publishers"`
	Bitrate         int64  `json:"bitrate"`
	AudioCodec      string `json:"audiocodec"`
	VideoCodec      string `json:"videocodec"`
	Record          bool   `json:"record"`
	RequirePvtID    bool   `json:"require_pvtid"`
	NotifyJoining   bool   `json:"notify_joining"`
	NumParticipants int    `json:"num_participants"`
	// Metadata is whatever the room's creator attached, if the server
	// exposes it.
	Metadata json.RawMessage `json:"metadata,omitempty"`
}

// Participant is one entry of listparticipants, or an attendee.
type Participant struct {
	ID        ID              `json:"id"`
	Display   string          `json:"display,omitempty"`
	Metadata  json.RawMessage `json:"metadata,omitempty"`
	Publisher bool            `json:"publisher"`
	Talking   bool            `json:"talking"`
}

// PublisherInfo is an active publisher as the room announces it.
type PublisherInfo struct {
	ID       ID                `json:"id"`
	Display  string            `json:"display,omitempty"`
	Metadata json.RawMessage   `json:"metadata,omitempty"`
	Dummy    bool              `json:"dummy,omitempty"`
	Streams  []PublishedStream `json:"streams,omitempty"`
	Talking  bool              `json:"talking,omitempty"`
}

// PublishedStream is one m-line of a publisher.
type PublishedStream struct {
	Type        string `json:"type"` // audio, video, data
	MIndex      int    `json:"mindex"`
	Mid         string `json:"mid"`
	Disabled    bool   `json:"disabled,omitempty"`
	Codec       string `json:"codec,omitempty"`
	Description string `json:"description,omitempty"`
	Moderated   bool   `json:"moderated,omitempty"`
	Talking     bool   `json:"talking,omitempty"`
}

// Stream is one m-line of a subscription, mapping the subscriber's mid to
// the publisher (feed) and its mid.
type Stream struct {
	MIndex      int    `json:"mindex"`
	Mid         string `json:"mid"`
	Type        string `json:"type"`
	Active      *bool  `json:"active,omitempty"`
	Feed        ID     `json:"feed_id"`
	FeedMid     string `json:"feed_mid,omitempty"`
	FeedDisplay string `json:"feed_display,omitempty"`
	Send        bool   `json:"send,omitempty"`
	Ready       bool   `json:"ready,omitempty"`
	Codec       string `json:"codec,omitempty"`
}

// StreamRef names streams in subscribe, unsubscribe and update requests:
// Feed alone means all of a publisher's streams, Feed+Mid one of them,
// SubMid (unsubscribe only) one m-line of the subscription.
type StreamRef struct {
	Feed   ID     `json:"feed,omitzero"`
	Mid    string `json:"mid,omitempty"`
	SubMid string `json:"sub_mid,omitempty"`
	// CrossRefID is echoed in the resulting Stream entries (subscribe only).
	CrossRefID string `json:"crossrefid,omitempty"`
}

// VideoRoomEvent is the VideoRoom plugin's part of a reply or event. Which
// fields are set depends on Kind ("joined", "event", "attached", "updated",
// "updating", "participants", "success", "destroyed", "talking", ...).
type VideoRoomEvent struct {
	Kind        string `json:"videoroom"`
	Room        ID     `json:"room"`
	Description string `json:"description,omitempty"`
	// ID and PrivateID are ours after "joined".
	ID        ID     `json:"id"`
	PrivateID uint64 `json:"private_id,omitempty"`
	Display   string `json:"display,omitempty"`

	// Publishers lists active publishers ("joined", and "event" when new
	// ones start publishing).
	Publishers []PublisherInfo `json:"publishers,omitempty"`
	Attendees  []Participant   `json:"attendees,omitempty"`
	Joining    *Participant    `json:"joining,omitempty"`
	// Leaving is a participant that left, or "ok" for our own leave.
	Leaving *ID `json:"leaving,omitempty"`
	// Unpublished is a publisher that stopped, or "ok" for our own unpublish.
	Unpublished *ID    `json:"unpublished,omitempty"`
	Kicked      *ID    `json:"kicked,omitempty"`
	Configured  string `json:"configured,omitempty"`
	Started     string `json:"started,omitempty"`
	Paused      string `json:"paused,omitempty"`
	Left        string `json:"left,omitempty"`

	// Streams is the subscription layout ("attached", "updated").
	Streams []Stream `json:"streams,omitempty"`

	// List and Participants answer list and listparticipants.
	List         []Room        `json:"list,omitempty"`
	Participants []Participant `json:"participants,omitempty"`
	Exists       *bool         `json:"exists,omitempty"`

	ErrorCode int    `json:"error_code,omitempty"`
	Error     string `json:"error,omitempty"`
}

// ParseVideoRoomEvent parses VideoRoom plugin data. It never panics.
func ParseVideoRoomEvent(data []byte) (*VideoRoomEvent, error) {
	var e VideoRoomEvent
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("janus: parse videoroom event: %w", err)
	}
	if e.Kind == "" {
		return nil, errors.New(`janus: parse videoroom event: no "videoroom" field`)
	}
	return &e, nil
}

// VideoRoom returns the event's VideoRoom data, or an error when the event
// carries none.
func (e *Event) VideoRoom() (*VideoRoomEvent, error) {
	if e.PluginData == nil || e.PluginData.Plugin != PluginVideoRoom {
		return nil, fmt.Errorf("janus: %q event has no videoroom data", e.Kind)
	}
	return ParseVideoRoomEvent(e.PluginData.Data)
}

// LeftSelf reports whether a "leaving" or "unpublished" value is the "ok"
// of our own request rather than another participant's ID.
func LeftSelf(id *ID) bool { return id != nil && id.IsString() && id.String() == "ok" }

// call sends a request and parses the VideoRoom part of the reply.
func (v *VideoRoom) call(ctx context.Context, op string, body any, jsep *JSEP) (*VideoRoomEvent, *JSEP, error) {
	ev, err := v.Message(ctx, body, jsep)
	if err != nil {
		return nil, nil, fmt.Errorf("videoroom %s: %w", op, err)
	}
	vr, err := ev.VideoRoom()
	if err != nil {
		return nil, nil, fmt.Errorf("videoroom %s: %w", op, err)
	}
	return vr, ev.JSEP, nil
}

// List returns the public rooms (and private ones when adminKey is right).
func (v *VideoRoom) List(ctx context.Context, adminKey string) ([]Room, error) {
	body := map[string]any{"request": "list"}
	if adminKey != "" {
		body["admin_key"] = adminKey
	}
	vr, _, err := v.call(ctx, "list", body, nil)
	if err != nil {
		return nil, err
	}
	return vr.List, nil
}

// Exists reports whether room exists.
func (v *VideoRoom) Exists(ctx context.Context, room ID) (bool, error) {
	vr, _, err := v.call(ctx, "exists", map[string]any{"request": "exists", "room": room}, nil)
	if err != nil {
		return false, err
	}
	return vr.Exists != nil && *vr.Exists, nil
}

// ListParticipants returns the room's participants (publishers, active or
// not; subscribers are not participants).
func (v *VideoRoom) ListParticipants(ctx context.Context, room ID) ([]Participant, error) {
	vr, _, err := v.call(ctx, "listparticipants", map[string]any{"request": "listparticipants", "room": room}, nil)
	if err != nil {
		return nil, err
	}
	return vr.Participants, nil
}

// PublisherJoin is the join request of a participant.
type PublisherJoin struct {
	Room ID `json:"room"`
	// ID registers a chosen participant ID; zero lets Janus pick one.
	ID       ID     `json:"id,omitzero"`
	Display  string `json:"display,omitempty"`
	PIN      string `json:"pin,omitempty"`
	Token    string `json:"token,omitempty"`
	Metadata any    `json:"metadata,omitempty"`
}

// Join joins a room as a participant. The handle then receives the room's
// notifications (new publishers, leaving, unpublished) on Events, whether
// or not it ever publishes. The reply ("joined") lists the active
// publishers and carries our ID and PrivateID.
func (v *VideoRoom) Join(ctx context.Context, j PublisherJoin) (*VideoRoomEvent, error) {
	body := struct {
		Request string `json:"request"`
		PType   string `json:"ptype"`
		PublisherJoin
	}{"join", "publisher", j}
	vr, _, err := v.call(ctx, "join", body, nil)
	if err != nil {
		return nil, err
	}
	if vr.Kind != "joined" {
		return nil, fmt.Errorf("videoroom join: unexpected %q reply", vr.Kind)
	}
	return vr, nil
}

// PublishOptions are the optional fields of a publish request.
type PublishOptions struct {
	AudioCodec string `json:"audiocodec,omitempty"`
	Bitrate    int64  `json:"bitrate,omitempty"`
	Display    string `json:"display,omitempty"`
}

// Publish sends the SDP offer of a joined participant and returns Janus's
// answer.
func (v *VideoRoom) Publish(ctx context.Context, offer *JSEP, opts PublishOptions) (*JSEP, error) {
	if offer == nil || offer.Type != "offer" {
		return nil, errors.New("videoroom publish: an SDP offer is required")
	}
	body := struct {
		Request string `json:"request"`
		PublishOptions
	}{"publish", opts}
	_, answer, err := v.call(ctx, "publish", body, offer)
	if err != nil {
		return nil, err
	}
	if answer == nil || answer.Type != "answer" {
		return nil, errors.New("videoroom publish: reply has no SDP answer")
	}
	return answer, nil
}

// Unpublish stops publishing but stays in the room.
func (v *VideoRoom) Unpublish(ctx context.Context) error {
	_, _, err := v.call(ctx, "unpublish", map[string]any{"request": "unpublish"}, nil)
	return err
}

// Leave leaves the room (unpublishing first if needed).
func (v *VideoRoom) Leave(ctx context.Context) error {
	_, _, err := v.call(ctx, "leave", map[string]any{"request": "leave"}, nil)
	return err
}

// SubscriberJoin is the join request of a (multistream) subscriber.
type SubscriberJoin struct {
	Room ID `json:"room"`
	// PrivateID associates the subscription with our participant (needed
	// in rooms with require_pvtid).
	PrivateID uint64 `json:"private_id,omitempty"`
	// Streams to subscribe to; at least one.
	Streams []StreamRef `json:"streams"`
	// UseMSID asks for msid attributes that reference the publisher.
	UseMSID bool `json:"use_msid,omitempty"`
	// NoAutoUpdate disables the offer Janus sends on its own when a
	// subscribed publisher leaves.
	NoAutoUpdate bool   `json:"-"`
	PIN          string `json:"pin,omitempty"`
}

// JoinSubscriber creates the subscription; the reply ("attached") carries
// the stream layout and Janus's SDP offer, to be answered with Start.
func (v *VideoRoom) JoinSubscriber(ctx context.Context, j SubscriberJoin) (*VideoRoomEvent, *JSEP, error) {
	if len(j.Streams) == 0 {
		return nil, nil, errors.New("videoroom join subscriber: no streams")
	}
	body := struct {
		Request    string `json:"request"`
		PType      string `json:"ptype"`
		AutoUpdate *bool  `json:"autoupdate,omitempty"`
		SubscriberJoin
	}{Request: "join", PType: "subscriber", SubscriberJoin: j}
	if j.NoAutoUpdate {
		f := false
		body.AutoUpdate = &f
	}
	vr, offer, err := v.call(ctx, "join subscriber", body, nil)
	if err != nil {
		return nil, nil, err
	}
	if offer == nil || offer.Type != "offer" {
		return nil, nil, fmt.Errorf("videoroom join subscriber: %q reply has no SDP offer", vr.Kind)
	}
	return vr, offer, nil
}

// Start answers a subscription offer (the first one or a renegotiation).
func (v *VideoRoom) Start(ctx context.Context, answer *JSEP) error {
	if answer == nil || answer.Type != "answer" {
		return errors.New("videoroom start: an SDP answer is required")
	}
	_, _, err := v.call(ctx, "start", map[string]any{"request": "start"}, answer)
	return err
}

// Update changes a subscription: subscribe to add, unsubscribe to remove
// (either may be empty). The reply is "updated" with a new offer and
// layout, "updated" without streams when the SDP does not change, or
// "updating" when Janus postponed it behind a renegotiation in progress
// (the offer then arrives later as an event on Events).
func (v *VideoRoom) Update(ctx context.Context, subscribe, unsubscribe []StreamRef) (*VideoRoomEvent, *JSEP, error) {
	body := map[string]any{"request": "update"}
	if len(subscribe) > 0 {
		body["subscribe"] = subscribe
	}
	if len(unsubscribe) > 0 {
		body["unsubscribe"] = unsubscribe
	}
	return v.call(ctx, "update", body, nil)
}
