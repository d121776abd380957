package speakerbot

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/pion/webrtc/v4/pkg/media/oggreader"
)

// SampleRate is Opus's timeline rate (granule positions, RTP timestamps).
const SampleRate = 48000

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
	Head    *oggreader.OggHeader
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

// tap records the bytes pion's Ogg reader consumes, so each page's segment
// table can be read back: pion returns a page's payload whole, and a page
// from opusenc holds up to a second of packets whose boundaries only the
// segment table (lacing) gives.
type tap struct {
	r   io.Reader
	buf []byte
}

func (t *tap) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.buf = append(t.buf, p[:n]...)
	return n, err
}

const pageHeaderLen = 27

// ReadOpusFile reads the first logical Opus stream of an Ogg file: OpusHead,
// OpusTags, then every audio packet with its sample count (from the Opus
// TOC byte, RFC 6716 section 3.1). Page checksums are verified. It never
// panics on malformed input.
func ReadOpusFile(r io.Reader) (*OpusFile, error) {
	t := &tap{r: r}
	ogg, err := oggreader.NewWithOptions(t, oggreader.WithDoChecksum(true))
	if err != nil {
		return nil, fmt.Errorf("ogg: %w", err)
	}
	var (
		f        OpusFile
		serial   uint32
		started  bool
		partial  []byte // packet continued on the next page
		npackets int    // packets seen, headers included
		base     int64  // granule position of the first audio sample
		haveBase bool
	)
	for {
		t.buf = t.buf[:0]
		payload, hdr, err := ogg.ParseNextPage()
		if errors.Is(err, io.EOF) { // a clean end between pages
			break
		}
		if err != nil {
			return nil, fmt.Errorf("ogg page: %w", err)
		}
		raw := t.buf
		if len(raw) < pageHeaderLen || !bytes.Equal(raw[:4], []byte("OggS")) || raw[4] != 0 {
			return nil, errors.New("ogg page: bad capture pattern or version")
		}
		nseg := int(raw[26])
		if len(raw) < pageHeaderLen+nseg {
			return nil, errors.New("ogg page: truncated segment table")
		}
		lacing := raw[pageHeaderLen : pageHeaderLen+nseg]
		if !started {
			serial, started = hdr.Serial, true
		} else if hdr.Serial != serial {
			continue // another logical stream (chained or multiplexed): ignore
		}
		continued := raw[5]&0x01 != 0
		if !continued && len(partial) > 0 {
			return nil, errors.New("ogg page: packet continuation missing")
		}
		if continued && len(partial) == 0 && npackets > 0 {
			return nil, errors.New("ogg page: continuation without a packet to continue")
		}
		off := 0
		for _, l := range lacing {
			if off+int(l) > len(payload) {
				return nil, errors.New("ogg page: lacing exceeds payload")
			}
			partial = append(partial, payload[off:off+int(l)]...)
			off += int(l)
			if l == 255 {
				continue // packet goes on in the next segment
			}
			if err := f.addPacket(npackets, partial); err != nil {
				return nil, err
			}
			npackets++
			partial = nil
		}
		// A page's granule position is the end of the last packet that
		// completes on it (-1: none does).
		if g := hdr.GranulePosition; g != ^uint64(0) && npackets > 2 && g <= 1<<62 {
			if !haveBase {
				base, haveBase = int64(g)-f.Samples, true
			}
			f.EndTrim = min(max(f.Samples-(int64(g)-base), 0), f.Samples)
		}
	}
	if f.Head == nil {
		return nil, errors.New("ogg: no OpusHead")
	}
	if len(f.Packets) == 0 {
		return nil, errors.New("ogg: no audio packets")
	}
	return &f, nil
}

func (f *OpusFile) addPacket(index int, data []byte) error {
	switch index {
	case 0:
		if !bytes.HasPrefix(data, []byte("OpusHead")) {
			return errors.New("ogg: first packet is not OpusHead")
		}
		head, err := oggreader.ParseOpusHead(data)
		if err != nil {
			return fmt.Errorf("ogg: OpusHead: %w", err)
		}
		// WebRTC carries plain mono or stereo Opus (mapping family 0).
		if head.ChannelMap != 0 || head.Channels < 1 || head.Channels > 2 {
			return fmt.Errorf("ogg: OpusHead: %d channels, mapping family %d: only mono or stereo family 0 is supported",
				head.Channels, head.ChannelMap)
		}
		f.Head = head
		return nil
	case 1:
		if !bytes.HasPrefix(data, []byte("OpusTags")) {
			return errors.New("ogg: second packet is not OpusTags")
		}
		return nil
	}
	n, err := OpusPacketSamples(data)
	if err != nil {
		return fmt.Errorf("ogg: packet %d: %w", index, err)
	}
	f.Packets = append(f.Packets, Packet{Data: bytes.Clone(data), Start: f.Samples, Samples: n})
	f.Samples += int64(n)
	return nil
}

// OpusPacketSamples returns the duration of an Opus packet in 48 kHz
// samples, from its TOC byte and frame count (RFC 6716 section 3.1).
func OpusPacketSamples(pkt []byte) (int, error) {
	if len(pkt) == 0 {
		return 0, errors.New("empty opus packet")
	}
	toc := pkt[0]
	config := int(toc >> 3)
	var frame int // samples per frame at 48 kHz
	switch {
	case config < 12: // SILK: 10, 20, 40, 60 ms
		frame = [4]int{480, 960, 1920, 2880}[config&3]
	case config < 16: // hybrid: 10, 20 ms
		frame = [2]int{480, 960}[config&1]
	default: // CELT: 2.5, 5, 10, 20 ms
		frame = [4]int{120, 240, 480, 960}[config&3]
	}
	frames := 1
	switch toc & 3 {
	case 1, 2:
		frames = 2
	case 3:
		if len(pkt) < 2 {
			return 0, errors.New("opus packet: code 3 without frame count")
		}
		frames = int(pkt[1] & 0x3f)
		if frames == 0 {
			return 0, errors.New("opus packet: zero frames")
		}
	}
	n := frames * frame
	if n > 5760 { // 120 ms
		return 0, fmt.Errorf("opus packet: %d samples exceeds 120 ms", n)
	}
	return n, nil
}
