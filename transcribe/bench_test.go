package transcribe

import (
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's user+system CPU time: it counts the garbage
// collector's work on other threads too, and not the time other programs
// on a busy machine take from this one.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportRealtime runs once per iteration and reports figure as seconds of
// audio processed per CPU-second.
func reportRealtime(b *testing.B, figure string, audioSeconds float64, once func()) {
	b.Helper()
	var cpu time.Duration
	b.ResetTimer()
	for b.Loop() {
		start := cpuTime(b)
		once()
		cpu += cpuTime(b) - start
	}
	b.ReportMetric(audioSeconds*float64(b.N)/cpu.Seconds(), figure)
}

// benchAudio is about 100 s of espeak-ng speech and silence (fox.opus 20
// times) as 1 s chunks on one track.
func benchAudio(b *testing.B) ([]chunk, float64) {
	fox := foxPackets(b)
	var pk [][]byte
	for range 20 {
		pk = append(pk, fox...)
	}
	return chunks(0, pk, 50), float64(len(pk)) * 0.02
}

// BenchmarkDecode measures decode_x_realtime: seconds of Opus audio decoded
// to 16 kHz mono per CPU-second (target ≥ 1,000×).
func BenchmarkDecode(b *testing.B) {
	cs, seconds := benchAudio(b)
	reportRealtime(b, "decode_x_realtime", seconds, func() {
		d, err := NewTrackDecoder(DecoderConfig{})
		if err != nil {
			b.Fatal(err)
		}
		defer d.Close()
		for _, c := range cs {
			if _, err := d.Decode(c.tl, c.data); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkSegment measures segment_x_realtime: seconds of 16 kHz audio
// run through voice-activity detection and utterance cutting per
// CPU-second.
func BenchmarkSegment(b *testing.B) {
	cs, seconds := benchAudio(b)
	pcm := make([]PCM, len(cs))
	d, err := NewTrackDecoder(DecoderConfig{})
	if err != nil {
		b.Fatal(err)
	}
	for i, c := range cs {
		if pcm[i], err = d.Decode(c.tl, c.data); err != nil {
			b.Fatal(err)
		}
	}
	d.Close()
	reportRealtime(b, "segment_x_realtime", seconds, func() {
		s, err := NewSegmenter(SegmenterConfig{})
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for _, p := range pcm {
			n += len(s.Push(p.Start, p.Samples))
		}
		if n += len(s.Flush()); n != 20 {
			b.Fatalf("%d utterances from 20 sentences", n)
		}
	})
}
