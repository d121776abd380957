package speech

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
)

// PCM is 16-bit linear audio, interleaved when it has several channels.
type PCM struct {
	Rate     int
	Channels int
	Samples  []int16
}

// Frames is the number of samples per channel.
func (p *PCM) Frames() int {
	if p.Channels <= 0 {
		return 0
	}
	return len(p.Samples) / p.Channels
}

// DurationMS is the length in milliseconds, rounded down.
func (p *PCM) DurationMS() int64 {
	if p.Rate <= 0 {
		return 0
	}
	return int64(p.Frames()) * 1000 / int64(p.Rate)
}

// RMS is the root mean square of channel 0 over [fromMS, toMS), relative to
// full scale (1.0 is a full-scale square wave). Out-of-range bounds are
// clamped.
func (p *PCM) RMS(fromMS, toMS int64) float64 {
	from, to := p.frameAt(fromMS), p.frameAt(toMS)
	if to <= from {
		return 0
	}
	var sum float64
	for f := from; f < to; f++ {
		v := float64(p.Samples[f*p.Channels]) / 32768
		sum += v * v
	}
	return math.Sqrt(sum / float64(to-from))
}

// ToneLevel is the amplitude of the freqHz component of channel 0 over
// [fromMS, toMS) relative to full scale (Goertzel): about 0.5 for a sine at
// half scale, near 0 where the tone is absent.
func (p *PCM) ToneLevel(freqHz float64, fromMS, toMS int64) float64 {
	from, to := p.frameAt(fromMS), p.frameAt(toMS)
	n := to - from
	if n <= 0 || p.Rate <= 0 {
		return 0
	}
	w := 2 * math.Pi * freqHz / float64(p.Rate)
	coeff := 2 * math.Cos(w)
	var s1, s2 float64
	for f := from; f < to; f++ {
		s := float64(p.Samples[f*p.Channels])/32768 + coeff*s1 - s2
		s2, s1 = s1, s
	}
	power := s1*s1 + s2*s2 - coeff*s1*s2
	return 2 * math.Sqrt(math.Max(power, 0)) / float64(n)
}

func (p *PCM) frameAt(ms int64) int {
	f := ms * int64(p.Rate) / 1000
	switch {
	case f < 0:
		return 0
	case f > int64(p.Frames()):
		return p.Frames()
	}
	return int(f)
}

// ReadWAVFile reads a 16-bit PCM WAV file.
func ReadWAVFile(path string) (*PCM, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read wav: %w", err)
	}
	defer f.Close()
	p, err := ReadWAV(f)
	if err != nil {
		return nil, fmt.Errorf("read wav %s: %w", path, err)
	}
	return p, nil
}

// maxWAVBytes bounds what ReadWAV loads: an hour of 48 kHz stereo.
const maxWAVBytes = 48000 * 2 * 2 * 3600

// ReadWAV parses a RIFF/WAVE stream of 16-bit integer PCM (format 1, or
// WAVE_FORMAT_EXTENSIBLE with the PCM sub-format). A data chunk whose size
// field is 0 or larger than the stream (as streaming writers leave it) runs
// to the end of the stream.
func ReadWAV(r io.Reader) (*PCM, error) {
	var hdr [12]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("riff header: %w", err)
	}
	if string(hdr[0:4]) != "RIFF" || string(hdr[8:12]) != "WAVE" {
		return nil, errors.New("not a RIFF/WAVE stream")
	}
	var p *PCM
	for {
		var ch [8]byte
		if _, err := io.ReadFull(r, ch[:]); err != nil {
			if p != nil {
				return nil, errors.New("no data chunk")
			}
			return nil, fmt.Errorf("no fmt chunk: %w", err)
		}
		id, size := string(ch[0:4]), binary.LittleEndian.Uint32(ch[4:8])
		switch id {
		case "fmt ":
			if size < 16 || size > 1024 {
				return nil, fmt.Errorf("fmt chunk of %d bytes", size)
			}
			buf := make([]byte, size+size%2)
			if _, err := io.ReadFull(r, buf); err != nil {
				return nil, fmt.Errorf("fmt chunk: %w", err)
			}
			format := binary.LittleEndian.Uint16(buf[0:2])
			channels := int(binary.LittleEndian.Uint16(buf[2:4]))
			rate := int(binary.LittleEndian.Uint32(buf[4:8]))
			bits := binary.LittleEndian.Uint16(buf[14:16])
			if format == 0xFFFE && size >= 40 {
				format = binary.LittleEndian.Uint16(buf[24:26]) // sub-format GUID's first two bytes
			}
			if format != 1 || bits != 16 {
				return nil, fmt.Errorf("unsupported encoding (format %#x, %d bits): want 16-bit PCM", format, bits)
			}
			if channels < 1 || channels > 8 || rate < 1 || rate > 384000 {
				return nil, fmt.Errorf("implausible fmt: %d channels at %d Hz", channels, rate)
			}
			p = &PCM{Rate: rate, Channels: channels}
		case "data":
			if p == nil {
				return nil, errors.New("data chunk before fmt chunk")
			}
			var data []byte
			var err error
			if size == 0 || size >= maxWAVBytes {
				data, err = io.ReadAll(io.LimitReader(r, maxWAVBytes))
			} else {
				data = make([]byte, size)
				var n int
				n, err = io.ReadFull(r, data)
				if errors.Is(err, io.ErrUnexpectedEOF) {
					data, err = data[:n], nil // size field overstated: keep what is there
				}
			}
			if err != nil {
				return nil, fmt.Errorf("data chunk: %w", err)
			}
			frame := 2 * p.Channels
			data = data[:len(data)/frame*frame]
			p.Samples = make([]int16, len(data)/2)
			for i := range p.Samples {
				p.Samples[i] = int16(binary.LittleEndian.Uint16(data[2*i:]))
			}
			return p, nil
		default:
			if _, err := io.CopyN(io.Discard, r, int64(size)+int64(size%2)); err != nil {
				return nil, fmt.Errorf("skip %q chunk: %w", id, err)
			}
		}
	}
}
