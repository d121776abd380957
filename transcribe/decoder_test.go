package transcribe

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/record/opus"
)

func newDecoder(t testing.TB) *TrackDecoder {
	t.Helper()
	d, err := NewTrackDecoder(DecoderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestDecodeKeepsTimeline(t *testing.T) {
	// 3 s of voice starting at timeline sample 96,000 (2 s into a track),
	// in 1 s chunks.
	const first = 96000
	pkts := encode(t, voiced(48000, 3*time.Second, 0.5))
	all := decodeAll(t, chunks(first, pkts, 50))
	if all.Start != first {
		t.Fatalf("audio starts at %d, want %d", all.Start, first)
	}
	if want := len(pkts) * 320; len(all.Samples) != want {
		t.Fatalf("%d samples, want %d (20 ms = 320 samples per packet)", len(all.Samples), want)
	}
	if sp := all.Span(); sp.First != first || sp.Last != first+int64(len(pkts))*960-1 {
		t.Fatalf("span %+v", sp)
	}
}

// TestDecodeAlignment checks that audio sample k really is timeline sample
// 3k: a click at a known timeline position comes out at position/3, late
// only by the codec's fixed delay.
func TestDecodeAlignment(t *testing.T) {
	in := make([]float32, 48000)
	const click = 30000 // timeline sample
	for i := range 48 {
		in[click+i] = 0.8 * float32(math.Sin(float64(i)*math.Pi/48))
	}
	all := decodeAll(t, chunks(0, encode(t, in), 10))
	peak, at := float32(0), 0
	for i, v := range all.Samples {
		if v > peak {
			peak, at = v, i
		}
	}
	// libopus's VoIP encoder looks ahead 6.5 ms (312 samples at 48 kHz):
	// decoded audio trails its timeline position by that much, no more.
	want := (click + 24 + 312) / 3
	if d := at - want; d < -8 || d > 8 {
		t.Fatalf("click decoded at audio sample %d, want about %d (timeline %d / 3 + codec delay)", at, want, click)
	}
}

func TestDecodeFillsLostPackets(t *testing.T) {
	pkts := encode(t, voiced(48000, 2*time.Second, 0.5))
	cs := chunks(0, pkts, 50)
	// Lose packets 10–12 of the first chunk and the first packet of the
	// second chunk, as a sender with no recorder gap-filling would.
	c0 := cs[0]
	c0.data.Packets = append(append([][]byte{}, c0.data.Packets[:10]...), c0.data.Packets[13:]...)
	c0.data.Offsets = append(append([]int64{}, c0.data.Offsets[:10]...), c0.data.Offsets[13:]...)
	c1 := cs[1]
	c1.data.Packets, c1.data.Offsets = c1.data.Packets[1:], c1.data.Offsets[1:]
	// An empty packet stands for a lost one too.
	c1.data.Packets = append([][]byte{}, c1.data.Packets...)
	c1.data.Packets[5] = nil

	d := newDecoder(t)
	p0, err := d.Decode(c0.tl, c0.data)
	if err != nil {
		t.Fatal(err)
	}
	p1, err := d.Decode(c1.tl, c1.data)
	if err != nil {
		t.Fatal(err)
	}
	if len(p0.Samples) != 50*320 || p1.Start != 48000 || len(p1.Samples) != 50*320 {
		t.Fatalf("chunks decoded to %d samples and %d at %d; want 16000 each, continuous", len(p0.Samples), len(p1.Samples), p1.Start)
	}
	if st := d.Stats(); st.ConcealedAudio != 5*320 || st.Packets != 95 {
		t.Fatalf("stats %+v: want 5 packets (1600 samples) concealed, 95 decoded", st)
	}
	// Concealment continues the voice rather than dropping to silence.
	if r := rmsOf(p0.Samples[10*320 : 13*320]); r < 0.02 {
		t.Fatalf("concealed stretch has RMS %.4f: PLC/FEC did not run", r)
	}
}

func rmsOf(x []float32) float64 {
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return math.Sqrt(s / float64(max(len(x), 1)))
}

func TestDecodeSkipsRedeliveredChunks(t *testing.T) {
	cs := chunks(0, encode(t, voiced(48000, 2*time.Second, 0.5)), 50)
	d := newDecoder(t)
	for _, c := range []chunk{cs[0], cs[0], cs[1]} {
		p, err := d.Decode(c.tl, c.data)
		if err != nil {
			t.Fatal(err)
		}
		if want := c.tl.FirstSample; p.Start != want && len(p.Samples) > 0 {
			t.Fatalf("chunk at %d decoded at %d", want, p.Start)
		}
	}
	if st := d.Stats(); st.Duplicates != 50 || st.Packets != 150 {
		t.Fatalf("stats %+v: want the repeated chunk's 50 packets skipped", st)
	}
	if d.Next() != 96000 {
		t.Fatalf("Next = %d, want 96000", d.Next())
	}
}

func TestDecodeDiscontinuity(t *testing.T) {
	cs := chunks(0, encode(t, voiced(48000, 10*time.Second, 0.5)), 50)
	d := newDecoder(t)
	if _, err := d.Decode(cs[0].tl, cs[0].data); err != nil {
		t.Fatal(err)
	}
	// Chunks 1–3 lost (3 s, under MaxFill): filled.
	p, err := d.Decode(cs[4].tl, cs[4].data)
	if err != nil {
		t.Fatal(err)
	}
	if p.Start != 48000 || len(p.Samples) != 4*16000 {
		t.Fatalf("after a 3 s gap: start %d, %d samples; want 48000 and 64000 (filled)", p.Start, len(p.Samples))
	}
	// Chunks 5–9 lost... then a jump past MaxFill starts afresh.
	far := chunks(20*48000, encode(t, voiced(48000, time.Second, 0.5)), 50)[0]
	p, err = d.Decode(far.tl, far.data)
	if err != nil {
		t.Fatal(err)
	}
	if p.Start != 20*48000 || len(p.Samples) != 16000 || d.Stats().Discontinuities != 1 {
		t.Fatalf("after a 15 s gap: start %d, %d samples, %+v", p.Start, len(p.Samples), d.Stats())
	}
}

func TestDecodeCorruptPacket(t *testing.T) {
	cs := chunks(0, encode(t, voiced(48000, time.Second, 0.5)), 50)
	c := cs[0]
	c.data.Packets = append([][]byte{}, c.data.Packets...)
	c.data.Packets[7] = []byte{0x03, 0x82, 0xff, 0xff}
	d := newDecoder(t)
	p, err := d.Decode(c.tl, c.data)
	if !errors.Is(err, ErrCorruptAudio) || !errors.Is(err, opus.ErrInvalidPacket) {
		t.Fatalf("err = %v, want ErrCorruptAudio wrapping opus.ErrInvalidPacket", err)
	}
	if len(p.Samples) != 16000 {
		t.Fatalf("%d samples, want 16000: the bad packet is concealed and the audio kept", len(p.Samples))
	}
}

func TestDecodeRejectsMalformedChunks(t *testing.T) {
	pk := encode(t, voiced(48000, 100*time.Millisecond, 0.5))
	tl := testTimeline(0, 4799)
	for name, data := range map[string]event.AudioChunkData{
		"count mismatch":  {Packets: pk, Offsets: []int64{0}},
		"offset negative": {Packets: pk[:2], Offsets: []int64{-960, 0}},
		"offset outside":  {Packets: pk[:2], Offsets: []int64{0, 4800}},
		"out of order":    {Packets: pk[:2], Offsets: []int64{960, 0}},
		"repeated offset": {Packets: pk[:2], Offsets: []int64{0, 0}},
	} {
		d := newDecoder(t)
		if _, err := d.Decode(tl, data); !errors.Is(err, ErrBadChunk) {
			t.Errorf("%s: err = %v, want ErrBadChunk", name, err)
		}
		if d.Next() != -1 {
			t.Errorf("%s: a rejected chunk moved the decoder to %d", name, d.Next())
		}
	}
}

func TestDecoderResetAndConfig(t *testing.T) {
	if _, err := NewTrackDecoder(DecoderConfig{MaxFill: -time.Second}); err == nil {
		t.Fatal("negative MaxFill accepted")
	}
	cs := chunks(0, encode(t, voiced(48000, time.Second, 0.5)), 50)
	d := newDecoder(t)
	if _, err := d.Decode(cs[0].tl, cs[0].data); err != nil {
		t.Fatal(err)
	}
	if err := d.Reset(); err != nil {
		t.Fatal(err)
	}
	// After a reset the same chunk is a new track's audio, not a duplicate.
	p, err := d.Decode(cs[0].tl, cs[0].data)
	if err != nil || len(p.Samples) != 16000 {
		t.Fatalf("after Reset: %d samples, %v", len(p.Samples), err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
}

// FuzzTrackDecoder feeds arbitrary packets and offsets: the decoder must
// return an error or audio consistent with the timeline, never panic.
func FuzzTrackDecoder(f *testing.F) {
	pk := encode(f, voiced(48000, 60*time.Millisecond, 0.5))
	f.Add(pk[0], pk[1], pk[2], int64(0), int64(960), int64(1920), int64(0))
	f.Add(pk[0], []byte{0x03, 0x82, 0xff, 0xff}, pk[2], int64(0), int64(961), int64(5000), int64(7))
	f.Add([]byte{}, []byte{0xfc, 0xff}, []byte{0x0b, 0x3f}, int64(3), int64(2), int64(1), int64(1<<40))
	f.Fuzz(func(t *testing.T, a, b, c []byte, oa, ob, oc, first int64) {
		d, err := NewTrackDecoder(DecoderConfig{})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		first = max(first, 0) % (1 << 40)
		tl := testTimeline(first, first+47999)
		data := event.AudioChunkData{Packets: [][]byte{a, b, c}, Offsets: []int64{oa, ob, oc}}
		for range 2 { // the second time everything is a duplicate
			p, err := d.Decode(tl, data)
			if err != nil && !errors.Is(err, ErrBadChunk) && !errors.Is(err, ErrCorruptAudio) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			if errors.Is(err, ErrBadChunk) {
				return
			}
			if p.Start%Ratio != 0 || p.Start < 0 {
				t.Fatalf("start %d is off the audio grid", p.Start)
			}
			if end := p.Start + int64(len(p.Samples))*Ratio; len(p.Samples) > 0 && end != d.Next() {
				t.Fatalf("audio ends at %d but the decoder expects %d next", end, d.Next())
			}
		}
	})
}

func TestDecodeRejectsHugeGapInsideChunk(t *testing.T) {
	pk := encode(t, voiced(48000, 40*time.Millisecond, 0.5))
	tl := testTimeline(0, 3600*48000)
	d := newDecoder(t)
	data := event.AudioChunkData{Packets: pk[:2], Offsets: []int64{0, 3599 * 48000}}
	if _, err := d.Decode(tl, data); !errors.Is(err, ErrBadChunk) {
		t.Fatalf("an hour-long gap inside a chunk: err = %v, want ErrBadChunk", err)
	}
}
