package ingest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/ingest/janus"
	"github.com/earshot/earshot/record"
	"github.com/earshot/earshot/storage/spool"
)

// tickInterval is how often a track's timeline is advanced when no packet
// comes (mute): small against the 20 ms frames so silence fill keeps pace.
const tickInterval = 20 * time.Millisecond

// trackRun owns one track: its goroutine alone touches the recorder.
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
	started bool
}

type arrival struct {
	pkt *rtp.Packet
	at  time.Time
}

type srArrival struct {
	sr *rtcp.SenderReport
	at time.Time
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

	// Readers: pion's ReadRTP/ReadRTCP block, so each runs in its own
	// goroutine feeding bounded channels; this goroutine owns the recorder.
	pkts := make(chan arrival, 512)
	srs := make(chan srArrival, 16)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		defer close(pkts)
		for {
			p, _, err := t.remote.Track.ReadRTP()
			if err != nil {
				return
			}
			select {
			case pkts <- arrival{pkt: p, at: time.Now()}:
			case <-stop:
				return
			}
		}
	}()
	go func() {
		for {
			ps, _, err := t.remote.Receiver.ReadRTCP()
			if err != nil {
				return
			}
			now := time.Now()
			for _, p := range ps {
				if sr, ok := p.(*rtcp.SenderReport); ok {
					select {
					case srs <- srArrival{sr: sr, at: now}:
					default: // a sender report more or less changes nothing
					}
				}
			}
			select {
			case <-stop:
				return
			default:
			}
		}
	}()

	tick := time.NewTicker(tickInterval)
	defer tick.Stop()
	reason := "publisher left"
loop:
	for {
		select {
		case a, ok := <-pkts:
			if !ok {
				break loop
			}
			if !t.gate.open() {
				continue // not recorded: Tick fills the timeline with silence
			}
			if err := rec.Push(a.pkt, a.at); err != nil && !errors.Is(err, record.ErrMalformed) {
				t.log.Warn("recording packet failed", "error", err)
			}
			if !t.started && rec.Timeline().Samples() > 0 {
				t.started = true
				tl := rec.Timeline()
				t.man.trackStarted(t.id, t.speaker, t.ordinal, tl, a.at)
				t.st.lifecycleEvent(ctx, t.room, t.session, t.speaker, &tl, event.TypeTrackStarted, event.TrackStarted{Ordinal: t.ordinal, Codec: "opus"})
				t.log.Info("track recording", "ordinal", t.ordinal)
			}
		case a := <-srs:
			if t.started {
				_ = rec.SenderReport(a.sr, a.at) // rejected reports are counted in Stats
			}
		case now := <-tick.C:
			if t.started {
				if err := rec.Tick(now); err != nil {
					t.log.Warn("advancing the timeline failed", "error", err)
				}
			}
		case <-ctx.Done():
			reason = "shutdown"
			break loop
		}
	}
	if err := rec.Close(); err != nil {
		t.log.Warn("closing the track failed", "error", err)
	}
	stats := rec.Stats()
	t.st.m.observe(stats)
	if t.started {
		tl := rec.Timeline()
		t.st.lifecycleEvent(ctx, t.room, t.session, t.speaker, &tl, event.TypeTrackEnded, event.TrackEnded{
			Reason: reason, Samples: stats.Samples, LostPackets: stats.Lost, GapSamples: stats.Gaps.Total(), Segments: stats.Segments,
		})
		t.man.trackEnded(t.id, reason, tl, stats, time.Now())
		t.st.writeManifest(ctx, t.man)
	}
	t.log.Info("track ended", "reason", reason, "seconds", float64(stats.Samples)/event.SampleRate, "lost", stats.Lost, "segments", stats.Segments)
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
	w, err := t.st.cfg.Spool.Create()
	if err != nil {
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
		return err
	}
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
}

var (
	_ record.ChunkSink   = (*trackRun)(nil)
	_ record.SegmentSink = (*trackRun)(nil)
)
