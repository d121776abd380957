package record

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/pion/interceptor/pkg/jitterbuffer"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/record/ogg"
)

// ErrClosed is returned by Push, Tick and SenderReport after Close.
var ErrClosed = errors.New("record: track closed")

// ErrSenderReport is returned for a sender report that was not used.
var ErrSenderReport = errors.New("record: sender report ignored")

// window is the reorder window in sequence numbers (about 5 s at 50
// packets/s): packets further behind are late, packets further ahead start
// a new sequence (see Track.far).
const window = 256

type slotState uint8

const (
	slotEmpty    slotState = iota
	slotBuffered           // waiting in the jitter buffer
	slotDone               // placed on the timeline
	slotLost               // declared lost; a later arrival is late
)

// slot is what the recorder knows about one extended sequence number.
type slot struct {
	ext     int64
	arrival time.Duration // since epoch
	samples int32
	state   slotState
}

// Track records one RTP Opus track onto its timeline. It is not safe for
// concurrent use: the caller drives it from one goroutine (one per track).
type Track struct {
	// Fields every packet touches come first, so they share a few cache
	// lines: with thousands of tracks each packet finds its track cold.
	closed    bool
	haveSSRC  bool
	haveSeq   bool
	haveTS    bool
	tsReset   bool
	placedAny bool
	ssrc      uint32
	seqRef    uint16
	extRef    int64
	maxExt    int64
	nextExt   int64
	buffered  int
	lostRun   int64 // sequence numbers declared lost since the last placed packet
	// Times are durations since epoch on the hot path (cheaper than
	// time.Time, and nothing for the garbage collector to chase).
	lastArriv   time.Duration // newest arrival of any accepted packet (Tick's idle clock)
	arrivedAny  bool
	prevArrival time.Duration // arrival of the last placed packet
	epoch       time.Time     // the arrival clock's reference; sender reports never move it
	// RTP timestamp → timeline: pos = extTS + offset.
	lastTS     uint32
	lastExtTS  int64
	offset     int64
	baseline   float64 // usual lateness (arrival position − timeline position), samples
	lastPktLen int
	written    int64 // timeline samples written so far
	stats      Stats
	chunk      chunkBuilder
	seg        segmentWriter

	cfg          TrackConfig
	chunkLen     int64
	segLen       int64
	lossDeadline time.Duration
	holdback     int64 // samples Tick stays behind wall-clock
	// Origin of the timeline as reported in events.
	origin  time.Time
	anchor  event.Anchor
	started bool // epoch is set
	sr      *srPoint
	errs    []error

	// Reorder and de-duplication. Extended sequence numbers (ext) are
	// unwrapped relative to seqRef/extRef; uint16(ext) is the sequence
	// number.
	jb    *jitterbuffer.JitterBuffer
	far   farCandidate
	free  []*rtp.Packet
	slots [window]slot
}

type farCandidate struct {
	valid   bool
	seq     uint16
	pkt     *rtp.Packet
	samples int
	arrival time.Duration
}

type srPoint struct {
	ntp     time.Time
	rtpTime uint32
	arrival time.Time
}

// NewTrack returns a recorder for one track.
func NewTrack(cfg TrackConfig) (*Track, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	t := &Track{
		cfg:          cfg,
		chunkLen:     roundUp(event.DurationToSamples(cfg.ChunkDuration), grid),
		segLen:       roundUp(event.DurationToSamples(cfg.SegmentDuration), grid),
		lossDeadline: cfg.LossDeadline,
		holdback:     event.DurationToSamples(resyncThreshold),
		anchor:       event.AnchorArrival,
		jb:           jitterbuffer.New(jitterbuffer.WithMinimumPacketCount(1)),
	}
	if !cfg.Origin.IsZero() {
		t.origin = cfg.Origin.UTC()
		t.epoch = cfg.Origin
		t.started = true
	}
	t.seg.init(&t.cfg)
	return t, nil
}

// Stats returns the track's counters.
func (t *Track) Stats() Stats {
	s := t.stats
	s.Samples = t.written
	return s
}

// Timeline returns the track's timeline so far (Samples() is 0 before the
// first sample is written, when LastSample is -1).
func (t *Track) Timeline() event.Timeline {
	return event.Timeline{Track: t.cfg.Track, FirstSample: 0, LastSample: t.written - 1, Origin: t.origin, Anchor: t.anchor}
}

// Push adds one RTP packet that arrived at arrival (the receive time from
// the caller's clock; it should carry a monotonic reading, as time.Now
// does). Malformed packets are rejected with an error wrapping
// ErrMalformed; duplicates and late packets are counted and dropped
// without error. Other errors come from the sinks; the packet was still
// recorded. Push does not keep pkt or its payload after it returns.
func (t *Track) Push(pkt *rtp.Packet, arrival time.Time) error {
	if t.closed {
		return ErrClosed
	}
	samples, err := t.validate(pkt)
	if err != nil {
		t.stats.Malformed++
		return err
	}
	if !t.started {
		t.epoch, t.origin, t.started = arrival, arrival.UTC(), true
	}
	if !t.haveSSRC {
		t.ssrc, t.haveSSRC = pkt.SSRC, true
	}
	rel := arrival.Sub(t.epoch)
	t.lastArriv, t.arrivedAny = rel, true
	t.receive(pkt, samples, rel)
	return t.takeErrs()
}

func (t *Track) validate(pkt *rtp.Packet) (int, error) {
	switch {
	case pkt == nil:
		return 0, fmt.Errorf("%w: nil packet", ErrMalformed)
	case pkt.Version != 2:
		return 0, fmt.Errorf("%w: RTP version %d", ErrMalformed, pkt.Version)
	case t.cfg.PayloadType != 0 && pkt.PayloadType != t.cfg.PayloadType:
		return 0, fmt.Errorf("%w: payload type %d, want %d (Opus)", ErrMalformed, pkt.PayloadType, t.cfg.PayloadType)
	case t.haveSSRC && pkt.SSRC != t.ssrc:
		return 0, fmt.Errorf("%w: SSRC %08x on a track of SSRC %08x", ErrMalformed, pkt.SSRC, t.ssrc)
	}
	return packetSamples(pkt.Payload)
}

// receive runs reorder and de-duplication, then places what is ready.
func (t *Track) receive(pkt *rtp.Packet, samples int, arrival time.Duration) {
	if !t.haveSeq {
		t.haveSeq = true
		// uint16(ext) is always the sequence number (the jitter buffer's key).
		ext := extAbove(1<<16, pkt.SequenceNumber)
		t.seqRef, t.extRef = pkt.SequenceNumber, ext
		t.maxExt, t.nextExt = ext-1, ext
	}
	ext := t.extRef + int64(int16(pkt.SequenceNumber-t.seqRef))
	if ext < t.nextExt-window || ext >= t.nextExt+window {
		t.farPacket(pkt, samples, arrival)
		return
	}
	t.dropFar()
	s := &t.slots[ext%window]
	if s.ext == ext && s.state != slotEmpty {
		if s.state == slotLost {
			t.stats.Late++
		} else {
			t.stats.Duplicates++
		}
		return
	}
	if ext < t.nextExt { // slot recycled: far behind the head
		t.stats.Late++
		return
	}
	if ext > t.maxExt {
		t.maxExt, t.seqRef, t.extRef = ext, pkt.SequenceNumber, ext
	}
	if ext == t.nextExt && t.buffered == 0 {
		// In order with nothing missing: straight through, no copy.
		*s = slot{ext: ext, state: slotDone}
		t.nextExt++
		t.place(pkt.Payload, samples, pkt.Timestamp, arrival)
		return
	}
	*s = slot{ext: ext, arrival: arrival, samples: int32(samples), state: slotBuffered}
	t.jb.Push(t.clone(pkt))
	t.buffered++
	t.drain(arrival, false)
}

// drain places buffered packets in sequence order. A missing packet is
// declared lost once the earliest packet that arrived after it has waited
// LossDeadline (or at once when force is set).
func (t *Track) drain(now time.Duration, force bool) {
	for t.buffered > 0 {
		s := &t.slots[t.nextExt%window]
		if s.ext == t.nextExt && s.state == slotBuffered {
			pkt, err := t.jb.PopAtSequence(uint16(t.nextExt))
			t.buffered--
			s.state = slotDone
			t.nextExt++
			if err != nil { // cannot happen: the slot says it is buffered
				t.lostRun++
				t.stats.Lost++
				continue
			}
			t.place(pkt.Payload, int(s.samples), pkt.Timestamp, s.arrival)
			t.recycle(pkt)
			continue
		}
		var earliest time.Duration
		lowest := int64(-1)
		for e := t.nextExt + 1; e <= t.maxExt; e++ {
			b := &t.slots[e%window]
			if b.ext != e || b.state != slotBuffered {
				continue
			}
			if lowest < 0 {
				lowest, earliest = e, b.arrival
			}
			earliest = min(earliest, b.arrival)
		}
		if lowest < 0 { // bookkeeping out of step; resynchronise
			t.buffered = 0
			return
		}
		if !force && now-earliest < t.lossDeadline {
			return
		}
		for e := t.nextExt; e < lowest; e++ {
			t.slots[e%window] = slot{ext: e, state: slotLost}
		}
		t.lostRun += lowest - t.nextExt
		t.stats.Lost += lowest - t.nextExt
		t.nextExt = lowest
	}
}

// farPacket handles a sequence number outside the reorder window: junk, or
// the start of a new sequence (a sender restart). Two consecutive such
// packets start a new sequence, placed by arrival time.
func (t *Track) farPacket(pkt *rtp.Packet, samples int, arrival time.Duration) {
	if !t.far.valid || pkt.SequenceNumber != t.far.seq+1 {
		t.dropFar()
		t.far = farCandidate{valid: true, seq: pkt.SequenceNumber, pkt: t.clone(pkt), samples: samples, arrival: arrival}
		return
	}
	t.drain(arrival, true)
	t.stats.Resyncs++
	first := t.far
	t.far = farCandidate{}
	base := extAbove(t.maxExt+2*window, first.seq) // clear of every slot in use
	for i := range t.slots {
		t.slots[i] = slot{}
	}
	t.seqRef, t.extRef = first.seq, base
	t.maxExt, t.nextExt = base+1, base+2
	t.slots[base%window] = slot{ext: base, state: slotDone}
	t.slots[(base+1)%window] = slot{ext: base + 1, state: slotDone}
	t.tsReset = true
	t.place(first.pkt.Payload, first.samples, first.pkt.Timestamp, first.arrival)
	t.recycle(first.pkt)
	t.place(pkt.Payload, samples, pkt.Timestamp, arrival)
}

func (t *Track) dropFar() {
	if t.far.valid {
		t.stats.Late++
		t.recycle(t.far.pkt)
		t.far = farCandidate{}
	}
}

func (t *Track) clone(pkt *rtp.Packet) *rtp.Packet {
	var c *rtp.Packet
	if n := len(t.free); n > 0 {
		c, t.free = t.free[n-1], t.free[:n-1]
	} else {
		c = &rtp.Packet{}
	}
	c.Header = rtp.Header{Version: 2, SequenceNumber: pkt.SequenceNumber, Timestamp: pkt.Timestamp, SSRC: pkt.SSRC, PayloadType: pkt.PayloadType}
	c.Payload = append(c.Payload[:0], pkt.Payload...)
	return c
}

func (t *Track) recycle(p *rtp.Packet) {
	if len(t.free) < window {
		t.free = append(t.free, p)
	}
}

// arrPos is the timeline position wall-clock time at (since epoch) says,
// before the track's usual network delay is taken off.
func arrPos(at time.Duration) int64 {
	return event.DurationToSamples(at)
}

// place puts a packet on the timeline. Its position comes from its RTP
// timestamp, unless that disagrees with its arrival time by more than
// resyncThreshold (a timestamp that stalled during a mute, or jumped):
// then from arrival time. Any gap before it is filled with silence.
func (t *Track) place(payload []byte, samples int, ts uint32, arrival time.Duration) {
	arr := arrPos(arrival)
	thr := float64(t.holdback)
	var pos int64
	var reanchored bool
	if !t.haveTS || t.tsReset {
		lead := t.baseline
		if !t.haveTS {
			lead = 0
		}
		pos = max(roundTo(arr-int64(math.Round(lead)), grid), t.written)
		t.lastTS = ts
		t.offset = pos - t.lastExtTS
		if !t.haveTS {
			t.baseline = float64(arr - pos)
		}
		reanchored = t.haveTS // a new sequence; the first packet's lead-in is mute too
		t.haveTS, t.tsReset = true, false
	} else {
		t.lastExtTS += int64(int32(ts - t.lastTS))
		t.lastTS = ts
		pos = t.lastExtTS + t.offset
		late := float64(arr - pos)
		dev := late - t.baseline
		switch {
		case dev > thr && arrival-t.prevArrival >= muteAfter || dev < -thr:
			// Late by more than thr counts as a sender stall (re-place by
			// arrival) only after muteAfter without packets: a delivery stall
			// (network, load) must not shift a track that never pauses.
			want := max(roundTo(arr-int64(math.Round(t.baseline)), grid), t.written)
			// When the timeline is ahead of wall-clock and the audio before
			// is written, want is where the timeline is: nothing moves now,
			// and the next pause (a gap before a packet) absorbs the lead.
			// The baseline stays, so that lead is not forgotten.
			if want != pos {
				t.offset += want - pos
				pos = want
				reanchored = true
				t.stats.Resyncs++
			}
		case late < t.baseline:
			// Follow a faster path or a faster sender clock; once settled,
			// by at most baselineStep a packet, so the burst that follows
			// a delay spike does not drag the baseline down with it.
			step := t.baseline - late
			if t.stats.Packets >= settlePackets {
				step = min(step, baselineStep)
			}
			t.baseline -= step
		default:
			// Rise slowly (time constant ~4096 packets) so clock drift is
			// followed but one delayed packet does not move the baseline.
			t.baseline += (late - t.baseline) / 4096
		}
	}
	if gap := pos - t.written; gap < 0 {
		// Overlap (timestamps went back a little): keep the audio, shift
		// the rest of the stream later.
		t.offset -= gap
		pos = t.written
	} else if r := gap % grid; r != 0 {
		// Timestamp steps off the 2.5 ms grid: round so silence fits.
		adj := -r
		if r >= grid/2 {
			adj = grid - r
		}
		t.offset += adj
		pos += adj
	}
	if gap := pos - t.written; gap > 0 {
		loss := min(gap, t.lostRun*int64(max(t.lastPktLen, samples)))
		t.fill(t.written+loss, causeLoss, arrival)
		rest := causeSilence
		if reanchored || !t.placedAny || arrival-t.prevArrival >= muteAfter {
			rest = causeMute
		}
		t.fill(pos, rest, arrival)
	}
	t.lostRun = 0
	t.prevArrival, t.placedAny = arrival, true
	t.lastPktLen = samples
	t.stats.Packets++
	t.appendPacket(payload, samples, causeNone, arrival)
	if t.sr != nil {
		// A report that came before the first packet; if it is rejected,
		// Stats.SenderReportsRejected says so (Push's errors are about
		// the packet).
		sr := t.sr
		t.sr = nil
		_ = t.applySR(sr)
	}
}

// fill writes silence packets until the timeline reaches to.
func (t *Track) fill(to int64, c cause, now time.Duration) {
	from := t.written
	for t.written < to {
		p, n := ogg.Silence(to - t.written)
		if n == 0 {
			break
		}
		t.appendPacket(p, n, c, now)
	}
	if t.cfg.OnGap != nil && t.written > from {
		t.cfg.OnGap(GapSpan{FirstSample: from, LastSample: t.written - 1, Cause: c.String()})
	}
}

// appendPacket writes one packet at the end of the timeline: into the
// current chunk and segment, first closing them at their boundaries.
func (t *Track) appendPacket(p []byte, n int, c cause, now time.Duration) {
	pos := t.written
	if t.chunk.open && pos >= t.chunk.end {
		t.emitChunk(false)
	}
	if !t.chunk.open {
		t.chunk.start(pos, t.chunkLen)
	}
	if t.seg.open && pos >= t.seg.end {
		t.finishSegment(false)
	}
	if !t.seg.open && !t.seg.skipping(pos) {
		t.openSegment(pos)
	}
	t.chunk.add(p, n, c, now)
	if t.seg.open {
		if err := t.seg.write(p, n, c); err != nil {
			t.abortSegment(err)
		}
	}
	t.written += int64(n)
	if c != causeNone {
		t.stats.Gaps.add(c, int64(n))
	}
}

// Tick advances the track to wall-clock time now: packets waiting for a
// missing one are released once LossDeadline has passed, and when no
// packet has arrived for 500 ms the timeline is filled with silence up to
// 120 ms before now, so it keeps pace with wall-clock through mute, DTX and
// loss. Call it regularly (every 20–100 ms).
func (t *Track) Tick(now time.Time) error {
	if t.closed {
		return ErrClosed
	}
	if !t.started {
		return nil
	}
	rel := now.Sub(t.epoch)
	t.drain(rel, false)
	if t.buffered > 0 {
		return t.takeErrs()
	}
	idle := time.Duration(0) // the epoch, when no packet came yet
	if t.arrivedAny {
		idle = t.lastArriv
	}
	if rel-idle < muteAfter {
		return t.takeErrs()
	}
	target := arrPos(rel) - int64(math.Round(t.baseline)) - t.holdback
	if n := (target - t.written) / 960; n > 0 {
		t.fill(t.written+n*960, causeMute, rel)
	}
	return t.takeErrs()
}

// SenderReport re-anchors the timeline's origin to the sender's clock: the
// report maps an RTP timestamp to NTP (UTC) time, and so the origin becomes
// that time minus the timestamp's timeline position; the anchor becomes
// rtcp_sr. Only Origin and Anchor change, in the chunks and segments
// produced from now on; no sample position written or to come moves. The
// first report sets the origin; later ones move it only when they disagree
// by more than 20 ms (for instance after a re-anchoring to arrival time).
// A report whose clock is more than 5 s from arrival times is ignored and
// returns an error wrapping ErrSenderReport.
func (t *Track) SenderReport(sr *rtcp.SenderReport, arrival time.Time) error {
	if t.closed {
		return ErrClosed
	}
	if sr == nil {
		return fmt.Errorf("%w: nil report", ErrSenderReport)
	}
	if t.haveSSRC && sr.SSRC != t.ssrc {
		return fmt.Errorf("%w: SSRC %08x on a track of SSRC %08x", ErrSenderReport, sr.SSRC, t.ssrc)
	}
	p := &srPoint{ntp: ntpTime(sr.NTPTime), rtpTime: sr.RTPTime, arrival: arrival}
	if !t.haveTS {
		t.sr = p // applied when the first packet is placed
		return nil
	}
	return t.applySR(p)
}

func (t *Track) applySR(p *srPoint) error {
	pos := t.lastExtTS + int64(int32(p.rtpTime-t.lastTS)) + t.offset
	origin := p.ntp.Add(-event.SamplesToDuration(pos))
	byArrival := p.arrival.Add(-event.SamplesToDuration(pos))
	if d := origin.Sub(byArrival); d > maxSenderSkew || d < -maxSenderSkew {
		t.stats.SenderReportsRejected++
		return fmt.Errorf("%w: sender clock is %v from arrival times", ErrSenderReport, d.Round(time.Millisecond))
	}
	t.stats.SenderReports++
	if d := origin.Sub(t.origin); t.anchor != event.AnchorRTCP || d > originTolerance || d < -originTolerance {
		t.origin, t.anchor = origin.UTC(), event.AnchorRTCP
	}
	return nil
}

// ntpTime converts a 64-bit NTP timestamp (seconds since 1900 and a binary
// fraction) to time.
func ntpTime(v uint64) time.Time {
	const ntpToUnix = 2208988800
	sec := int64(v>>32) - ntpToUnix
	frac := ((v&0xffffffff)*1e9 + 1<<31) >> 32
	return time.Unix(sec, int64(frac)).UTC()
}

// Close places whatever the reorder buffer holds (what is still missing
// counts as lost), then emits the final chunk and completes the final
// segment. It is idempotent.
func (t *Track) Close() error {
	if t.closed {
		return nil
	}
	t.drain(0, true)
	t.dropFar()
	if t.chunk.open {
		t.emitChunk(true)
	}
	if t.seg.open {
		t.finishSegment(true)
	}
	t.closed = true
	return t.takeErrs()
}

func (t *Track) takeErrs() error {
	if len(t.errs) == 0 {
		return nil
	}
	err := errors.Join(t.errs...)
	t.errs = t.errs[:0]
	return err
}

func roundTo(v, m int64) int64 {
	r := ((v % m) + m) % m
	if r >= m/2 {
		return v - r + m
	}
	return v - r
}

// extAbove returns the smallest extended sequence number ≥ low whose low
// 16 bits are seq.
func extAbove(low int64, seq uint16) int64 {
	e := low&^0xffff | int64(seq)
	if e < low {
		e += 1 << 16
	}
	return e
}

func roundUp(v, m int64) int64 { return (v + m - 1) / m * m }
