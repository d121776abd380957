//go:build !linux

package storage

import "os"

// renameNoReplace moves oldpath to newpath unless newpath exists. Without
// renameat2, rename(2) of a directory still refuses to replace a non-empty
// one, and object directories are never empty.
func renameNoReplace(oldpath, newpath string) error { return os.Rename(oldpath, newpath) }

// renameExchange is not available here; callers fall back to two renames.
func renameExchange(oldpath, newpath string) error { return errNoExchange }
