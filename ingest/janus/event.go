package janus

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Kinds of Janus API messages (the "janus" field), as far as a client sees
// them.
const (
	KindSuccess    = "success"   // synchronous reply
	KindAck        = "ack"       // request accepted; the reply follows as an event
	KindError      = "error"     // core error (see Error)
	KindEvent      = "event"     // plugin event, maybe the reply to a message
	KindKeepalive  = "keepalive" // long poll ended without events
	KindTimeout    = "timeout"   // the session timed out on the server
	KindWebRTCUp   = "webrtcup"  // the handle's PeerConnection is up
	KindMedia      = "media"     // media started or stopped flowing (Receiving)
	KindSlowLink   = "slowlink"  // the server sees loss (Uplink, Lost)
	KindHangup     = "hangup"    // the PeerConnection is gone (Reason)
	KindDetached   = "detached"  // the handle is gone
	KindTrickle    = "trickle"   // a candidate from the server (full trickle only)
	KindServerInfo = "server_info"
)

// Event is one message from Janus: a reply to a request, or something that
// happened on a session or handle. Only the fields of its Kind are set.
type Event struct {
	// Kind is the "janus" field: one of the Kind* constants.
	Kind        string `json:"janus"`
	SessionID   uint64 `json:"session_id,omitempty"`
	Sender      uint64 `json:"sender,omitempty"` // handle the event belongs to
	Transaction string `json:"transaction,omitempty"`

	// Data is set on "success" replies of core requests (e.g. {"id":...}).
	Data json.RawMessage `json:"data,omitempty"`
	// PluginData is set on plugin replies and events.
	PluginData *PluginData `json:"plugindata,omitempty"`
	// JSEP carries an SDP offer or answer, when the event has one.
	JSEP *JSEP `json:"jsep,omitempty"`
	// Error is set when Kind is "error".
	Error *Error `json:"error,omitempty"`

	// Type is the media kind of a "media" event ("audio", "video").
	Type string `json:"type,omitempty"`
	// Media is the media kind of a "slowlink" event.
	Media string `json:"media,omitempty"`
	// Mid is the m-line a "media" or "slowlink" event is about.
	Mid string `json:"mid,omitempty"`
	// Receiving tells, on "media" events, whether media now flows.
	Receiving *bool `json:"receiving,omitempty"`
	// Uplink tells, on "slowlink" events, whether the loss is on what Janus receives.
	Uplink *bool `json:"uplink,omitempty"`
	// Lost is the number of lost packets a "slowlink" event reports.
	Lost int64 `json:"lost,omitempty"`
	// Reason says why a "hangup" happened.
	Reason string `json:"reason,omitempty"`
	// Candidate is the ICE candidate of a "trickle" event.
	Candidate json.RawMessage `json:"candidate,omitempty"`
}

// PluginData is the plugin part of a reply or event.
type PluginData struct {
	Plugin string          `json:"plugin"`
	Data   json.RawMessage `json:"data"`
}

// JSEP is an SDP offer or answer as Janus carries it.
type JSEP struct {
	Type string `json:"type"` // "offer" or "answer"
	SDP  string `json:"sdp"`
	// Trickle false tells Janus that the SDP already holds every candidate.
	Trickle *bool `json:"trickle,omitempty"`
}

// ParseEvents parses the body of a long-poll response, which is one JSON
// object (maxev=1) or an array of them. Elements that are not valid events
// are skipped and reported together in the error, so one bad event does not
// hide the good ones. It never panics.
func ParseEvents(body []byte) ([]*Event, error) {
	events, _, err := parseEvents(body)
	return events, err
}

// parseEvents is ParseEvents that also counts the elements it skipped.
func parseEvents(body []byte) (events []*Event, bad int, err error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, 1, errors.New("janus: empty event body")
	}
	var raws []json.RawMessage
	if body[0] == '[' {
		if err := json.Unmarshal(body, &raws); err != nil {
			return nil, 1, fmt.Errorf("janus: parse events: %w", err)
		}
	} else {
		raws = []json.RawMessage{body}
	}
	events = make([]*Event, 0, len(raws))
	var errs []error
	for i, raw := range raws {
		ev, err := ParseEvent(raw)
		if err != nil {
			errs = append(errs, fmt.Errorf("event %d: %w", i, err))
			continue
		}
		events = append(events, ev)
	}
	return events, len(errs), errors.Join(errs...)
}

// ParseEvent parses one Janus message. It fails on invalid JSON and on a
// message without a "janus" kind.
func ParseEvent(b []byte) (*Event, error) {
	var ev Event
	if err := json.Unmarshal(b, &ev); err != nil {
		return nil, fmt.Errorf("janus: parse event: %w", err)
	}
	if ev.Kind == "" {
		return nil, errors.New(`janus: parse event: no "janus" field`)
	}
	return &ev, nil
}

// pluginError extracts a plugin-level error ("error_code"/"error" inside
// plugindata.data), which Janus reports as a normal success or event.
func (e *Event) pluginError() error {
	if e.PluginData == nil || len(e.PluginData.Data) == 0 {
		return nil
	}
	var pe struct {
		Code   int    `json:"error_code"`
		Reason string `json:"error"`
	}
	if json.Unmarshal(e.PluginData.Data, &pe) != nil || pe.Code == 0 && pe.Reason == "" {
		return nil
	}
	return &PluginError{Plugin: e.PluginData.Plugin, Code: pe.Code, Reason: pe.Reason}
}

// Core error codes (janus/apierror.h) that callers act on.
const (
	CodeUnauthorized       = 403
	CodeUnauthorizedPlugin = 405
	CodeTransportSpecific  = 450
	CodeMissingRequest     = 452
	CodeUnknownRequest     = 453
	CodeInvalidJSON        = 454
	CodeInvalidJSONObject  = 455
	CodeMissingMandatory   = 456
	CodeInvalidRequestPath = 457
	CodeSessionNotFound    = 458
	CodeHandleNotFound     = 459
	CodePluginNotFound     = 460
	CodePluginAttach       = 461
	CodePluginMessage      = 462
	CodePluginDetach       = 463
	CodeJSEPUnknownType    = 464
	CodeJSEPInvalidSDP     = 465
	CodeTrickleInvalid     = 466
	CodeInvalidElementType = 467
	CodeSessionConflict    = 468
	CodeUnexpectedAnswer   = 469
	CodeTokenNotFound      = 470
	CodeWebRTCState        = 471
	CodeNotAccepting       = 472
	CodeUnknown            = 490
)

// Sentinel errors, matched with errors.Is.
var (
	// ErrSessionGone: the server no longer knows the session (it timed out,
	// was destroyed, or Janus restarted). Create a new session.
	ErrSessionGone = errors.New("janus: session gone")
	// ErrHandleGone: the server no longer knows the handle.
	ErrHandleGone = errors.New("janus: handle gone")
	// ErrClosed: the session or handle was closed by this client.
	ErrClosed = errors.New("janus: closed")
)

// Error is an error the Janus core returned ({"janus":"error"}).
type Error struct {
	Code   int    `json:"code"`
	Reason string `json:"reason"`
}

// Error implements error.
func (e *Error) Error() string { return fmt.Sprintf("janus error %d: %s", e.Code, e.Reason) }

// Is maps session and handle errors to ErrSessionGone and ErrHandleGone.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrSessionGone:
		return e.Code == CodeSessionNotFound
	case ErrHandleGone:
		return e.Code == CodeHandleNotFound
	}
	return false
}

// PluginError is an error a plugin returned inside its data
// ("error_code" and "error"), e.g. VideoRoom 426 "No such room".
type PluginError struct {
	Plugin string
	Code   int
	Reason string
}

// Error implements error.
func (e *PluginError) Error() string {
	return fmt.Sprintf("janus %s error %d: %s", e.Plugin, e.Code, e.Reason)
}
