package crypt

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/earshot/earshot/internal/fsync"
)

// KEK is a key-encryption key: it wraps and unwraps data keys and never
// hands out its own key material. LocalKEK keeps it in a file; a KMS or
// Vault transit key implements the same three methods.
type KEK interface {
	// Wrap encrypts a data key; aad is bound to the result and must be
	// given again to Unwrap.
	Wrap(ctx context.Context, dek, aad []byte) ([]byte, error)
	// Unwrap decrypts what Wrap returned; a wrong KEK, wrong aad or altered
	// bytes fail with ErrDecrypt.
	Unwrap(ctx context.Context, wrapped, aad []byte) ([]byte, error)
	// ID names the KEK without revealing it (recorded with every wrapped
	// key, so a mismatch says which KEK is missing).
	ID() string
}

// KEKSize is the size of a local KEK: an AES-256 key.
const KEKSize = 32

// LocalKEK is a KEK read from a file on the local disk. It wraps data keys
// with AES-256-GCM (random nonce, aad bound).
type LocalKEK struct {
	key []byte
	id  string
}

var _ KEK = (*LocalKEK)(nil)

// LoadLocalKEK reads the KEK file at path: 64 hex digits (a trailing newline
// is fine) or 32 raw bytes. When the file does not exist and create is true,
// it writes a new random key there (hex, mode 0600, its folder 0700), which
// suits embedded and single-machine runs; production provisions the file
// and sets create false, so a missing file fails instead of silently
// starting a new key under which nothing old can be read. A file other
// users may read or anyone but the owner may write is refused.
func LoadLocalKEK(path string, create bool) (*LocalKEK, error) {
	if path == "" {
		return nil, errors.New("crypt: kek file: empty path; set crypto.kek_file")
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && create {
		if b, err = createKEKFile(path); errors.Is(err, fs.ErrExist) {
			b, err = os.ReadFile(path) // another process created it first
		}
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("crypt: kek file %s does not exist: provide the deployment's key file there (32 random bytes as 64 hex digits, mode 0600), or set crypto.create_kek for a new key", path)
		}
		return nil, fmt.Errorf("crypt: read kek file: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("crypt: kek file: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o026 != 0 {
		return nil, fmt.Errorf("crypt: kek file %s has mode %04o: others may read it or others may write it; chmod 600 it (Kubernetes: defaultMode 0400)", path, perm)
	}
	key, err := parseKEK(b)
	if err != nil {
		return nil, fmt.Errorf("crypt: kek file %s: %w", path, err)
	}
	return NewLocalKEK(key)
}

// NewLocalKEK returns a KEK over a 32-byte key (copied).
func NewLocalKEK(key []byte) (*LocalKEK, error) {
	if len(key) != KEKSize {
		return nil, fmt.Errorf("crypt: kek has %d bytes, want %d", len(key), KEKSize)
	}
	// The ID is a one-way digest under a fixed label: it names the key in
	// wrapped-key records and logs without helping anyone guess it.
	sum := sha256.Sum256(append([]byte("earshot kek id v1\x00"), key...))
	return &LocalKEK{key: bytes.Clone(key), id: "local:" + hex.EncodeToString(sum[:8])}, nil
}

func parseKEK(b []byte) ([]byte, error) {
	if t := bytes.TrimSpace(b); len(t) == 2*KEKSize {
		if k, err := hex.DecodeString(string(t)); err == nil {
			return k, nil
		}
	}
	if len(b) == KEKSize {
		return bytes.Clone(b), nil
	}
	return nil, fmt.Errorf("holds %d bytes: want 64 hex digits or 32 raw bytes", len(b))
}

// createKEKFile writes a new random key to path without ever leaving a
// partial file there: it is written and synced under a temporary name, then
// linked into place (link fails if path appeared meanwhile).
func createKEKFile(path string) ([]byte, error) {
	key := make([]byte, KEKSize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("new kek: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	text := []byte(hex.EncodeToString(key) + "\n")
	tmp, err := os.CreateTemp(dir, ".kek-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.Write(text)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Link(tmp.Name(), path)
	}
	if err == nil {
		err = fsync.Dir(dir)
	}
	if err != nil {
		return nil, err
	}
	return text, nil
}

// ID names the key: "local:" and 16 hex digits of a digest of it.
func (k *LocalKEK) ID() string { return k.id }

// Wrap encrypts dek under the KEK (nonce ‖ AES-256-GCM).
func (k *LocalKEK) Wrap(_ context.Context, dek, aad []byte) ([]byte, error) {
	return seal(k.key, dek, aad)
}

// Unwrap decrypts a wrapped data key; see KEK.
func (k *LocalKEK) Unwrap(_ context.Context, wrapped, aad []byte) ([]byte, error) {
	return open(k.key, wrapped, aad)
}
