package record

import (
	"errors"
	"fmt"
)

// ErrMalformed marks a packet the recorder rejected: not RTP version 2, an
// unexpected payload type or SSRC, an empty payload, or Opus framing that
// breaks RFC 6716 §3. Such packets are counted in Stats.Malformed and never
// reach the timeline; callers log them and carry on.
var ErrMalformed = errors.New("record: malformed packet")

const (
	// maxFrameBytes is the largest Opus frame (RFC 6716 §3.2.1).
	maxFrameBytes = 1275
	// maxPacketSamples is the longest Opus packet: 120 ms at 48 kHz.
	maxPacketSamples = 5760
	// grid is the shortest Opus frame (2.5 ms). Every packet lasts a
	// multiple of it, so timeline positions stay on this grid and any gap
	// can be filled exactly with silence frames.
	grid = 120
)

// PacketSamples returns how many 48 kHz samples an Opus packet decodes to,
// after checking its framing against RFC 6716 §3.1–3.4 (requirements R1–R7:
// frame count, frame lengths, padding, at most 120 ms). It never panics on
// any input.
func PacketSamples(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, fmt.Errorf("%w: empty Opus packet", ErrMalformed)
	}
	spf := frameSamples(p[0])
	body := p[1:]
	frames := 0
	switch p[0] & 3 {
	case 0: // one frame
		if len(body) > maxFrameBytes {
			return 0, fmt.Errorf("%w: code 0 frame of %d bytes", ErrMalformed, len(body))
		}
		frames = 1
	case 1: // two frames of equal size
		if len(body)%2 != 0 || len(body)/2 > maxFrameBytes {
			return 0, fmt.Errorf("%w: code 1 packet with %d frame bytes", ErrMalformed, len(body))
		}
		frames = 2
	case 2: // two frames, the first one's length coded
		n, size, ok := frameLen(body)
		if !ok || n > len(body)-size || len(body)-size-n > maxFrameBytes {
			return 0, fmt.Errorf("%w: code 2 frame lengths do not fit %d bytes", ErrMalformed, len(body))
		}
		frames = 2
	case 3: // M frames, CBR or VBR, optional padding
		var err error
		if frames, err = code3Frames(body, spf); err != nil {
			return 0, err
		}
	}
	return frames * spf, nil
}

func code3Frames(body []byte, spf int) (int, error) {
	if len(body) < 1 {
		return 0, fmt.Errorf("%w: code 3 packet without a frame count", ErrMalformed)
	}
	fc := body[0]
	m := int(fc & 0x3f)
	if m == 0 || m*spf > maxPacketSamples {
		return 0, fmt.Errorf("%w: code 3 packet of %d frames of %d samples (at most 120 ms)", ErrMalformed, m, spf)
	}
	body = body[1:]
	if fc&0x40 != 0 { // padding: each 255 means 254 bytes and one more length byte
		pad := 0
		for {
			if len(body) == 0 {
				return 0, fmt.Errorf("%w: code 3 padding length runs past the packet", ErrMalformed)
			}
			b := body[0]
			body = body[1:]
			if b < 255 {
				pad += int(b)
				break
			}
			pad += 254
		}
		if pad > len(body) {
			return 0, fmt.Errorf("%w: code 3 padding of %d bytes in %d", ErrMalformed, pad, len(body))
		}
		body = body[:len(body)-pad]
	}
	if fc&0x80 == 0 { // CBR
		if len(body)%m != 0 || len(body)/m > maxFrameBytes {
			return 0, fmt.Errorf("%w: code 3 CBR packet of %d bytes for %d frames", ErrMalformed, len(body), m)
		}
		return m, nil
	}
	total := 0
	for range m - 1 {
		n, size, ok := frameLen(body)
		if !ok {
			return 0, fmt.Errorf("%w: code 3 VBR frame lengths run past the packet", ErrMalformed)
		}
		body = body[size:]
		total += n
	}
	if total > len(body) || len(body)-total > maxFrameBytes {
		return 0, fmt.Errorf("%w: code 3 VBR frames of %d bytes in %d", ErrMalformed, total, len(body))
	}
	return m, nil
}

// frameLen decodes a one- or two-byte frame length (RFC 6716 §3.2.1).
func frameLen(p []byte) (n, size int, ok bool) {
	if len(p) < 1 {
		return 0, 0, false
	}
	if p[0] < 252 {
		return int(p[0]), 1, true
	}
	if len(p) < 2 {
		return 0, 0, false
	}
	return int(p[1])*4 + int(p[0]), 2, true
}

// frameSamples is the frame duration the TOC byte's configuration gives
// (RFC 6716 §3.1, Table 2), in 48 kHz samples.
func frameSamples(toc byte) int {
	cfg := toc >> 3
	switch {
	case cfg < 12: // SILK-only: 10, 20, 40, 60 ms
		return [4]int{480, 960, 1920, 2880}[cfg&3]
	case cfg < 16: // Hybrid: 10, 20 ms
		return [2]int{480, 960}[cfg&1]
	default: // CELT-only: 2.5, 5, 10, 20 ms
		return [4]int{120, 240, 480, 960}[cfg&3]
	}
}

// Silence packets: CELT-only fullband mono frames (configs 28–31, code 0)
// whose range-coded payload 0xFF 0xFE sets the CELT silence flag, so
// libopus decodes them to digital zeros of exactly the TOC's duration
// (checked by TestSilencePacketsDecode). Gaps are filled with these rather
// than with loss concealment: the record must not invent audio.
var silencePackets = [...]struct {
	samples int
	packet  []byte
}{
	{960, []byte{0xF8, 0xFF, 0xFE}}, // 20 ms
	{480, []byte{0xF0, 0xFF, 0xFE}}, // 10 ms
	{240, []byte{0xE8, 0xFF, 0xFE}}, // 5 ms
	{120, []byte{0xE0, 0xFF, 0xFE}}, // 2.5 ms
}

// silenceFor returns the longest silence packet that fits in n samples
// (n > 0, a multiple of grid).
func silenceFor(n int64) ([]byte, int) {
	for _, s := range silencePackets {
		if int64(s.samples) <= n {
			return s.packet, s.samples
		}
	}
	return nil, 0
}
