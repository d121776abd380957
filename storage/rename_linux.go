package storage

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// renameNoReplace moves oldpath to newpath unless newpath exists (then an
// error matching fs.ErrExist). The kernel checks and renames in one step, so
// of several racing writers exactly one wins.
func renameNoReplace(oldpath, newpath string) error {
	err := unix.Renameat2(unix.AT_FDCWD, oldpath, unix.AT_FDCWD, newpath, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		// File system without renameat2 flags: rename(2) of a directory
		// refuses to replace a non-empty one, and object directories are
		// never empty, so it gives the same guarantee.
		return os.Rename(oldpath, newpath)
	}
	if err != nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
	}
	return nil
}

// renameExchange swaps oldpath and newpath atomically, so a reader sees the
// old object or the new one and never a missing key. It returns
// errNoExchange when the file system cannot.
func renameExchange(oldpath, newpath string) error {
	err := unix.Renameat2(unix.AT_FDCWD, oldpath, unix.AT_FDCWD, newpath, unix.RENAME_EXCHANGE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		return errNoExchange
	}
	if err != nil {
		return &os.LinkError{Op: "rename-exchange", Old: oldpath, New: newpath, Err: err}
	}
	return nil
}
