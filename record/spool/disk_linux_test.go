package spool

import (
	"bytes"
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/earshot/earshot/internal/testbed"
)

// A full disk fails the put with an error naming the spool folder and
// leaves no partial entry; once there is room again, puts work.
func TestDiskFull(t *testing.T) {
	dir := testbed.SmallTmpfs(t, "1m")
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
