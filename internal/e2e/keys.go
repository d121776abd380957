package e2e

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"

	"github.com/earshot/earshot/event"
)

// DerivedKeys is an event.Keys whose data keys are derived from a secret
// (HMAC-SHA256 of the key ID), so that processes started by one test (a
// worker killed with SIGKILL and its successor) share keys without a
// keyring. Tests only: a derived key cannot be destroyed.
type DerivedKeys struct{ Secret []byte }

var _ event.Keys = DerivedKeys{}

func (k DerivedKeys) aead(ref event.KeyRef) (cipher.AEAD, error) {
	m := hmac.New(sha256.New, k.Secret)
	m.Write([]byte(ref.ID))
	b, err := aes.NewCipher(m.Sum(nil))
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// Seal implements event.Keys: nonce ‖ AES-256-GCM(plaintext).
func (k DerivedKeys) Seal(_ context.Context, ref event.KeyRef, plaintext, aad []byte) ([]byte, error) {
	a, err := k.aead(ref)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, a.NonceSize())
	_, _ = rand.Read(nonce)
	return a.Seal(nonce, nonce, plaintext, aad), nil
}

// Open implements event.Keys.
func (k DerivedKeys) Open(_ context.Context, ref event.KeyRef, ciphertext, aad []byte) ([]byte, error) {
	a, err := k.aead(ref)
	if err != nil {
		return nil, err
	}
	if len(ciphertext) < a.NonceSize() {
		return nil, errors.New("e2e: ciphertext too short")
	}
	return a.Open(nil, ciphertext[:a.NonceSize()], ciphertext[a.NonceSize():], aad)
}
