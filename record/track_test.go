package record

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/earshot/earshot/event"
)

// audio20 is a valid 20 ms packet (TOC-only CELT frame) that is not one of
// the recorder's silence packets, so tests can tell audio from fill.
var audio20 = []byte{0xF8}

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func newTestTrack(t *testing.T, edit func(*TrackConfig)) (*Track, *memChunks, *memSegments) {
	t.Helper()
	chunks, segs := &memChunks{}, newMemSegments()
	cfg := TrackConfig{Track: "trk_unit", Chunks: chunks, Segments: segs, SegmentDuration: time.Second}
	if edit != nil {
		edit(&cfg)
	}
	tr, err := NewTrack(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tr, chunks, segs
}

func pkt(seq uint16, ts uint32, payload []byte) *rtp.Packet {
	return &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: seq, Timestamp: ts, SSRC: 7}, Payload: payload}
}

// at is the arrival time of packet i of a steady 20 ms stream.
func at(i int) time.Time { return t0.Add(time.Duration(i) * 20 * time.Millisecond) }

func mustPush(t *testing.T, tr *Track, p *rtp.Packet, when time.Time) {
	t.Helper()
	if err := tr.Push(p, when); err != nil {
		t.Fatalf("push seq %d: %v", p.SequenceNumber, err)
	}
}

func TestPushRejectsMalformed(t *testing.T) {
	tr, chunks, _ := newTestTrack(t, func(c *TrackConfig) { c.PayloadType = 111 })
	mustPush(t, tr, pkt(0, 0, audio20), at(0))
	bad := []struct {
		name string
		p    *rtp.Packet
	}{
		{"nil", nil},
		{"version 0", &rtp.Packet{Header: rtp.Header{PayloadType: 111, SSRC: 7, SequenceNumber: 1}, Payload: audio20}},
		{"payload type", &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SSRC: 7, SequenceNumber: 1}, Payload: audio20}},
		{"other SSRC", &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SSRC: 8, SequenceNumber: 1}, Payload: audio20}},
		{"empty payload", pkt(1, 960, nil)},
		{"code 3 with 0 frames", pkt(1, 960, []byte{0xFB, 0})},
		{"code 3 of 240 ms", pkt(1, 960, []byte{0xFB, 12})},
	}
	for _, b := range bad {
		if err := tr.Push(b.p, at(1)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Push = %v, want ErrMalformed", b.name, err)
		}
	}
	mustPush(t, tr, pkt(1, 960, audio20), at(1))
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	st := tr.Stats()
	if st.Malformed != int64(len(bad)) || st.Packets != 2 || st.Samples != 1920 || st.Lost != 0 {
		t.Fatalf("stats %+v", st)
	}
	if len(chunks.chunks) != 1 || len(chunks.chunks[0].Data.Packets) != 2 {
		t.Fatalf("chunks %+v", chunks.chunks)
	}
}

func TestLateDuplicateAndLoss(t *testing.T) {
	tr, _, _ := newTestTrack(t, nil)
	mustPush(t, tr, pkt(10, 0, audio20), at(0))
	mustPush(t, tr, pkt(12, 1920, audio20), at(2)) // 11 missing
	if st := tr.Stats(); st.Packets != 1 {
		t.Fatalf("packet after a gap placed before the deadline: %+v", st)
	}
	if err := tr.Tick(at(2).Add(DefaultLossDeadline - time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if st := tr.Stats(); st.Packets != 1 || st.Lost != 0 {
		t.Fatalf("released before the deadline: %+v", st)
	}
	if err := tr.Tick(at(2).Add(DefaultLossDeadline)); err != nil {
		t.Fatal(err)
	}
	if st := tr.Stats(); st.Packets != 2 || st.Lost != 1 || st.Gaps.Loss != 960 || st.Samples != 3*960 {
		t.Fatalf("after the deadline: %+v", st)
	}
	mustPush(t, tr, pkt(11, 960, audio20), at(8))  // too late
	mustPush(t, tr, pkt(12, 1920, audio20), at(8)) // duplicate
	mustPush(t, tr, pkt(10, 0, audio20), at(8))    // duplicate
	mustPush(t, tr, pkt(13, 2880, audio20), at(8))
	st := tr.Stats()
	if st.Late != 1 || st.Duplicates != 2 || st.Packets != 3 || st.Samples != 4*960 {
		t.Fatalf("stats %+v", st)
	}
}

func TestReorderWithinDeadline(t *testing.T) {
	tr, chunks, _ := newTestTrack(t, nil)
	order := []int{0, 2, 1, 5, 4, 3, 6, 7}
	for k, i := range order {
		p := []byte{0xF8, byte(i)} // tell packets apart
		mustPush(t, tr, pkt(uint16(65533+i), uint32(960*i), p), at(k).Add(5*time.Millisecond))
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	st := tr.Stats()
	if st.Lost != 0 || st.Packets != 8 || st.Samples != 8*960 {
		t.Fatalf("stats %+v", st)
	}
	for k, p := range chunks.chunks[0].Data.Packets {
		if p[1] != byte(k) {
			t.Fatalf("packet %d is source %d", k, p[1])
		}
	}
}

func TestSequenceRestart(t *testing.T) {
	tr, _, _ := newTestTrack(t, nil)
	for i := range 10 {
		mustPush(t, tr, pkt(uint16(100+i), uint32(960*i), audio20), at(i))
	}
	// A stray packet far away is dropped; the stream goes on.
	mustPush(t, tr, pkt(30000, 5, audio20), at(10))
	mustPush(t, tr, pkt(110, 960*10, audio20), at(10))
	if st := tr.Stats(); st.Late != 1 || st.Resyncs != 0 || st.Packets != 11 {
		t.Fatalf("after a stray packet: %+v", st)
	}
	// Two consecutive far packets: a new sequence (new timestamps too),
	// placed by arrival time after a 1 s pause.
	for i := range 5 {
		mustPush(t, tr, pkt(uint16(40000+i), uint32(777+960*i), audio20), at(61+i))
	}
	st := tr.Stats()
	if st.Resyncs != 1 || st.Packets != 16 || st.Late != 1 {
		t.Fatalf("after a restart: %+v", st)
	}
	if want := int64(66 * 960); st.Samples != want {
		t.Fatalf("timeline %d samples, want %d (the restart lands at its arrival time)", st.Samples, want)
	}
	if st.Gaps.Mute != 50*960 {
		t.Fatalf("gaps %+v", st.Gaps)
	}
}

func TestTimestampJumps(t *testing.T) {
	tests := []struct {
		name       string
		jump       uint32 // added to timestamps from packet 10 on
		pause      int    // packets' worth of wall-clock pause before packet 10
		wantLen    int64
		wantResync int64
		gaps       Gaps
	}{
		{"DTX jump matching wall-clock", 960 * 20, 20, 40 * 960, 0, Gaps{Silence: 20 * 960}},
		{"jump an hour ahead", 48000 * 3600, 0, 20 * 960, 1, Gaps{}},
		{"jump back", -960 * 5 & 0xffffffff, 0, 20 * 960, 0, Gaps{}},
		{"off-grid jump", 1000, 1, 21 * 960, 0, Gaps{Silence: 960}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, _, _ := newTestTrack(t, nil)
			for i := range 20 {
				ts := uint32(960 * i)
				arr := i
				if i >= 10 {
					ts += tt.jump
					arr += tt.pause
				}
				mustPush(t, tr, pkt(uint16(i), ts, audio20), at(arr))
			}
			st := tr.Stats()
			if d := st.Samples - tt.wantLen; d < -grid || d > grid || st.Resyncs != tt.wantResync {
				t.Fatalf("samples %d resyncs %d, want %d (±%d) and %d", st.Samples, st.Resyncs, tt.wantLen, grid, tt.wantResync)
			}
			if d := st.Gaps.Total() - tt.gaps.Total(); d < -grid || d > grid {
				t.Fatalf("gaps %+v, want %+v", st.Gaps, tt.gaps)
			}
			if err := tr.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func ntp(tm time.Time) uint64 {
	sec := uint64(tm.Unix() + 2208988800)
	frac := uint64(tm.Nanosecond()) << 32 / 1e9
	return sec<<32 | frac
}

func TestSenderReport(t *testing.T) {
	tr, chunks, _ := newTestTrack(t, nil)
	const ts0 = 1 << 31
	// A report before any packet is kept until the first one.
	early := &rtcp.SenderReport{SSRC: 7, RTPTime: ts0 - 48000, NTPTime: ntp(t0.Add(-time.Second - 40*time.Millisecond))}
	if err := tr.SenderReport(early, t0.Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if tl := tr.Timeline(); tl.Anchor != event.AnchorArrival {
		t.Fatalf("anchor %s before any packet", tl.Anchor)
	}
	for i := range 100 {
		mustPush(t, tr, pkt(uint16(i), ts0+uint32(960*i), audio20), at(i))
	}
	want := t0.Add(-40 * time.Millisecond)
	if tl := tr.Timeline(); tl.Anchor != event.AnchorRTCP || !tl.Origin.Equal(want) {
		t.Fatalf("origin %v %s, want %v rtcp_sr", tl.Origin, tl.Anchor, want)
	}
	steps := []struct {
		name    string
		shift   time.Duration // sender clock vs the first report
		ssrc    uint32
		wantErr bool
		origin  time.Time
	}{
		{"small disagreement keeps origin", 5 * time.Millisecond, 7, false, want},
		{"large one moves it", 100 * time.Millisecond, 7, false, want.Add(100 * time.Millisecond)},
		{"wrong clock ignored", time.Minute, 7, true, want.Add(100 * time.Millisecond)},
		{"other SSRC ignored", 0, 9, true, want.Add(100 * time.Millisecond)},
	}
	for _, s := range steps {
		sr := &rtcp.SenderReport{SSRC: s.ssrc, RTPTime: ts0 + 48000, NTPTime: ntp(t0.Add(time.Second - 40*time.Millisecond + s.shift))}
		err := tr.SenderReport(sr, t0.Add(time.Second))
		if (err != nil) != s.wantErr || (err != nil && !errors.Is(err, ErrSenderReport)) {
			t.Fatalf("%s: err %v", s.name, err)
		}
		if tl := tr.Timeline(); !tl.Origin.Equal(s.origin) {
			t.Fatalf("%s: origin %v, want %v", s.name, tl.Origin, s.origin)
		}
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	// Positions never moved: the timeline is the 100 packets.
	if st := tr.Stats(); st.Samples != 100*960 || st.SenderReports != 3 || st.SenderReportsRejected != 1 {
		t.Fatalf("stats %+v", st)
	}
	last := chunks.chunks[len(chunks.chunks)-1]
	if !last.Timeline.Origin.Equal(want.Add(100*time.Millisecond)) || last.Timeline.Anchor != event.AnchorRTCP {
		t.Fatalf("last chunk origin %v %s", last.Timeline.Origin, last.Timeline.Anchor)
	}
}

func TestSinkErrors(t *testing.T) {
	t.Run("chunk sink", func(t *testing.T) {
		tr, chunks, _ := newTestTrack(t, nil)
		chunks.err = errors.New("broker down")
		var errs int
		for i := range 150 {
			if err := tr.Push(pkt(uint16(i), uint32(960*i), audio20), at(i)); err != nil {
				if !strings.Contains(err.Error(), "broker down") || errors.Is(err, ErrMalformed) {
					t.Fatalf("push: %v", err)
				}
				errs++
			}
		}
		chunks.err = nil
		if err := tr.Close(); err != nil {
			t.Fatal(err)
		}
		st := tr.Stats()
		if errs != 2 || st.ChunkErrors != 2 || st.Chunks != 3 || len(chunks.chunks) != 1 || chunks.chunks[0].Seq != 2 {
			t.Fatalf("errs %d stats %+v chunks %d", errs, st, len(chunks.chunks))
		}
	})
	t.Run("segment open", func(t *testing.T) {
		tr, _, segs := newTestTrack(t, nil)
		segs.openErr = errors.New("spool full")
		if err := tr.Push(pkt(0, 0, audio20), at(0)); err == nil {
			t.Fatal("no error from a failing OpenSegment")
		}
		for i := 1; i < 50; i++ {
			if err := tr.Push(pkt(uint16(i), uint32(960*i), audio20), at(i)); err != nil {
				t.Fatalf("retried before the next segment boundary: %v", err)
			}
		}
		segs.openErr = nil
		for i := 50; i < 120; i++ {
			mustPush(t, tr, pkt(uint16(i), uint32(960*i), audio20), at(i))
		}
		if err := tr.Close(); err != nil {
			t.Fatal(err)
		}
		if st := tr.Stats(); st.SegmentErrors != 1 || len(segs.done) != 2 || segs.done[0].Seq != 1 || segs.done[0].Timeline.FirstSample != 48000 {
			t.Fatalf("stats %+v segments %+v", st, segs.done)
		}
	})
	t.Run("segment write", func(t *testing.T) {
		tr, _, segs := newTestTrack(t, nil)
		segs.failWrite, segs.failSeq = true, 1
		var errs int
		for i := range 160 {
			if err := tr.Push(pkt(uint16(i), uint32(960*i), audio20), at(i)); err != nil {
				errs++
			}
		}
		if err := tr.Close(); err != nil {
			t.Fatal(err)
		}
		if errs != 1 || len(segs.aborted) != 1 || segs.aborted[0].Seq != 1 || len(segs.done) != 3 || segs.done[1].Seq != 2 || segs.done[1].Timeline.FirstSample != 96000 {
			t.Fatalf("errs %d aborted %v done %+v", errs, segs.aborted, segs.done)
		}
		parsed, err := parseOgg(segs.bytes[1])
		if err != nil || int64(parsed.granule)-3840 != segs.done[1].Timeline.Samples() {
			t.Fatalf("segment after the failure: %v", err)
		}
	})
}

func TestConfigValidation(t *testing.T) {
	ok := func(c *TrackConfig) {}
	tests := []struct {
		name string
		edit func(*TrackConfig)
		want string
	}{
		{"defaults", ok, ""},
		{"no track", func(c *TrackConfig) { c.Track = "" }, "Track is empty"},
		{"channels", func(c *TrackConfig) { c.Channels = 3 }, "Channels is 3"},
		{"short chunks", func(c *TrackConfig) { c.ChunkDuration = time.Millisecond }, "ChunkDuration"},
		{"short segments", func(c *TrackConfig) { c.SegmentDuration = time.Millisecond }, "SegmentDuration"},
		{"deadline", func(c *TrackConfig) { c.LossDeadline = 2 * time.Second }, "LossDeadline"},
		{"no sinks", func(c *TrackConfig) { c.Chunks, c.Segments = nil, nil }, "Segments is nil"},
	}
	for _, tt := range tests {
		cfg := TrackConfig{Track: "trk_x", Chunks: &memChunks{}, Segments: newMemSegments()}
		tt.edit(&cfg)
		_, err := NewTrack(cfg)
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestCloseIsFinal(t *testing.T) {
	tr, chunks, segs := newTestTrack(t, nil)
	if err := tr.Close(); err != nil || len(chunks.chunks) != 0 || len(segs.done) != 0 {
		t.Fatalf("closing an empty track: %v", err)
	}
	tr, chunks, segs = newTestTrack(t, nil)
	for i := range 50 { // exactly one chunk and one segment
		mustPush(t, tr, pkt(uint16(i), uint32(960*i), audio20), at(i))
	}
	if len(chunks.chunks) != 0 {
		t.Fatal("a chunk was emitted before the next one began")
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if len(chunks.chunks) != 1 || !chunks.chunks[0].Final || len(segs.done) != 1 || !segs.done[0].Final {
		t.Fatalf("chunks %d segments %d", len(chunks.chunks), len(segs.done))
	}
	if err := tr.Push(pkt(50, 960*50, audio20), at(50)); !errors.Is(err, ErrClosed) {
		t.Fatalf("push after close: %v", err)
	}
	if err := tr.Tick(at(60)); !errors.Is(err, ErrClosed) {
		t.Fatalf("tick after close: %v", err)
	}
}

// TestMixedDurations: packets of 60, 10, 2.5 and 20 ms; segment warm-ups
// that do not fall on 20 ms are led by short silence frames.
func TestMixedDurations(t *testing.T) {
	tr, chunks, segs := newTestTrack(t, nil)
	kinds := [][]byte{{0x18}, {0xF0, 0xFF, 0xFE}, {0xE0, 0xFF, 0xFE}, {0xF8, 0xFF, 0xFE}} // 2880, 480, 120, 960
	var ts uint32
	arrival := t0
	for i := range 200 {
		p := kinds[i%len(kinds)]
		n, _ := packetSamples(p)
		mustPush(t, tr, pkt(uint16(i), ts, p), arrival)
		ts += uint32(n)
		arrival = arrival.Add(event.SamplesToDuration(int64(n)))
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	r := runResult{track: tr, chunks: chunks, segs: segs, chunkLen: tr.chunkLen}
	for i := range chunks.chunks {
		chunks.chunks[i].Timeline.Track = "trk_test" // checkChunks' track name
	}
	all := checkChunks(t, r)
	if st := tr.Stats(); st.Samples != int64(ts) || st.Gaps.Total() != 0 {
		t.Fatalf("stats %+v, want %d samples", st, ts)
	}
	for i, b := range segs.bytes {
		o, err := parseOgg(b)
		if err != nil || int64(o.granule)-3840 != segs.done[i].Timeline.Samples() {
			t.Fatalf("segment %d: %v", i, err)
		}
	}
	if got := packetsSamples(t, all); got != int64(ts) {
		t.Fatalf("chunks hold %d samples", got)
	}
}

// TestDelaySpike: a burst of packets delayed together, then normal again,
// then a 1 s pause. A spike over 120 ms looks like a stalled timestamp and
// shifts the timeline; the pause must absorb that lead, so the timeline
// ends in step with the sender's clock, without re-anchoring every packet.
func TestDelaySpike(t *testing.T) {
	tests := []struct {
		spike   time.Duration
		resyncs int64
	}{{60 * time.Millisecond, 0}, {200 * time.Millisecond, 0}, {700 * time.Millisecond, 2}}
	for _, tt := range tests {
		t.Run(tt.spike.String(), func(t *testing.T) {
			tr, _, _ := newTestTrack(t, nil)
			const n, pause = 300, 50  // packets; pause in packets (1 s)
			send := func(i int) int { // send slot, after the pause
				if i >= 200 {
					return i + pause
				}
				return i
			}
			arrival := func(i int) time.Time {
				a := at(send(i))
				if i >= 100 && a.Before(at(100).Add(tt.spike)) {
					a = at(100).Add(tt.spike) // held back, then delivered at once
				}
				return a
			}
			next := 0
			for now := t0; next < n; now = now.Add(20 * time.Millisecond) {
				for next < n && !arrival(next).After(now) {
					mustPush(t, tr, pkt(uint16(next), uint32(960*send(next)), audio20), arrival(next))
					next++
				}
				if err := tr.Tick(now); err != nil {
					t.Fatal(err)
				}
			}
			st := tr.Stats()
			if st.Resyncs != tt.resyncs || st.Packets != n {
				t.Fatalf("stats %+v, want %d resyncs", st, tt.resyncs)
			}
			if want := int64((n + pause) * 960); st.Samples < want-grid || st.Samples > want+grid {
				t.Fatalf("timeline %d samples, want %d: the pause did not absorb the spike", st.Samples, want)
			}
		})
	}
}
