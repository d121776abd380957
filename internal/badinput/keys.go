package badinput

import (
	"context"
	"fmt"
	"sync"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/storage"
)

// UnreachableKeys wraps Keys and fails the first Fails calls of Open as a
// key store behind an object-store outage does (storage.ErrUnavailable),
// for tests of stages that must wait such an outage out rather than
// dead-letter what they could not open.
type UnreachableKeys struct {
	event.Keys
	mu    sync.Mutex
	Fails int
}

// Open fails while Fails calls are left, then opens with Keys.
func (k *UnreachableKeys) Open(ctx context.Context, ref event.KeyRef, ciphertext, aad []byte) ([]byte, error) {
	k.mu.Lock()
	fail := k.Fails > 0
	k.Fails--
	k.mu.Unlock()
	if fail {
		return nil, fmt.Errorf("crypt: open under %s: %w: s3 endpoint 127.0.0.1:1: connection refused", ref.ID, storage.ErrUnavailable)
	}
	return k.Keys.Open(ctx, ref, ciphertext, aad)
}
