package ogg

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Page header flags (RFC 3533 §6).
const (
	FlagContinued = 0x01 // the page's first packet began on the previous page
	FlagBOS       = 0x02 // first page of a logical stream
	FlagEOS       = 0x04 // last page of a logical stream
)

const (
	// HeaderLen is the fixed part of a page header, before the lacing values.
	HeaderLen = 27
	// MaxPageLen is the largest page: 255 lacing values of 255 bytes.
	MaxPageLen = HeaderLen + 255 + 255*255
	// NoGranule is the granule position of a page on which no packet ends.
	NoGranule int64 = -1
)

// ErrMalformed is wrapped by every error this package returns for input
// that breaks Ogg framing or Opus encapsulation. The errors below wrap it
// and say which rule broke.
var ErrMalformed = errors.New("ogg: malformed")

var (
	// ErrCapture: no "OggS" capture pattern where a page must begin.
	ErrCapture = fmt.Errorf("%w: no capture pattern", ErrMalformed)
	// ErrVersion: a stream structure version other than 0.
	ErrVersion = fmt.Errorf("%w: unknown stream structure version", ErrMalformed)
	// ErrCRC: a page whose checksum does not match its bytes.
	ErrCRC = fmt.Errorf("%w: page checksum mismatch", ErrMalformed)
	// ErrTruncated: the data ends inside a page or inside a packet (a
	// stream cut off, by a crash for instance). It also matches
	// io.ErrUnexpectedEOF.
	ErrTruncated = fmt.Errorf("%w: %w", ErrMalformed, io.ErrUnexpectedEOF)
	// ErrSequence: pages out of order or lost (a sequence number gap, a
	// continued-packet flag that does not match the previous page, a first
	// page without the beginning-of-stream flag).
	ErrSequence = fmt.Errorf("%w: page sequence broken", ErrMalformed)
	// ErrOversize: lacing values that add up to a packet longer than the
	// reader accepts (MaxPacketLen), or a page longer than MaxPageLen.
	ErrOversize = fmt.Errorf("%w: lacing overflow", ErrMalformed)
	// ErrHeader: a missing or malformed OpusHead or OpusTags packet, or one
	// this package does not support.
	ErrHeader = fmt.Errorf("%w: Opus header", ErrMalformed)
	// ErrPacket: an Opus packet whose framing breaks RFC 6716 §3.
	ErrPacket = fmt.Errorf("%w: Opus packet", ErrMalformed)
)

// Page is one Ogg page.
type Page struct {
	Flags   byte
	Granule int64 // NoGranule when no packet ends on the page
	Serial  uint32
	Seq     uint32
	Lacing  []byte // segment table: at most 255 values
	Body    []byte // len(Body) is the sum of Lacing
}

// Append appends the encoded page, checksum included, to dst.
func (p *Page) Append(dst []byte) ([]byte, error) {
	if len(p.Lacing) > 255 {
		return dst, fmt.Errorf("%w: %d lacing values on one page", ErrOversize, len(p.Lacing))
	}
	size := 0
	for _, l := range p.Lacing {
		size += int(l)
	}
	if size != len(p.Body) {
		return dst, fmt.Errorf("ogg: page body of %d bytes for lacing values adding up to %d", len(p.Body), size)
	}
	return appendPage(dst, p.Flags, p.Granule, p.Serial, p.Seq, p.Lacing, p.Body), nil
}

func appendPage(dst []byte, flags byte, granule int64, serial, seq uint32, lacing, body []byte) []byte {
	start := len(dst)
	dst = append(dst, "OggS"...)
	dst = append(dst, 0, flags)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(granule))
	dst = binary.LittleEndian.AppendUint32(dst, serial)
	dst = binary.LittleEndian.AppendUint32(dst, seq)
	dst = append(dst, 0, 0, 0, 0, byte(len(lacing)))
	dst = append(dst, lacing...)
	dst = append(dst, body...)
	binary.LittleEndian.PutUint32(dst[start+22:], CRC(dst[start:]))
	return dst
}

// PageReader reads the pages of an Ogg physical stream, checking each
// page's capture pattern, version and checksum. It never panics on
// malformed input and allocates at most MaxPageLen.
type PageReader struct {
	r    *bufio.Reader
	off  int64 // offset of the next page, for error messages
	hdr  [HeaderLen]byte
	lace [255]byte
	body []byte
	page Page
	err  error // sticky
}

// NewPageReader reads pages from r.
func NewPageReader(r io.Reader) *PageReader {
	return &PageReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// Next returns the next page, valid until the following call. At a clean
// end between pages it returns io.EOF; data that ends inside a page gives
// ErrTruncated; other damage an error wrapping ErrMalformed. After an error
// every call returns it again.
func (r *PageReader) Next() (*Page, error) {
	if r.err != nil {
		return nil, r.err
	}
	p, err := r.next()
	if err != nil {
		r.err = err
		return nil, err
	}
	return p, nil
}

func (r *PageReader) next() (*Page, error) {
	off := r.off
	if n, err := io.ReadFull(r.r, r.hdr[:]); err != nil {
		if n == 0 && errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, r.readErr(err, off, "page header")
	}
	h := r.hdr[:]
	if string(h[:4]) != "OggS" {
		return nil, fmt.Errorf("%w at byte %d", ErrCapture, off)
	}
	if h[4] != 0 {
		return nil, fmt.Errorf("%w %d at byte %d", ErrVersion, h[4], off)
	}
	lacing := r.lace[:h[26]]
	if _, err := io.ReadFull(r.r, lacing); err != nil {
		return nil, r.readErr(err, off, "lacing values")
	}
	size := 0
	for _, l := range lacing {
		size += int(l)
	}
	if cap(r.body) < size {
		r.body = make([]byte, size, max(size, 4096))
	}
	body := r.body[:size]
	if _, err := io.ReadFull(r.r, body); err != nil {
		return nil, r.readErr(err, off, "page body")
	}
	want := binary.LittleEndian.Uint32(h[22:])
	binary.LittleEndian.PutUint32(h[22:], 0)
	if got := UpdateCRC(UpdateCRC(UpdateCRC(0, h), lacing), body); got != want {
		return nil, fmt.Errorf("%w at byte %d", ErrCRC, off)
	}
	r.off += int64(HeaderLen + len(lacing) + size)
	r.page = Page{
		Flags:   h[5],
		Granule: int64(binary.LittleEndian.Uint64(h[6:])),
		Serial:  binary.LittleEndian.Uint32(h[14:]),
		Seq:     binary.LittleEndian.Uint32(h[18:]),
		Lacing:  lacing,
		Body:    body,
	}
	return &r.page, nil
}

func (r *PageReader) readErr(err error, off int64, what string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %s of the page at byte %d", ErrTruncated, what, off)
	}
	return fmt.Errorf("ogg: read %s at byte %d: %w", what, off, err)
}
