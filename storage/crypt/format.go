package crypt

import (
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/storage"
)

// Encrypted object format, version 1 (see the package doc):
//
//	header  "EARSHOT" 0x01 | key ID length (1 byte) | key ID | nonce prefix (8 random bytes)
//	frames  AES-256-GCM(plaintext[i*FrameSize : (i+1)*FrameSize]) ‖ 16-byte tag, i = 0, 1, ...
//
// Every frame but the last holds exactly FrameSize plaintext bytes; the last
// holds fewer (possibly none), so a writer needs no look-ahead and the
// plaintext size follows from the ciphertext size. Frame i's nonce is the
// prefix followed by i (32-bit big-endian); its associated data is the
// header, the object key (length-prefixed), i (64-bit) and a final flag.
// Altered, reordered, dropped, appended or truncated frames, and an object
// copied to another key, all fail authentication.
const (
	// FrameSize is the plaintext size of a full frame.
	FrameSize = 64 << 10
	// objectMagic starts every encrypted object; its last byte is the
	// format version. (Not "OggS": a stored object is never taken for audio.)
	objectMagic = "EARSHOT\x01"
	tagSize     = 16
	prefixSize  = 8
	maxKeyIDLen = 255
	// maxFrames is what a 32-bit frame counter in the nonce allows
	// (256 TiB of plaintext).
	maxFrames = 1 << 32
)

var (
	// ErrNotEncrypted is returned when an object under a protected prefix
	// is not in the encrypted format.
	ErrNotEncrypted = errors.New("crypt: object is not encrypted")
	// errTruncated marks an object that ends before its final frame.
	errTruncated = errors.New("object ends before its final frame (truncated)")
)

// objHeader is the decoded header of an encrypted object.
type objHeader struct {
	keyID  string
	prefix [prefixSize]byte
}

func headerLen(keyIDLen int) int { return len(objectMagic) + 1 + keyIDLen + prefixSize }

func (h objHeader) marshal() []byte {
	b := make([]byte, 0, headerLen(len(h.keyID)))
	b = append(b, objectMagic...)
	b = append(b, byte(len(h.keyID)))
	b = append(b, h.keyID...)
	return append(b, h.prefix[:]...)
}

// readHeader reads and parses a header, returning it with its raw bytes
// (part of every frame's associated data).
func readHeader(r io.Reader) (objHeader, []byte, error) {
	var h objHeader
	head := make([]byte, len(objectMagic)+1, headerLen(maxKeyIDLen))
	if _, err := io.ReadFull(r, head); err != nil {
		return h, nil, headerErr(err)
	}
	if string(head[:len(objectMagic)-1]) != objectMagic[:len(objectMagic)-1] {
		return h, nil, fmt.Errorf("%w: no encrypted-object header", ErrNotEncrypted)
	}
	if v := head[len(objectMagic)-1]; v != objectMagic[len(objectMagic)-1] {
		return h, nil, fmt.Errorf("crypt: encrypted-object format version %d is not supported (this build reads 1)", v)
	}
	n := int(head[len(objectMagic)])
	if n == 0 {
		return h, nil, fmt.Errorf("%w: empty key ID in header", ErrDecrypt)
	}
	head = head[:headerLen(n)]
	if _, err := io.ReadFull(r, head[len(objectMagic)+1:]); err != nil {
		return h, nil, headerErr(err)
	}
	h.keyID = string(head[len(objectMagic)+1 : len(objectMagic)+1+n])
	copy(h.prefix[:], head[len(head)-prefixSize:])
	return h, head, nil
}

func headerErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %w", ErrDecrypt, errTruncated)
	}
	return err
}

// CipherSize returns the stored size of an encrypted object of plain bytes
// whose key ID has keyIDLen bytes; -1 for -1 (unknown).
func CipherSize(plain int64, keyIDLen int) int64 {
	if plain < 0 {
		return -1
	}
	return int64(headerLen(keyIDLen)) + plain + tagSize*(plain/FrameSize+1)
}

// PlainSize inverts CipherSize; ok is false for a size no encrypted object
// can have.
func PlainSize(stored int64, keyIDLen int) (plain int64, ok bool) {
	d := stored - int64(headerLen(keyIDLen))
	if d < tagSize {
		return 0, false
	}
	full := d / (FrameSize + tagSize)
	last := d - full*(FrameSize+tagSize)
	if last < tagSize {
		return 0, false
	}
	return full*FrameSize + last - tagSize, true
}

// keyIDLen is the length of every data key ID (event.KeyID); listings use
// it to report plaintext sizes without reading headers.
var keyIDLen = len(event.KeyID("", ""))

// frameCipher holds what sealing and opening frames of one object share.
type frameCipher struct {
	aead   cipher.AEAD
	prefix [prefixSize]byte
	aad    []byte // header ‖ len(key) ‖ key ‖ (index ‖ final, rewritten per frame)
	base   int
	nonce  [12]byte
}

func newFrameCipher(dek, header []byte, prefix [prefixSize]byte, objKey string) (*frameCipher, error) {
	aead, err := newGCM(dek)
	if err != nil {
		return nil, err
	}
	aad := make([]byte, 0, len(header)+binary.MaxVarintLen64+len(objKey)+9)
	aad = append(aad, header...)
	aad = binary.AppendUvarint(aad, uint64(len(objKey)))
	aad = append(aad, objKey...)
	fc := &frameCipher{aead: aead, prefix: prefix, aad: aad, base: len(aad)}
	copy(fc.nonce[:], prefix[:])
	return fc, nil
}

// frame sets the nonce and associated data of frame i.
func (fc *frameCipher) frame(i uint64, final bool) (nonce, aad []byte) {
	binary.BigEndian.PutUint32(fc.nonce[prefixSize:], uint32(i))
	fc.aad = binary.BigEndian.AppendUint64(fc.aad[:fc.base], i)
	f := byte(0)
	if final {
		f = 1
	}
	fc.aad = append(fc.aad, f)
	return fc.nonce[:], fc.aad
}

// frames hands out, frame by frame, what its next func produces: the
// Read loop that encrypter and decrypter share.
type frames struct {
	out  []byte
	done bool
	err  error // sticky failure
	end  error // what Read returns once done (io.EOF or a final check)
	next func()
}

func (f *frames) Read(p []byte) (int, error) {
	for len(f.out) == 0 {
		if f.err != nil {
			return 0, f.err
		}
		if f.done {
			return 0, f.end
		}
		f.next()
	}
	n := copy(p, f.out)
	f.out = f.out[n:]
	return n, nil
}

// encrypter turns a plaintext stream into an encrypted object stream.
type encrypter struct {
	frames
	src   io.Reader
	fc    *frameCipher
	in    []byte
	buf   []byte
	index uint64
}

// newEncrypter encrypts src for the object key objKey under dek (whose ID
// goes into the header).
func newEncrypter(dek []byte, keyID, objKey string, src io.Reader) (*encrypter, error) {
	if len(keyID) == 0 || len(keyID) > maxKeyIDLen {
		return nil, fmt.Errorf("crypt: key ID of %d bytes", len(keyID))
	}
	var prefix [prefixSize]byte
	if _, err := rand.Read(prefix[:]); err != nil {
		return nil, fmt.Errorf("crypt: nonce prefix: %w", err)
	}
	return newEncrypterPrefix(dek, keyID, objKey, src, prefix)
}

// newEncrypterPrefix is newEncrypter with a given nonce prefix, which must
// never repeat under one key (tests use it for reproducible objects).
func newEncrypterPrefix(dek []byte, keyID, objKey string, src io.Reader, prefix [prefixSize]byte) (*encrypter, error) {
	h := objHeader{keyID: keyID, prefix: prefix}
	hdr := h.marshal()
	fc, err := newFrameCipher(dek, hdr, h.prefix, objKey)
	if err != nil {
		return nil, err
	}
	e := &encrypter{src: src, fc: fc, in: make([]byte, FrameSize), buf: make([]byte, 0, FrameSize+tagSize)}
	e.frames = frames{out: hdr, end: io.EOF, next: e.seal}
	return e, nil
}

// seal encrypts the next frame.
func (e *encrypter) seal() {
	n, err := io.ReadFull(e.src, e.in)
	final := false
	switch {
	case err == nil:
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		final = true
	default:
		e.err = err
		return
	}
	if e.index >= maxFrames {
		e.err = fmt.Errorf("crypt: object exceeds %d frames", uint64(maxFrames))
		return
	}
	nonce, aad := e.fc.frame(e.index, final)
	e.out = e.fc.aead.Seal(e.buf[:0], nonce, e.in[:n], aad)
	e.index++
	e.done = final
}

// decrypter verifies and decrypts an encrypted object stream (after its
// header), frame by frame: no plaintext is released before its frame
// authenticates.
type decrypter struct {
	frames
	src   io.ReadCloser
	fc    *frameCipher
	buf   []byte
	index uint64

	wantSize int64     // -1: unknown
	wantSHA  string    // "" unknown
	h        hash.Hash // nil when wantSHA is ""
	n        int64
}

func newDecrypter(src io.ReadCloser, dek, header []byte, prefix [prefixSize]byte, objKey string, wantSize int64, wantSHA string) (*decrypter, error) {
	fc, err := newFrameCipher(dek, header, prefix, objKey)
	if err != nil {
		return nil, err
	}
	d := &decrypter{src: src, fc: fc, buf: make([]byte, FrameSize+tagSize), wantSize: wantSize, wantSHA: wantSHA}
	if wantSHA != "" {
		d.h = sha256.New()
	}
	d.next = d.open
	return d, nil
}

// open reads, authenticates and decrypts the next frame.
func (d *decrypter) open() {
	n, err := io.ReadFull(d.src, d.buf)
	final := false
	switch {
	case err == nil:
	case errors.Is(err, io.ErrUnexpectedEOF):
		final = true
	case errors.Is(err, io.EOF):
		d.err = fmt.Errorf("%w: %w", ErrDecrypt, errTruncated)
		return
	default:
		d.err = err
		return
	}
	if d.index >= maxFrames {
		d.err = fmt.Errorf("%w: more than %d frames", ErrDecrypt, uint64(maxFrames))
		return
	}
	nonce, aad := d.fc.frame(d.index, final)
	pt, err := d.fc.aead.Open(d.buf[:0], nonce, d.buf[:n], aad)
	if err != nil {
		d.err = fmt.Errorf("%w: frame %d does not authenticate", ErrDecrypt, d.index)
		return
	}
	d.index++
	if d.h != nil {
		d.h.Write(pt)
	}
	d.n += int64(len(pt))
	d.out = pt
	if final {
		d.done = true
		d.end = d.check()
	}
}

// check compares the plaintext with the size and SHA-256 recorded in the
// object's metadata when it was stored.
func (d *decrypter) check() error {
	if d.wantSize >= 0 && d.n != d.wantSize {
		return fmt.Errorf("%w: decrypted %d bytes, recorded %d", storage.ErrChecksum, d.n, d.wantSize)
	}
	if d.wantSHA != "" {
		if got := hex.EncodeToString(d.h.Sum(nil)); got != d.wantSHA {
			return fmt.Errorf("%w: plaintext has SHA-256 %s, recorded %s", storage.ErrChecksum, got, d.wantSHA)
		}
	}
	return io.EOF
}

func (d *decrypter) Close() error { return d.src.Close() }
