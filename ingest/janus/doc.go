// Package janus is a client for the Janus WebRTC server's HTTP API
// (https://janus.conf.meetecho.com/docs/rest.html) and its VideoRoom and
// AudioBridge plugins, plus the pion/webrtc glue that listener and speaker
// bots need.
//
// The shape follows the Janus API itself:
//
//   - A [Client] talks to one server (Info, CreateSession).
//   - A [Session] owns a long-poll loop (GET /janus/<session>?maxev=N) and a
//     keepalive loop; Janus destroys sessions after 60 s without either.
//     Session.Done and Session.Err tell when and why it ended (destroyed,
//     timed out, server gone), so a supervisor can reconnect.
//   - A [Handle] is a plugin attachment. Handle.Message sends a plugin
//     request and returns its reply, whether Janus answers synchronously
//     ("success") or acknowledges and answers later with an event carrying
//     the same transaction. Everything else Janus sends for the handle
//     (webrtcup, media, hangup, plugin notifications) arrives on
//     Handle.Events, a bounded channel.
//   - [VideoRoom] and [AudioBridge] wrap a Handle with typed requests and
//     typed plugin events ([VideoRoomEvent], [AudioBridgeEvent]).
//   - [Publisher] and [Subscriber] run a pion PeerConnection against a
//     VideoRoom: one audio track out, or a multistream subscription whose
//     tracks arrive with the feed they belong to ([RemoteTrack]), with
//     renegotiation as feeds are added and removed.
//
// Parsing never panics on malformed input (fuzzed); Janus error responses
// become [*Error] (core) or [*PluginError] (plugin) values.
package janus
