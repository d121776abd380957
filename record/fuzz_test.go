package record

import (
	"errors"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// FuzzPush feeds arbitrary bytes, parsed as RTP, with arbitrary arrival
// steps, ticks and sender reports. The recorder must never panic, must
// reject bad packets only with ErrMalformed, and its output must still tile
// the timeline exactly, with every segment a valid Ogg/Opus stream.
//
// Input: records of [control, length, length bytes of RTP]. control bits
// 0–5: arrival step in 5 ms units; bit 6: Tick first; bit 7: also send a
// sender report built from the packet's timestamp.
func FuzzPush(f *testing.F) {
	pkts := fixturePackets(f)
	var seed []byte
	for i := range 40 {
		p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: uint16(65530 + i), Timestamp: uint32(0xffffff00 + 960*i), SSRC: 1}, Payload: pkts[i]}
		if i%9 == 4 { // reorder
			p.SequenceNumber += 2
		}
		b, err := p.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		ctl := byte(4)
		if i%5 == 0 {
			ctl |= 0x40
		}
		if i == 20 {
			ctl = 0x3f | 0xc0 // a pause, a tick and a report
		}
		seed = append(seed, ctl, byte(len(b)))
		seed = append(seed, b...)
	}
	f.Add(seed)
	f.Add([]byte{0x44, 12, 0x80, 111, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		chunks, segs := &memChunks{}, newMemSegments()
		tr, err := NewTrack(TrackConfig{Track: "trk_test", Room: "r1_room", Session: "ses_test", Speaker: "p1_spk",
			ChunkDuration: 200 * time.Millisecond, SegmentDuration: time.Second, Chunks: chunks, Segments: segs})
		if err != nil {
			t.Fatal(err)
		}
		now := t0
		for len(data) >= 2 {
			ctl, n := data[0], int(data[1])
			data = data[2:]
			n = min(n, len(data))
			raw := data[:n]
			data = data[n:]
			now = now.Add(time.Duration(ctl&0x3f) * 5 * time.Millisecond)
			if ctl&0x40 != 0 {
				if err := tr.Tick(now); err != nil {
					t.Fatalf("tick: %v", err)
				}
			}
			var p rtp.Packet
			if p.Unmarshal(raw) != nil {
				continue
			}
			if err := tr.Push(&p, now); err != nil && !errors.Is(err, ErrMalformed) {
				t.Fatalf("push: %v", err)
			}
			if ctl&0x80 != 0 {
				sr := &rtcp.SenderReport{SSRC: p.SSRC, RTPTime: p.Timestamp, NTPTime: ntp(now.Add(-time.Duration(p.SequenceNumber) * time.Millisecond))}
				if err := tr.SenderReport(sr, now); err != nil && !errors.Is(err, ErrSenderReport) {
					t.Fatalf("sender report: %v", err)
				}
			}
		}
		if err := tr.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		r := runResult{track: tr, chunks: chunks, segs: segs, chunkLen: tr.chunkLen}
		all := checkChunks(t, r)
		if len(all) > 0 {
			checkSegments(t, r, all)
		}
	})
}
