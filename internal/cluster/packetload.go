package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"

	"github.com/earshot/earshot/ingest/janus"
	"github.com/earshot/earshot/ingest/webrtcbench"
	"github.com/earshot/earshot/internal/speakerbot"
	"github.com/earshot/earshot/internal/testbed"
)

// PacketLoad publishes pre-encoded Opus into Janus VideoRooms: every
// speaker is its own participant with its own peer connection, as a
// speaker's browser is, but all of them live in this one process and
// send from a shared schedule, so that hundreds of speakers cost what
// their SRTP does and not what hundreds of bots' pacing and publish logs
// do. It is the capacity benchmarks' load; Load (speech with a publish
// log) is the fault tests'. Every speaker talks all the time: a
// continuous 50 packets a second, without DTX, the most a speaker sends.
type PacketLoad struct {
	pubs   []*loadPub
	sess   []*janus.Session
	cancel context.CancelFunc
	wg     sync.WaitGroup
	maxLag atomic.Int64 // nanoseconds
	errMu  sync.Mutex
	err    error

	closeOnce sync.Once
	closeErr  error
}

type loadPub struct {
	pub *janus.Publisher
	seq uint16
	ts  uint32
	off int // where in the packets it starts
	// leaving: Close is taking it out of its room (a failed write is
	// expected); gone: it has left (nothing more is written).
	leaving, gone atomic.Bool
}

// PacketLoadConfig configures StartPacketLoad.
type PacketLoadConfig struct {
	Janus testbed.JanusEndpoint
	// Rooms each get Speakers publishers.
	Rooms    []uint64
	Speakers int
	// Packets are 20 ms Opus packets, played in a loop.
	Packets [][]byte
	// Connecting bounds how many publishers negotiate at once (default 8).
	Connecting int
	Logger     *slog.Logger
}

// packetLoadSenders is how many goroutines share the sending: enough to
// spread SRTP over the cores, few enough that each wakes every slot.
const packetLoadSenders = 4

// StartPacketLoad joins every publisher (returning once all are up, or
// the first error) and starts sending. Close stops it.
func StartPacketLoad(ctx context.Context, cfg PacketLoadConfig) (*PacketLoad, error) {
	if cfg.Speakers < 1 || len(cfg.Rooms) == 0 || len(cfg.Packets) == 0 {
		return nil, fmt.Errorf("cluster: packet load: %d rooms × %d speakers, %d packets", len(cfg.Rooms), cfg.Speakers, len(cfg.Packets))
	}
	if cfg.Connecting < 1 {
		cfg.Connecting = 8
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	client, err := janus.New(janus.Config{URL: cfg.Janus.URL, LocalAddr: cfg.Janus.HostAddr, Logger: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("cluster: packet load: %w", err)
	}
	api, err := janus.NewAPI(janus.WebRTCConfig{Interface: cfg.Janus.HostIface})
	if err != nil {
		return nil, fmt.Errorf("cluster: packet load: %w", err)
	}
	l := &PacketLoad{}
	// A Janus session per ten rooms: each session is one long poll.
	type job struct {
		sess *janus.Session
		room uint64
		k    int
	}
	var jobs []job
	var sess *janus.Session
	for i, room := range cfg.Rooms {
		if i%10 == 0 {
			if sess, err = client.CreateSession(ctx); err != nil {
				_ = l.Close()
				return nil, fmt.Errorf("cluster: packet load: %w", err)
			}
			l.sess = append(l.sess, sess)
		}
		for k := range cfg.Speakers {
			jobs = append(jobs, job{sess, room, k})
		}
	}
	l.pubs = make([]*loadPub, len(jobs))
	next := atomic.Int64{}
	errs := make([]error, cfg.Connecting)
	var wg sync.WaitGroup
	for w := range cfg.Connecting {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(jobs) || errs[w] != nil {
					return
				}
				j := jobs[i]
				p, err := janus.Publish(ctx, j.sess, janus.PublisherConfig{
					API: api, Room: janus.NumID(j.room), ID: janus.NumID(1_000_000 + randN(1_000_000_000)),
					Display: fmt.Sprintf("load speaker %d", j.k),
				})
				if err != nil {
					errs[w] = fmt.Errorf("room %d speaker %d: %w", j.room, j.k, err)
					return
				}
				l.pubs[i] = &loadPub{pub: p, seq: uint16(randN(1 << 16)), ts: uint32(randN(1 << 32)), off: i * 37}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("cluster: packet load: %w", err)
	}
	sctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	start := time.Now()
	for s := range packetLoadSenders {
		lo, hi := s*len(l.pubs)/packetLoadSenders, (s+1)*len(l.pubs)/packetLoadSenders
		phase := time.Duration(s) * loadPacketDuration / 20 / packetLoadSenders // the senders' slots interleave
		l.wg.Go(func() { l.send(sctx, l.pubs[lo:hi], cfg.Packets, start.Add(phase)) })
	}
	return l, nil
}

// loadPacketDuration is one Opus packet: 50 a second.
const loadPacketDuration = 20 * time.Millisecond

// send writes one packet to each of pubs every 20 ms, as the WebRTC
// benchmark's publisher paces its tracks.
func (l *PacketLoad) send(ctx context.Context, pubs []*loadPub, pkts [][]byte, start time.Time) {
	_ = webrtcbench.PaceSlots(ctx, start, len(pubs), l.noteLag, func(round, j int) error {
		p := pubs[j]
		if p.gone.Load() {
			return nil
		}
		pkt := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: p.seq, Timestamp: p.ts}, Payload: pkts[(round+p.off)%len(pkts)]}
		p.seq++
		p.ts += 960
		if err := p.pub.WriteRTP(pkt); err != nil && !p.leaving.Load() {
			l.errMu.Lock()
			if l.err == nil {
				l.err = fmt.Errorf("cluster: packet load: write: %w", err)
			}
			l.errMu.Unlock()
		}
		return nil // one speaker's failed write is reported, not the end of the others
	})
}

// noteLag keeps the largest lag.
func (l *PacketLoad) noteLag(lag time.Duration) {
	for {
		old := l.maxLag.Load()
		if int64(lag) <= old || l.maxLag.CompareAndSwap(old, int64(lag)) {
			return
		}
	}
}

// Tracks is how many speakers publish.
func (l *PacketLoad) Tracks() int { return len(l.pubs) }

// MaxLag is how far behind its schedule the load fell at worst: a load
// that could not keep it (the machine too busy to generate it) causes
// gaps the recorder is not to blame for.
func (l *PacketLoad) MaxLag() time.Duration { return time.Duration(l.maxLag.Load()) }

// ResetLag forgets the lag so far (the connection phase's).
func (l *PacketLoad) ResetLag() { l.maxLag.Store(0) }

// Err is the first write that failed, if any.
func (l *PacketLoad) Err() error {
	l.errMu.Lock()
	defer l.errMu.Unlock()
	return l.err
}

// Close takes every publisher out of its room, and then stops sending. A
// publisher keeps talking until it has left, as a speaker who hangs up
// does: a recorder sees its track end, never a pause before the end. It
// is idempotent.
func (l *PacketLoad) Close() error {
	l.closeOnce.Do(func() { l.closeErr = l.close() })
	return l.closeErr
}

func (l *PacketLoad) close() error {
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for _, p := range l.pubs {
		if p == nil {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			p.leaving.Store(true)
			err := p.pub.Close()
			p.gone.Store(true)
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if l.cancel != nil {
		l.cancel()
	}
	l.wg.Wait()
	for _, s := range l.sess {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}

// OpusPackets reads the 20 ms packets of an Ogg/Opus file (the recorder's
// benchmark fixture, record/testdata/speech_tones.opus, when path is "").
func OpusPackets(path string) ([][]byte, error) {
	if path == "" {
		path = filepath.Join(testbed.RepoRoot(), "record", "testdata", "speech_tones.opus")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	file, err := speakerbot.ReadOpusFile(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var out [][]byte
	for _, p := range file.Packets {
		if p.Samples != 960 {
			return nil, fmt.Errorf("%s: a packet of %d samples: want 20 ms packets only", path, p.Samples)
		}
		out = append(out, p.Data)
	}
	return out, nil
}
