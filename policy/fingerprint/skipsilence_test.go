package fingerprint

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/earshot/earshot/internal/opusenc"
	"github.com/earshot/earshot/internal/speakerbot"
	"github.com/earshot/earshot/internal/speech/speechtest"
	"github.com/earshot/earshot/record/opus"
)

// oggPackets encodes a WAV with opusenc (20 ms frames, as a browser
// sends) and returns its packets.
func oggPackets(tb testing.TB, s *speechtest.Studio, wav string, kbps int) [][]byte {
	tb.Helper()
	ogg := wav + "." + strconv.Itoa(kbps) + ".ogg"
	s.Run(s.Tools().Opusenc, "--quiet", "--bitrate", strconv.Itoa(kbps), "--framesize", "20", "--serial", "1", wav, ogg)
	data, err := os.ReadFile(ogg)
	if err != nil {
		tb.Fatal(err)
	}
	f, err := speakerbot.ReadOpusFile(bytes.NewReader(data))
	if err != nil {
		tb.Fatal(err)
	}
	out := make([][]byte, len(f.Packets))
	for i, p := range f.Packets {
		out[i] = p.Data
	}
	return out
}

// decodeTrack decodes packets to 16 kHz with record/opus, every packet
// (active false) or skipping inactive ones as the live stage does, and
// returns the audio and the share of packets skipped.
func decodeTrack(tb testing.TB, packets [][]byte, active bool) ([]float32, float64) {
	tb.Helper()
	d, err := opus.NewDecoder()
	if err != nil {
		tb.Fatal(err)
	}
	defer d.Close()
	pcm := make([]float32, opus.MaxPacketSamples)
	var out []float32
	skipped := 0
	for _, p := range packets {
		var n int
		var skip bool
		if active {
			n, skip, err = d.DecodeActive(p, pcm)
		} else {
			n, err = d.Decode(p, pcm)
		}
		if err != nil {
			tb.Fatal(err)
		}
		if skip {
			skipped++
		}
		out = append(out, pcm[:n]...)
	}
	return out, float64(skipped) / float64(max(len(packets), 1))
}

// landmarkKey is a landmark as the index sees it at speed 1.
type landmarkKey struct {
	t    int32
	hash uint32
}

func landmarkSet(pairs []Pair) map[landmarkKey]int {
	m := make(map[landmarkKey]int, len(pairs))
	for _, p := range pairs {
		if h, ok := Hash(p, 1); ok {
			m[landmarkKey{p.T, h}]++
		}
	}
	return m
}

// TestSkippingInactivePacketsKeepsLandmarks decodes the same packets twice,
// every packet and skipping the ones Inactive calls silence (as the live
// stage does), and compares what the fingerprint sees: speech between
// pauses encoded as a browser does (opusenc at 32 and 12 kbit/s) and as
// the test bots do (libopus VoIP with FEC), the same speech through a
// loudspeaker and microphone with noise, and hold music. The landmarks
// that can match (those the clean original also has, at the same frame
// and hash) must nearly all be kept, and matching the decode against the
// indexed original must find it with nearly the same hits.
func TestSkippingInactivePacketsKeepsLandmarks(t *testing.T) {
	s := speechtest.New(t)
	gap := s.Path("gap2.wav")
	s.Run(s.Tools().Sox, "-n", "-r", "48000", "-c", "1", "-b", "16", gap, "trim", "0", "2")
	var talk []string
	for i := range 4 {
		talk = append(talk, s.Say(s.Text(uint64(300+i), 12), fmt.Sprintf("skip-say%d", i)), gap)
	}
	speech := s.Concat("skip-talk", append([]string{gap}, talk...)...)
	noisy := s.AddNoise(s.Sox(speech, "skip-room", "sinc", "300-3400", "reverb", "40", "50", "60", "gain", "-n", "-3"), "skip-noisy", 10)
	music := holdMusic(s)
	bot := func(wav string, kbps int) [][]byte {
		enc, err := opusenc.New(kbps*1000, true)
		if err != nil {
			t.Fatal(err)
		}
		p, err := enc.Encode(s.Samples(wav, opusenc.SampleRate))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	clean, _ := decodeTrack(t, oggPackets(t, s, speech, 32), false)
	musicRef, _ := decodeTrack(t, oggPackets(t, s, music, 32), false)
	cases := []struct {
		name    string
		packets [][]byte
		ref     []float32 // the original, indexed in another room
		// minSkipped is the share of packets that must be skipped: the
		// 2 s pauses alone are a fifth of the speech tracks.
		minSkipped float64
		// minKept is the share of the matchable landmarks (the full
		// decode's that the original has too) the skipping decode must
		// keep: a few differ in the first frames after a pause, where
		// the decoder starts from a reset state.
		minKept float64
	}{
		{"browser 32 kbit/s", oggPackets(t, s, speech, 32), clean, 0.2, 0.97},
		{"browser 12 kbit/s", oggPackets(t, s, speech, 12), clean, 0.2, 0.97},
		{"bot 32 kbit/s", bot(speech, 32), clean, 0.2, 0.97},
		// The encoder's voice detector hears the weakest syllables in
		// 10 dB of noise as background: a few more are lost.
		{"loudspeaker and noise", oggPackets(t, s, noisy, 32), clean, 0.2, 0.9},
		{"hold music", oggPackets(t, s, music, 32), musicRef, 0, 0.99},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			full, none := decodeTrack(t, c.packets, false)
			part, skipped := decodeTrack(t, c.packets, true)
			if none != 0 || len(full) != len(part) {
				t.Fatalf("decodes differ in length: %d and %d samples", len(full), len(part))
			}
			rp, _ := fingerprintAll(c.ref)
			fp, _ := fingerprintAll(full)
			pp, _ := fingerprintAll(part)
			ref, want, got := landmarkSet(rp), landmarkSet(fp), landmarkSet(pp)
			matchable, kept := 0, 0
			for k, n := range want {
				n = min(n, ref[k])
				matchable += n
				kept += min(n, got[k])
			}
			hits := func(x []float32) (int, float64) {
				idx, err := NewIndex(IndexConfig{})
				if err != nil {
					t.Fatal(err)
				}
				stream(t, DefaultMatcherConfig(), idx, TrackInfo{Track: "a", Room: "room-a"}, c.ref, true)
				ms := stream(t, DefaultMatcherConfig(), idx, TrackInfo{Track: "b", Room: "room-b"}, x, false)
				if len(ms) != 1 {
					t.Fatalf("%d matches, want 1", len(ms))
				}
				return ms[0].Hits, ms[0].Confidence
			}
			hf, cf := hits(full)
			hp, cp := hits(part)
			t.Logf("%d packets, %.1f %% skipped; landmarks %d decoding all, %d skipping; matchable %d, kept %d (%.2f %%); hits %d, conf %.3f decoding all; %d, %.3f skipping",
				len(c.packets), 100*skipped, len(fp), len(pp), matchable, kept, 100*float64(kept)/float64(max(matchable, 1)), hf, cf, hp, cp)
			if skipped < c.minSkipped {
				t.Errorf("%.1f %% of packets skipped, want at least %.0f %%", 100*skipped, 100*c.minSkipped)
			}
			if matchable < 300 {
				t.Fatalf("only %d matchable landmarks decoding every packet", matchable)
			}
			if share := float64(kept) / float64(matchable); share < c.minKept {
				t.Errorf("%.2f %% of matchable landmarks kept, want at least %.0f %%", 100*share, 100*c.minKept)
			}
			if float64(hp) < c.minKept*float64(hf) {
				t.Errorf("%d hits skipping, %d decoding all", hp, hf)
			}
		})
	}
}
