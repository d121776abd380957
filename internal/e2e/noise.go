package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/earshot/earshot/internal/speech"
)

// AddNoise writes to outPath a copy of clip with noise over [fromMS, toMS):
// pink noise (Kellet's filter) at rmsDBFS, re-encoded the way
// speech.Synthesize encodes (32 kb/s, 20 ms frames), with the clip's cue
// sheet beside it. The cue sheet still calls the noisy stretch a pause,
// which is what a test of "no transcript from noise" wants.
func AddNoise(ctx context.Context, tools speech.Tools, clip speech.Clip, fromMS, toMS int64, rmsDBFS float64, outPath string) (speech.Clip, error) {
	pcm, err := tools.Decode(ctx, clip.Path)
	if err != nil {
		return speech.Clip{}, err
	}
	if pcm.Channels != 1 || pcm.Rate != speech.SampleRate {
		return speech.Clip{}, fmt.Errorf("e2e: noise: %d channels at %d Hz, want mono at %d", pcm.Channels, pcm.Rate, speech.SampleRate)
	}
	from, to := int(fromMS*speech.SampleRate/1000), int(toMS*speech.SampleRate/1000)
	to = min(to, len(pcm.Samples))
	r := rand.New(rand.NewPCG(uint64(fromMS), uint64(toMS)))
	noise := make([]float64, max(to-from, 0))
	var b0, b1, b2, sum float64
	for i := range noise {
		w := r.NormFloat64()
		b0 = 0.99765*b0 + w*0.0990460
		b1 = 0.96300*b1 + w*0.2965164
		b2 = 0.57000*b2 + w*1.0526913
		noise[i] = b0 + b1 + b2 + w*0.1848
		sum += noise[i] * noise[i]
	}
	if len(noise) > 0 {
		g := math.Pow(10, rmsDBFS/20) * 32767 / math.Sqrt(sum/float64(len(noise)))
		for i, v := range noise {
			s := float64(pcm.Samples[from+i]) + v*g
			pcm.Samples[from+i] = int16(max(min(s, 32767), -32768))
		}
	}
	tmp, err := os.MkdirTemp("", "earshot-noise-")
	if err != nil {
		return speech.Clip{}, err
	}
	defer os.RemoveAll(tmp)
	wav := filepath.Join(tmp, "noisy.wav")
	if err := os.WriteFile(wav, WAVBytes(pcm.Samples, speech.SampleRate), 0o644); err != nil {
		return speech.Clip{}, err
	}
	cmd := exec.CommandContext(ctx, tools.Opusenc, "--quiet", "--bitrate", "32", "--framesize", "20", "--serial", "4242", wav, outPath)
	if out, err := cmd.CombinedOutput(); err != nil {
		return speech.Clip{}, fmt.Errorf("e2e: noise: opusenc: %w: %s", err, out)
	}
	cues, err := os.ReadFile(clip.CuesPath)
	if err != nil {
		return speech.Clip{}, err
	}
	if err := os.WriteFile(speech.CuesPath(outPath), cues, 0o644); err != nil {
		return speech.Clip{}, err
	}
	out := clip
	out.Path, out.CuesPath = outPath, speech.CuesPath(outPath)
	return out, nil
}

// WAVBytes is a mono 16-bit WAV file.
func WAVBytes(samples []int16, rate int) []byte {
	var b bytes.Buffer
	le := func(v any) { _ = binary.Write(&b, binary.LittleEndian, v) }
	data := uint32(2 * len(samples))
	b.WriteString("RIFF")
	le(36 + data)
	b.WriteString("WAVEfmt ")
	le(uint32(16))
	le(uint16(1)) // PCM
	le(uint16(1)) // mono
	le(uint32(rate))
	le(uint32(rate * 2))
	le(uint16(2))
	le(uint16(16))
	b.WriteString("data")
	le(data)
	le(samples)
	return b.Bytes()
}
