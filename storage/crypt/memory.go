package crypt

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"

	"github.com/earshot/earshot/event"
)

// ErrKeyDestroyed is event.ErrKeyDestroyed: a data key was shredded (or
// never existed where it should). Consumers outside crypt test for the
// event package's name.
var ErrKeyDestroyed = event.ErrKeyDestroyed

var _ event.Keys = (*Memory)(nil)

// Memory keeps data keys in process memory only. It is for tests and for
// tools that need throw-away keys; deployments use a Keyring.
type Memory struct {
	mu   sync.Mutex
	keys map[string][]byte
	dead map[string]bool
}

// NewMemory returns an empty in-memory key set.
func NewMemory() *Memory {
	return &Memory{keys: map[string][]byte{}, dead: map[string]bool{}}
}

// key returns ref's key, creating it when create is set and it was never
// shredded.
func (m *Memory) key(ref event.KeyRef, create bool) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k, ok := m.keys[ref.ID]
	if !ok && create && !m.dead[ref.ID] {
		k = make([]byte, 32)
		if _, err := rand.Read(k); err != nil {
			return nil, fmt.Errorf("crypt: new data key: %w", err)
		}
		m.keys[ref.ID] = k
	}
	if k == nil {
		return nil, fmt.Errorf("crypt: data key %s: %w", ref.ID, ErrKeyDestroyed)
	}
	return k, nil
}

// Seal encrypts plaintext under ref's key, creating the key on first use.
func (m *Memory) Seal(_ context.Context, ref event.KeyRef, plaintext, aad []byte) ([]byte, error) {
	k, err := m.key(ref, true)
	if err != nil {
		return nil, err
	}
	return seal(k, plaintext, aad)
}

// Open decrypts ciphertext under ref's key.
func (m *Memory) Open(_ context.Context, ref event.KeyRef, ciphertext, aad []byte) ([]byte, error) {
	k, err := m.key(ref, false)
	if err != nil {
		return nil, err
	}
	return open(k, ciphertext, aad)
}

// Shred destroys one key for good.
func (m *Memory) Shred(keyID string) {
	m.mu.Lock()
	delete(m.keys, keyID)
	m.dead[keyID] = true
	m.mu.Unlock()
}

// Destroyed reports whether ref's key was shredded.
func (m *Memory) Destroyed(_ context.Context, ref event.KeyRef) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.dead[ref.ID], nil
}

// ErrDecrypt is returned when a ciphertext does not authenticate: wrong
// key, wrong associated data, or altered bytes.
var ErrDecrypt = errors.New("crypt: decryption failed (wrong key or altered data)")

// seal returns nonce ‖ AES-256-GCM(plaintext).
func seal(key, plaintext, aad []byte) ([]byte, error) {
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	out := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	if _, err := rand.Read(out); err != nil {
		return nil, fmt.Errorf("crypt: nonce: %w", err)
	}
	return aead.Seal(out, out, plaintext, aad), nil
}

func open(key, ciphertext, aad []byte) ([]byte, error) {
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	if len(ciphertext) < aead.NonceSize()+aead.Overhead() {
		return nil, ErrDecrypt
	}
	pt, err := aead.Open(nil, ciphertext[:aead.NonceSize()], ciphertext[aead.NonceSize():], aad)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("crypt: %w", err)
	}
	return cipher.NewGCM(b)
}
