package crypt

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func encryptBytes(t testing.TB, dek []byte, objKey string, plain []byte) []byte {
	t.Helper()
	enc, err := newEncrypter(dek, event0KeyID, objKey, bytes.NewReader(plain))
	return readEncrypted(t, enc, err)
}

// encryptFixed encrypts with a fixed nonce prefix, so every fuzz worker
// derives the same seeds.
func encryptFixed(t testing.TB, dek []byte, objKey string, plain []byte, prefix byte) []byte {
	t.Helper()
	enc, err := newEncrypterPrefix(dek, event0KeyID, objKey, bytes.NewReader(plain), [prefixSize]byte{prefix})
	return readEncrypted(t, enc, err)
}

func readEncrypted(t testing.TB, enc *encrypter, err error) []byte {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(enc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decryptBytes decodes a whole object, as Store.Get does after its
// metadata checks.
func decryptBytes(dek []byte, objKey string, raw []byte, wantSize int64) ([]byte, error) {
	r := io.NopCloser(bytes.NewReader(raw))
	h, header, err := readHeader(r)
	if err != nil {
		return nil, err
	}
	d, err := newDecrypter(r, dek, header, h.prefix, objKey, wantSize, "")
	if err != nil {
		return nil, err
	}
	return io.ReadAll(d)
}

var event0KeyID = Ref("r", "s", "p").ID

func TestFrameSizes(t *testing.T) {
	dek := make([]byte, 32)
	for _, n := range []int{0, 1, tagSize, FrameSize - 1, FrameSize, FrameSize + 1, 2 * FrameSize, 3*FrameSize - 7} {
		plain := bytes.Repeat([]byte{'a'}, n)
		raw := encryptBytes(t, dek, "k", plain)
		if int64(len(raw)) != CipherSize(int64(n), keyIDLen) {
			t.Errorf("%d bytes: stored %d, CipherSize %d", n, len(raw), CipherSize(int64(n), keyIDLen))
		}
		if p, ok := PlainSize(int64(len(raw)), keyIDLen); !ok || p != int64(n) {
			t.Errorf("%d bytes: PlainSize(%d) = %d, %v", n, len(raw), p, ok)
		}
		got, err := decryptBytes(dek, "k", raw, int64(n))
		if err != nil || !bytes.Equal(got, plain) {
			t.Errorf("%d bytes: round trip: %v", n, err)
		}
	}
	for _, bad := range []int64{0, int64(headerLen(keyIDLen)) + tagSize - 1, int64(headerLen(keyIDLen)) + FrameSize + tagSize + 3} {
		if p, ok := PlainSize(bad, keyIDLen); ok {
			t.Errorf("PlainSize(%d) = %d, ok; no encrypted object has that size", bad, p)
		}
	}
	if CipherSize(-1, keyIDLen) != -1 {
		t.Error("CipherSize(-1) is not -1")
	}
}

func TestNoncesDifferPerObject(t *testing.T) {
	dek := make([]byte, 32)
	a := encryptBytes(t, dek, "k", []byte("same"))
	b := encryptBytes(t, dek, "k", []byte("same"))
	if bytes.Equal(a, b) {
		t.Fatal("two encryptions of one plaintext under one key are identical (nonce reuse)")
	}
}

// The decoder must never panic, and must accept only what the encoder
// produced: any other input fails (a forgery would be a GCM break).
func FuzzDecode(f *testing.F) {
	dek := bytes.Repeat([]byte{7}, 32)
	plains := [][]byte{nil, []byte("OggS hello"), bytes.Repeat([]byte("x"), FrameSize+3)}
	var seeds [][]byte
	for i, p := range plains {
		seeds = append(seeds, encryptFixed(f, dek, "audio/k", p, byte(i)))
	}
	for _, s := range seeds {
		f.Add(s)
		f.Add(s[:len(s)/2])
	}
	f.Add([]byte("OggS\x00\x02"))
	f.Add([]byte(objectMagic + "\xff"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, err := decryptBytes(dek, "audio/k", raw, -1)
		if err != nil {
			if !errors.Is(err, ErrDecrypt) && !errors.Is(err, ErrNotEncrypted) && !bytes.HasPrefix(raw, []byte(objectMagic[:7])) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		for i, s := range seeds {
			if bytes.Equal(raw, s) {
				if !bytes.Equal(got, plains[i]) {
					t.Fatalf("seed %d decoded to other bytes", i)
				}
				return
			}
		}
		t.Fatalf("decoded %d bytes from input that the encoder did not produce", len(got))
	})
}

// The header parser alone, on anything.
func FuzzReadHeader(f *testing.F) {
	f.Add([]byte(objectMagic + "\x03abcdefghijk"))
	f.Add([]byte("OggS"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		h, header, err := readHeader(bytes.NewReader(raw))
		if err != nil {
			return
		}
		if len(header) != headerLen(len(h.keyID)) || !bytes.HasPrefix(raw, header) || h.keyID == "" {
			t.Fatalf("header %q parsed from %q as key %q", header, raw, h.keyID)
		}
	})
}
