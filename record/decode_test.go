package record

import (
	"math"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/earshot/earshot/event"
)

// These tests check media output by decoding it with opusdec (opus-tools,
// libopusfile), so they need the speech test bed (testbed/speech.sh). That
// silence packets decode to zeros is checked in package ogg.

// toneOnset finds the first 1 kHz onset within ±search of around.
func toneOnset(pcm []int16, around, search int64) int64 {
	const win = 48 // 1 ms
	c := 2 * math.Cos(2*math.Pi*1000/event.SampleRate)
	for i := max(around-search, 0); i+win < int64(len(pcm)) && i <= around+search; i += 4 {
		var s1, s2 float64
		for _, v := range pcm[i : i+win] {
			s := float64(v) + c*s1 - s2
			s2, s1 = s1, s
		}
		if math.Sqrt(math.Max(s1*s1+s2*s2-c*s1*s2, 0))/win > 2000 {
			return i + win/2
		}
	}
	return -1
}

func TestScenariosDecoded(t *testing.T) {
	pkts := fixturePackets(t)
	source := decode(t, readFixture(t))
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			r := runScenario(t, sc, pkts)
			samples := r.track.Stats().Samples
			var joined []int16
			for i, s := range r.segs.done {
				b := r.segs.bytes[i]
				if i == 0 || s.Final {
					opusinfo(t, b)
				}
				pcm := decode(t, b)
				if int64(len(pcm)) != s.Timeline.Samples() {
					t.Fatalf("segment %d decodes to %d samples; its timeline has %d", i, len(pcm), s.Timeline.Samples())
				}
				joined = append(joined, pcm...)
			}
			if int64(len(joined)) != samples {
				t.Fatalf("segments decode to %d samples; the timeline has %d", len(joined), samples)
			}
			// The same packets decoded as one stream: segment joins must
			// not show.
			var all [][]byte
			for _, c := range r.chunks.chunks {
				all = append(all, c.Data.Packets...)
			}
			whole := decode(t, oggOf(t, all))
			if len(whole) != len(joined) {
				t.Fatalf("continuous decode has %d samples, joined segments %d", len(whole), len(joined))
			}
			for i, s := range r.segs.done[1:] {
				from := s.Timeline.FirstSample
				to := min(from+event.DurationToSamples(100*time.Millisecond), samples)
				// At least 30 dB below the audio, or within a couple of LSBs
				// where the audio is near-silent.
				if snr, rms := snrDB(whole[from:to], joined[from:to]); snr < 30 && rms > 2 {
					t.Errorf("segment %d join: the 100 ms after it differ from the continuous decode (SNR %.1f dB, difference RMS %.1f)", i+1, snr, rms)
				}
			}
			// Tones sit where the sender's clock put them.
			worst := time.Duration(0)
			for _, tone := range fixtureTones {
				src := toneOnset(source, tone, 2400)
				if src < 0 {
					t.Fatalf("no tone near %d in the source", tone)
				}
				want := r.expectedPos(src)
				got := toneOnset(joined, want, event.DurationToSamples(100*time.Millisecond))
				if got < 0 {
					t.Fatalf("tone of source sample %d not found near timeline sample %d", src, want)
				}
				off := event.SamplesToDuration(got - want)
				if off < 0 {
					off = -off
				}
				worst = max(worst, off)
				if off > sc.tol {
					t.Errorf("tone at source %.3f s is at timeline %.3f s, want %.3f s (±%v)", float64(src)/48000, float64(got)/48000, float64(want)/48000, sc.tol)
				}
			}
			t.Logf("worst tone offset %v", worst)
		})
	}
}

// snrDB compares got with ref: the signal-to-difference ratio and the
// difference's RMS (in 16-bit units).
func snrDB(ref, got []int16) (snr, rms float64) {
	var sig, noise float64
	for i := range ref {
		d := float64(ref[i]) - float64(got[i])
		sig += float64(ref[i]) * float64(ref[i])
		noise += d * d
	}
	rms = math.Sqrt(noise / float64(len(ref)))
	if noise == 0 {
		return math.Inf(1), 0
	}
	return 10 * math.Log10(sig/noise), rms
}

// TestOriginWithLeadingMute: with Origin set, the timeline runs from it
// and the first packet lands at its arrival time.
func TestOriginWithLeadingMute(t *testing.T) {
	pkts := fixturePackets(t)
	chunks, segs := &memChunks{}, newMemSegments()
	origin := scenarioEpoch
	tr, err := NewTrack(TrackConfig{Track: "trk_test", Origin: origin, Chunks: chunks, Segments: segs})
	if err != nil {
		t.Fatal(err)
	}
	lead := 2 * time.Second
	for now := time.Duration(0); now < lead; now += 20 * time.Millisecond {
		if err := tr.Tick(origin.Add(now)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 250 {
		at := origin.Add(lead + time.Duration(i)*20*time.Millisecond)
		if err := tr.Push(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(i), Timestamp: uint32(960 * i)}, Payload: pkts[i]}, at); err != nil {
			t.Fatal(err)
		}
		if err := tr.Tick(at); err != nil {
			t.Fatal(err)
		}
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	st := tr.Stats()
	if want := event.DurationToSamples(lead) + 250*960; st.Samples != want || st.Gaps.Mute != event.DurationToSamples(lead) {
		t.Fatalf("timeline %d samples with %d mute, want %d with %d", st.Samples, st.Gaps.Mute, want, event.DurationToSamples(lead))
	}
	if tl := tr.Timeline(); !tl.Origin.Equal(origin) {
		t.Fatalf("origin %v, want %v", tl.Origin, origin)
	}
	// The chunks during the lead-in came out while it lasted.
	if len(chunks.chunks) < 2 || chunks.chunks[0].Gaps.Mute != chunks.chunks[0].Timeline.Samples() {
		t.Fatalf("no all-mute chunk during the lead-in: %d chunks", len(chunks.chunks))
	}
	var joined []int16
	for _, b := range segs.bytes {
		joined = append(joined, decode(t, b)...)
	}
	if int64(len(joined)) != st.Samples {
		t.Fatalf("decoded %d samples of %d", len(joined), st.Samples)
	}
}
