package janus

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"
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

// TestBatchNetOtherNetworks: sockets that are not IPv4 stay plain.
func TestBatchNetOtherNetworks(t *testing.T) {
	n, err := newBatchNet(time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	c, err := n.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer c.Close()
	if _, ok := c.(*batchConn); ok {
		t.Error("an IPv6 socket was wrapped")
	}
}
