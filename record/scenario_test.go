package record

import (
	"bytes"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/earshot/earshot/event"
)

// A scenario replays the fixture's packets as RTP through a simulated
// sender and network, with Tick every 20 ms of simulated time.
type scenario struct {
	name       string
	seq0       uint16
	ts0        uint32
	mute       bool // the sender stops for 5 s before packet muteAt
	muteTSRuns bool // ... and its RTP timestamp runs on through the pause
	dtx        bool // packets [dtxFrom, dtxTo) sent only every 20th, sequence numbers consecutive
	loss       float64
	reorder    bool          // every 7th packet is held back 30 ms
	dups       bool          // every 11th packet arrives twice, every 50th again 300 ms later
	jitter     time.Duration // extra random delay per packet
	tol        time.Duration // tone position tolerance
}

const (
	muteAt   = 300 // packet index (6.0 s into the source)
	muteLen  = 5 * time.Second
	dtxFrom  = 400
	dtxTo    = 440
	baseWire = 30 * time.Millisecond
)

// sent is one packet as the sender sent it.
type sent struct {
	src    int
	seq    uint16
	ts     uint32
	sendAt time.Duration
}

type delivery struct {
	sent
	arrive time.Duration
}

func (sc scenario) send(n int) []sent {
	var out []sent
	seq := sc.seq0
	for i := range n {
		if sc.dtx && i >= dtxFrom && i < dtxTo && (i-dtxFrom)%20 != 0 {
			continue
		}
		at := time.Duration(i) * 20 * time.Millisecond
		ts := sc.ts0 + uint32(960*i)
		if sc.mute && i >= muteAt {
			at += muteLen
			if sc.muteTSRuns {
				ts += uint32(event.DurationToSamples(muteLen))
			}
		}
		out = append(out, sent{src: i, seq: seq, ts: ts, sendAt: at})
		seq++
	}
	return out
}

// network returns the deliveries in arrival order and what it did.
func (sc scenario) network(s []sent) (d []delivery, dropped, duplicated int) {
	rng := rand.New(rand.NewPCG(1, uint64(len(sc.name))))
	for k, p := range s {
		if sc.loss > 0 && k > 0 && k < len(s)-1 && rng.Float64() < sc.loss {
			dropped++
			continue
		}
		at := p.sendAt + baseWire
		if sc.jitter > 0 {
			at += time.Duration(rng.Int64N(int64(sc.jitter)))
		}
		if sc.reorder && k%7 == 3 {
			at += 30 * time.Millisecond
		}
		d = append(d, delivery{p, at})
		if sc.dups && k%11 == 5 {
			d = append(d, delivery{p, at + 2*time.Millisecond})
			duplicated++
		}
		if sc.dups && k%50 == 7 {
			d = append(d, delivery{p, at + 300*time.Millisecond})
			duplicated++
		}
	}
	slices.SortStableFunc(d, func(a, b delivery) int { return int(a.arrive - b.arrive) })
	return d, dropped, duplicated
}

type runResult struct {
	track    *Track
	chunks   *memChunks
	segs     *memSegments
	sent     []sent
	dropped  int
	dups     int
	epoch    time.Time
	chunkLen int64
}

var scenarioEpoch = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func runScenario(t *testing.T, sc scenario, pkts [][]byte) runResult {
	t.Helper()
	chunks, segs := &memChunks{}, newMemSegments()
	tr, err := NewTrack(TrackConfig{
		Track: "trk_test", Room: "r1_room", Session: "ses_test", Speaker: "p1_spk",
		PayloadType: 111, SegmentDuration: 2500 * time.Millisecond,
		Chunks: chunks, Segments: segs,
	})
	if err != nil {
		t.Fatal(err)
	}
	s := sc.send(len(pkts))
	d, dropped, dups := sc.network(s)
	end := d[len(d)-1].arrive // no ticks after the last packet: the timeline would (rightly) run on as mute
	next := 0
	for now := time.Duration(0); now < end+20*time.Millisecond; now += 20 * time.Millisecond {
		for next < len(d) && d[next].arrive <= now {
			p := d[next]
			pkt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: p.seq, Timestamp: p.ts, SSRC: 0xabc},
				Payload: bytes.Clone(pkts[p.src])}
			if err := tr.Push(pkt, scenarioEpoch.Add(p.arrive)); err != nil {
				t.Fatalf("push %d: %v", p.src, err)
			}
			clear(pkt.Payload) // the recorder must not keep the caller's buffer
			next++
		}
		if err := tr.Tick(scenarioEpoch.Add(now)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	return runResult{tr, chunks, segs, s, dropped, dups, scenarioEpoch.Add(d[0].arrive), tr.chunkLen}
}

var scenarios = []scenario{
	{name: "clean", tol: 3 * time.Millisecond},
	{name: "reorder+duplicates", reorder: true, dups: true, tol: 3 * time.Millisecond},
	{name: "loss5", loss: 0.05, tol: 40 * time.Millisecond},
	{name: "dtx", dtx: true, tol: 3 * time.Millisecond},
	{name: "mute5s-ts-runs", mute: true, muteTSRuns: true, tol: 3 * time.Millisecond},
	{name: "mute5s-ts-stalls", mute: true, tol: 3 * time.Millisecond},
	{name: "wrap", seq0: 65535 - 40, ts0: math.MaxUint32 - 960*100 + 1, tol: 3 * time.Millisecond},
	{name: "everything", seq0: 65000, ts0: math.MaxUint32 - 960*350, loss: 0.05, reorder: true, dups: true,
		mute: true, jitter: 15 * time.Millisecond, tol: 40 * time.Millisecond},
}

// expectedPos is where source sample s (of the fixture's decoded WAV)
// should sit on the timeline: at its packet's send time relative to the
// first packet.
func (r runResult) expectedPos(s int64) int64 {
	i := int((s + fixturePreSkip) / 960)
	within := (s + fixturePreSkip) % 960
	first := r.sent[0].sendAt
	for _, p := range r.sent {
		if p.src == i {
			return event.DurationToSamples(p.sendAt-first) + within
		}
	}
	return -1
}

func TestScenarios(t *testing.T) {
	pkts := fixturePackets(t)
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			r := runScenario(t, sc, pkts)
			st := r.track.Stats()
			t.Logf("stats %+v", st)
			timelinePkts := checkChunks(t, r)
			checkSegments(t, r, timelinePkts)

			last := r.sent[len(r.sent)-1]
			wantLen := event.DurationToSamples(last.sendAt - r.sent[0].sendAt + 20*time.Millisecond)
			slack := int64(0)
			if sc.jitter > 0 {
				slack = event.DurationToSamples(sc.jitter + 5*time.Millisecond)
			}
			if d := st.Samples - wantLen; d < -slack || d > slack {
				t.Errorf("timeline has %d samples, want %d (±%d): it must follow the sender's wall clock", st.Samples, wantLen, slack)
			}
			if st.Lost != int64(r.dropped) {
				t.Errorf("lost %d, network dropped %d", st.Lost, r.dropped)
			}
			if st.Duplicates != int64(r.dups) || st.Late != 0 || st.Malformed != 0 {
				t.Errorf("duplicates %d (sent %d), late %d, malformed %d", st.Duplicates, r.dups, st.Late, st.Malformed)
			}
			if st.Packets != int64(len(r.sent)-r.dropped) {
				t.Errorf("placed %d packets, delivered %d", st.Packets, len(r.sent)-r.dropped)
			}
			if st.Gaps.Loss != int64(r.dropped)*960 {
				t.Errorf("loss gap %d samples, want %d", st.Gaps.Loss, r.dropped*960)
			}
			wantSilence := int64(0)
			if sc.dtx {
				wantSilence = int64(dtxTo-dtxFrom-(dtxTo-dtxFrom+19)/20) * 960
			}
			if st.Gaps.Silence != wantSilence {
				t.Errorf("silence gap %d samples, want %d", st.Gaps.Silence, wantSilence)
			}
			wantMute := int64(0)
			if sc.mute {
				wantMute = event.DurationToSamples(muteLen)
			}
			if d := st.Gaps.Mute - wantMute; d < -slack || d > slack {
				t.Errorf("mute gap %d samples, want %d", st.Gaps.Mute, wantMute)
			}
			wantResyncs := int64(0)
			if sc.mute && !sc.muteTSRuns {
				wantResyncs = 1
			}
			if st.Resyncs != wantResyncs {
				t.Errorf("resyncs %d, want %d", st.Resyncs, wantResyncs)
			}
			if tl := r.track.Timeline(); !tl.Origin.Equal(r.epoch) || tl.Anchor != event.AnchorArrival {
				t.Errorf("origin %v %s, want first arrival %v", tl.Origin, tl.Anchor, r.epoch)
			}
		})
	}
}

// checkChunks checks the chunks tile the timeline and returns its packets.
func checkChunks(t *testing.T, r runResult) [][]byte {
	t.Helper()
	st := r.track.Stats()
	var all [][]byte
	var gaps Gaps
	next := int64(0)
	for i, c := range r.chunks.chunks {
		if c.Seq != int64(i) || c.Timeline.FirstSample != next || c.Timeline.Track != "trk_test" {
			t.Fatalf("chunk %d: seq %d starts at %d, want %d", i, c.Seq, c.Timeline.FirstSample, next)
		}
		if err := c.Timeline.Validate(); err != nil {
			t.Fatal(err)
		}
		if c.Final != (i == len(r.chunks.chunks)-1) {
			t.Fatalf("chunk %d final=%v", i, c.Final)
		}
		if c.Timeline.FirstSample < int64(i)*r.chunkLen || c.Timeline.FirstSample >= int64(i)*r.chunkLen+5760 {
			t.Fatalf("chunk %d starts at %d, not at the first packet from %d", i, c.Timeline.FirstSample, int64(i)*r.chunkLen)
		}
		off := int64(0)
		for k, p := range c.Data.Packets {
			if c.Data.Offsets[k] != off {
				t.Fatalf("chunk %d packet %d at offset %d, want %d", i, k, c.Data.Offsets[k], off)
			}
			n, err := packetSamples(p)
			if err != nil {
				t.Fatal(err)
			}
			off += int64(n)
		}
		if off != c.Timeline.Samples() {
			t.Fatalf("chunk %d packets last %d samples, timeline says %d", i, off, c.Timeline.Samples())
		}
		if pl := c.Payload(); pl.Frames != len(c.Data.Packets) || pl.GapSamples != c.Gaps.Total() || pl.Codec != "opus" {
			t.Fatalf("payload %+v", pl)
		}
		gaps.Loss += c.Gaps.Loss
		gaps.Silence += c.Gaps.Silence
		gaps.Mute += c.Gaps.Mute
		next = c.Timeline.LastSample + 1
		all = append(all, c.Data.Packets...)
	}
	if next != st.Samples || gaps != st.Gaps {
		t.Fatalf("chunks cover %d samples with gaps %+v; stats say %d, %+v", next, gaps, st.Samples, st.Gaps)
	}
	return all
}

// checkSegments checks each segment is a valid Ogg/Opus stream holding
// exactly its part of the timeline after 3840 samples of warm-up.
func checkSegments(t *testing.T, r runResult, timeline [][]byte) {
	t.Helper()
	if len(r.segs.aborted) > 0 || len(r.segs.open) > 0 {
		t.Fatalf("aborted %v, left open %d", r.segs.aborted, len(r.segs.open))
	}
	next, k := int64(0), 0
	for i, s := range r.segs.done {
		b := r.segs.bytes[i]
		if s.Seq != int64(i) || s.Timeline.FirstSample != next || s.Final != (i == len(r.segs.done)-1) {
			t.Fatalf("segment %d: seq %d first %d final %v, want first %d", i, s.Seq, s.Timeline.FirstSample, s.Final, next)
		}
		if s.Size != int64(len(b)) || s.PreSkip != 3840 {
			t.Fatalf("segment %d: size/preskip %d %d do not match its %d bytes", i, s.Size, s.PreSkip, len(b))
		}
		o, err := parseOgg(b)
		if err != nil {
			t.Fatalf("segment %d: %v", i, err)
		}
		if o.preSkip != 3840 || o.channels != 1 || !o.eos || int64(o.granule)-3840 != s.Timeline.Samples() {
			t.Fatalf("segment %d: preskip %d channels %d eos %v granule %d for %d samples", i, o.preSkip, o.channels, o.eos, o.granule, s.Timeline.Samples())
		}
		want := map[string]string{TagTrack: "trk_test", TagRoom: "r1_room", TagSession: "ses_test", TagSpeaker: "p1_spk",
			TagSegment: strconv.Itoa(i), TagFirstSample: strconv.FormatInt(next, 10), TagSampleRate: "48000"}
		for k, v := range want {
			if o.tags[k] != v {
				t.Fatalf("segment %d tag %s=%q, want %q", i, k, o.tags[k], v)
			}
		}
		if a := event.Anchor(o.tags[TagAnchor]); a != event.AnchorArrival && a != event.AnchorRTCP {
			t.Fatalf("segment %d anchor tag %q", i, a)
		}
		if _, err := time.Parse(time.RFC3339Nano, o.tags[TagOrigin]); err != nil {
			t.Fatalf("segment %d origin tag: %v", i, err)
		}
		// Warm-up: packets totalling exactly the pre-skip, then the timeline.
		var warm int64
		w := 0
		for warm < 3840 {
			n, err := packetSamples(o.packets[w])
			if err != nil {
				t.Fatal(err)
			}
			warm += int64(n)
			w++
		}
		if warm != 3840 {
			t.Fatalf("segment %d warm-up is %d samples", i, warm)
		}
		body := o.packets[w:]
		if len(body) != s.Packets || packetsSamples(t, body) != s.Timeline.Samples() {
			t.Fatalf("segment %d: %d packets of %d samples; Segment says %d packets, %d samples", i, len(body), packetsSamples(t, body), s.Packets, s.Timeline.Samples())
		}
		for j, p := range body {
			if !bytes.Equal(p, timeline[k+j]) {
				t.Fatalf("segment %d packet %d differs from the chunks' packet %d", i, j, k+j)
			}
		}
		// The warm-up ends with the packets just before the segment.
		if i > 0 {
			tail := o.packets[:w]
			for j := 1; j <= min(len(tail), 2); j++ {
				if !bytes.Equal(tail[len(tail)-j], timeline[k-j]) {
					t.Fatalf("segment %d warm-up does not end with the preceding packets", i)
				}
			}
		}
		k += len(body)
		next = s.Timeline.LastSample + 1
	}
	if next != r.track.Stats().Samples || k != len(timeline) {
		t.Fatalf("segments cover %d samples / %d packets of %d / %d", next, k, r.track.Stats().Samples, len(timeline))
	}
}
