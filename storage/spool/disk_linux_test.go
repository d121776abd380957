package spool

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// A full disk fails the put with an error naming the spool folder and
// leaves no partial entry; once there is room again, puts work.
func TestDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	s := openSpool(t, dir)
	big := bytes.Repeat([]byte("x"), 2<<20)
	_, err := s.Put(testSeg("alice", 0), bytes.NewReader(big))
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "disk full") || !strings.Contains(err.Error(), dir) {
		t.Fatalf("Put on a full disk: %v; want ENOSPC, saying disk full and naming the spool %s", err, dir)
	}
	t.Logf("error on a full disk: %v", err)
	checkNothingSpooled(t, s)
	put(t, s, testSeg("alice", 1))
}
