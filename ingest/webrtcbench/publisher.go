package webrtcbench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"github.com/earshot/earshot/ingest/janus"
)

// packetDuration is the publisher's packet length: 50 packets a second.
const packetDuration = 20 * time.Millisecond

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	// URL is the receiver's HTTP API (http://127.0.0.1:port).
	URL string
	// Tracks are spread evenly over PeerConnections.
	Tracks, PeerConnections int
	// Packets are 20 ms Opus packets; each track plays them in a loop,
	// starting at its own place.
	Packets [][]byte
	Logger  *slog.Logger
}

// Publisher sends Tracks Opus tracks to a Receiver, 50 packets a second
// each, until its context ends.
type Publisher struct {
	cfg    PublisherConfig
	api    *webrtc.API
	pcs    []*publisherPC
	maxLag atomic.Int64 // nanoseconds
}

type publisherPC struct {
	pc     *webrtc.PeerConnection
	tracks []*webrtc.TrackLocalStaticSample
	up     chan struct{}
}

// NewPublisher checks cfg.
func NewPublisher(cfg PublisherConfig) (*Publisher, error) {
	switch {
	case cfg.URL == "":
		return nil, errors.New("webrtcbench: publisher: no receiver URL")
	case cfg.Tracks < 1 || cfg.PeerConnections < 1 || cfg.PeerConnections > cfg.Tracks:
		return nil, fmt.Errorf("webrtcbench: publisher: %d tracks on %d peer connections", cfg.Tracks, cfg.PeerConnections)
	case len(cfg.Packets) == 0:
		return nil, errors.New("webrtcbench: publisher: no packets")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	api, err := NewLoopbackAPI(janus.WebRTCConfig{})
	if err != nil {
		return nil, err
	}
	return &Publisher{cfg: cfg, api: api}, nil
}

// Connect negotiates every peer connection with the receiver and waits
// until all are connected.
func (p *Publisher) Connect(ctx context.Context) error {
	for i := range p.cfg.PeerConnections {
		n := p.cfg.Tracks / p.cfg.PeerConnections
		if i < p.cfg.Tracks%p.cfg.PeerConnections {
			n++
		}
		pp, err := p.connect(ctx, i, n)
		if err != nil {
			return fmt.Errorf("webrtcbench: peer connection %d: %w", i, err)
		}
		p.pcs = append(p.pcs, pp)
	}
	for i, pp := range p.pcs {
		select {
		case <-pp.up:
		case <-ctx.Done():
			return fmt.Errorf("webrtcbench: peer connection %d: not connected: %w", i, ctx.Err())
		}
	}
	return nil
}

func (p *Publisher) connect(ctx context.Context, index, tracks int) (*publisherPC, error) {
	pc, err := p.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, err
	}
	pp := &publisherPC{pc: pc, up: make(chan struct{})}
	var once sync.Once
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		p.cfg.Logger.Info("peer connection", "pc", index, "state", s.String())
		if s == webrtc.PeerConnectionStateConnected {
			once.Do(func() { close(pp.up) })
		}
	})
	for k := range tracks {
		id := strconv.Itoa(index) + "-" + strconv.Itoa(k)
		tr, err := webrtc.NewTrackLocalStaticSample(janus.OpusCodec.RTPCodecCapability, "audio-"+id, "stream-"+id)
		if err != nil {
			return nil, err
		}
		sender, err := pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			return nil, err
		}
		// Reading RTCP runs the interceptors (NACK responder, reports).
		go func() {
			for {
				if _, _, err := sender.Sender().ReadRTCP(); err != nil {
					return
				}
			}
		}()
		pp.tracks = append(pp.tracks, tr)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return nil, err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return nil, err
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return nil, fmt.Errorf("ICE gathering: %w", ctx.Err())
	}
	if err := CheckLoopbackSDP(pc.LocalDescription().SDP); err != nil {
		return nil, fmt.Errorf("offer: %w", err)
	}
	body, err := json.Marshal(pc.LocalDescription())
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.cfg.URL+"/offer", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("send offer: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("send offer: %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	var answer webrtc.SessionDescription
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	if err := CheckLoopbackSDP(answer.SDP); err != nil {
		return nil, fmt.Errorf("answer: %w", err)
	}
	if err := pc.SetRemoteDescription(answer); err != nil {
		return nil, fmt.Errorf("set remote answer: %w", err)
	}
	return pp, nil
}

// slots divides each 20 ms round: a track sends in its own slot, so that
// packets reach the receiver spread over the round as they do from
// independent speakers, not in one burst per peer connection.
const slots = 20

// Run sends until ctx ends. Each peer connection has a sending goroutine
// that writes one packet to each of its tracks every 20 ms, each track at
// its own offset into the round, on a schedule (a late slot is caught up
// at once, so the RTP timestamps keep pace with wall-clock).
func (p *Publisher) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, len(p.pcs))
	start := time.Now()
	for i, pp := range p.pcs {
		// The peer connections' slots interleave too.
		phase := time.Duration(i) * packetDuration / slots / time.Duration(len(p.pcs))
		wg.Go(func() { errs[i] = p.send(ctx, pp, i, start.Add(phase)) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (p *Publisher) send(ctx context.Context, pp *publisherPC, index int, start time.Time) error {
	pkts := p.cfg.Packets
	return PaceSlots(ctx, start, len(pp.tracks), p.noteLag, func(round, j int) error {
		data := pkts[(round+j*37+index*101)%len(pkts)]
		if err := pp.tracks[j].WriteSample(media.Sample{Data: data, Duration: packetDuration}); err != nil {
			return fmt.Errorf("write sample: %w", err)
		}
		return nil
	})
}

// PaceSlots calls send(round, j) for every j in [0, n) once per 20 ms
// round from start, each j in its own slot of the round (the round is cut
// in 20 slots, [slot*n/20, (slot+1)*n/20) sending in slot), so that
// packets leave spread over the round as independent speakers' do, not
// in one burst. It keeps a schedule: a late slot is caught up at once, so
// RTP timestamps keep pace with the wall clock; lag is told how late
// each slot woke. It returns nil when ctx ends, or send's first error.
func PaceSlots(ctx context.Context, start time.Time, n int, lag func(time.Duration), send func(round, j int) error) error {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for k := 0; ; k++ {
		round, slot := k/slots, k%slots
		due := start.Add(time.Duration(k) * packetDuration / slots)
		timer.Reset(time.Until(due))
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		lag(time.Since(due))
		for j := slot * n / slots; j < (slot+1)*n/slots; j++ {
			if err := send(round, j); err != nil {
				return err
			}
		}
	}
}

// noteLag keeps the largest lag behind the schedule.
func (p *Publisher) noteLag(lag time.Duration) {
	for {
		old := p.maxLag.Load()
		if int64(lag) <= old || p.maxLag.CompareAndSwap(old, int64(lag)) {
			return
		}
	}
}

// MaxLag is how far behind its schedule the publisher fell at worst
// while it ran: a slot's packets went out that late. A publisher that
// cannot keep its schedule (a machine too busy to generate the load)
// causes gaps the receiver is not to blame for.
func (p *Publisher) MaxLag() time.Duration { return time.Duration(p.maxLag.Load()) }

// Close closes the peer connections.
func (p *Publisher) Close() error {
	var errs []error
	for _, pp := range p.pcs {
		errs = append(errs, pp.pc.Close())
	}
	return errors.Join(errs...)
}
