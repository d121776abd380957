package ogg

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// WriterConfig configures a Writer.
type WriterConfig struct {
	// Serial is the logical stream's serial number. A serial derived from
	// the content keeps the output a pure function of it.
	Serial uint32
	// PageBytes ends a page after the first packet that brings its body to
	// at least this many bytes. 0 ends every page after one packet (the
	// recorder's choice: a crash loses at most one packet of a segment).
	PageBytes int
}

// Writer writes one logical Ogg stream. Packets are laced into the open
// page; a page ends after a packet (see PageBytes and EndPage), or when its
// 255 lacing values are used up, the packet going on, continued, on the
// next page, as libogg does.
//
// The newest complete page is held back until the next one is complete or
// Close: Close can then mark it end-of-stream (and set its granule
// position) without rewriting output, and the destination only ever holds
// whole pages. Each page reaches the destination in one Write.
type Writer struct {
	dst     io.Writer
	cfg     WriterConfig
	seq     uint32
	lacing  []byte
	body    []byte
	granule int64 // of the last packet ending on the open page
	cont    bool  // the open page begins with a continued packet
	held    []byte
	spare   []byte
	closed  bool
	err     error // sticky: a failed Write
}

// NewWriter writes a stream to dst.
func NewWriter(dst io.Writer, cfg WriterConfig) *Writer {
	return &Writer{dst: dst, cfg: cfg, granule: NoGranule, lacing: make([]byte, 0, 255)}
}

// WritePacket adds a packet ending at granule position granule (for Opus,
// the number of samples from the start of the stream to the packet's end).
func (w *Writer) WritePacket(p []byte, granule int64) error {
	if err := w.usable(); err != nil {
		return err
	}
	for off := 0; ; {
		for len(w.lacing) < 255 {
			n := min(len(p)-off, 255)
			w.lacing = append(w.lacing, byte(n))
			w.body = append(w.body, p[off:off+n]...)
			off += n
			if n < 255 { // the packet ends here
				w.granule = granule
				if len(w.lacing) == 255 || len(w.body) >= w.cfg.PageBytes {
					return w.endPage(false)
				}
				return nil
			}
		}
		if err := w.endPage(true); err != nil {
			return err
		}
	}
}

// EndPage ends the open page, if it holds anything, so that the next
// packet begins a page (RFC 7845 puts each Opus header on pages of its own).
func (w *Writer) EndPage() error {
	if err := w.usable(); err != nil {
		return err
	}
	if len(w.lacing) == 0 {
		return nil
	}
	return w.endPage(false)
}

// Close ends the stream: the last page gets the end-of-stream flag and is
// written. It does not close the destination. Closing again is a no-op.
func (w *Writer) Close() error { return w.close(0, false) }

// close ends the stream; with setGranule the last page's granule position
// becomes granule.
func (w *Writer) close(granule int64, setGranule bool) error {
	if w.closed {
		return w.err
	}
	if err := w.EndPage(); err != nil {
		return err
	}
	w.closed = true
	if w.held == nil {
		w.err = errors.New("ogg: close: the stream has no packet")
		return w.err
	}
	page := w.held
	page[5] |= FlagEOS
	if setGranule {
		binary.LittleEndian.PutUint64(page[6:], uint64(granule))
	}
	binary.LittleEndian.PutUint32(page[22:], 0)
	binary.LittleEndian.PutUint32(page[22:], CRC(page))
	w.held = nil
	return w.write(page)
}

func (w *Writer) usable() error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return errors.New("ogg: write after Close")
	}
	return nil
}

// endPage encodes the open page, writes the one held before it and holds
// this one. more: the last packet goes on, continued, on the next page.
func (w *Writer) endPage(more bool) error {
	var flags byte
	if w.seq == 0 {
		flags |= FlagBOS
	}
	if w.cont {
		flags |= FlagContinued
	}
	page := appendPage(w.spare[:0], flags, w.granule, w.cfg.Serial, w.seq, w.lacing, w.body)
	w.seq++
	w.lacing, w.body, w.granule, w.cont = w.lacing[:0], w.body[:0], NoGranule, more
	w.spare = w.held
	w.held = page
	if w.spare != nil {
		return w.write(w.spare)
	}
	return nil
}

func (w *Writer) write(page []byte) error {
	if n, err := w.dst.Write(page); err != nil || n != len(page) {
		if err == nil {
			err = io.ErrShortWrite
		}
		w.err = fmt.Errorf("ogg: write page: %w", err)
		return w.err
	}
	return nil
}
