// Package opus decodes Opus packets with libopus straight to 16 kHz mono
// float32, the input Whisper wants, with no resampler in between: libopus
// decodes natively at 8, 12, 16, 24 and 48 kHz, and folds stereo to mono.
//
// It is a thin cgo wrapper rather than gopkg.in/hraban/opus.v2 because that
// binding (unchanged since 2023) links libopusfile into every build unless
// each build passes a `nolibopusfile` tag, keeps no handle on the decoder to
// reset it at a track's start (OPUS_RESET_STATE), and sizes output by the
// slice's capacity rather than its length. What Earshot needs from libopus is
// five calls; each is wrapped here with its error mapped to Go.
//
// Build needs: Debian packages libopus-dev (headers, pkg-config file) to
// build and libopus0 to run.
package opus

/*
#cgo pkg-config: opus
#include <stdlib.h>
#include <opus.h>

// Variadic macros (opus_decoder_ctl) cannot be called from Go.
static int earshot_opus_reset(OpusDecoder *d) { return opus_decoder_ctl(d, OPUS_RESET_STATE); }
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"unsafe"
)

// SampleRate is the rate the decoder writes: Whisper's input rate.
const SampleRate = 16000

// FrameQuantum is the granularity of concealment in samples at SampleRate:
// libopus conceals in multiples of 2.5 ms.
const FrameQuantum = SampleRate / 400

// MaxPacketSamples is the longest packet Opus allows (120 ms) at SampleRate:
// a buffer this long always holds one decoded packet.
const MaxPacketSamples = SampleRate * 120 / 1000

// ErrInvalidPacket is returned (wrapped) for a packet libopus cannot parse or
// decode: corrupt, truncated or not Opus.
var ErrInvalidPacket = errors.New("opus: invalid packet")

// ErrClosed is returned by a Decoder used after Close.
var ErrClosed = errors.New("opus: decoder is closed")

// libError maps a libopus error code to a Go error.
func libError(op string, code C.int) error {
	msg := C.GoString(C.opus_strerror(code))
	if code == C.OPUS_INVALID_PACKET || code == C.OPUS_BAD_ARG {
		// BAD_ARG on decode means the packet's frame is longer than the
		// buffer (impossible with MaxPacketSamples) or a malformed length.
		return fmt.Errorf("%w: %s: %s (%d)", ErrInvalidPacket, op, msg, int(code))
	}
	return fmt.Errorf("opus: %s: %s (%d)", op, msg, int(code))
}

// Decoder is one libopus decoder at SampleRate, mono. It keeps the state a
// stream needs between packets (prediction, concealment), so use one per
// track. It is not safe for concurrent use.
type Decoder struct {
	mu  sync.Mutex // guards dec against Close racing a decode
	dec *C.OpusDecoder
	// skipped is set when DecodeActive skipped a packet: the state no
	// longer follows the sender's, so the next decode starts afresh.
	skipped bool
	// cleanup frees the C state if the Decoder is dropped without Close.
	cleanup runtime.Cleanup
}

// NewDecoder returns a fresh decoder. Close it when done; a leaked Decoder
// is freed by the garbage collector.
func NewDecoder() (*Decoder, error) {
	var code C.int
	dec := C.opus_decoder_create(C.opus_int32(SampleRate), 1, &code)
	if code != C.OPUS_OK || dec == nil {
		return nil, libError("create decoder", code)
	}
	d := &Decoder{dec: dec}
	d.cleanup = runtime.AddCleanup(d, func(p *C.OpusDecoder) { C.opus_decoder_destroy(p) }, dec)
	return d, nil
}

// Close frees the decoder. It is idempotent.
func (d *Decoder) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dec != nil {
		d.cleanup.Stop()
		C.opus_decoder_destroy(d.dec)
		d.dec = nil
	}
	return nil
}

// Reset returns the decoder to its initial state, as at a track's start, so
// nothing of a previous stream leaks into the next one.
func (d *Decoder) Reset() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dec == nil {
		return ErrClosed
	}
	if code := C.earshot_opus_reset(d.dec); code != C.OPUS_OK {
		return libError("reset", code)
	}
	d.skipped = false
	return nil
}

// Decode decodes one packet into pcm and returns the number of samples
// written. pcm must hold the packet: MaxPacketSamples always does. An empty
// packet is an error here; a lost packet is concealed with Conceal.
func (d *Decoder) Decode(packet []byte, pcm []float32) (int, error) {
	if len(packet) == 0 {
		return 0, fmt.Errorf("%w: empty packet", ErrInvalidPacket)
	}
	return d.decode(packet, pcm, len(pcm), false)
}

// Conceal fills pcm with packet-loss concealment: libopus extrapolates from
// the audio it decoded last and fades to silence. len(pcm) must be a
// multiple of FrameQuantum.
func (d *Decoder) Conceal(pcm []float32) error {
	if len(pcm) == 0 || len(pcm)%FrameQuantum != 0 {
		return fmt.Errorf("opus: conceal: %d samples is not a positive multiple of %d", len(pcm), FrameQuantum)
	}
	_, err := d.decode(nil, pcm, len(pcm), false)
	return err
}

// ConcealFEC fills pcm, the audio lost just before next, using the forward
// error correction data that next may carry for its predecessor (in-band
// FEC, which WebRTC senders enable); libopus conceals whatever FEC does not
// cover. The decoder then expects next itself to be decoded. len(pcm) must
// be a multiple of FrameQuantum.
func (d *Decoder) ConcealFEC(next []byte, pcm []float32) error {
	if len(pcm) == 0 || len(pcm)%FrameQuantum != 0 {
		return fmt.Errorf("opus: conceal: %d samples is not a positive multiple of %d", len(pcm), FrameQuantum)
	}
	if len(next) == 0 {
		return d.Conceal(pcm)
	}
	_, err := d.decode(next, pcm, len(pcm), true)
	return err
}

// DecodeActive is Decode for analysis that needs only audible audio: an
// Inactive packet is not decoded but written as its duration of zeros,
// and the first packet decoded after such a gap is decoded from a reset
// state (as at a track's start) rather than from a state the skipped
// packets would have moved on. It returns the samples written and
// whether the packet was skipped.
func (d *Decoder) DecodeActive(packet []byte, pcm []float32) (int, bool, error) {
	if !Inactive(packet) {
		n, err := d.Decode(packet, pcm)
		return n, false, err
	}
	n, err := PacketSamples(packet)
	if err != nil {
		return 0, false, err
	}
	if n > len(pcm) {
		return 0, false, fmt.Errorf("opus: decode: %d samples do not fit a buffer of %d", n, len(pcm))
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dec == nil {
		return 0, false, ErrClosed
	}
	d.skipped = true
	clear(pcm[:n])
	return n, true, nil
}

func (d *Decoder) decode(packet []byte, pcm []float32, frame int, fec bool) (int, error) {
	if len(pcm) == 0 {
		return 0, errors.New("opus: decode: empty output buffer")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dec == nil {
		return 0, ErrClosed
	}
	if d.skipped {
		// Packets were skipped: concealment would extrapolate audio from
		// before them, and prediction would run from a stale state.
		if code := C.earshot_opus_reset(d.dec); code != C.OPUS_OK {
			return 0, libError("reset", code)
		}
		d.skipped = false
	}
	var data *C.uchar
	if len(packet) > 0 {
		data = (*C.uchar)(unsafe.Pointer(&packet[0]))
	}
	var decodeFEC C.int
	if fec {
		decodeFEC = 1
	}
	n := C.opus_decode_float(d.dec, data, C.opus_int32(len(packet)),
		(*C.float)(unsafe.Pointer(&pcm[0])), C.int(frame), decodeFEC)
	if n < 0 {
		op := "decode"
		switch {
		case fec:
			op = "decode FEC"
		case packet == nil:
			op = "conceal"
		}
		return 0, libError(op, n)
	}
	return int(n), nil
}

// PacketSamples returns a packet's duration in samples at SampleRate, from
// its table-of-contents byte, without decoding it.
func PacketSamples(packet []byte) (int, error) {
	if len(packet) == 0 {
		return 0, fmt.Errorf("%w: empty packet", ErrInvalidPacket)
	}
	n := C.opus_packet_get_nb_samples((*C.uchar)(unsafe.Pointer(&packet[0])), C.opus_int32(len(packet)), C.opus_int32(SampleRate))
	if n < 0 {
		return 0, libError("packet duration", n)
	}
	if int(n) > MaxPacketSamples {
		return 0, fmt.Errorf("%w: %d samples is longer than 120 ms", ErrInvalidPacket, int(n))
	}
	return int(n), nil
}
