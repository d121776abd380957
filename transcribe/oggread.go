package transcribe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// storedSegment is a recorded Ogg/Opus segment split into what replay
// needs: its Opus packets, the pre-skip (the warm-up the recorder put
// before the segment's first sample) and its user comments (the EARSHOT_*
// tags of package record).
type storedSegment struct {
	PreSkip int64
	Tags    map[string]string
	Packets [][]byte
	Samples []int // each packet's duration at 48 kHz
}

// parseOggOpus reads an Ogg/Opus stream of one logical stream. It checks
// the page structure, not the CRCs: the store already verified the
// object's SHA-256.
func parseOggOpus(data []byte) (*storedSegment, error) {
	var packets [][]byte
	var cur []byte
	off := 0
	for off < len(data) {
		if len(data) < off+27 || string(data[off:off+4]) != "OggS" {
			return nil, fmt.Errorf("ogg: no page at byte %d", off)
		}
		nseg := int(data[off+26])
		if len(data) < off+27+nseg {
			return nil, errors.New("ogg: truncated page header")
		}
		lacing := data[off+27 : off+27+nseg]
		body := off + 27 + nseg
		for _, l := range lacing {
			if len(data) < body+int(l) {
				return nil, errors.New("ogg: truncated page")
			}
			cur = append(cur, data[body:body+int(l)]...)
			body += int(l)
			if l < 255 {
				packets, cur = append(packets, cur), nil
			}
		}
		off = body
	}
	if len(packets) < 2 {
		return nil, errors.New("ogg: no OpusHead and OpusTags")
	}
	head := packets[0]
	if len(head) < 19 || string(head[:8]) != "OpusHead" {
		return nil, errors.New("ogg: first packet is not OpusHead")
	}
	seg := &storedSegment{PreSkip: int64(binary.LittleEndian.Uint16(head[10:12]))}
	tags, err := parseOpusTags(packets[1])
	if err != nil {
		return nil, err
	}
	seg.Tags = tags
	for i, p := range packets[2:] {
		n, err := packetSamples(p)
		if err != nil {
			return nil, fmt.Errorf("ogg: packet %d: %w", i+2, err)
		}
		seg.Packets = append(seg.Packets, p)
		seg.Samples = append(seg.Samples, n)
	}
	return seg, nil
}

func parseOpusTags(p []byte) (map[string]string, error) {
	if len(p) < 16 || string(p[:8]) != "OpusTags" {
		return nil, errors.New("ogg: second packet is not OpusTags")
	}
	rd := bytes.NewReader(p[8:])
	var n uint32
	if err := binary.Read(rd, binary.LittleEndian, &n); err != nil || int64(n) > int64(rd.Len()) {
		return nil, errors.New("ogg: malformed OpusTags vendor")
	}
	_, _ = rd.Seek(int64(n), 1)
	var count uint32
	if err := binary.Read(rd, binary.LittleEndian, &count); err != nil {
		return nil, errors.New("ogg: malformed OpusTags")
	}
	tags := map[string]string{}
	for range count {
		if err := binary.Read(rd, binary.LittleEndian, &n); err != nil || int64(n) > int64(rd.Len()) {
			return nil, errors.New("ogg: malformed OpusTags comment")
		}
		c := make([]byte, n)
		_, _ = rd.Read(c)
		k, v, _ := strings.Cut(string(c), "=")
		tags[strings.ToUpper(k)] = v
	}
	return tags, nil
}

// packetSamples is an Opus packet's duration at 48 kHz (RFC 6716 §3.1).
func packetSamples(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, errors.New("empty opus packet")
	}
	toc := p[0]
	cfg := toc >> 3
	var frame int
	switch {
	case cfg < 12: // SILK: 10, 20, 40, 60 ms
		frame = []int{480, 960, 1920, 2880}[cfg&3]
	case cfg < 16: // hybrid: 10, 20 ms
		frame = []int{480, 960}[cfg&1]
	default: // CELT: 2.5, 5, 10, 20 ms
		frame = []int{120, 240, 480, 960}[cfg&3]
	}
	var frames int
	switch toc & 3 {
	case 0:
		frames = 1
	case 1, 2:
		frames = 2
	default:
		if len(p) < 2 {
			return 0, errors.New("code 3 packet without a frame count")
		}
		frames = int(p[1] & 0x3f)
		if frames == 0 {
			return 0, errors.New("code 3 packet with no frames")
		}
	}
	if n := frames * frame; n <= 5760 {
		return n, nil
	}
	return 0, errors.New("packet longer than 120 ms")
}
