package transcribe

import (
	"errors"
	"fmt"
	"time"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/record/opus"
)

// ErrCorruptAudio is returned (wrapped) when some packets of a chunk could
// not be decoded. The chunk belongs on the dead-letter topic; the audio
// returned with the error is still valid (the bad packets are concealed).
var ErrCorruptAudio = errors.New("transcribe: corrupt audio")

// ErrBadChunk is returned (wrapped) for a chunk whose packet layout is
// inconsistent (offsets missing, out of order or outside the chunk); nothing
// of it was decoded.
var ErrBadChunk = errors.New("transcribe: malformed chunk")

// PCM is decoded audio placed on the track's timeline.
type PCM struct {
	// Start is the timeline (48 kHz) sample of Samples[0], a multiple of
	// Ratio.
	Start int64
	// Samples are mono float32 at AudioRate.
	Samples []float32
}

// Span is the inclusive timeline range the audio covers; Last < First when
// there are no samples.
func (p PCM) Span() Span { return AudioSpan(ToAudio(p.Start), int64(len(p.Samples))) }

// DecoderConfig tunes a TrackDecoder. The zero value is the default.
type DecoderConfig struct {
	// MaxFill is the longest gap between one chunk's audio and the next that
	// is filled (concealment, then silence) to keep the audio continuous. A
	// longer gap (chunks lost for good, a worker taking over mid-track)
	// makes the next PCM start afresh at its own position. Default 5 s.
	MaxFill time.Duration
}

// maxConceal is how much of a gap libopus conceals (PLC, FEC); the rest is
// silence. Concealment fades out within ~100 ms anyway, and a recorder that
// fills gaps itself leaves only short losses here.
const maxConceal = 120 * AudioRate / 1000

// DecoderStats counts what a TrackDecoder did, for metrics.
type DecoderStats struct {
	Packets         int64 // packets decoded
	Duplicates      int64 // packets skipped as already decoded (redelivery)
	Corrupt         int64 // packets that failed to decode
	ConcealedAudio  int64 // audio samples filled by concealment or silence
	Discontinuities int64 // gaps longer than MaxFill
}

// TrackDecoder decodes one track's chunks, in timeline order, to 16 kHz mono
// audio with exact timeline positions. It fills lost packets (packet-loss
// concealment, or in-band FEC when the next packet carries it), skips
// packets it has already decoded (a chunk delivered twice) and never panics
// on corrupt input. Use one per track; it is not safe for concurrent use.
type TrackDecoder struct {
	dec     *opus.Decoder
	maxFill int64 // audio samples
	next    int64 // audio sample expected next; -1 before the first packet
	scratch []float32
	stats   DecoderStats
}

// NewTrackDecoder returns a decoder for a track's start. Close it when the
// track ends.
func NewTrackDecoder(cfg DecoderConfig) (*TrackDecoder, error) {
	if cfg.MaxFill < 0 {
		return nil, fmt.Errorf("transcribe: decoder: MaxFill %v is negative", cfg.MaxFill)
	}
	if cfg.MaxFill == 0 {
		cfg.MaxFill = 5 * time.Second
	}
	dec, err := opus.NewDecoder()
	if err != nil {
		return nil, fmt.Errorf("transcribe: decoder: %w", err)
	}
	return &TrackDecoder{
		dec:     dec,
		maxFill: event.DurationToSamples(cfg.MaxFill) / Ratio,
		next:    -1,
		scratch: make([]float32, opus.MaxPacketSamples),
	}, nil
}

// Close frees the decoder. It is idempotent.
func (t *TrackDecoder) Close() error { return t.dec.Close() }

// Reset forgets the track: the next chunk starts a new stream, as at a
// track's start.
func (t *TrackDecoder) Reset() error {
	t.next = -1
	if err := t.dec.Reset(); err != nil {
		return fmt.Errorf("transcribe: decoder reset: %w", err)
	}
	return nil
}

// Stats returns the counts so far.
func (t *TrackDecoder) Stats() DecoderStats { return t.stats }

// Next returns the timeline sample the decoder expects next, or -1 before
// the first chunk.
func (t *TrackDecoder) Next() int64 {
	if t.next < 0 {
		return -1
	}
	return ToTimeline(t.next)
}

// Decode decodes one chunk: tl is the chunk's timeline range and data its
// packets with their offsets from tl.FirstSample. The returned audio starts
// where the previous chunk's ended (gaps up to MaxFill are filled), or at
// the chunk's first new packet after a longer gap or at the first chunk.
// Packets already decoded are skipped, so a redelivered chunk yields no
// audio. On ErrCorruptAudio the audio is still returned, the bad packets
// concealed.
func (t *TrackDecoder) Decode(tl event.Timeline, data event.AudioChunkData) (PCM, error) {
	if err := t.checkChunk(tl, data); err != nil {
		return PCM{}, err
	}
	var (
		out           = make([]float32, 0, min(tl.Samples()/Ratio, 60*AudioRate)+opus.MaxPacketSamples)
		start   int64 = -1
		corrupt []int
		lastErr error
	)
	for i, pkt := range data.Packets {
		k := ToAudio(tl.FirstSample + data.Offsets[i])
		if t.next < 0 || (start < 0 && k-t.next > t.maxFill) {
			if t.next >= 0 {
				t.stats.Discontinuities++
				if err := t.dec.Reset(); err != nil {
					return PCM{}, fmt.Errorf("transcribe: decode: %w", err)
				}
			}
			t.next = k
		}
		if len(pkt) == 0 {
			continue // lost: concealed before the next packet
		}
		if k > t.next {
			if start < 0 {
				start = t.next
			}
			out = t.conceal(out, k-t.next, pkt)
			t.next = k
		}
		n, err := t.dec.Decode(pkt, t.scratch)
		if err != nil {
			// Concealed by the next packet's gap (or the next chunk's).
			t.stats.Corrupt++
			corrupt = append(corrupt, i)
			lastErr = err
			continue
		}
		t.stats.Packets++
		skip := t.next - k
		if skip >= int64(n) {
			t.stats.Duplicates++
			continue
		}
		if start < 0 {
			start = t.next
		}
		out = append(out, t.scratch[skip:n]...)
		t.next = k + int64(n)
	}
	if start < 0 {
		start = max(t.next, 0)
	}
	pcm := PCM{Start: ToTimeline(start), Samples: out}
	if len(corrupt) > 0 {
		return pcm, fmt.Errorf("transcribe: decode chunk [%d, %d]: %w: %d of %d packets (indexes %v): %w",
			tl.FirstSample, tl.LastSample, ErrCorruptAudio, len(corrupt), len(data.Packets), corrupt, lastErr)
	}
	return pcm, nil
}

// conceal appends gap samples standing in for lost audio before next.
func (t *TrackDecoder) conceal(out []float32, gap int64, next []byte) []float32 {
	t.stats.ConcealedAudio += gap
	n := int(min(gap, maxConceal))
	n -= n % opus.FrameQuantum
	if n > 0 {
		base := len(out)
		out = append(out, make([]float32, n)...)
		buf := out[base:]
		var err error
		if int64(n) == gap {
			// Short loss: FEC from next covers its last frame.
			err = t.dec.ConcealFEC(next, buf)
		} else {
			err = t.dec.Conceal(buf)
		}
		if err != nil {
			// next itself is bad, or FEC could not run: plain concealment;
			// failing that, silence (already there).
			if t.dec.Conceal(buf) != nil {
				clear(buf)
			}
		}
	}
	return append(out, make([]float32, gap-int64(n))...)
}

func (t *TrackDecoder) checkChunk(tl event.Timeline, data event.AudioChunkData) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("transcribe: decode chunk [%d, %d]: %w: %s", tl.FirstSample, tl.LastSample, ErrBadChunk, fmt.Sprintf(format, args...))
	}
	switch {
	case tl.FirstSample < 0 || tl.LastSample < tl.FirstSample:
		return bad("range is empty or negative")
	case len(data.Packets) != len(data.Offsets):
		return bad("%d packets but %d offsets", len(data.Packets), len(data.Offsets))
	}
	n := tl.Samples()
	for i, off := range data.Offsets {
		if off < 0 || off >= n {
			return bad("packet %d offset %d is outside the chunk's %d samples", i, off, n)
		}
		if i > 0 && off <= data.Offsets[i-1] {
			return bad("packet %d offset %d is not after packet %d's %d", i, off, i-1, data.Offsets[i-1])
		}
		// A gap inside a chunk is filled; one longer than MaxFill (the
		// recorder fills gaps itself) would only allocate silence.
		if i > 0 && ToAudio(off)-ToAudio(data.Offsets[i-1]) > t.maxFill+opus.MaxPacketSamples {
			return bad("packet %d starts %d samples after packet %d, a gap over MaxFill", i, off-data.Offsets[i-1], i-1)
		}
	}
	return nil
}
