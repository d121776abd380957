package evidence

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/earshot/earshot/internal/oggcrc"
	"io"
)

// Ogg framing (RFC 3533). pion's oggreader returns a page's payload whole;
// cutting needs packet boundaries (the lacing values), continued packets
// and granule positions, so this is a small reader and writer of its own.

// Page header flags.
const (
	flagContinued = 0x01
	flagBOS       = 0x02
	flagEOS       = 0x04
)

const (
	pageHeaderLen = 27
	// maxPacketBytes bounds one reassembled packet. Opus packets are under
	// 64 KB (48 frames of at most 1275 bytes); OpusTags with long comments
	// are the only larger legitimate packets, and nothing Earshot writes
	// comes near this.
	maxPacketBytes = 1 << 20
	// noGranule is the granule position of a page on which no packet ends.
	noGranule = -1
)

// ErrCorrupt marks Ogg data that breaks the framing: bad capture pattern,
// version, checksum or an oversized packet.
var ErrCorrupt = errors.New("evidence: corrupt Ogg data")

// Packet is one packet of a logical Ogg stream.
type Packet struct {
	Data []byte
	// Granule is the granule position of the page this packet ends on when
	// it is the last packet ending there; noGranule otherwise.
	Granule int64
	// EOS: the packet ends on the stream's last page.
	EOS bool
}

// PacketReader reads the packets of the first logical stream of an Ogg
// physical stream, checking page checksums. Pages of other streams are
// skipped. It never panics on malformed input and allocates at most
// maxPacketBytes for a packet.
type PacketReader struct {
	r       *bufio.Reader
	serial  uint32
	started bool
	partial []byte // a packet continued on the next page
	queue   []Packet
	done    bool
	// oversize: a packet grew past maxPacketBytes; the stream is refused.
	oversize bool
	hdr      [pageHeaderLen]byte
	lacing   [255]byte
	body     []byte
}

// NewPacketReader reads packets from r.
func NewPacketReader(r io.Reader) *PacketReader {
	return &PacketReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// Next returns the next packet. At the end of the stream it returns io.EOF;
// a stream cut off inside a page returns io.ErrUnexpectedEOF, damaged
// framing an error wrapping ErrCorrupt. The packet's Data stays valid after
// later calls.
func (p *PacketReader) Next() (Packet, error) {
	for len(p.queue) == 0 {
		if p.done {
			return Packet{}, io.EOF
		}
		if err := p.page(); err != nil {
			return Packet{}, err
		}
	}
	pk := p.queue[0]
	p.queue = p.queue[1:]
	return pk, nil
}

// page reads one page of the stream and queues the packets ending on it.
func (p *PacketReader) page() error {
	for {
		if _, err := io.ReadFull(p.r, p.hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				if p.started {
					p.done = true
					if len(p.partial) > 0 {
						return io.ErrUnexpectedEOF
					}
					return nil
				}
				return io.ErrUnexpectedEOF
			}
			return err
		}
		h := p.hdr[:]
		if string(h[:4]) != "OggS" {
			return fmt.Errorf("%w: no capture pattern", ErrCorrupt)
		}
		if h[4] != 0 {
			return fmt.Errorf("%w: stream structure version %d", ErrCorrupt, h[4])
		}
		flags := h[5]
		granule := int64(binary.LittleEndian.Uint64(h[6:]))
		serial := binary.LittleEndian.Uint32(h[14:])
		nseg := int(h[26])
		lacing := p.lacing[:nseg]
		if _, err := io.ReadFull(p.r, lacing); err != nil {
			return unexpected(err)
		}
		size := 0
		for _, l := range lacing {
			size += int(l)
		}
		if cap(p.body) < size {
			p.body = make([]byte, size)
		}
		body := p.body[:size]
		if _, err := io.ReadFull(p.r, body); err != nil {
			return unexpected(err)
		}
		want := binary.LittleEndian.Uint32(h[22:])
		binary.LittleEndian.PutUint32(h[22:], 0)
		crc := oggcrc.Update(oggcrc.Update(oggcrc.Update(0, h), lacing), body)
		if crc != want {
			return fmt.Errorf("%w: page checksum mismatch", ErrCorrupt)
		}
		if !p.started {
			p.started, p.serial = true, serial
		} else if serial != p.serial {
			continue // another logical stream: not ours
		}
		p.split(flags, granule, lacing, body)
		if flags&flagEOS != 0 {
			p.done = true
			p.partial = nil
		}
		if err := p.checkPartial(); err != nil {
			return err
		}
		return nil
	}
}

func (p *PacketReader) checkPartial() error {
	if p.oversize {
		p.done, p.queue, p.partial = true, nil, nil
		return fmt.Errorf("%w: packet over %d bytes", ErrCorrupt, maxPacketBytes)
	}
	return nil
}

// split turns a page's lacing values into packets. A page that does not
// continue a packet drops any unfinished one (the stream lost a page).
func (p *PacketReader) split(flags byte, granule int64, lacing, body []byte) {
	if flags&flagContinued == 0 {
		p.partial = nil
	}
	first := len(p.queue)
	off, skip := 0, flags&flagContinued != 0 && p.partial == nil
	for _, l := range lacing {
		seg := body[off : off+int(l)]
		off += int(l)
		if !skip {
			if len(p.partial)+len(seg) > maxPacketBytes {
				p.oversize = true
				return
			}
			p.partial = append(p.partial, seg...)
		}
		if l < 255 {
			if !skip {
				data := p.partial
				if data == nil {
					data = []byte{}
				}
				p.queue = append(p.queue, Packet{Data: data, Granule: noGranule})
			}
			p.partial, skip = nil, false
		}
	}
	if n := len(p.queue); n > first {
		p.queue[n-1].Granule = granule
		if flags&flagEOS != 0 {
			for i := first; i < n; i++ {
				p.queue[i].EOS = true
			}
		}
	}
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// pageWriter writes one logical stream, packing packets into pages of up
// to about pageTarget bytes.
type pageWriter struct {
	w       io.Writer
	serial  uint32
	seq     uint32
	lacing  []byte
	body    []byte
	granule int64 // of the last packet added to the pending page
	buf     []byte
	err     error
}

// pageTarget: a page is flushed once its body reaches this size (about a
// second of speech at WebRTC bit rates), keeping the Ogg overhead small.
const pageTarget = 4096

// maxPagePacket is the largest packet a page of its own can carry.
const maxPagePacket = 255*255 - 1

// header writes a header packet on a page of its own.
func (pw *pageWriter) header(pkt []byte, flags byte) error {
	if err := pw.add(pkt, 0); err != nil {
		return err
	}
	return pw.flush(flags)
}

// add queues a packet ending at granule; it starts a new page when the
// pending one cannot take it.
func (pw *pageWriter) add(pkt []byte, granule int64) error {
	if pw.err != nil {
		return pw.err
	}
	if len(pkt) > maxPagePacket {
		return fmt.Errorf("evidence: packet of %d bytes is too large for one Ogg page", len(pkt))
	}
	need := len(pkt)/255 + 1
	if len(pw.lacing)+need > 255 || len(pw.body) >= pageTarget {
		if err := pw.flush(0); err != nil {
			return err
		}
	}
	for n := len(pkt); ; n -= 255 {
		if n < 255 {
			pw.lacing = append(pw.lacing, byte(n))
			break
		}
		pw.lacing = append(pw.lacing, 255)
	}
	pw.body = append(pw.body, pkt...)
	pw.granule = granule
	return nil
}

// finish writes the pending packets as the last page, whose granule
// position is final (it may trim the end of the last packet).
func (pw *pageWriter) finish(final int64) error {
	if len(pw.lacing) == 0 {
		return errors.New("evidence: no audio packet to end the stream with")
	}
	pw.granule = final
	return pw.flush(flagEOS)
}

func (pw *pageWriter) flush(flags byte) error {
	if pw.err != nil {
		return pw.err
	}
	if len(pw.lacing) == 0 {
		return nil
	}
	b := pw.buf[:0]
	b = append(b, "OggS"...)
	b = append(b, 0, flags)
	b = binary.LittleEndian.AppendUint64(b, uint64(pw.granule))
	b = binary.LittleEndian.AppendUint32(b, pw.serial)
	b = binary.LittleEndian.AppendUint32(b, pw.seq)
	b = append(b, 0, 0, 0, 0, byte(len(pw.lacing)))
	b = append(b, pw.lacing...)
	b = append(b, pw.body...)
	binary.LittleEndian.PutUint32(b[22:], oggcrc.Update(0, b))
	pw.buf = b
	if _, err := pw.w.Write(b); err != nil {
		pw.err = fmt.Errorf("evidence: write: %w", err)
		return pw.err
	}
	pw.seq++
	pw.lacing, pw.body = pw.lacing[:0], pw.body[:0]
	return nil
}
