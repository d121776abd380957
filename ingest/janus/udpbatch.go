package janus

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"golang.org/x/net/ipv4"
)

// DefaultReadInterval is how long a bot's UDP socket lets datagrams gather
// before it reads them, all at once (see WebRTCConfig.ReadInterval).
//
// Why: a bot receives many small packets (one Opus frame per speaker every
// 20 ms), and pion hands each one through four goroutines (socket reader,
// DTLS/SRTP demultiplexer, SRTP decrypter, track reader). Woken once per
// datagram, the process spends most of its CPU time going to sleep and
// waking up (epoll, futex, context switches), not on the packets. Reading
// what gathered over the interval with one recvmmsg lets every stage of
// that chain run through a burst before it sleeps again.
//
// Why 10 ms: a bot has one socket per room, and a room of ten speakers
// sends only one datagram every 2 ms, so a 1 ms interval batches almost
// nothing there. Measured with BenchmarkWebRTCTracksPerCore's programs
// (1,600 tracks): 10 tracks per peer connection, 1,263 tracks per core at
// 1 ms, 1,682 at 10 ms; 100 per peer connection, 1,848 and 2,064. The cost
// is at most one interval of latency per packet, against the recorder's
// 80 ms loss deadline and 240 ms live chunks; sparse traffic (a packet
// after a longer pause: ICE, DTLS) is read at once.
const DefaultReadInterval = 10 * time.Millisecond

// readBatch is how many datagrams one recvmmsg takes at most; after a full
// batch the next read does not wait.
const readBatch = 64

// readBufferSize is the kernel receive buffer asked for each socket (the
// kernel caps it at net.core.rmem_max): room for a stall of a garbage
// collection or a busy core without loss.
const readBufferSize = 1 << 20

// batchNet is the network pion's ICE agent gathers host candidates with:
// the standard one, except that the IPv4 UDP sockets it opens are
// batchConns.
type batchNet struct {
	*stdnet.Net
	interval time.Duration
}

var _ transport.Net = (*batchNet)(nil)

func newBatchNet(interval time.Duration) (*batchNet, error) {
	n, err := stdnet.NewNet()
	if err != nil {
		return nil, fmt.Errorf("janus: network: %w", err)
	}
	return &batchNet{Net: n, interval: interval}, nil
}

// ListenUDP opens the socket as the standard network does and wraps it.
func (n *batchNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := net.ListenUDP(network, laddr)
	if err != nil {
		return nil, err
	}
	_ = c.SetReadBuffer(readBufferSize) // best effort: a smaller buffer still works
	if network != "udp4" && (laddr == nil || laddr.IP.To4() == nil) {
		return c, nil // batch reads are IPv4 (x/net/ipv4); bots use UDP4 only
	}
	return newBatchConn(c, n.interval), nil
}

// batchConn is a UDP socket whose reads are served from batches: when the
// previous batch is used up, it waits until interval has passed since that
// batch was read, then takes every datagram that gathered (up to readBatch)
// with one recvmmsg. Writes go straight to the socket. Every read method
// goes through the batch, so none can overtake it.
type batchConn struct {
	*net.UDPConn
	pc       *ipv4.PacketConn
	interval time.Duration

	mu   sync.Mutex // serialises readers over msgs
	msgs []ipv4.Message
	n    int // datagrams in msgs
	next int // the next one to return
	last time.Time
}

func newBatchConn(c *net.UDPConn, interval time.Duration) *batchConn {
	b := &batchConn{UDPConn: c, pc: ipv4.NewPacketConn(c), interval: interval, msgs: make([]ipv4.Message, readBatch)}
	for i := range b.msgs {
		b.msgs[i].Buffers = [][]byte{make([]byte, 1500)}
	}
	return b
}

// read copies the next datagram into p.
func (b *batchConn) read(p []byte) (int, *net.UDPAddr, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.next == b.n {
		// A full batch means more may be waiting: read on at once, so
		// batching never limits throughput.
		if wait := b.interval - time.Since(b.last); wait > 0 && b.n < len(b.msgs) {
			time.Sleep(wait)
		}
		n, err := b.pc.ReadBatch(b.msgs, 0)
		b.last = time.Now()
		if err != nil {
			b.n, b.next = 0, 0
			return 0, nil, err
		}
		b.n, b.next = n, 0
	}
	m := &b.msgs[b.next]
	b.next++
	addr, _ := m.Addr.(*net.UDPAddr)
	n := copy(p, m.Buffers[0][:m.N])
	return n, addr, nil
}

// Read implements net.Conn.
func (b *batchConn) Read(p []byte) (int, error) {
	n, _, err := b.read(p)
	return n, err
}

// ReadFrom implements net.PacketConn.
func (b *batchConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, addr, err := b.read(p)
	if addr == nil {
		return n, nil, err
	}
	return n, addr, err
}

// ReadFromUDP is net.UDPConn's.
func (b *batchConn) ReadFromUDP(p []byte) (int, *net.UDPAddr, error) {
	return b.read(p)
}

// ReadFromAddrPort is net.UDPConn's ReadFromUDPAddrPort. pion's ICE reads a
// wrapped socket through ReadFrom: it takes this allocation-free path only
// from a conn that also has WriteToAddrPort.
func (b *batchConn) ReadFromAddrPort(p []byte) (int, netip.AddrPort, error) {
	n, addr, err := b.read(p)
	if addr == nil {
		return n, netip.AddrPort{}, err
	}
	ap := addr.AddrPort() // x/net gives IPv4 in 16-byte form: unmap it
	return n, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), err
}

// ReadMsgUDP is net.UDPConn's; no control messages are read.
func (b *batchConn) ReadMsgUDP(p, _ []byte) (n, oobn, flags int, addr *net.UDPAddr, err error) {
	n, addr, err = b.read(p)
	return n, 0, 0, addr, err
}

// ReadMsgUDPAddrPort is net.UDPConn's; no control messages are read.
func (b *batchConn) ReadMsgUDPAddrPort(p, _ []byte) (n, oobn, flags int, addr netip.AddrPort, err error) {
	n, addr, err = b.ReadFromAddrPort(p)
	return n, 0, 0, addr, err
}

var _ transport.UDPConn = (*batchConn)(nil)
