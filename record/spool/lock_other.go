//go:build !unix

package spool

import "os"

// lockDir opens the lock file without locking it: platforms without flock
// rely on the operator giving each instance its own spool folder.
func lockDir(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
}
