package record

import (
	"fmt"
	"time"
)

// chunkBuilder collects the packets of the current live chunk in one
// arena, each packet as its length and duration (2 bytes each) and its
// bytes: one sequential write per packet, and no allocation once the arena
// has grown to a chunk's size. The previous chunk's arena is kept: with the
// current one it holds the last 80 ms of packets a new segment needs for
// its warm-up.
type chunkBuilder struct {
	open     bool
	seq      int64 // seq of the open chunk (or the next one)
	first    int64
	end      int64 // nominal end (exclusive): the next multiple of the chunk length
	gaps     Gaps
	recorded time.Duration // since the track's epoch
	arena    []byte
	prev     []byte
	packets  [][]byte // built at emission
	offsets  []int64
	spans    []span // scratch for recent
	out      Chunk
}

type span struct {
	p []byte
	n int
}

func (c *chunkBuilder) start(pos, length int64) {
	c.open = true
	c.first = pos
	c.end = (pos/length + 1) * length
	c.arena, c.prev = c.prev[:0], c.arena
	c.gaps = Gaps{}
}

func (c *chunkBuilder) add(p []byte, n int, cs cause, now time.Duration) {
	c.arena = append(c.arena, byte(len(p)), byte(len(p)>>8), byte(n), byte(n>>8))
	c.arena = append(c.arena, p...)
	if cs != causeNone {
		c.gaps.add(cs, int64(n))
	}
	c.recorded = now
}

// each calls f for each packet of an arena, in order.
func each(arena []byte, f func(p []byte, n int)) {
	for off := 0; off+4 <= len(arena); {
		l := int(arena[off]) | int(arena[off+1])<<8
		n := int(arena[off+2]) | int(arena[off+3])<<8
		p := arena[off+4 : off+4+l : off+4+l]
		f(p, n)
		off += 4 + l
	}
}

// recent calls f, oldest first, for the newest packets of the previous and
// current chunk that together last at most limit samples.
func (c *chunkBuilder) recent(limit int, f func(p []byte, n int)) {
	c.spans = c.spans[:0]
	collect := func(p []byte, n int) { c.spans = append(c.spans, span{p, n}) }
	each(c.prev, collect)
	each(c.arena, collect)
	k, sum := len(c.spans), 0
	for k > 0 && sum+c.spans[k-1].n <= limit {
		k--
		sum += c.spans[k].n
	}
	for _, s := range c.spans[k:] {
		f(s.p, s.n)
	}
}

// emitChunk hands the open chunk, which ends where the timeline is now, to
// the sink.
func (t *Track) emitChunk(final bool) {
	c := &t.chunk
	c.open = false
	c.packets, c.offsets = c.packets[:0], c.offsets[:0]
	off := int64(0)
	each(c.arena, func(p []byte, n int) {
		c.packets = append(c.packets, p)
		c.offsets = append(c.offsets, off)
		off += int64(n)
	})
	c.out = Chunk{
		Timeline: t.Timeline().Sub(c.first, t.written-1),
		Seq:      c.seq,
		Final:    final,
		Channels: t.cfg.Channels,
		Gaps:     c.gaps,
		Recorded: t.epoch.Add(c.recorded),
	}
	c.out.Data.Packets = c.packets
	c.out.Data.Offsets = c.offsets
	c.seq++
	t.stats.Chunks++
	if err := t.cfg.Chunks.Chunk(&c.out); err != nil {
		t.stats.ChunkErrors++
		t.errs = append(t.errs, fmt.Errorf("record: chunk %d of %s: %w", c.out.Seq, t.cfg.Track, err))
	}
	// Segment bytes reach the sink about once a chunk: one write (one
	// system call for a file) instead of one per packet.
	if t.seg.open {
		if err := t.seg.flush(); err != nil {
			t.abortSegment(err)
		}
	}
}
