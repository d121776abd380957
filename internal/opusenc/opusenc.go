// Package opusenc encodes 48 kHz mono float32 audio to 20 ms Opus packets
// with libopus. It exists for tests and benchmarks, which need packets of
// known content and timing (cgo is not allowed in _test.go files); nothing
// in production encodes.
package opusenc

/*
#cgo pkg-config: opus
#include <opus.h>

static int earshot_set_bitrate(OpusEncoder *e, opus_int32 b) { return opus_encoder_ctl(e, OPUS_SET_BITRATE(b)); }
static int earshot_set_fec(OpusEncoder *e, int on, int loss) {
	int r = opus_encoder_ctl(e, OPUS_SET_INBAND_FEC(on));
	if (r != OPUS_OK) return r;
	return opus_encoder_ctl(e, OPUS_SET_PACKET_LOSS_PERC(loss));
}
*/
import "C"

import (
	"fmt"
	"runtime"
	"unsafe"
)

// SampleRate is the input rate, Opus's (and the timeline's) native rate.
const SampleRate = 48000

// FrameSamples is one 20 ms packet at SampleRate, WebRTC's usual framing.
const FrameSamples = SampleRate / 50

// Encoder is a libopus VoIP encoder, mono, 20 ms frames.
type Encoder struct {
	enc *C.OpusEncoder
	buf []byte
}

// New returns an encoder at the given bit rate (bits per second); fec turns
// on in-band forward error correction (as WebRTC senders do).
func New(bitrate int, fec bool) (*Encoder, error) {
	var code C.int
	enc := C.opus_encoder_create(C.opus_int32(SampleRate), 1, C.OPUS_APPLICATION_VOIP, &code)
	if code != C.OPUS_OK || enc == nil {
		return nil, fmt.Errorf("opusenc: create: %s", C.GoString(C.opus_strerror(code)))
	}
	e := &Encoder{enc: enc, buf: make([]byte, 4000)}
	runtime.AddCleanup(e, func(p *C.OpusEncoder) { C.opus_encoder_destroy(p) }, enc)
	if r := C.earshot_set_bitrate(enc, C.opus_int32(bitrate)); r != C.OPUS_OK {
		return nil, fmt.Errorf("opusenc: bitrate %d: %s", bitrate, C.GoString(C.opus_strerror(r)))
	}
	if fec {
		if r := C.earshot_set_fec(enc, 1, 10); r != C.OPUS_OK {
			return nil, fmt.Errorf("opusenc: fec: %s", C.GoString(C.opus_strerror(r)))
		}
	}
	return e, nil
}

// Encode returns the packets for pcm, padded with silence to whole frames.
func (e *Encoder) Encode(pcm []float32) ([][]byte, error) {
	var out [][]byte
	frame := make([]float32, FrameSamples)
	for off := 0; off < len(pcm); off += FrameSamples {
		n := copy(frame, pcm[off:])
		clear(frame[n:])
		r := C.opus_encode_float(e.enc, (*C.float)(unsafe.Pointer(&frame[0])), C.int(FrameSamples),
			(*C.uchar)(unsafe.Pointer(&e.buf[0])), C.opus_int32(len(e.buf)))
		if r < 0 {
			return nil, fmt.Errorf("opusenc: encode: %s", C.GoString(C.opus_strerror(r)))
		}
		out = append(out, append([]byte(nil), e.buf[:r]...))
	}
	runtime.KeepAlive(e)
	return out, nil
}
