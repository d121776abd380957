package testbed

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// IPv6Loopback runs open where the IPv6 loopback address ::1 can be bound,
// so a test's IPv6 sockets work whatever this machine's own loopback has.
// open makes the test's sockets and returns; it must not call tb.Fatal (it
// may run on another goroutine). Its error fails the test.
//
// As root, open runs in a private network namespace: a goroutine locks an
// OS thread, unshares the thread's network namespace, brings that
// namespace's loopback up (with IPv6 on it) and calls open there. The
// goroutine never unlocks the thread, so the runtime discards the thread
// when open returns and no other code ever runs in that namespace. Sockets
// open made stay in it and work from any goroutine; their traffic cannot
// leave it; the namespace goes when the last of them is closed.
//
// Why not the host's loopback: containers often start with IPv6 disabled
// on it (net.ipv6.conf.*.disable_ipv6=1, as Docker sets by default), while
// a new namespace gets the kernel's defaults. The test bed runs tests as
// root, so under EARSHOT_TESTBED=1 the namespace is the only place used
// and a failure to make it fails the test. Outside the test bed, when the
// namespace cannot be made, open runs on the host's loopback if ::1 can be
// bound there, and the test is skipped (saying why) if not.
func IPv6Loopback(tb testing.TB, open func() error) {
	tb.Helper()
	var why string
	if os.Geteuid() != 0 {
		why = "needs root to make a network namespace with IPv6 loopback: run it as root (make test does in CI)"
	} else {
		err := inPrivateNetns(open)
		if err == nil {
			return
		}
		if setup := (*netnsError)(nil); !errors.As(err, &setup) {
			tb.Fatalf("in a private network namespace: %v", err)
		}
		why = err.Error()
	}
	if !Enabled() && hostIPv6Loopback() {
		if err := open(); err != nil {
			tb.Fatalf("on the host's IPv6 loopback: %v", err)
		}
		return
	}
	Unavailable(tb, why)
}

// netnsError is a failure to make the private namespace, as opposed to an
// error of the caller's open.
type netnsError struct{ err error }

func (e *netnsError) Error() string { return "private network namespace: " + e.err.Error() }
func (e *netnsError) Unwrap() error { return e.err }

// inPrivateNetns calls open on a locked OS thread in a new network
// namespace whose loopback is up with IPv6, and returns open's error or a
// *netnsError.
func inPrivateNetns(open func() error) error {
	done := make(chan error, 1)
	go func() {
		// Never unlocked: the thread is in another namespace from here on,
		// and a goroutine that exits locked takes its thread with it.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			done <- &netnsError{fmt.Errorf("unshare(CLONE_NEWNET): %w (a container needs CAP_SYS_ADMIN)", err)}
			return
		}
		if err := loopbackUp(); err != nil {
			done <- &netnsError{err}
			return
		}
		done <- open()
	}()
	return <-done
}

// loopbackUp enables IPv6 on lo in the calling thread's network namespace
// and brings lo up, which gives it ::1 and 127.0.0.1.
func loopbackUp() error {
	// /proc/sys/net shows the namespace of the thread that opens the file.
	const sysctl = "/proc/sys/net/ipv6/conf/lo/disable_ipv6"
	v, err := os.ReadFile(sysctl)
	if err != nil {
		return fmt.Errorf("read %s: %w (is IPv6 built into the kernel?)", sysctl, err)
	}
	if strings.TrimSpace(string(v)) != "0" {
		if err := os.WriteFile(sysctl, []byte("0"), 0o644); err != nil {
			return fmt.Errorf("enable IPv6 on lo: %w", err)
		}
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket for ioctl: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("get lo flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring lo up: %w", err)
	}
	return nil
}

// hostIPv6Loopback reports whether ::1 can be bound in this process's own
// namespace.
func hostIPv6Loopback() bool {
	c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}
