package main

import (
	"errors"
	"io"
)

// cleanup is the stack of things a builder has opened so far. A builder
// pushes each one as it opens it and defers onError: when the builder
// fails half-way, everything it opened is released, newest first, and
// nothing leaks; when it succeeds, the stack is handed to the stage, whose
// Close releases it.
type cleanup struct{ fns []func() error }

// push adds a release function.
func (c *cleanup) push(f func() error) { c.fns = append(c.fns, f) }

// closer pushes x's Close and returns x, for one-line opens.
func closer[T io.Closer](c *cleanup, x T) T {
	c.push(x.Close)
	return x
}

// release runs the stack newest first and empties it; safe to call twice.
func (c *cleanup) release() error {
	var errs []error
	for i := len(c.fns) - 1; i >= 0; i-- {
		errs = append(errs, c.fns[i]())
	}
	c.fns = nil
	return errors.Join(errs...)
}

// onError releases the stack when *err is set; builders defer it.
func (c *cleanup) onError(err *error) {
	if *err != nil {
		_ = c.release()
	}
}
