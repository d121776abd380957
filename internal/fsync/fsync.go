// Package fsync holds the few file operations that durable stores need:
// create-and-fsync, fsync of a folder, and MkdirAll that fsyncs every new
// folder's parent. The local object store and the spool both rely on them
// to survive a crash with either the whole entry or none of it.
package fsync

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// WriteFile creates path exclusively (mode 0640), lets write fill it, and
// fsyncs it.
func WriteFile(path string, write func(io.Writer) error) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return err
	}
	// Hide *os.File's ReaderFrom so a copy uses the caller's buffer.
	err = write(struct{ io.Writer }{f})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Dir fsyncs a folder, making the entries created or renamed in it durable.
func Dir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// MkdirAll is os.MkdirAll (mode 0750) that also fsyncs the parent of every
// folder it creates, so a new path survives a crash.
func MkdirAll(dir string) error {
	if fi, err := os.Stat(dir); err == nil {
		if fi.IsDir() {
			return nil
		}
		return &fs.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := MkdirAll(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o750); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil
		}
		return err
	}
	return Dir(parent)
}
