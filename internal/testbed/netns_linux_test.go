package testbed_test

import (
	"bytes"
	"errors"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/earshot/earshot/internal/testbed"
)

// threadNetns names the network namespace of the calling goroutine's
// thread (locked while it looks).
func threadNetns(t *testing.T) string {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ns, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

// TestIPv6Loopback: open runs where ::1 and 127.0.0.1 can be bound; the
// sockets it makes carry datagrams when used from the test's goroutine;
// as root, that place is a namespace of its own with no interface but lo
// (nothing sent there can leave the machine), and the test's own thread
// stays in its namespace.
func TestIPv6Loopback(t *testing.T) {
	before := threadNetns(t)
	var (
		inside  string
		ifaces  []string
		rx6, tx *net.UDPConn
	)
	testbed.IPv6Loopback(t, func() error {
		ns, err := os.Readlink("/proc/thread-self/ns/net")
		if err != nil {
			return err
		}
		inside = ns
		list, err := net.Interfaces()
		if err != nil {
			return err
		}
		for _, i := range list {
			ifaces = append(ifaces, i.Name)
		}
		if rx6, err = net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback}); err != nil {
			return err
		}
		tx, err = net.DialUDP("udp6", nil, rx6.LocalAddr().(*net.UDPAddr))
		if err != nil {
			_ = rx6.Close()
			return err
		}
		rx4, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return errors.Join(err, rx6.Close(), tx.Close())
		}
		return rx4.Close()
	})
	t.Cleanup(func() { _ = rx6.Close(); _ = tx.Close() })

	if after := threadNetns(t); after != before {
		t.Errorf("the test's thread moved from %s to %s", before, after)
	}
	if os.Geteuid() == 0 {
		if inside == before {
			t.Errorf("open ran in the test's own namespace %s, want a private one", inside)
		}
		if len(ifaces) != 1 || ifaces[0] != "lo" {
			t.Errorf("interfaces in the private namespace: %v, want only lo", ifaces)
		}
	}

	want := []byte("over ::1")
	if _, err := tx.Write(want); err != nil {
		t.Fatal(err)
	}
	_ = rx6.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 64)
	n, from, err := rx6.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("read on ::1: %v", err)
	}
	if !bytes.Equal(buf[:n], want) || from != tx.LocalAddr().(*net.UDPAddr).AddrPort() {
		t.Errorf("read %q from %v, want %q from %v", buf[:n], from, want, tx.LocalAddr())
	}
}

// TestIPv6LoopbackOpenError: an error of open fails the test, whatever the
// machine (it is the caller's error, not a missing namespace).
func TestIPv6LoopbackOpenError(t *testing.T) {
	e := runEnd(func(tb testing.TB) {
		testbed.IPv6Loopback(tb, func() error { return errors.New("socket refused") })
	})
	if e.skipped && os.Geteuid() != 0 && !testbed.Enabled() {
		return // not root and no ::1 on the host: open never ran
	}
	if !e.failed || !bytes.Contains([]byte(e.msg), []byte("socket refused")) {
		t.Errorf("failed %v skipped %v message %q: want a failure naming open's error", e.failed, e.skipped, e.msg)
	}
}
