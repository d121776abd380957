package ogg

import (
	"errors"
	"fmt"
	"io"
)

// MaxPacketLen bounds one reassembled packet. Opus packets are under 64 KB
// (48 frames of at most 1275 bytes); an OpusTags packet with long comments
// is the only larger legitimate one, and nothing Earshot writes comes near.
const MaxPacketLen = 1 << 20

// Packet is one packet of a logical stream.
type Packet struct {
	Data []byte
	// Granule is the granule position of the page the packet ends on when
	// it is the last packet ending there; NoGranule otherwise.
	Granule int64
	// EOS: the packet ends on the stream's last page.
	EOS bool
}

// Reader reads the packets of the first logical stream of an Ogg physical
// stream, reassembling packets continued across pages. Pages of other
// logical streams (multiplexed or chained after the first one's end) are
// skipped. Pages of the stream must follow each other without a gap: a lost
// page is an error (ErrSequence), not silently missing audio.
type Reader struct {
	pages   *PageReader
	started bool
	serial  uint32
	seq     uint32
	open    bool   // a packet continues on the next page
	partial []byte // its bytes so far
	queue   []Packet
	done    bool  // the stream's last page was read
	err     error // sticky
}

// NewReader reads packets from r.
func NewReader(r io.Reader) *Reader { return &Reader{pages: NewPageReader(r)} }

// Next returns the next packet; its Data stays valid after later calls. At
// the end of the stream (its end-of-stream page, or the end of the data
// between pages: a stream cut off at a page boundary reads as complete) it
// returns io.EOF. Data without a single page, or cut off inside a page or
// a packet, gives ErrTruncated; other damage an error wrapping ErrMalformed.
// After an error every call returns it again.
func (r *Reader) Next() (Packet, error) {
	for len(r.queue) == 0 {
		if r.err != nil {
			return Packet{}, r.err
		}
		r.err = r.page()
	}
	p := r.queue[0]
	r.queue[0] = Packet{}
	r.queue = r.queue[1:]
	return p, nil
}

// page reads pages until one of the stream's, and queues the packets that
// end on it. It returns io.EOF at the stream's end.
func (r *Reader) page() error {
	for {
		if r.done {
			return io.EOF
		}
		p, err := r.pages.Next()
		if errors.Is(err, io.EOF) {
			switch {
			case !r.started:
				return fmt.Errorf("%w: no Ogg page", ErrTruncated)
			case r.open:
				return fmt.Errorf("%w: the data ends inside a packet", ErrTruncated)
			}
			r.done = true
			return io.EOF
		}
		if err != nil {
			return err
		}
		if !r.started {
			if p.Flags&FlagBOS == 0 {
				return fmt.Errorf("%w: the first page does not begin a stream", ErrSequence)
			}
			r.started, r.serial, r.seq = true, p.Serial, p.Seq-1
		}
		if p.Serial != r.serial {
			continue // another logical stream
		}
		if p.Seq != r.seq+1 {
			return fmt.Errorf("%w: page %d follows page %d", ErrSequence, p.Seq, r.seq)
		}
		r.seq = p.Seq
		if cont := p.Flags&FlagContinued != 0; cont != r.open {
			if cont {
				return fmt.Errorf("%w: page %d continues a packet that ended", ErrSequence, p.Seq)
			}
			return fmt.Errorf("%w: page %d does not continue the unfinished packet", ErrSequence, p.Seq)
		}
		if err := r.split(p); err != nil {
			return err
		}
		if p.Flags&FlagEOS != 0 {
			r.done = true
			if r.open {
				return fmt.Errorf("%w: the stream ends inside a packet", ErrTruncated)
			}
		}
		if len(r.queue) > 0 {
			return nil
		}
	}
}

// split turns a page's lacing values into packets.
func (r *Reader) split(p *Page) error {
	off := 0
	for _, l := range p.Lacing {
		if len(r.partial)+int(l) > MaxPacketLen {
			return fmt.Errorf("%w: a packet over %d bytes", ErrOversize, MaxPacketLen)
		}
		r.partial = append(r.partial, p.Body[off:off+int(l)]...)
		off += int(l)
		r.open = l == 255
		if !r.open {
			data := r.partial
			if data == nil {
				data = []byte{}
			}
			r.queue = append(r.queue, Packet{Data: data, Granule: NoGranule})
			r.partial = nil
		}
	}
	if n := len(r.queue); n > 0 {
		r.queue[n-1].Granule = p.Granule
		if p.Flags&FlagEOS != 0 {
			for i := range r.queue {
				r.queue[i].EOS = true
			}
		}
	}
	return nil
}
