package record

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/earshot/earshot/event"
)

// Defaults for TrackConfig.
const (
	DefaultChunkDuration   = time.Second
	DefaultSegmentDuration = 30 * time.Second
	// DefaultLossDeadline is how long a packet that arrived after a gap in
	// sequence numbers waits for the missing ones. It is the only latency
	// the reorder stage adds, and only when something is missing: in-order
	// packets pass straight through. 80 ms covers the reordering seen on
	// real paths (a few packets) while staying far below the 1 s chunk.
	DefaultLossDeadline = 80 * time.Millisecond
)

const (
	// muteAfter: with no packet for this long the sender is taken to be
	// muted (not in DTX, which still sends a packet every 400 ms), and Tick
	// starts filling the timeline with silence.
	muteAfter = 500 * time.Millisecond
	// resyncThreshold: when a packet's RTP timestamp and its arrival time
	// disagree by more than this (beyond the track's usual network delay),
	// the timestamp is not trusted and the packet is placed by arrival time.
	// It covers senders whose timestamps stall across a mute or jump
	// without wall-clock time passing. It must exceed network jitter plus
	// LossDeadline. Tick keeps this far behind wall-clock when it fills
	// silence, so a packet whose timestamp is trusted never lands on
	// samples already filled.
	resyncThreshold = 120 * time.Millisecond
	// settlePackets: for its first packets a track's usual network delay
	// (baseline) follows the fastest packet at once; after that it comes
	// down by at most baselineStep (0.1 ms) a packet: ample for any clock
	// drift (100 ppm is 0.002 ms a packet), but a burst of delayed packets
	// cannot drag it down.
	settlePackets = 50
	baselineStep  = 4.8 // samples
	// maxSenderSkew: a sender report whose clock disagrees with arrival
	// times by more than this is ignored (a sender with a wrong clock must
	// not move the track seconds away from wall-clock).
	maxSenderSkew = 5 * time.Second
	// originTolerance: later sender reports move the origin only when they
	// disagree with it by more than this, so the origin does not jitter.
	originTolerance = 20 * time.Millisecond
	// warmupSamples is the Opus pre-skip of every segment: 3840 (80 ms,
	// the decoder pre-roll RFC 7845 §4.6 recommends), so every segment
	// starts with exactly 3840 samples of warm-up packets that decoders
	// discard.
	warmupSamples = 3840
	// minChunk keeps every chunk at least 80 ms long (a chunk may end up
	// to 120 ms short of its nominal length), so the previous and current
	// chunk always hold a new segment's warm-up.
	minChunk = 200 * time.Millisecond
)

// ChunkSink receives live chunks. Chunk is called synchronously from Push,
// Tick or Close; the Chunk and the slices it holds are reused after it
// returns, so the sink copies (or encodes) what it keeps. An error drops
// that chunk (counted in Stats.ChunkErrors) and is returned to the caller
// of Push/Tick/Close; the timeline goes on.
type ChunkSink interface {
	Chunk(c *Chunk) error
}

// SegmentSink stores segments. The recorder streams each segment's Ogg/Opus
// bytes into the writer OpenSegment returns, in one Write about once a
// chunk, and then calls exactly one of Segment (all bytes written: flush, make them
// durable, close, announce) or AbortSegment (the bytes are incomplete:
// discard them). The recorder never closes the writer itself. A segment
// stays open for SegmentDuration, so a crash leaves a partial segment
// behind: its last page lacks the end-of-stream flag.
type SegmentSink interface {
	OpenSegment(start SegmentStart) (io.Writer, error)
	Segment(s *Segment) error
	AbortSegment(start SegmentStart, err error)
}

// SegmentStart names a segment being written, before its end is known.
type SegmentStart struct {
	Track       string
	Seq         int64 // segment number on the track, from 0
	FirstSample int64 // timeline sample of its first decoded sample
}

// TrackConfig configures one track's recorder.
type TrackConfig struct {
	// Track is the track's ID (event.TrackID); it names the timeline.
	Track string
	// Room, Session and Speaker are pseudonyms, written to each segment's
	// OpusTags. Raw identities never come here.
	Room, Session, Speaker string
	// Origin is the UTC time of sample 0. Zero: the first packet's
	// arrival. When set, the timeline runs from Origin (Tick fills silence
	// until the first packet, placed by its arrival time).
	Origin time.Time
	// Channels is the decoded channel count in OpusHead (1 or 2, default 1).
	Channels int
	// PayloadType, if not 0, is the only RTP payload type accepted.
	PayloadType uint8
	// ChunkDuration (default 1 s, at least 200 ms), SegmentDuration
	// (default 30 s, at least 1 s): chunks and segments end at the first
	// packet boundary at or after each multiple of the duration on the
	// timeline.
	ChunkDuration, SegmentDuration time.Duration
	// LossDeadline (default 80 ms): see DefaultLossDeadline.
	LossDeadline time.Duration
	// Chunks and Segments receive the output; both are required.
	Chunks   ChunkSink
	Segments SegmentSink
	// OnGap, when set, is called (from Push, Tick or Close) for each
	// stretch of the timeline filled with silence, with its cause.
	// Consecutive calls may describe adjacent stretches of one cause (Tick
	// fills a mute bit by bit): merge them if one span per gap is wanted.
	OnGap func(GapSpan)
}

// GapSpan is a stretch of a track's timeline filled with silence.
type GapSpan struct {
	FirstSample int64  `json:"first_sample"`
	LastSample  int64  `json:"last_sample"` // inclusive
	Cause       string `json:"cause"`       // GapLoss, GapSilence or GapMute
}

// Gap causes, as in GapSpan.Cause (the names of the Gaps fields).
const (
	GapLoss    = "loss"
	GapSilence = "silence"
	GapMute    = "mute"
)

func (c cause) String() string {
	switch c {
	case causeLoss:
		return GapLoss
	case causeSilence:
		return GapSilence
	case causeMute:
		return GapMute
	}
	return ""
}

func (c *TrackConfig) setDefaults() error {
	if c.ChunkDuration == 0 {
		c.ChunkDuration = DefaultChunkDuration
	}
	if c.SegmentDuration == 0 {
		c.SegmentDuration = DefaultSegmentDuration
	}
	if c.LossDeadline == 0 {
		c.LossDeadline = DefaultLossDeadline
	}
	if c.Channels == 0 {
		c.Channels = 1
	}
	var errs []error
	if c.Track == "" {
		errs = append(errs, errors.New("Track is empty: set it to the track's event.TrackID"))
	}
	if c.Channels != 1 && c.Channels != 2 {
		errs = append(errs, fmt.Errorf("Channels is %d: use 1 or 2", c.Channels))
	}
	if c.ChunkDuration < minChunk {
		errs = append(errs, fmt.Errorf("ChunkDuration %v is under %v", c.ChunkDuration, minChunk))
	}
	if c.SegmentDuration < time.Second {
		errs = append(errs, fmt.Errorf("SegmentDuration %v is under 1 s", c.SegmentDuration))
	}
	if c.LossDeadline < 0 || c.LossDeadline > time.Second {
		errs = append(errs, fmt.Errorf("LossDeadline %v is outside (0, 1s]", c.LossDeadline))
	}
	if c.Chunks == nil {
		errs = append(errs, errors.New("Chunks is nil"))
	}
	if c.Segments == nil {
		errs = append(errs, errors.New("Segments is nil"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("record: track config: %w", errors.Join(errs...))
	}
	return nil
}

// Gaps counts timeline samples filled with silence, by cause.
type Gaps struct {
	// Loss: packets that never arrived before their deadline.
	Loss int64 `json:"loss"`
	// Silence: the sender skipped time while still sending (DTX: the RTP
	// timestamp jumped across a pause with no sequence gap).
	Silence int64 `json:"silence"`
	// Mute: no packets at all for muteAfter or more (muted sender,
	// paused stream, or the time before the first packet).
	Mute int64 `json:"mute"`
}

// Total is the number of gap samples of all causes.
func (g Gaps) Total() int64 { return g.Loss + g.Silence + g.Mute }

func (g *Gaps) add(c cause, n int64) {
	switch c {
	case causeLoss:
		g.Loss += n
	case causeSilence:
		g.Silence += n
	case causeMute:
		g.Mute += n
	}
}

type cause uint8

const (
	causeNone cause = iota // real audio
	causeLoss
	causeSilence
	causeMute
)

// Chunk is a live chunk: the Opus packets covering Timeline exactly, gaps
// included as silence packets, so decoding Data.Packets in order gives
// Timeline.Samples() samples.
type Chunk struct {
	Timeline event.Timeline
	Seq      int64 // chunk number on the track, from 0
	Final    bool  // last chunk of the track (set by Close)
	Channels int
	Gaps     Gaps
	// Data: packet i starts Data.Offsets[i] samples after
	// Timeline.FirstSample. Valid only during ChunkSink.Chunk.
	Data event.AudioChunkData
	// Recorded is when the newest audio in the chunk reached the recorder
	// (the packet's arrival, or the Tick that filled silence).
	Recorded time.Time
}

// Payload returns the chunk's event payload.
func (c *Chunk) Payload() event.AudioChunk {
	return event.AudioChunk{
		Codec:      "opus",
		Channels:   c.Channels,
		Seq:        c.Seq,
		Frames:     len(c.Data.Packets),
		GapSamples: c.Gaps.Total(),
		Final:      c.Final,
	}
}

// Segment describes a stored segment whose bytes are complete: a whole
// Ogg/Opus stream that decodes to exactly Timeline.Samples() samples.
type Segment struct {
	Timeline event.Timeline
	Seq      int64
	Final    bool // last segment of the track
	// PreSkip is OpusHead's pre-skip: the warm-up samples decoders drop.
	PreSkip int
	Gaps    Gaps
	Packets int // timeline packets, warm-up excluded
	// Size is the bytes written. The sink hashes them as they stream in
	// (the spool does), so the recorder does not hash them a second time.
	Size int64
}

// Stats are a track's counters since NewTrack.
type Stats struct {
	Packets    int64 // RTP packets placed on the timeline
	Lost       int64 // sequence numbers not received by their deadline
	Late       int64 // packets dropped for arriving after their slot was filled or far outside the reorder window
	Duplicates int64 // packets received more than once
	Malformed  int64 // packets rejected with ErrMalformed
	// Resyncs counts re-anchorings to arrival time: a timestamp that
	// disagreed with wall-clock by more than 120 ms, or a new sequence.
	Resyncs int64
	Samples int64 // timeline length so far
	Gaps    Gaps
	Chunks  int64
	// Segments counts segments completed (handed to SegmentSink.Segment).
	Segments      int64
	ChunkErrors   int64
	SegmentErrors int64
	// SenderReports counts sender reports used; SenderReportsRejected those
	// ignored because their clock disagreed with arrival times.
	SenderReports         int64
	SenderReportsRejected int64
}
