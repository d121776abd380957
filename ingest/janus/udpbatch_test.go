package janus

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/pion/transport/v5"

	"github.com/earshot/earshot/internal/testbed"
)

// loopbackPair returns a batchConn on 127.0.0.1 and a plain socket that
// sends to it.
func loopbackPair(t *testing.T, interval time.Duration) (*batchConn, *net.UDPConn) {
	t.Helper()
	n, err := newBatchNet(interval)
	if err != nil {
		t.Fatal(err)
	}
	c, err := n.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	bc, ok := c.(*batchConn)
	if !ok {
		t.Fatalf("ListenUDP(udp4) returned %T, want *batchConn", c)
	}
	t.Cleanup(func() { _ = bc.Close() })
	tx, err := net.DialUDP("udp4", nil, bc.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Close() })
	return bc, tx
}

// TestBatchConnDeliversEveryDatagram sends more datagrams than one batch
// holds and reads them through each read method: all arrive, in order,
// whole, with the sender's address (IPv4, not IPv4-mapped IPv6).
func TestBatchConnDeliversEveryDatagram(t *testing.T) {
	bc, tx := loopbackPair(t, 5*time.Millisecond)
	const n = readBatch*2 + 7
	for i := range n {
		if _, err := tx.Write([]byte("datagram " + strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	from := tx.LocalAddr().(*net.UDPAddr).AddrPort()
	buf := make([]byte, 1500)
	for i := range n {
		want := []byte("datagram " + strconv.Itoa(i))
		var got []byte
		var addr netip.AddrPort
		switch i % 3 {
		case 0:
			k, a, err := bc.ReadFromAddrPort(buf)
			if err != nil {
				t.Fatalf("datagram %d: %v", i, err)
			}
			got, addr = buf[:k], a
		case 1:
			k, a, err := bc.ReadFrom(buf)
			if err != nil {
				t.Fatalf("datagram %d: %v", i, err)
			}
			got, addr = buf[:k], a.(*net.UDPAddr).AddrPort()
			addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
		case 2:
			k, err := bc.Read(buf)
			if err != nil {
				t.Fatalf("datagram %d: %v", i, err)
			}
			got, addr = buf[:k], from
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("datagram %d: %q, want %q", i, got, want)
		}
		if addr != from {
			t.Fatalf("datagram %d from %v, want %v", i, addr, from)
		}
	}
}

// TestBatchConnShortBuffer: a datagram longer than the caller's buffer is
// cut to it, as a UDP socket read does.
func TestBatchConnShortBuffer(t *testing.T) {
	bc, tx := loopbackPair(t, time.Millisecond)
	if _, err := tx.Write([]byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	n, _, err := bc.ReadFromAddrPort(buf)
	if err != nil || string(buf[:n]) != "0123" {
		t.Fatalf("read %q, %v; want \"0123\"", buf[:n], err)
	}
}

// TestBatchConnClose: a read blocked on an empty socket returns an error
// once the socket is closed.
func TestBatchConnClose(t *testing.T) {
	bc, _ := loopbackPair(t, time.Millisecond)
	done := make(chan error, 1)
	go func() {
		_, _, err := bc.ReadFromAddrPort(make([]byte, 1500))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond) // let the read block (not a timing assertion)
	if err := bc.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("read after close: %v, want net.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("read still blocked 10 s after Close")
	}
}

// TestBatchNetSockets: the sockets pion's ICE agent opens through
// batchNet carry datagrams both ways, with the sender's address, each
// family on its own loopback; IPv4 ones are batchConns and the rest stay
// plain sockets (batch reads are x/net/ipv4's). The IPv6 cases run where
// ::1 can be bound (testbed.IPv6Loopback: a private network namespace as
// root), so they run on every machine of the test bed.
func TestBatchNetSockets(t *testing.T) {
	v4, v6 := net.IPv4(127, 0, 0, 1), net.IPv6loopback
	for _, tc := range []struct {
		network string
		ip      net.IP
		batched bool
	}{
		{"udp4", v4, true},
		{"udp", v4, true},
		{"udp6", v6, false},
		{"udp", v6, false},
	} {
		t.Run(tc.network+"_"+tc.ip.String(), func(t *testing.T) {
			n, err := newBatchNet(time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			var c transport.UDPConn
			var tx *net.UDPConn
			open := func() error {
				var err error
				if c, err = n.ListenUDP(tc.network, &net.UDPAddr{IP: tc.ip}); err != nil {
					return err
				}
				tx, err = net.DialUDP(tc.network, nil, c.LocalAddr().(*net.UDPAddr))
				if err != nil {
					return errors.Join(err, c.Close())
				}
				return nil
			}
			if tc.ip.To4() == nil {
				testbed.IPv6Loopback(t, open)
			} else if err := open(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Close(); _ = tx.Close() })
			if _, ok := c.(*batchConn); ok != tc.batched {
				t.Fatalf("ListenUDP(%s, %v) gave %T, want batched %v", tc.network, tc.ip, c, tc.batched)
			}

			// More than one batch, read as pion's ICE agent reads a
			// wrapped socket (ReadFrom).
			ap := tx.LocalAddr().(*net.UDPAddr).AddrPort()
			from := netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
			const count = readBatch + 3
			for i := range count {
				if _, err := tx.Write([]byte("datagram " + strconv.Itoa(i))); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 1500)
			for i := range count {
				k, a, err := c.ReadFrom(buf)
				if err != nil {
					t.Fatalf("datagram %d: %v", i, err)
				}
				ap := a.(*net.UDPAddr).AddrPort()
				addr := netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
				if want := "datagram " + strconv.Itoa(i); string(buf[:k]) != want || addr != from {
					t.Fatalf("datagram %d: %q from %v, want %q from %v", i, buf[:k], addr, want, from)
				}
			}

			// Writes go straight out, to the address pion gives.
			if _, err := c.WriteTo([]byte("reply"), net.UDPAddrFromAddrPort(from)); err != nil {
				t.Fatal(err)
			}
			if err := tx.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
				t.Fatal(err)
			}
			k, err := tx.Read(buf)
			if err != nil || string(buf[:k]) != "reply" {
				t.Fatalf("reply: %q, %v", buf[:k], err)
			}
		})
	}
}
