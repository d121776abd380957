// Package webrtcbench measures the recorder over the real WebRTC receive
// path: a publisher process sends Opus over DTLS-SRTP to a receiver process
// on loopback, and the receiver records every track with the bots' own code
// (janus.NewAPI's pion configuration, ingest.RunTrackLoop driving a
// record.Track, live chunks sealed into audio.chunk events, Ogg segments
// hashed as the spool hashes them). The benchmark measures the receiver's
// CPU time alone, so the figure is how many such tracks one fully used
// core sustains.
//
// Everything stays on 127.0.0.1: ICE gathers host candidates on loopback
// only, and signaling is plain HTTP on a loopback port.
package webrtcbench

import (
	"fmt"
	"strings"

	"github.com/pion/webrtc/v4"

	"github.com/earshot/earshot/ingest/janus"
)

// NewLoopbackAPI returns the bots' pion API (janus.NewAPI, configured by
// cfg as the ingest stage configures it) with ICE limited to the loopback
// interface: UDP over IPv4 only, so every candidate is on 127.0.0.1.
func NewLoopbackAPI(cfg janus.WebRTCConfig) (*webrtc.API, error) {
	cfg.Interface, cfg.AnyInterface = "lo", false
	api, err := janus.NewAPI(cfg)
	if err != nil {
		return nil, fmt.Errorf("webrtcbench: %w", err)
	}
	return api, nil
}

// CheckLoopbackSDP returns an error unless every ICE candidate in sdp is a
// UDP host candidate on 127.0.0.1: both sides refuse a description that
// could send media anywhere else.
func CheckLoopbackSDP(sdp string) error {
	n := 0
	for _, line := range strings.Split(sdp, "\n") {
		c, ok := strings.CutPrefix(strings.TrimSpace(line), "a=candidate:")
		if !ok {
			continue
		}
		// foundation component transport priority address port typ type ...
		f := strings.Fields(c)
		if len(f) < 8 || !strings.EqualFold(f[2], "udp") || f[4] != "127.0.0.1" || f[7] != "host" {
			return fmt.Errorf("webrtcbench: candidate %q is not a UDP host candidate on 127.0.0.1", c)
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("webrtcbench: no ICE candidate in the description")
	}
	return nil
}
