package ingest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/ingest/janus"
	"github.com/earshot/earshot/record"
	"github.com/earshot/earshot/record/spool"
)

// tickInterval is how often a track's timeline is advanced when no packet
// comes (mute): small against the 20 ms frames so silence fill keeps pace.
const tickInterval = 20 * time.Millisecond

// trackRun owns one track: it records it with RunTrackLoop and reports its
// start and end (events, manifest, metrics). The recorder's sinks (Chunk,
// OpenSegment, Segment, AbortSegment) are called under the loop's lock.
type trackRun struct {
	st                     *Stage
	room, session, speaker string // pseudonyms
	id                     string
	ordinal                int
	remote                 *janus.RemoteTrack
	log                    *slog.Logger
	man                    *manifest // the session's
	gate                   *gate     // nil: always recorded

	keyID   string
	writers map[int64]*spool.Writer // open segment writers by seq
}

// run reads the track until it ends (the publisher left, the room closed)
// or ctx ends, then flushes the final chunk and segment.
func (t *trackRun) run(ctx context.Context) {
	t.log = t.st.log.With("room", t.room, "track", t.id, "speaker", t.speaker)
	t.keyID = event.KeyID(t.session, t.speaker)
	t.writers = map[int64]*spool.Writer{}
	rec, err := record.NewTrack(record.TrackConfig{
		Track: t.id, Room: t.room, Session: t.session, Speaker: t.speaker,
		PayloadType:   uint8(t.remote.Track.PayloadType()),
		ChunkDuration: t.st.cfg.ChunkDuration, SegmentDuration: t.st.cfg.SegmentDuration,
		Chunks: t, Segments: t,
		OnGap: func(g record.GapSpan) { t.man.gap(t.id, g) },
	})
	if err != nil {
		t.log.Error("cannot record track", "error", err)
		return
	}
	t.st.m.tracks.Inc()
	defer t.st.m.tracks.Dec()

	started := false
	reason := RunTrackLoop(ctx, TrackLoopConfig{
		RTP: t.remote.Track, RTCP: t.remote.Receiver, Recorder: rec, Ticker: &t.st.ticks,
		Record: t.gate.open, Logger: t.log,
		OnStart: func(tl event.Timeline, at time.Time) {
			started = true
			t.man.trackStarted(t.id, t.speaker, t.ordinal, tl, at)
			t.st.lifecycleEvent(ctx, t.room, t.session, t.speaker, &tl, event.TypeTrackStarted, event.TrackStarted{Ordinal: t.ordinal, Codec: "opus"})
			t.log.Info("track recording", "ordinal", t.ordinal)
		},
	})
	stats := rec.Stats()
	t.st.m.observe(stats)
	if started {
		tl := rec.Timeline()
		t.st.lifecycleEvent(ctx, t.room, t.session, t.speaker, &tl, event.TypeTrackEnded, event.TrackEnded{
			Reason: reason, Samples: stats.Samples, LostPackets: stats.Lost, GapSamples: stats.Gaps.Total(), Segments: stats.Segments,
		})
		t.man.trackEnded(t.id, reason, tl, stats, time.Now())
		t.st.writeManifest(ctx, t.man)
	}
	t.log.Info("track ended", "reason", reason, "seconds", float64(stats.Samples)/event.SampleRate, "lost", stats.Lost, "segments", stats.Segments)
}

// Why a track loop ended (RunTrackLoop).
const (
	ReasonPublisherLeft = "publisher left" // the track's packets ended
	ReasonShutdown      = "shutdown"       // the loop's context ended
)

// RTPReader is a received track's packet source: *webrtc.TrackRemote.
type RTPReader interface {
	Read(b []byte) (n int, a interceptor.Attributes, err error)
}

// RTCPReader is a received track's RTCP source: *webrtc.RTPReceiver.
type RTCPReader interface {
	ReadRTCP() ([]rtcp.Packet, interceptor.Attributes, error)
}

// TrackLoopConfig configures RunTrackLoop.
type TrackLoopConfig struct {
	// RTP is read until it fails (the track ended). Required.
	RTP RTPReader
	// RTCP, when set, supplies sender reports for the timeline's origin.
	RTCP RTCPReader
	// Recorder records the track; RunTrackLoop closes it. Its sinks are
	// called under the loop's lock, from the reading goroutine or the
	// ticker's. Required.
	Recorder *record.Track
	// Ticker advances the recorder's timeline with the other tracks'.
	// Required.
	Ticker *TrackTicker
	// Record reports whether packets are to be recorded now (nil: always);
	// while it says no, packets are dropped and the ticks fill the timeline
	// with silence.
	Record func() bool
	// OnStart, when set, is called once the first sample is on the
	// timeline, with the timeline then and that packet's arrival time. It
	// runs in the reading goroutine outside the lock, so it may block
	// (packets wait in pion's buffer meanwhile).
	OnStart func(tl event.Timeline, at time.Time)
	// Logger receives warnings (nil: slog.Default()).
	Logger *slog.Logger
}

// RunTrackLoop records one received track until its packets end
// (ReasonPublisherLeft) or ctx ends (ReasonShutdown), then closes the
// recorder (flushing the final chunk and segment) and returns the reason.
//
// Why it is built this way: every goroutine wake-up costs CPU time
// comparable to recording a packet, and a bot receives thousands of
// packets a second. So the only per-packet work outside pion is the
// reading goroutine's: it reads into a reused buffer and pushes into the
// recorder itself, under a per-track lock, instead of handing each packet
// to another goroutine; and the 20 ms ticks come from one TrackTicker for
// all tracks, not from a timer per track. RTCP is read in a goroutine of
// its own (a few packets a second); the caller's goroutine only waits.
func RunTrackLoop(ctx context.Context, cfg TrackLoopConfig) string {
	l := &trackLoop{cfg: cfg, log: cfg.Logger}
	if l.log == nil {
		l.log = slog.Default()
	}
	rtpDone := make(chan struct{})
	go func() {
		defer close(rtpDone)
		l.readRTP()
	}()
	if cfg.RTCP != nil {
		go l.readRTCP()
	}
	cfg.Ticker.add(l)
	reason := ReasonPublisherLeft
	select {
	case <-rtpDone:
	case <-ctx.Done():
		reason = ReasonShutdown
	}
	cfg.Ticker.remove(l)
	l.mu.Lock()
	l.closed = true
	if err := cfg.Recorder.Close(); err != nil {
		l.log.Warn("closing the track failed", "error", err)
	}
	l.mu.Unlock()
	l.onStart.Wait() // OnStart has returned before the caller reports the end
	return reason
}

// trackLoop is RunTrackLoop's state; mu guards the recorder and the flags.
type trackLoop struct {
	cfg TrackLoopConfig
	log *slog.Logger

	mu      sync.Mutex
	started bool // the first sample is on the timeline
	closed  bool // the recorder is closed: readers stop

	onStart sync.WaitGroup // a running OnStart (added under mu, before closed)
}

// readRTP is the reading goroutine. It returns when the track's packets
// end, or at the first packet after the loop closed (the reader stays
// blocked in pion until then; the peer connection's end releases it).
func (l *trackLoop) readRTP() {
	buf := make([]byte, receiveBuffer)
	var pkt rtp.Packet
	for {
		n, _, err := l.cfg.RTP.Read(buf)
		if err != nil && !errors.Is(err, io.ErrShortBuffer) {
			return
		}
		now := time.Now()
		p := &pkt
		if err != nil || pkt.Unmarshal(buf[:n]) != nil {
			p = nil // counted as malformed; the track goes on
		}
		var startedNow bool
		var tl event.Timeline
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return
		}
		if l.cfg.Record == nil || l.cfg.Record() {
			if err := l.cfg.Recorder.Push(p, now); err != nil && !errors.Is(err, record.ErrMalformed) {
				l.log.Warn("recording packet failed", "error", err)
			}
			if !l.started && l.cfg.Recorder.Timeline().Samples() > 0 {
				l.started, startedNow = true, l.cfg.OnStart != nil
				tl = l.cfg.Recorder.Timeline()
				if startedNow {
					l.onStart.Add(1)
				}
			}
		}
		l.mu.Unlock()
		if startedNow {
			l.cfg.OnStart(tl, now)
			l.onStart.Done()
		}
	}
}

// receiveBuffer holds any packet pion delivers (its receive MTU is 1460).
const receiveBuffer = 1500

func (l *trackLoop) readRTCP() {
	for {
		ps, _, err := l.cfg.RTCP.ReadRTCP()
		if err != nil {
			return
		}
		now := time.Now()
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return
		}
		for _, p := range ps {
			if sr, ok := p.(*rtcp.SenderReport); ok && l.started {
				_ = l.cfg.Recorder.SenderReport(sr, now) // rejected reports are counted in Stats
			}
		}
		l.mu.Unlock()
	}
}

// tick advances the timeline (from the TrackTicker's goroutine).
func (l *trackLoop) tick(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || !l.started {
		return
	}
	if err := l.cfg.Recorder.Tick(now); err != nil {
		l.log.Warn("advancing the timeline failed", "error", err)
	}
}

// TrackTicker advances the timelines of many tracks every 20 ms from one
// goroutine, which runs while at least one track loop uses it. A tick
// releases packets held for a missing one once the loss deadline passed
// and fills mute with silence; the goroutine takes each track's lock in
// turn, so a slow sink (a segment's fsync) delays the other tracks' ticks
// by that long, never their packets. The zero value is ready to use.
type TrackTicker struct {
	mu      sync.Mutex
	loops   map[*trackLoop]struct{}
	running bool
}

func (tt *TrackTicker) add(l *trackLoop) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	if tt.loops == nil {
		tt.loops = map[*trackLoop]struct{}{}
	}
	tt.loops[l] = struct{}{}
	if !tt.running {
		tt.running = true
		go tt.run()
	}
}

func (tt *TrackTicker) remove(l *trackLoop) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	delete(tt.loops, l)
}

// run ticks until no track loop is left.
func (tt *TrackTicker) run() {
	tick := time.NewTicker(tickInterval)
	defer tick.Stop()
	var loops []*trackLoop
	for now := range tick.C {
		tt.mu.Lock()
		if len(tt.loops) == 0 {
			tt.running = false
			tt.mu.Unlock()
			return
		}
		loops = loops[:0]
		for l := range tt.loops {
			loops = append(loops, l)
		}
		tt.mu.Unlock()
		for _, l := range loops {
			l.tick(now)
		}
	}
}

// Chunk implements record.ChunkSink: the chunk becomes an audio.chunk event
// on the live queue (never blocking this goroutine).
func (t *trackRun) Chunk(c *record.Chunk) error {
	tl := c.Timeline
	e, err := event.New(event.TypeAudioChunk, t.st.cfg.Producer, nil, t.room, t.session, t.speaker, &tl, c.Payload())
	if err != nil {
		return err
	}
	e.Hops.Recorded = event.Stamp(c.Recorded)
	e.Hops.Chunked = event.Stamp(time.Now())
	if err := e.Seal(context.Background(), t.st.cfg.Keys, c.Data); err != nil {
		return err
	}
	b, err := e.Marshal()
	if err != nil {
		return err
	}
	t.st.m.chunks.Inc()
	if !t.st.out.Send(bus.Message{Topic: event.TopicAudio, Key: []byte(t.id), Value: b}) {
		t.st.m.chunksDropped.Inc()
	}
	return nil
}

// OpenSegment implements record.SegmentSink: segment bytes stream into a
// spool entry.
func (t *trackRun) OpenSegment(s record.SegmentStart) (io.Writer, error) {
	w, err := t.st.cfg.Spool.Create(event.KeyRef{ID: t.keyID, Room: t.room, Session: t.session, Speaker: t.speaker})
	if err != nil {
		t.st.spoolError(err)
		return nil, err
	}
	t.writers[s.Seq] = w
	return w, nil
}

// Segment implements record.SegmentSink: the spool entry is committed
// (fsynced) and the uploader takes it from there.
func (t *trackRun) Segment(s *record.Segment) error {
	w := t.writers[s.Seq]
	delete(t.writers, s.Seq)
	if w == nil {
		return errors.New("ingest: segment was never opened")
	}
	e, err := w.Commit(spool.Segment{
		Room: t.room, Session: t.session, Speaker: t.speaker, Timeline: s.Timeline,
		Seq: s.Seq, PreSkip: s.PreSkip, GapSamples: s.Gaps.Total(), KeyID: t.keyID,
		Recorded: time.Now(),
	})
	if err != nil {
		t.st.m.segmentErrors.Inc()
		t.st.spoolError(err)
		return err
	}
	t.st.disk.spooled()
	t.man.segment(t.id, e)
	t.st.m.segments.Inc()
	t.log.Info("segment spooled", "seq", s.Seq, "seconds", s.Timeline.Duration().Seconds())
	return nil
}

// AbortSegment implements record.SegmentSink.
func (t *trackRun) AbortSegment(s record.SegmentStart, err error) {
	if w := t.writers[s.Seq]; w != nil {
		w.Abort()
		delete(t.writers, s.Seq)
	}
	t.st.m.segmentErrors.Inc()
	t.log.Error("segment aborted", "seq", s.Seq, "error", err)
	t.st.spoolError(err)
}

var (
	_ record.ChunkSink   = (*trackRun)(nil)
	_ record.SegmentSink = (*trackRun)(nil)
)
