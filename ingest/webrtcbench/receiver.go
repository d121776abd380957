package webrtcbench

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/ingest"
	"github.com/earshot/earshot/ingest/janus"
	"github.com/earshot/earshot/record"
	"github.com/earshot/earshot/storage/crypt"
)

// outboxSize bounds the queue of chunk events waiting to be "sent".
const outboxSize = 4096

// ReceiverConfig configures a Receiver.
type ReceiverConfig struct {
	// ChunkDuration and SegmentDuration: record.TrackConfig's (0: the
	// recorder's defaults, as the ingest stage uses them).
	ChunkDuration, SegmentDuration time.Duration
	// WebRTC configures the pion API as janus.WebRTCConfig does for the
	// bots (the zero value: the bots' defaults); ICE is limited to
	// loopback whatever it says. Experiments change it.
	WebRTC janus.WebRTCConfig
	// Discard reads every track through pion and drops its packets,
	// recording nothing: the CPU cost of pion's receive path alone (ICE,
	// DTLS/SRTP demultiplexing, decryption, interceptors, the track read),
	// which bounds what any recorder behind it can reach (experiment).
	Discard bool
	Logger  *slog.Logger
}

// Receiver is the bot side: it answers offers from publishers and records
// every track it receives until Finish.
type Receiver struct {
	cfg  ReceiverConfig
	api  *webrtc.API
	log  *slog.Logger
	keys event.Keys
	prod event.Producer

	ctx    context.Context // the tracks' lifetime
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	pcs      []*webrtc.PeerConnection
	runs     []*trackRun
	finished bool

	ticks     ingest.TrackTicker // as the ingest stage's
	started   atomic.Int64
	connected atomic.Int64

	out      chan []byte // chunk events, drained by drain
	dropped  atomic.Int64
	drainEnd chan struct{}
}

// NewReceiver returns a Receiver ready to take offers.
func NewReceiver(cfg ReceiverConfig) (*Receiver, error) {
	api, err := NewLoopbackAPI(cfg.WebRTC)
	if err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Receiver{
		cfg: cfg, api: api, log: cfg.Logger, keys: crypt.NewMemory(),
		prod: event.Producer{Name: "earshot-ingest", Version: "webrtcbench"},
		ctx:  ctx, cancel: cancel,
		out:      make(chan []byte, outboxSize),
		drainEnd: make(chan struct{}),
	}
	go r.drain()
	return r, nil
}

// drain stands in for the Kafka producer: it takes chunk events off the
// queue and drops them.
func (r *Receiver) drain() {
	defer close(r.drainEnd)
	for range r.out {
	}
}

// Handler serves the receiver's HTTP API: POST /offer (a
// webrtc.SessionDescription; answers with one), GET /status (Status) and
// POST /finish (closes every track; answers with the Report).
func (r *Receiver) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /offer", func(w http.ResponseWriter, req *http.Request) {
		var offer webrtc.SessionDescription
		if err := json.NewDecoder(req.Body).Decode(&offer); err != nil {
			http.Error(w, "offer: "+err.Error(), http.StatusBadRequest)
			return
		}
		answer, err := r.Answer(req.Context(), offer)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, answer)
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, Status{Tracks: int(r.started.Load()), PeerConnections: int(r.connected.Load())})
	})
	mux.HandleFunc("POST /finish", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, r.Finish())
	})
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// Answer takes a publisher's complete (non-trickle) offer and returns the
// complete answer. Each track the offer sends is recorded from its first
// packet on.
func (r *Receiver) Answer(ctx context.Context, offer webrtc.SessionDescription) (*webrtc.SessionDescription, error) {
	r.mu.Lock()
	if r.finished {
		r.mu.Unlock()
		return nil, errors.New("webrtcbench: receiver finished")
	}
	r.mu.Unlock()
	if err := CheckLoopbackSDP(offer.SDP); err != nil {
		return nil, fmt.Errorf("offer: %w", err)
	}
	pc, err := r.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, fmt.Errorf("webrtcbench: new peer connection: %w", err)
	}
	r.mu.Lock()
	r.pcs = append(r.pcs, pc)
	pcIndex := len(r.pcs) - 1
	r.mu.Unlock()
	var once sync.Once
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			once.Do(func() { r.connected.Add(1) })
		}
		r.log.Info("peer connection", "pc", pcIndex, "state", s.String())
	})
	pc.OnTrack(func(track *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
		r.startTrack(pcIndex, track, recv)
	})
	if err := pc.SetRemoteDescription(offer); err != nil {
		return nil, fmt.Errorf("webrtcbench: set remote offer: %w", err)
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return nil, fmt.Errorf("webrtcbench: create answer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		return nil, fmt.Errorf("webrtcbench: set local answer: %w", err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return nil, fmt.Errorf("webrtcbench: ICE gathering: %w", ctx.Err())
	}
	local := pc.LocalDescription()
	if err := CheckLoopbackSDP(local.SDP); err != nil {
		return nil, fmt.Errorf("answer: %w", err)
	}
	return local, nil
}

func (r *Receiver) startTrack(pcIndex int, track *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.finished {
		return
	}
	if r.cfg.Discard {
		// Not in r.wg: the read ends when Close closes the peer connection.
		r.started.Add(1)
		go discard(track)
		return
	}
	id := event.TrackID("ses_webrtcbench", "spk_"+strconv.Itoa(pcIndex)+"_"+track.ID(), 0)
	t := &trackRun{
		r: r, id: id, room: "room_webrtcbench", session: "ses_webrtcbench", speaker: "spk_" + strconv.Itoa(len(r.runs)),
		track: track, recv: recv, writers: map[int64]*hashWriter{},
	}
	r.runs = append(r.runs, t)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		t.run(r.ctx)
	}()
}

// discard reads track as the bots' track loop does (one goroutine, a
// reused buffer) until the track ends, and drops every packet.
func discard(track *webrtc.TrackRemote) {
	buf := make([]byte, 1500)
	for {
		if _, _, err := track.Read(buf); err != nil {
			return
		}
	}
}

// Finish closes every track (each flushes its last chunk and segment) and
// reports their counters. It is idempotent: later calls report the same.
func (r *Receiver) Finish() *Report {
	r.mu.Lock()
	r.finished = true
	runs := r.runs
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
	rep := &Report{ChunksDropped: r.dropped.Load()}
	for _, t := range runs {
		rep.Tracks = append(rep.Tracks, t.result)
	}
	return rep
}

// Close ends the tracks and the peer connections.
func (r *Receiver) Close() error {
	r.Finish()
	r.mu.Lock()
	pcs := r.pcs
	r.pcs = nil
	r.mu.Unlock()
	var errs []error
	for _, pc := range pcs {
		errs = append(errs, pc.Close())
	}
	select {
	case <-r.drainEnd:
	default:
		close(r.out)
		<-r.drainEnd
	}
	return errors.Join(errs...)
}

// trackRun records one track with the ingest stage's track loop
// (ingest.RunTrackLoop); its sinks stand in for the stage's (see Chunk and
// OpenSegment).
type trackRun struct {
	r                      *Receiver
	id                     string
	room, session, speaker string
	track                  *webrtc.TrackRemote
	recv                   *webrtc.RTPReceiver
	writers                map[int64]*hashWriter
	result                 TrackResult
}

// run records the track until it ends or ctx ends, with the recorder
// configured as the ingest stage configures it.
func (t *trackRun) run(ctx context.Context) {
	t.result.Track = t.id
	rec, err := record.NewTrack(record.TrackConfig{
		Track: t.id, Room: t.room, Session: t.session, Speaker: t.speaker,
		PayloadType:   uint8(t.track.PayloadType()),
		ChunkDuration: t.r.cfg.ChunkDuration, SegmentDuration: t.r.cfg.SegmentDuration,
		Chunks: t, Segments: t,
	})
	if err != nil {
		t.r.log.Error("cannot record track", "error", err)
		return
	}
	ingest.RunTrackLoop(ctx, ingest.TrackLoopConfig{
		RTP: t.track, RTCP: t.recv, Recorder: rec, Ticker: &t.r.ticks, Logger: t.r.log,
		OnStart: func(event.Timeline, time.Time) { t.r.started.Add(1) },
	})
	t.result.Stats = rec.Stats()
}

// Chunk implements record.ChunkSink as the ingest stage does: the chunk
// becomes a sealed audio.chunk event, queued without blocking.
func (t *trackRun) Chunk(c *record.Chunk) error {
	tl := c.Timeline
	e, err := event.New(event.TypeAudioChunk, t.r.prod, nil, t.room, t.session, t.speaker, &tl, c.Payload())
	if err != nil {
		return err
	}
	e.Hops.Recorded = event.Stamp(c.Recorded)
	e.Hops.Chunked = event.Stamp(time.Now())
	if err := e.Seal(context.Background(), t.r.keys, c.Data); err != nil {
		return err
	}
	b, err := e.Marshal()
	if err != nil {
		return err
	}
	t.result.ChunkBytes += int64(len(b))
	select {
	case t.r.out <- b:
	default:
		t.r.dropped.Add(1)
	}
	return nil
}

// hashWriter stands in for a spool entry: it hashes the segment's bytes as
// they stream in (as spool.Writer does) and keeps none of them.
type hashWriter struct {
	h hash.Hash
	n int64
}

func (w *hashWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return w.h.Write(p)
}

// OpenSegment implements record.SegmentSink.
func (t *trackRun) OpenSegment(s record.SegmentStart) (io.Writer, error) {
	w := &hashWriter{h: sha256.New()}
	t.writers[s.Seq] = w
	return w, nil
}

// Segment implements record.SegmentSink.
func (t *trackRun) Segment(s *record.Segment) error {
	w := t.writers[s.Seq]
	delete(t.writers, s.Seq)
	if w == nil {
		return errors.New("webrtcbench: segment was never opened")
	}
	_ = w.h.Sum(nil)
	t.result.SegmentBytes += w.n
	return nil
}

// AbortSegment implements record.SegmentSink.
func (t *trackRun) AbortSegment(s record.SegmentStart, err error) {
	delete(t.writers, s.Seq)
	t.r.log.Error("segment aborted", "seq", s.Seq, "error", err)
}

var (
	_ record.ChunkSink   = (*trackRun)(nil)
	_ record.SegmentSink = (*trackRun)(nil)
)
