package testbed

import (
	"fmt"
	"testing"

	"golang.org/x/sys/unix"
)

// SmallTmpfs mounts a tmpfs of the given size (e.g. "1m") on a fresh
// temporary folder and returns it, unmounted when the test ends: a disk
// that fills up on demand. It needs root and a kernel that lets this
// process mount; without either it ends the test through Unavailable.
func SmallTmpfs(tb testing.TB, size string) string {
	tb.Helper()
	RequireRoot(tb, "mount a small tmpfs")
	dir := tb.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		Unavailable(tb, fmt.Sprintf("cannot mount a %s tmpfs on %s: %v (a container needs CAP_SYS_ADMIN)", size, dir, err))
	}
	tb.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}
