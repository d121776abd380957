package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
)

// putReader passes a Put's input through while hashing it, holds it to the
// declared size, and checks the SHA-256 the caller announced. It reports the
// outcome on the Read that reaches the end (instead of io.EOF), so whatever
// consumes it (a file copy, an HTTP upload) fails before it commits a short,
// long or corrupt object.
type putReader struct {
	ctx  context.Context
	r    io.Reader
	size int64  // -1: read to EOF
	want string // expected hex SHA-256, or ""
	h    hash.Hash
	n    int64
	err  error // sticky: io.EOF once verified, or the failure
}

func newPutReader(ctx context.Context, r io.Reader, size int64, want string) *putReader {
	return &putReader{ctx: ctx, r: r, size: size, want: want, h: sha256.New()}
}

func (p *putReader) Read(b []byte) (int, error) {
	if p.err != nil {
		return 0, p.err
	}
	if err := p.ctx.Err(); err != nil {
		p.err = err
		return 0, err
	}
	if p.size >= 0 {
		rem := p.size - p.n
		if rem == 0 {
			p.err = p.finish()
			return 0, p.err
		}
		if int64(len(b)) > rem {
			b = b[:rem]
		}
	}
	n, err := p.r.Read(b)
	p.h.Write(b[:n])
	p.n += int64(n)
	switch {
	case errors.Is(err, io.EOF):
		p.err = p.finish()
		return n, p.err
	case err != nil:
		p.err = err
		return n, err
	case p.size >= 0 && p.n == p.size:
		p.err = p.finish()
		return n, p.err
	}
	return n, nil
}

// finish runs once the input is exhausted (or size bytes were read) and
// returns io.EOF when everything matches.
func (p *putReader) finish() error {
	if p.size >= 0 {
		if p.n < p.size {
			return fmt.Errorf("%w: reader ended after %d of %d bytes", ErrChecksum, p.n, p.size)
		}
		// Probe for bytes beyond size: a reader longer than announced means
		// the caller's size is wrong, and storing a prefix would hide it.
		var one [1]byte
		for range 100 {
			k, err := p.r.Read(one[:])
			if k > 0 {
				return fmt.Errorf("%w: reader has more than %d bytes", ErrChecksum, p.size)
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return err
			}
		}
	}
	if p.want != "" {
		if got := p.sum(); got != p.want {
			return fmt.Errorf("%w: content has SHA-256 %s, PutOptions.SHA256 says %s", ErrChecksum, got, p.want)
		}
	}
	return io.EOF
}

// sum returns the hex SHA-256 of what was read so far.
func (p *putReader) sum() string { return hex.EncodeToString(p.h.Sum(nil)) }

// CheckedReader is the reader both stores pass a Put's input through, for
// stores that transform content before handing it to another store (package
// crypt): it holds the input to its declared size (-1: to EOF), hashes it,
// checks the announced SHA-256, and fails the Read that reaches the end with
// ErrChecksum (instead of io.EOF) when anything does not match.
type CheckedReader struct{ p *putReader }

// NewCheckedReader wraps r. wantSHA256 is lower-case hex or "" (see
// ValidatePut); ctx ends reading early.
func NewCheckedReader(ctx context.Context, r io.Reader, size int64, wantSHA256 string) *CheckedReader {
	return &CheckedReader{p: newPutReader(ctx, r, size, wantSHA256)}
}

// Read reads through to the input; see CheckedReader.
func (c *CheckedReader) Read(b []byte) (int, error) { return c.p.Read(b) }

// N returns how many bytes were read so far.
func (c *CheckedReader) N() int64 { return c.p.n }

// Sum returns the hex SHA-256 of what was read so far.
func (c *CheckedReader) Sum() string { return c.p.sum() }

// verifyReader checks an object's content as a Get streams it: the Read that
// reaches the end returns ErrChecksum instead of io.EOF when the size or the
// SHA-256 recorded at write time does not match.
type verifyReader struct {
	ctx  context.Context
	rc   io.ReadCloser
	key  string
	size int64
	want string    // hex SHA-256, or "" when the object has none recorded
	h    hash.Hash // nil when want is ""
	n    int64
	err  error
	// wrapErr maps errors of the underlying reader (e.g. S3 network errors).
	wrapErr func(error) error
}

func newVerifyReader(ctx context.Context, rc io.ReadCloser, key string, size int64, want string, wrapErr func(error) error) *verifyReader {
	v := &verifyReader{ctx: ctx, rc: rc, key: key, size: size, want: want, wrapErr: wrapErr}
	if want != "" {
		v.h = sha256.New()
	}
	return v
}

func (v *verifyReader) Read(b []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	if err := v.ctx.Err(); err != nil {
		v.err = opErr("get", v.key, err)
		return 0, v.err
	}
	n, err := v.rc.Read(b)
	if v.h != nil {
		v.h.Write(b[:n])
	}
	v.n += int64(n)
	if v.n > v.size {
		v.err = opErr("get", v.key, fmt.Errorf("%w: content longer than its recorded %d bytes", ErrChecksum, v.size))
		return n, v.err
	}
	switch {
	case errors.Is(err, io.EOF):
		v.err = v.finish()
		return n, v.err
	case err != nil:
		if v.wrapErr != nil {
			err = v.wrapErr(err)
		}
		v.err = opErr("get", v.key, err)
		return n, v.err
	}
	return n, nil
}

func (v *verifyReader) finish() error {
	if v.n != v.size {
		return opErr("get", v.key, fmt.Errorf("%w: content ended after %d of its recorded %d bytes", ErrChecksum, v.n, v.size))
	}
	if v.h != nil {
		if got := hex.EncodeToString(v.h.Sum(nil)); got != v.want {
			return opErr("get", v.key, fmt.Errorf("%w: content has SHA-256 %s, recorded %s", ErrChecksum, got, v.want))
		}
	}
	return io.EOF
}

func (v *verifyReader) Close() error { return v.rc.Close() }
