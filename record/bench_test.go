package record

import (
	"io"
	"math"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4/pkg/media/oggwriter"
)

// benchTracks is how many tracks a benchmark interleaves, so per-track
// state does not all sit in L1 as it would with a single track.
const benchTracks = 64

// cpuTime is the process's user+system CPU time: it counts the garbage
// collector's work on other threads, which wall-clock time per op would
// miss.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// recorderLoop pushes n packets round-robin into benchTracks recorders as
// 50 packet/s streams (Tick every 5th packet, i.e. every 100 ms), and
// returns the CPU time it took.
func recorderLoop(b *testing.B, pkts [][]byte, n int) time.Duration {
	tracks := make([]*Track, benchTracks)
	chunks := &discardChunks{}
	for i := range tracks {
		tr, err := NewTrack(TrackConfig{Track: "trk_bench", Room: "r1_room", Session: "ses_bench", Speaker: "p1_spk",
			PayloadType: 111, Chunks: chunks, Segments: discardSegments{}})
		if err != nil {
			b.Fatal(err)
		}
		tracks[i] = tr
	}
	p := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SSRC: 9}}
	runtime.GC() // start both loops from the same heap state
	start := cpuTime(b)
	for i := range n {
		tr := tracks[i%benchTracks]
		k := i / benchTracks
		p.SequenceNumber = uint16(k)
		p.Timestamp = uint32(960 * k)
		p.Payload = pkts[k%len(pkts)]
		now := t0.Add(time.Duration(k) * 20 * time.Millisecond)
		if err := tr.Push(p, now); err != nil {
			b.Fatal(err)
		}
		if k%5 == 4 {
			if err := tr.Tick(now); err != nil {
				b.Fatal(err)
			}
		}
	}
	took := cpuTime(b) - start
	for _, tr := range tracks {
		if err := tr.Close(); err != nil {
			b.Fatal(err)
		}
		if st := tr.Stats(); st.Gaps.Total() != 0 || st.Lost != 0 || st.Late != 0 {
			b.Fatalf("output is not gap-free: %+v", st)
		}
	}
	return took
}

// oggwriterLoop writes the same packets straight into pion's oggwriter,
// one writer per track.
func oggwriterLoop(b *testing.B, pkts [][]byte, n int) time.Duration {
	writers := make([]*oggwriter.Track, benchTracks)
	for i := range writers {
		w, err := oggwriter.NewWriter(io.Discard, oggwriter.WithChannelCount(1))
		if err != nil {
			b.Fatal(err)
		}
		if writers[i], err = w.NewTrack(9); err != nil {
			b.Fatal(err)
		}
	}
	p := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SSRC: 9}}
	runtime.GC()
	start := cpuTime(b)
	for i := range n {
		k := i / benchTracks
		p.SequenceNumber = uint16(k)
		p.Timestamp = uint32(960 * k)
		p.Payload = pkts[k%len(pkts)]
		if err := writers[i%benchTracks].WriteRTP(p); err != nil {
			b.Fatal(err)
		}
	}
	return cpuTime(b) - start
}

// BenchmarkRecorder: one op is one packet through the whole recorder
// (reorder, timeline, live chunk, Ogg segment with SHA-256).
// record_tracks_per_core = packets per CPU-second / 50 packets/s a track.
func BenchmarkRecorder(b *testing.B) {
	pkts := fixturePackets(b)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := recorderLoop(b, pkts, b.N)
	perPacket := float64(cpu.Nanoseconds()) / float64(b.N)
	b.ReportMetric(perPacket, "cpu-ns/packet")
	b.ReportMetric(1e9/perPacket/50, "record_tracks_per_core")
}

// BenchmarkVsOggwriter: the recorder's CPU cost per packet over that of
// writing the same packets straight into pion's oggwriter. The two run in
// alternating rounds and the cheapest round of each counts, so a noisy
// neighbour on the machine skews neither side.
func BenchmarkVsOggwriter(b *testing.B) {
	pkts := fixturePackets(b)
	const rounds = 5
	n := max(b.N/rounds, 1)
	base, full := time.Duration(math.MaxInt64), time.Duration(math.MaxInt64)
	b.ResetTimer()
	for range rounds {
		base = min(base, oggwriterLoop(b, pkts, n))
		full = min(full, recorderLoop(b, pkts, n))
	}
	b.ReportMetric(float64(base.Nanoseconds())/float64(n), "oggwriter-cpu-ns/packet")
	b.ReportMetric(float64(full.Nanoseconds())/float64(n), "recorder-cpu-ns/packet")
	b.ReportMetric(float64(full)/float64(base), "record_vs_oggwriter_ratio")
}
