package rebroadcast

import (
	"errors"
	"fmt"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/record/opus"
)

// ratio is timeline samples (48 kHz) per decoded sample (16 kHz).
const ratio = event.SampleRate / opus.SampleRate

// maxGap is the longest gap between a track's chunks filled with silence
// (the recorder fills losses itself, so chunks are contiguous; a gap is a
// lost chunk). Longer, and the chunk is refused: the frames must stay on
// the track's timeline, and minutes of silence would only cost CPU.
const maxGap = 60 * opus.SampleRate

// errBadChunk marks a chunk whose layout is inconsistent: nothing of it
// is used.
var errBadChunk = errors.New("rebroadcast: malformed chunk")

// errCorrupt marks packets that did not decode (replaced with silence).
var errCorrupt = errors.New("rebroadcast: corrupt audio")

// trackDecoder decodes one track's chunks in timeline order to 16 kHz mono,
// contiguous from its first sample: gaps and inactive packets
// (opus.Inactive) are silence, packets already decoded (a redelivered
// chunk) are skipped.
type trackDecoder struct {
	dec     *opus.Decoder
	first   int64 // 16 kHz sample of the first decoded sample; -1 before
	next    int64
	scratch []float32
}

func newTrackDecoder() (*trackDecoder, error) {
	d, err := opus.NewDecoder()
	if err != nil {
		return nil, fmt.Errorf("rebroadcast: decoder: %w", err)
	}
	return &trackDecoder{dec: d, first: -1, next: -1, scratch: make([]float32, opus.MaxPacketSamples)}, nil
}

func (t *trackDecoder) Close() error { return t.dec.Close() }

// check validates a chunk's layout before anything is decoded.
func check(tl *event.Timeline, data *event.AudioChunkData) error {
	bad := func(f string, a ...any) error { return fmt.Errorf("%w: %s", errBadChunk, fmt.Sprintf(f, a...)) }
	switch {
	case tl == nil:
		return bad("no timeline")
	case tl.FirstSample < 0 || tl.LastSample < tl.FirstSample:
		return bad("range is empty or negative")
	case len(data.Packets) != len(data.Offsets):
		return bad("%d packets but %d offsets", len(data.Packets), len(data.Offsets))
	}
	for i, off := range data.Offsets {
		if off < 0 || off >= tl.Samples() {
			return bad("packet %d offset outside the chunk", i)
		}
		if i > 0 && off <= data.Offsets[i-1] {
			return bad("packet %d offset not after the previous", i)
		}
	}
	return nil
}

// decode appends the chunk's new audio to out. It returns errCorrupt
// (wrapped) when packets failed to decode; their time is silence and the
// audio is still returned.
func (t *trackDecoder) decode(tl *event.Timeline, data *event.AudioChunkData, out []float32) ([]float32, error) {
	if err := check(tl, data); err != nil {
		return out, err
	}
	corrupt := 0
	for i, pkt := range data.Packets {
		k := (tl.FirstSample + data.Offsets[i]) / ratio
		if t.next < 0 {
			t.first, t.next = k, k
		}
		if len(pkt) == 0 {
			continue // lost: silence until the next packet
		}
		if gap := k - t.next; gap > 0 {
			if gap > maxGap {
				return out, fmt.Errorf("%w: a gap of %d samples before packet %d", errBadChunk, gap, i)
			}
			out = append(out, make([]float32, gap)...)
			t.next = k
		}
		// Inactive packets (silence, the sender's background) are not
		// decoded: they make no landmarks, and decoding was most of the
		// stage's CPU.
		n, _, err := t.dec.DecodeActive(pkt, t.scratch)
		if err != nil {
			corrupt++
			if m, perr := opus.PacketSamples(pkt); perr == nil {
				n = m
			} else {
				n = 20 * opus.SampleRate / 1000
			}
			n = min(n, len(t.scratch))
			clear(t.scratch[:n])
		}
		if skip := t.next - k; skip < int64(n) {
			out = append(out, t.scratch[max(skip, 0):n]...)
			t.next = k + int64(n)
		}
	}
	if corrupt > 0 {
		return out, fmt.Errorf("%w: %d of %d packets", errCorrupt, corrupt, len(data.Packets))
	}
	return out, nil
}
