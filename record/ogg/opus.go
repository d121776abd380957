package ogg

import (
	"encoding/binary"
	"fmt"
	"strings"
)

const (
	// SampleRate is the rate of Opus granule positions and packet
	// durations, whatever the encoder's input rate.
	SampleRate = 48000
	// MinPacketSamples is the shortest Opus frame (2.5 ms). Every packet
	// lasts a multiple of it, so a timeline of packets stays on this grid
	// and any gap can be filled exactly with Silence packets.
	MinPacketSamples = 120
	// MaxPacketSamples is the longest Opus packet: 120 ms.
	MaxPacketSamples = 5760
	// maxFrameBytes is the largest Opus frame (RFC 6716 §3.2.1).
	maxFrameBytes = 1275
)

// PacketSamples returns how many 48 kHz samples an Opus packet decodes to,
// after checking its framing against RFC 6716 §3.1–3.4 (requirements R1–R7:
// frame count, frame lengths, padding, at most 120 ms), as libopus does
// before decoding. Errors wrap ErrPacket. It never panics on any input.
func PacketSamples(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, fmt.Errorf("%w: empty", ErrPacket)
	}
	spf := frameSamples(p[0])
	body := p[1:]
	frames := 0
	switch p[0] & 3 {
	case 0: // one frame
		if len(body) > maxFrameBytes {
			return 0, fmt.Errorf("%w: code 0 frame of %d bytes", ErrPacket, len(body))
		}
		frames = 1
	case 1: // two frames of equal size
		if len(body)%2 != 0 || len(body)/2 > maxFrameBytes {
			return 0, fmt.Errorf("%w: code 1 packet with %d frame bytes", ErrPacket, len(body))
		}
		frames = 2
	case 2: // two frames, the first one's length coded
		n, size, ok := frameLen(body)
		if !ok || n > len(body)-size || len(body)-size-n > maxFrameBytes {
			return 0, fmt.Errorf("%w: code 2 frame lengths do not fit %d bytes", ErrPacket, len(body))
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
		return 0, fmt.Errorf("%w: code 3 packet without a frame count", ErrPacket)
	}
	fc := body[0]
	m := int(fc & 0x3f)
	if m == 0 || m*spf > MaxPacketSamples {
		return 0, fmt.Errorf("%w: code 3 packet of %d frames of %d samples (at most 120 ms)", ErrPacket, m, spf)
	}
	body = body[1:]
	if fc&0x40 != 0 { // padding: each 255 means 254 bytes and one more length byte
		pad := 0
		for {
			if len(body) == 0 {
				return 0, fmt.Errorf("%w: code 3 padding length runs past the packet", ErrPacket)
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
			return 0, fmt.Errorf("%w: code 3 padding of %d bytes in %d", ErrPacket, pad, len(body))
		}
		body = body[:len(body)-pad]
	}
	if fc&0x80 == 0 { // CBR
		if len(body)%m != 0 || len(body)/m > maxFrameBytes {
			return 0, fmt.Errorf("%w: code 3 CBR packet of %d bytes for %d frames", ErrPacket, len(body), m)
		}
		return m, nil
	}
	total := 0
	for range m - 1 {
		n, size, ok := frameLen(body)
		if !ok {
			return 0, fmt.Errorf("%w: code 3 VBR frame lengths run past the packet", ErrPacket)
		}
		body = body[size:]
		total += n
	}
	if total > len(body) || len(body)-total > maxFrameBytes {
		return 0, fmt.Errorf("%w: code 3 VBR frames of %d bytes in %d", ErrPacket, total, len(body))
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

// Silence returns the longest silence packet that lasts at most n samples,
// and its duration; nil and 0 when n is under MinPacketSamples. The packets
// are CELT-only fullband mono frames (configurations 28–31, code 0) whose
// range-coded payload 0xFF 0xFE sets the CELT silence flag, so libopus
// decodes them to digital zeros of exactly the TOC's duration. Gaps are
// filled with these rather than with loss concealment: a record must not
// invent audio. Each call returns a new slice.
func Silence(n int64) ([]byte, int) {
	switch {
	case n >= 960: // 20 ms
		return []byte{0xF8, 0xFF, 0xFE}, 960
	case n >= 480: // 10 ms
		return []byte{0xF0, 0xFF, 0xFE}, 480
	case n >= 240: // 5 ms
		return []byte{0xE8, 0xFF, 0xFE}, 240
	case n >= 120: // 2.5 ms
		return []byte{0xE0, 0xFF, 0xFE}, 120
	}
	return nil, 0
}

// Head is the identification header, OpusHead (RFC 7845 §5.1), of a
// mono or stereo stream (channel mapping family 0, what WebRTC carries).
type Head struct {
	Channels int // 1 or 2
	// PreSkip is how many samples at the start a decoder discards.
	PreSkip int
	// InputRate is the original input's rate, for information only.
	InputRate uint32
	// Gain is the output gain in dB, Q7.8 fixed point.
	Gain int16
}

const headLen = 19 // OpusHead of mapping family 0

// Append appends the OpusHead packet to dst.
func (h Head) Append(dst []byte) []byte {
	dst = append(dst, "OpusHead"...)
	dst = append(dst, 1, byte(h.Channels))
	dst = binary.LittleEndian.AppendUint16(dst, uint16(h.PreSkip))
	dst = binary.LittleEndian.AppendUint32(dst, h.InputRate)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(h.Gain))
	return append(dst, 0) // channel mapping family 0
}

func (h Head) validate() error {
	if h.Channels < 1 || h.Channels > 2 || h.PreSkip < 0 || h.PreSkip > 0xFFFF {
		return fmt.Errorf("%w: OpusHead with %d channels, pre-skip %d", ErrHeader, h.Channels, h.PreSkip)
	}
	return nil
}

// ParseHead parses an OpusHead packet. Versions 0.x are accepted (RFC 7845
// §5.1: a decoder reads the 1.0 fields of any minor version); only mapping
// family 0 is supported.
func ParseHead(p []byte) (Head, error) {
	if len(p) < headLen || string(p[:8]) != "OpusHead" {
		return Head{}, fmt.Errorf("%w: not an OpusHead packet", ErrHeader)
	}
	if p[8]>>4 != 0 {
		return Head{}, fmt.Errorf("%w: OpusHead version %d.%d", ErrHeader, p[8]>>4, p[8]&15)
	}
	if p[18] != 0 {
		return Head{}, fmt.Errorf("%w: channel mapping family %d (only family 0, mono or stereo, is supported)", ErrHeader, p[18])
	}
	h := Head{
		Channels:  int(p[9]),
		PreSkip:   int(binary.LittleEndian.Uint16(p[10:])),
		InputRate: binary.LittleEndian.Uint32(p[12:]),
		Gain:      int16(binary.LittleEndian.Uint16(p[16:])),
	}
	return h, h.validate()
}

// Tags is the comment header, OpusTags (RFC 7845 §5.2).
type Tags struct {
	Vendor   string
	Comments []Comment
}

// Comment is one user comment, NAME=value. Names are case-insensitive
// ASCII without '='.
type Comment struct{ Name, Value string }

// Append appends the OpusTags packet to dst.
func (t Tags) Append(dst []byte) []byte {
	dst = append(dst, "OpusTags"...)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(t.Vendor)))
	dst = append(dst, t.Vendor...)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(t.Comments)))
	for _, c := range t.Comments {
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(c.Name)+1+len(c.Value)))
		dst = append(dst, c.Name...)
		dst = append(dst, '=')
		dst = append(dst, c.Value...)
	}
	return dst
}

func (t Tags) validate() error {
	for _, c := range t.Comments {
		if c.Name == "" || strings.ContainsAny(c.Name, "=") {
			return fmt.Errorf("%w: comment name %q", ErrHeader, c.Name)
		}
	}
	return nil
}

// Map returns the comments by upper-cased name; of repeated names, the
// last one wins.
func (t Tags) Map() map[string]string {
	m := make(map[string]string, len(t.Comments))
	for _, c := range t.Comments {
		m[strings.ToUpper(c.Name)] = c.Value
	}
	return m
}

// ParseTags parses an OpusTags packet. A comment without '=' gets an empty
// value; data after the last comment (RFC 7845 allows binary data there)
// is ignored.
func ParseTags(p []byte) (Tags, error) {
	if len(p) < 16 || string(p[:8]) != "OpusTags" {
		return Tags{}, fmt.Errorf("%w: not an OpusTags packet", ErrHeader)
	}
	p = p[8:]
	next := func() (string, bool) {
		if len(p) < 4 {
			return "", false
		}
		n := binary.LittleEndian.Uint32(p)
		if uint64(n) > uint64(len(p)-4) {
			return "", false
		}
		s := string(p[4 : 4+n])
		p = p[4+n:]
		return s, true
	}
	vendor, ok := next()
	if !ok || len(p) < 4 {
		return Tags{}, fmt.Errorf("%w: OpusTags vendor string runs past the packet", ErrHeader)
	}
	count := binary.LittleEndian.Uint32(p)
	p = p[4:]
	if uint64(count) > uint64(len(p)/4) { // each comment takes at least 4 bytes
		return Tags{}, fmt.Errorf("%w: %d OpusTags comments in %d bytes", ErrHeader, count, len(p))
	}
	t := Tags{Vendor: vendor, Comments: make([]Comment, 0, count)}
	for i := range count {
		c, ok := next()
		if !ok {
			return Tags{}, fmt.Errorf("%w: OpusTags comment %d runs past the packet", ErrHeader, i)
		}
		name, value, _ := strings.Cut(c, "=")
		t.Comments = append(t.Comments, Comment{Name: name, Value: value})
	}
	return t, nil
}
