// Package webrtcbench measures the recorder over the real WebRTC receive
// path: a publisher process sends Opus over DTLS-SRTP to a receiver process
// on loopback, and the receiver records every track as a listener bot does
// (pion's TrackRemote.ReadRTP, record.Track Push and Tick, live chunks
// sealed into audio.chunk events, Ogg segments hashed as the spool hashes
// them). The benchmark measures the receiver's CPU time alone, so the
// figure is how many such tracks one fully used core sustains.
//
// Everything stays on 127.0.0.1: ICE gathers host candidates on loopback
// only, and signaling is plain HTTP on a loopback port.
package webrtcbench

import (
	"fmt"
	"net"
	"strings"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"

	"github.com/earshot/earshot/ingest/janus"
)

// NewLoopbackAPI returns a pion API configured as the bots' (janus.NewAPI:
// Opus only, pion's default interceptors, UDP over IPv4, no mDNS) but with
// ICE limited to 127.0.0.1. pion leaves loopback out of its candidates
// unless told otherwise, so the loopback candidate is included explicitly.
//
// lean replaces pion's default interceptors with the two a listener needs
// (NACK generation for loss recovery, RTCP receiver reports), leaving out
// TWCC feedback and the stats interceptor: an experiment, since the bots
// use the defaults today.
func NewLoopbackAPI(lean bool) (*webrtc.API, error) {
	me := &webrtc.MediaEngine{}
	if err := me.RegisterCodec(janus.OpusCodec, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, fmt.Errorf("webrtcbench: register opus: %w", err)
	}
	ir := &interceptor.Registry{}
	configure := webrtc.RegisterDefaultInterceptors
	if lean {
		configure = func(me *webrtc.MediaEngine, ir *interceptor.Registry) error {
			if err := webrtc.ConfigureNack(me, ir); err != nil {
				return err
			}
			return webrtc.ConfigureRTCPReports(ir)
		}
	}
	if err := configure(me, ir); err != nil {
		return nil, fmt.Errorf("webrtcbench: interceptors: %w", err)
	}
	se := webrtc.SettingEngine{}
	lo := net.IPv4(127, 0, 0, 1)
	se.SetIPFilter(func(ip net.IP) bool { return ip.Equal(lo) })
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
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
