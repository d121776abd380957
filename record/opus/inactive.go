package opus

// Inactive reports whether packet carries no audio worth decoding for
// analysis, judged from its first bits without decoding it:
//
//   - a frame of at most one byte (DTX: the decoder would only conceal or
//     make comfort noise);
//   - a CELT-only frame with the silence flag set (the recorder's gap
//     fill: digital zeros);
//   - a SILK-only or hybrid frame whose SILK voice-activity flags are all
//     off: the sender's encoder judged every 20 ms of it background, not
//     speech (in hybrid mode the CELT layer carries only 8 kHz and up,
//     above what a 16 kHz decode keeps).
//
// Only single-frame packets (TOC code 0, what WebRTC senders and the
// recorder send) are judged; anything else, and anything malformed, is
// not inactive and goes to the decoder. The flags are range-coded, so
// reading them runs the first steps of the Opus range decoder (RFC 6716
// section 4.1).
func Inactive(packet []byte) bool {
	if len(packet) == 0 || packet[0]&3 != 0 {
		return false
	}
	frame := packet[1:]
	if len(frame) > 1275 {
		return false // over the largest frame: malformed, the decoder says so
	}
	if len(frame) <= 1 {
		return true
	}
	config := packet[0] >> 3
	r := newRangeDecoder(frame)
	if config >= 16 { // CELT-only: the first symbol is the silence flag
		return r.bit(15)
	}
	// SILK-only or hybrid: one VAD flag per 20 ms SILK frame, then the
	// LBRR flag, per channel (mid, then side when stereo).
	frames := 1
	if config < 12 {
		frames = max(int(config&3), 1) // 10, 20 ms: 1; 40 ms: 2; 60 ms: 3
	}
	channels := 1
	if packet[0]&4 != 0 {
		channels = 2
	}
	for range channels {
		for range frames {
			if r.bit(1) {
				return false
			}
		}
		r.bit(1) // LBRR
	}
	return true
}

// rangeDecoder is the start of libopus's ec_dec: enough to read the first
// few binary symbols of a frame.
type rangeDecoder struct {
	buf      []byte
	offs     int
	rem      uint32
	rng, val uint32
}

const (
	ecSymBits   = 8
	ecCodeExtra = 7
	ecCodeTop   = 1 << 31
	ecCodeBot   = 1 << 23
	ecSymMax    = 1<<ecSymBits - 1
)

func newRangeDecoder(buf []byte) *rangeDecoder {
	r := &rangeDecoder{buf: buf, rng: 1 << ecCodeExtra}
	r.rem = r.readByte()
	r.val = r.rng - 1 - r.rem>>(ecSymBits-ecCodeExtra)
	r.normalize()
	return r
}

func (r *rangeDecoder) readByte() uint32 {
	if r.offs < len(r.buf) {
		r.offs++
		return uint32(r.buf[r.offs-1])
	}
	return 0
}

func (r *rangeDecoder) normalize() {
	for r.rng <= ecCodeBot {
		r.rng <<= ecSymBits
		sym := r.rem
		r.rem = r.readByte()
		sym = (sym<<ecSymBits | r.rem) >> (ecSymBits - ecCodeExtra)
		r.val = ((r.val << ecSymBits) + (ecSymMax &^ sym)) & (ecCodeTop - 1)
	}
}

// bit decodes one binary symbol whose probability of being 1 is 2^-logp
// (ec_dec_bit_logp).
func (r *rangeDecoder) bit(logp uint) bool {
	s := r.rng >> logp
	one := r.val < s
	if one {
		r.rng = s
	} else {
		r.val -= s
		r.rng -= s
	}
	r.normalize()
	return one
}
