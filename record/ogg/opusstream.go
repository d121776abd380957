package ogg

import (
	"errors"
	"fmt"
	"io"
)

// OpusPacket is one audio packet of an Ogg/Opus stream, placed on the
// stream's timeline.
type OpusPacket struct {
	Packet
	// Start is the packet's first sample, counted from the stream's first
	// sample (pre-skip included); Samples its duration at 48 kHz.
	Start   int64
	Samples int
}

// OpusReader reads an Ogg/Opus stream (RFC 7845): OpusHead and OpusTags,
// then the audio packets with their durations.
type OpusReader struct {
	Head Head
	Tags Tags
	r    *Reader
	n    int   // audio packets read
	pos  int64 // samples read
	// base is the granule position of the first audio sample (0 unless the
	// stream was cut from a longer one); trim is what the newest granule
	// position cuts off the end of the packets read.
	base, trim int64
	haveBase   bool
	err        error // sticky: a packet that is not Opus
}

// NewOpusReader reads the headers of the first logical stream of src.
// Errors wrap ErrMalformed (ErrHeader when the stream is not Opus) or are
// src's.
func NewOpusReader(src io.Reader) (*OpusReader, error) {
	o := &OpusReader{r: NewReader(src)}
	head, err := o.r.Next()
	if err != nil {
		return nil, headerErr("OpusHead", err)
	}
	if o.Head, err = ParseHead(head.Data); err != nil {
		return nil, err
	}
	tags, err := o.r.Next()
	if err != nil {
		return nil, headerErr("OpusTags", err)
	}
	if o.Tags, err = ParseTags(tags.Data); err != nil {
		return nil, err
	}
	return o, nil
}

func headerErr(what string, err error) error {
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: the stream ends before its %s", ErrHeader, what)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// Next returns the next audio packet, io.EOF after the last one. A packet
// whose framing is not Opus gives ErrPacket; the reader stops there.
func (o *OpusReader) Next() (OpusPacket, error) {
	if o.err != nil {
		return OpusPacket{}, o.err
	}
	p, err := o.r.Next()
	if err != nil {
		return OpusPacket{}, err
	}
	n, err := PacketSamples(p.Data)
	if err != nil {
		o.err = fmt.Errorf("audio packet %d: %w", o.n, err)
		return OpusPacket{}, o.err
	}
	o.n++
	op := OpusPacket{Packet: p, Start: o.pos, Samples: n}
	o.pos += int64(n)
	if p.Granule != NoGranule && p.Granule >= 0 {
		if !o.haveBase {
			// A stream cut from a longer one starts at a later granule
			// position; a first page that is also the last can only say
			// how much to trim at the end (RFC 7845 §4.5).
			if !p.EOS {
				o.base = p.Granule - o.pos
			}
			o.haveBase = true
		}
		o.trim = min(max(o.pos-(p.Granule-o.base), 0), o.pos)
	}
	return op, nil
}

// EndTrim is how many samples at the end of the packets read so far the
// newest granule position cuts off (RFC 7845 §4.5: an encoder pads the
// last frame, and the last page's granule position marks the real end).
// Once Next has returned io.EOF, it is the stream's end trimming.
func (o *OpusReader) EndTrim() int64 { return o.trim }

// OpusWriterConfig configures an OpusWriter.
type OpusWriterConfig struct {
	// Serial is the logical stream's serial number.
	Serial uint32
	Head   Head
	Tags   Tags
	// PageBytes: see WriterConfig.
	PageBytes int
}

// OpusWriter writes an Ogg/Opus stream (RFC 7845): OpusHead and OpusTags on
// pages of their own, then audio packets. Granule positions count the
// samples of the packets written, so they stay true to the timeline as long
// as the caller fills every gap with packets (Silence); they never come
// from a clock.
type OpusWriter struct {
	w       *Writer
	granule int64
}

// NewOpusWriter writes the headers of a stream to dst.
func NewOpusWriter(dst io.Writer, cfg OpusWriterConfig) (*OpusWriter, error) {
	if err := errors.Join(cfg.Head.validate(), cfg.Tags.validate()); err != nil {
		return nil, err
	}
	w := NewWriter(dst, WriterConfig{Serial: cfg.Serial, PageBytes: cfg.PageBytes})
	for _, h := range [][]byte{cfg.Head.Append(nil), cfg.Tags.Append(nil)} {
		if err := w.WritePacket(h, 0); err != nil {
			return nil, err
		}
		if err := w.EndPage(); err != nil {
			return nil, err
		}
	}
	return &OpusWriter{w: w}, nil
}

// WritePacket adds an Opus packet and returns its duration in samples. A
// packet whose framing is not Opus is refused (ErrPacket) and not written.
func (o *OpusWriter) WritePacket(p []byte) (int, error) {
	n, err := PacketSamples(p)
	if err != nil {
		return 0, err
	}
	if err := o.w.WritePacket(p, o.granule+int64(n)); err != nil {
		return 0, err
	}
	o.granule += int64(n)
	return n, nil
}

// Granule is the number of samples written, pre-skip included.
func (o *OpusWriter) Granule() int64 { return o.granule }

// Close ends the stream, its last page marked end-of-stream. It does not
// close the destination.
func (o *OpusWriter) Close() error { return o.w.Close() }

// CloseAt ends the stream with the final granule position end (at most
// Granule()), which trims the samples after it from the decoded output
// (RFC 7845 §4.5).
func (o *OpusWriter) CloseAt(end int64) error {
	if end < 0 || end > o.granule {
		return fmt.Errorf("ogg: final granule position %d outside the %d samples written", end, o.granule)
	}
	return o.w.close(end, true)
}
