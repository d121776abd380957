package janus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"
)

// OpusCodec is the audio codec bots negotiate with Janus: Opus at 48 kHz,
// in-band FEC allowed.
var OpusCodec = webrtc.RTPCodecParameters{
	RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType:    webrtc.MimeTypeOpus,
		ClockRate:   48000,
		Channels:    2,
		SDPFmtpLine: "minptime=10;useinbandfec=1",
	},
	PayloadType: 111,
}

// WebRTCConfig configures the pion API that bots use.
type WebRTCConfig struct {
	// Interface is the only network interface ICE may use, e.g. the host
	// end of the test bed's veth (esj0). Required unless AnyInterface.
	Interface string
	// AnyInterface lets ICE use every interface (production deployments
	// where Janus is reachable on the normal network).
	AnyInterface bool
	// ConfigureInterceptors replaces ListenerInterceptors when set, e.g.
	// with webrtc.RegisterDefaultInterceptors or to add a jitter buffer.
	ConfigureInterceptors func(*webrtc.MediaEngine, *interceptor.Registry) error
	// LoggerFactory receives pion's logs; nil uses pion's default.
	LoggerFactory logging.LoggerFactory
	// ReadInterval: UDP datagrams are read in batches at most this often
	// (0: DefaultReadInterval; negative: each datagram as it arrives, as
	// pion does by default). See DefaultReadInterval for why.
	ReadInterval time.Duration
}

// ListenerInterceptors registers what a bot needs on received audio: NACK
// (requests retransmission of lost packets, which the recorder's loss
// deadline leaves time for; answers them on a track we send) and RTCP
// sender and receiver reports. It leaves out two of pion's defaults that
// run on every received packet for nothing a bot uses: TWCC feedback (for
// a sender's bandwidth estimation; audio from Janus does not adapt to it)
// and the stats interceptor (GetStats; bots never call it).
//
// A first interceptor hands the others one reused Attributes map per Opus
// stream (see reuseAttributes).
func ListenerInterceptors(me *webrtc.MediaEngine, ir *interceptor.Registry) error {
	ir.Add(reuseAttributes{})
	if err := webrtc.ConfigureNack(me, ir); err != nil {
		return err
	}
	return webrtc.ConfigureRTCPReports(ir)
}

// NewAPI returns a pion API for talking to Janus: Opus only, UDP over IPv4
// only, no mDNS, and ICE limited to cfg.Interface. Offers and answers are
// exchanged complete (non-trickle), see OfferGathered and AnswerGathered.
func NewAPI(cfg WebRTCConfig) (*webrtc.API, error) {
	if cfg.Interface == "" && !cfg.AnyInterface {
		return nil, errors.New("janus: webrtc config: set Interface (e.g. esj0) or AnyInterface")
	}
	me := &webrtc.MediaEngine{}
	if err := me.RegisterCodec(OpusCodec, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, fmt.Errorf("janus: register opus: %w", err)
	}
	ir := &interceptor.Registry{}
	configure := cfg.ConfigureInterceptors
	if configure == nil {
		configure = ListenerInterceptors
	}
	if err := configure(me, ir); err != nil {
		return nil, fmt.Errorf("janus: interceptors: %w", err)
	}
	se := webrtc.SettingEngine{}
	if !cfg.AnyInterface {
		iface := cfg.Interface
		se.SetInterfaceFilter(func(name string) bool { return name == iface })
		// pion leaves loopback addresses out of its candidates unless
		// told otherwise; asking for the loopback interface (benchmarks,
		// tests) is telling it.
		se.SetIncludeLoopbackCandidate(iface == "lo")
	}
	interval := cfg.ReadInterval
	if interval == 0 {
		interval = DefaultReadInterval
	}
	if interval > 0 {
		n, err := newBatchNet(interval)
		if err != nil {
			return nil, err
		}
		se.SetNet(n)
	}
	// Answering (a bot's subscription answers Janus's offer), take the
	// DTLS server role: Janus then sends the first DTLS flight once its
	// own ICE is ready. As client, pion's ClientHello can reach Janus
	// before Janus considers the pair usable, and is dropped; pion
	// resends it only after its 1 s retransmission timer, which delayed a
	// new subscription, and the first words of a room's first speaker,
	// by a second in 2 of 8 runs on the test bed; as server, ICE and DTLS
	// take about 12 ms longer in the usual case and never a second (see
	// docs/ingest.md).
	if err := se.SetAnsweringDTLSRole(webrtc.DTLSRoleServer); err != nil {
		return nil, fmt.Errorf("janus: dtls role: %w", err)
	}
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	if cfg.LoggerFactory != nil {
		se.LoggerFactory = cfg.LoggerFactory
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// OfferGathered creates an offer, sets it as the local description and
// waits until ICE gathering is complete, so the returned SDP holds every
// candidate.
func OfferGathered(ctx context.Context, pc *webrtc.PeerConnection) (*JSEP, error) {
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return nil, fmt.Errorf("create offer: %w", err)
	}
	return setLocalGathered(ctx, pc, offer)
}

// AnswerGathered applies a remote offer, creates the answer, sets it and
// waits for ICE gathering to complete.
func AnswerGathered(ctx context.Context, pc *webrtc.PeerConnection, offer *JSEP) (*JSEP, error) {
	if offer == nil || offer.Type != "offer" {
		return nil, errors.New("answer: no SDP offer")
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer.SDP}); err != nil {
		return nil, fmt.Errorf("set remote offer: %w", err)
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return nil, fmt.Errorf("create answer: %w", err)
	}
	return setLocalGathered(ctx, pc, answer)
}

// SetRemoteAnswer applies Janus's answer to our offer.
func SetRemoteAnswer(pc *webrtc.PeerConnection, answer *JSEP) error {
	if answer == nil || answer.Type != "answer" {
		return errors.New("no SDP answer")
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer.SDP}); err != nil {
		return fmt.Errorf("set remote answer: %w", err)
	}
	return nil
}

func setLocalGathered(ctx context.Context, pc *webrtc.PeerConnection, sd webrtc.SessionDescription) (*JSEP, error) {
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(sd); err != nil {
		return nil, fmt.Errorf("set local %s: %w", sd.Type, err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return nil, fmt.Errorf("ICE gathering: %w", ctx.Err())
	}
	local := pc.LocalDescription()
	if local == nil {
		return nil, errors.New("no local description after gathering")
	}
	noTrickle := false
	return &JSEP{Type: local.Type.String(), SDP: local.SDP, Trickle: &noTrickle}, nil
}

// reuseAttributes is an interceptor factory and interceptor: registered
// first, it reads from SRTP before the others, and gives every packet of an
// Opus stream that came without attributes the stream's one map, cleared.
// Why: the NACK and report interceptors each allocate a map per packet when
// there is none (pion passes none), a measurable share of a bot's CPU at
// thousands of packets a second. The map lives only until the next read of
// the same stream, which pion serialises (one reader per track); repair
// (RTX) streams, whose attributes pion keeps in a queue, are left alone.
type reuseAttributes struct{ interceptor.NoOp }

// NewInterceptor implements interceptor.Factory.
func (reuseAttributes) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &reuseAttributes{}, nil
}

// BindRemoteStream implements interceptor.Interceptor.
func (*reuseAttributes) BindRemoteStream(info *interceptor.StreamInfo, reader interceptor.RTPReader) interceptor.RTPReader {
	if !strings.EqualFold(info.MimeType, webrtc.MimeTypeOpus) {
		return reader
	}
	attrs := interceptor.Attributes{}
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, got, err := reader.Read(b, a)
		if err != nil || got != nil {
			return n, got, err
		}
		clear(attrs)
		return n, attrs, nil
	})
}
