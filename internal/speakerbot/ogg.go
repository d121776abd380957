package speakerbot

import (
	"errors"
	"io"

	"github.com/earshot/earshot/record/ogg"
)

// SampleRate is Opus's timeline rate (granule positions, RTP timestamps).
const SampleRate = ogg.SampleRate

// Packet is one Opus packet of a file, placed on the file's timeline.
type Packet struct {
	Data []byte
	// Start is the packet's first sample, counted from the first sample of
	// the stream (pre-skip included); Samples its duration.
	Start   int64
	Samples int
}

// OpusFile is an Ogg/Opus file split into its Opus packets.
type OpusFile struct {
	Head    ogg.Head
	Packets []Packet
	// Samples is the sum of the packets' durations (pre-skip included).
	Samples int64
	// EndTrim is how many samples of the last packet the final granule
	// position cuts off (the encoder pads the last frame).
	EndTrim int64
}

// PreSkip is the number of decoder-delay samples at the start that a
// decoder discards: audio offset 0 (a cue's start_ms 0) is sample PreSkip.
func (f *OpusFile) PreSkip() int64 { return int64(f.Head.PreSkip) }

// DurationSamples is the playable duration in samples: without pre-skip
// and end trimming, as a decoder outputs it.
func (f *OpusFile) DurationSamples() int64 { return max(f.Samples-f.PreSkip()-f.EndTrim, 0) }

// ReadOpusFile reads the first logical Opus stream of an Ogg file (mono or
// stereo, as WebRTC carries): every audio packet with its duration, page
// checksums verified (package ogg). It never panics on malformed input.
func ReadOpusFile(r io.Reader) (*OpusFile, error) {
	rd, err := ogg.NewOpusReader(r)
	if err != nil {
		return nil, err
	}
	f := &OpusFile{Head: rd.Head}
	for {
		p, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		f.Packets = append(f.Packets, Packet{Data: p.Data, Start: p.Start, Samples: p.Samples})
		f.Samples += int64(p.Samples)
	}
	if len(f.Packets) == 0 {
		return nil, errors.New("ogg: no audio packets")
	}
	f.EndTrim = rd.EndTrim()
	return f, nil
}
