package crypt

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"

	"github.com/earshot/earshot/event"
)

// SealTo returns a writer that encrypts what is written to it into w, in
// the encrypted object format, under ref's data key (created on first
// use), bound to name: the bytes open only under that name. Close writes
// the final frame; until then nothing written can be read back. It is what
// the spool keeps on an ingest host's disk while a segment waits for
// upload, so that speech never rests there in the clear and erasing the
// speaker makes it unreadable there too.
func (k *Keyring) SealTo(ctx context.Context, ref event.KeyRef, name string, w io.Writer) (io.WriteCloser, error) {
	dek, err := k.dataKey(ctx, ref, true)
	if err != nil {
		return nil, keyErr(ref.ID, err)
	}
	return newSealWriter(dek, ref.ID, name, w)
}

// OpenFrom returns the plaintext of r, written by SealTo under ref for
// name. A destroyed key fails with ErrKeyDestroyed at once; altered,
// truncated or moved bytes fail with ErrDecrypt when read.
func (k *Keyring) OpenFrom(ctx context.Context, ref event.KeyRef, name string, r io.Reader) (io.Reader, error) {
	dek, err := k.dataKey(ctx, ref, false)
	if err != nil {
		return nil, keyErr(ref.ID, err)
	}
	return openSealed(dek, ref.ID, name, r)
}

// SealTo is Keyring.SealTo with this set's keys.
func (m *Memory) SealTo(_ context.Context, ref event.KeyRef, name string, w io.Writer) (io.WriteCloser, error) {
	k, err := m.key(ref, true)
	if err != nil {
		return nil, err
	}
	return newSealWriter(k, ref.ID, name, w)
}

// OpenFrom is Keyring.OpenFrom with this set's keys.
func (m *Memory) OpenFrom(_ context.Context, ref event.KeyRef, name string, r io.Reader) (io.Reader, error) {
	k, err := m.key(ref, false)
	if err != nil {
		return nil, err
	}
	return openSealed(k, ref.ID, name, r)
}

// sealWriter encrypts a stream into w frame by frame. A frame is sealed
// once more than FrameSize bytes wait, so the final frame (sealed by
// Close) holds fewer than FrameSize, as the format wants.
type sealWriter struct {
	w     io.Writer
	fc    *frameCipher
	buf   []byte // plaintext not sealed yet
	out   []byte
	index uint64
	err   error // sticky
	done  bool
}

func newSealWriter(dek []byte, keyID, name string, w io.Writer) (*sealWriter, error) {
	if len(keyID) == 0 || len(keyID) > maxKeyIDLen {
		return nil, fmt.Errorf("crypt: key ID of %d bytes", len(keyID))
	}
	h := objHeader{keyID: keyID}
	if _, err := rand.Read(h.prefix[:]); err != nil {
		return nil, fmt.Errorf("crypt: nonce prefix: %w", err)
	}
	hdr := h.marshal()
	fc, err := newFrameCipher(dek, hdr, h.prefix, name)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(hdr); err != nil {
		return nil, err
	}
	return &sealWriter{w: w, fc: fc, buf: make([]byte, 0, 2*FrameSize), out: make([]byte, 0, FrameSize+tagSize)}, nil
}

func (s *sealWriter) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.done {
		return 0, errors.New("crypt: write after close")
	}
	s.buf = append(s.buf, p...)
	for len(s.buf) > FrameSize {
		if err := s.seal(s.buf[:FrameSize], false); err != nil {
			return 0, err
		}
		s.buf = s.buf[:copy(s.buf, s.buf[FrameSize:])]
	}
	return len(p), nil
}

// Close seals the final frame (a full last frame is followed by an empty
// final one). It does not close the underlying writer.
func (s *sealWriter) Close() error {
	if s.err != nil || s.done {
		return s.err
	}
	if len(s.buf) == FrameSize {
		if err := s.seal(s.buf, false); err != nil {
			return err
		}
		s.buf = s.buf[:0]
	}
	s.done = true
	return s.seal(s.buf, true)
}

func (s *sealWriter) seal(pt []byte, final bool) error {
	if s.index >= maxFrames {
		s.err = fmt.Errorf("crypt: stream exceeds %d frames", uint64(maxFrames))
		return s.err
	}
	nonce, aad := s.fc.frame(s.index, final)
	s.out = s.fc.aead.Seal(s.out[:0], nonce, pt, aad)
	s.index++
	if _, err := s.w.Write(s.out); err != nil {
		s.err = err
		return err
	}
	return nil
}

// openSealed reads the header of a SealTo stream and returns its
// plaintext reader.
func openSealed(dek []byte, keyID, name string, r io.Reader) (io.Reader, error) {
	h, hdr, err := readHeader(r)
	if err != nil {
		return nil, err
	}
	if h.keyID != keyID {
		return nil, fmt.Errorf("%w: sealed under key %s, not %s", ErrDecrypt, h.keyID, keyID)
	}
	return newDecrypter(io.NopCloser(r), dek, hdr, h.prefix, name, -1, "")
}
