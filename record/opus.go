package record

import (
	"errors"
	"fmt"

	"github.com/earshot/earshot/record/ogg"
)

// ErrMalformed marks a packet the recorder rejected: not RTP version 2, an
// unexpected payload type or SSRC, an empty payload, or Opus framing that
// breaks RFC 6716 §3. Such packets are counted in Stats.Malformed and never
// reach the timeline; callers log them and carry on.
var ErrMalformed = errors.New("record: malformed packet")

// grid is the shortest Opus frame (2.5 ms). Every packet lasts a multiple
// of it, so timeline positions stay on this grid and any gap can be filled
// exactly with silence packets (ogg.Silence).
const grid = ogg.MinPacketSamples

// packetSamples is an Opus packet's duration in 48 kHz samples, after
// checking its framing (ogg.PacketSamples); errors wrap ErrMalformed.
func packetSamples(p []byte) (int, error) {
	n, err := ogg.PacketSamples(p)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return n, nil
}
