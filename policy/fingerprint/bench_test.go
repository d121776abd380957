package fingerprint

import (
	"encoding/binary"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/earshot/earshot/internal/speech/speechtest"
	"github.com/earshot/earshot/record/opus"
)

// BenchmarkRebroadcastRecall reports rebroadcast_recall: the share of the
// recall test's 80 replays (eight degradations, ten excerpts, shipped
// thresholds) found in the right room with the right spans, as speech. It
// leaves out the live path (Kafka, chunking across hosts): the matcher
// gets the same 240 ms chunks offline.
func BenchmarkRebroadcastRecall(b *testing.B) {
	found, total := measureRecall(b, false)
	for b.Loop() {
	}
	b.ReportMetric(float64(found)/float64(total), "rebroadcast_recall")
}

// BenchmarkRebroadcastFalseAlarms reports
// rebroadcast_false_alarms_per_hour: matches per hour of room-pair audio
// between two rooms where one synthetic voice speaks different text (no
// shared word 4-gram) for over two hours each, matched both ways as live.
// Real voices differ more than one espeak-ng voice does; it leaves out
// other sources of shared audio (music, a jingle), which are reported as
// shared audio, not as leaks.
func BenchmarkRebroadcastFalseAlarms(b *testing.B) {
	r := measureSameVoice(b, 20500)
	for b.Loop() {
	}
	b.ReportMetric(float64(len(r.matches))/r.rooms[0].Hours(), "rebroadcast_false_alarms_per_hour")
}

// loadIndex fills idx as the benchmark's index: an hour of one voice's
// speech (different text from every other test's), extracted once and
// indexed as ten tracks in ten rooms. It returns the hour's samples.
func loadIndex(tb testing.TB, s *speechtest.Studio, idx *Index) int {
	r := voicePipe(tb, s, tb.Context(), "prefill", s.Text(8, 9800))
	e := NewExtractor()
	var pairs []Pair
	var levels []int8
	raw := make([]byte, 2*SampleRate)
	buf := make([]float32, SampleRate)
	samples := 0
	for {
		n, err := io.ReadFull(r, raw)
		for i := range n / 2 {
			buf[i] = float32(int16(binary.LittleEndian.Uint16(raw[2*i:]))) / 32768
		}
		samples += n / 2
		pairs, levels = e.Push(buf[:n/2], pairs, levels)
		if err != nil {
			break
		}
	}
	pairs = e.Flush(pairs)
	for i := range 10 {
		id := idx.AddTrack(TrackInfo{Track: fmt.Sprintf("prefill%d", i), Room: fmt.Sprintf("room%d", i), StartMS: 0})
		idx.AddLevels(id, levels)
		if err := idx.Add(id, pairs); err != nil {
			tb.Fatal(err)
		}
	}
	return samples
}

// talkTrack is a minute of one participant at a 30 % talk share (3 s of
// speech every 10 s) as Opus packets, the way a recorder receives it.
func talkTrack(b *testing.B, s *speechtest.Studio) [][]byte {
	speech := s.Say(s.Text(7, 60), "talk")
	var parts []string
	silence := s.Path("gap.wav")
	s.Run(s.Tools().Sox, "-n", "-r", "48000", "-c", "1", "-b", "16", silence, "trim", "0", "7")
	for i := range 6 {
		parts = append(parts, s.Sox(speech, fmt.Sprintf("talk%d", i), "trim", fmt.Sprint(3*i), "3"), silence)
	}
	return oggPackets(b, s, s.Concat("talk-minute", parts...), 32)
}

// BenchmarkFingerprintTracks reports fingerprint_tracks_per_core: live
// tracks at a 30 % talk share that one core keeps up with for Opus
// decoding as the live stage does it (libopus at 16 kHz, inactive packets
// not decoded), landmark extraction, matching against the
// index and indexing, in 240 ms chunks; and
// fingerprint_index_mb_per_track_hour, the index's memory per hour of
// such a track. The index holds ten copies of an hour of speech (about 33
// track-hours at 30 % talk: the 30-minute window of some 65 tracks, in
// ten rooms). Matching costs grow with the index, so a window of
// thousands of tracks needs the index sharded; this figure leaves that
// out, and Kafka's cost too.
func BenchmarkFingerprintTracks(b *testing.B) {
	s := speechtest.New(b)
	packets := talkTrack(b, s)
	idx, err := NewIndex(IndexConfig{Window: 2 * time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	empty := idx.Bytes()
	speechSamples := loadIndex(b, s, idx)
	trackHours := 10 * float64(speechSamples) / SampleRate / 3600 / 0.3
	mbPerTrackHour := float64(idx.Bytes()-empty) / 1e6 / trackHours

	const chunkPackets = 12 // 240 ms of 20 ms packets
	pcm := make([]float32, opus.MaxPacketSamples*chunkPackets)
	var cpu time.Duration
	var trackSeconds float64
	n := 0
	for b.Loop() {
		n++
		id := idx.AddTrack(TrackInfo{Track: fmt.Sprintf("live%d", n), Room: "live-room", StartMS: 0})
		c0 := cpuTime()
		dec, err := opus.NewDecoder()
		if err != nil {
			b.Fatal(err)
		}
		m, err := NewMatcher(DefaultMatcherConfig(), idx, id)
		if err != nil {
			b.Fatal(err)
		}
		ex := NewExtractor()
		var p []Pair
		var l []int8
		samples := 0
		for i := 0; i < len(packets); i += chunkPackets {
			k := 0
			for _, pkt := range packets[i:min(i+chunkPackets, len(packets))] {
				d, _, err := dec.DecodeActive(pkt, pcm[k:k+opus.MaxPacketSamples])
				if err != nil {
					b.Fatal(err)
				}
				k += d
			}
			samples += k
			p, l = ex.Push(pcm[:k], p[:0], l[:0])
			idx.AddLevels(id, l)
			m.Push(p)
			if err := idx.Add(id, p); err != nil {
				b.Fatal(err)
			}
		}
		m.Push(ex.Flush(p[:0]))
		m.Flush()
		dec.Close()
		cpu += cpuTime() - c0
		trackSeconds += float64(samples) / SampleRate
		if got := len(m.Matches()); got != 0 {
			b.Fatalf("a different text matched %d times", got)
		}
		b.StopTimer()
		idx.EraseRoom("live-room")
		b.StartTimer()
	}
	b.ReportMetric(trackSeconds/cpu.Seconds(), "fingerprint_tracks_per_core")
	b.ReportMetric(mbPerTrackHour, "fingerprint_index_mb_per_track_hour")
}
