package transcribe

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/earshot/earshot/record/ogg"
)

// storedSegment is a recorded Ogg/Opus segment split into what replay
// needs: its Opus packets, the pre-skip (the warm-up the recorder put
// before the segment's first sample) and its user comments (the EARSHOT_*
// tags of package record, names upper-cased).
type storedSegment struct {
	PreSkip int64
	Tags    map[string]string
	Packets [][]byte
	Samples []int // each packet's duration at 48 kHz
}

// parseOggOpus reads a stored segment (package ogg: page checksums and
// packet framing are checked). A segment cut off at a page boundary, as a
// recorder crash leaves it, reads as far as it goes.
func parseOggOpus(data []byte) (*storedSegment, error) {
	rd, err := ogg.NewOpusReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	seg := &storedSegment{PreSkip: int64(rd.Head.PreSkip), Tags: rd.Tags.Map()}
	for {
		p, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return seg, nil
		}
		if err != nil {
			return nil, fmt.Errorf("segment: %w", err)
		}
		seg.Packets = append(seg.Packets, p.Data)
		seg.Samples = append(seg.Samples, p.Samples)
	}
}
