//go:build unix

package spool

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// lockDir takes an exclusive flock on path, so that two processes never
// drain (and double-announce) one spool. The kernel drops the lock when the
// process dies, kill -9 included, so a restart is never blocked by a stale
// lock file.
func lockDir(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, errors.New("the spool is in use by another process (or another Spool in this one): give each instance its own spool folder")
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}
