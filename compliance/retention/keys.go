package retention

import (
	"context"
	"iter"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/storage/crypt"
)

// Keyring is the part of the durable keyring that erasure and the sweeper
// use: find the data keys of a scope and shred them.
type Keyring interface {
	// KeysOf yields the live data keys in a scope (room, session and/or
	// speaker).
	KeysOf(ctx context.Context, s Scope) iter.Seq2[event.KeyRef, error]
	// Shred destroys one data key for good; shredding a destroyed key is
	// not an error.
	Shred(ctx context.Context, ref event.KeyRef) error
}

// CryptKeys adapts the durable keyring to Keyring.
func CryptKeys(k *crypt.Keyring) Keyring { return cryptKeys{k} }

type cryptKeys struct{ k *crypt.Keyring }

func (c cryptKeys) KeysOf(ctx context.Context, s Scope) iter.Seq2[event.KeyRef, error] {
	return c.k.List(ctx, crypt.KeyFilter{Room: s.Room, Session: s.Session, Speaker: s.Speaker})
}

func (c cryptKeys) Shred(ctx context.Context, ref event.KeyRef) error { return c.k.Shred(ctx, ref) }
