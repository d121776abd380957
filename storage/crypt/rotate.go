package crypt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/earshot/earshot/storage"
)

// RewrapReport says what Rewrap did.
type RewrapReport struct {
	Keys      int // wrapped keys found
	Rewrapped int // re-wrapped under the current KEK
	Versions  int // older versions of key records deleted
	Shredded  int // keys shredded while Rewrap ran, left shredded
}

// Rewrap finishes a KEK rotation: every data key wrapped by a previous
// KEK is unwrapped with it and wrapped again under the current one, older
// versions of the key records (still wrapped by the old KEK) are deleted
// where the store keeps versions, and the current KEK becomes the
// deployment's (CheckKEK). Afterwards the old KEK can be retired: nothing
// needs it. The data keys themselves do not change, so no audio, event or
// object is re-encrypted and caches stay valid.
//
// Run it once every instance runs with the new KEK (keys created meanwhile
// by an instance still on the old one would be missed; running Rewrap
// again picks them up: it is idempotent). A key shredded while Rewrap
// runs stays shredded: the tombstone is checked after each write, as key
// creation does.
func (k *Keyring) Rewrap(ctx context.Context) (RewrapReport, error) {
	var rep RewrapReport
	for info, err := range k.store.List(ctx, KeysPrefix) {
		if err != nil {
			return rep, fmt.Errorf("crypt: rewrap: list keys: %w", err)
		}
		ref, ok := parseKeyPath(info.Key)
		if !ok {
			continue
		}
		rep.Keys++
		rec, err := k.readRecord(ctx, ref)
		if errors.Is(err, storage.ErrNotFound) {
			continue // shredded since the listing
		}
		if err != nil {
			return rep, fmt.Errorf("crypt: rewrap: %w", err)
		}
		if rec.KEK != k.kek.ID() {
			dek, err := k.unwrap(ctx, ref, &rec)
			if err != nil {
				return rep, fmt.Errorf("crypt: rewrap: %w", err)
			}
			wrapped, err := k.kek.Wrap(ctx, dek, wrapAAD(ref))
			clear(dek)
			if err != nil {
				return rep, fmt.Errorf("crypt: rewrap %s: wrap: %w", ref.ID, err)
			}
			rec.KEK, rec.Wrapped = k.kek.ID(), wrapped
			b, err := json.Marshal(rec)
			if err != nil {
				return rep, err
			}
			if _, err := k.store.Put(ctx, keyPath(ref), bytes.NewReader(b), int64(len(b)), storage.PutOptions{ContentType: "application/json"}); err != nil {
				return rep, fmt.Errorf("crypt: rewrap %s: store: %w", ref.ID, err)
			}
			if err := k.checkNotDestroyed(ctx, ref); errors.Is(err, ErrKeyDestroyed) {
				// Shredded between our read and our write: undo the write.
				if err := k.store.DeleteAll(context.WithoutCancel(ctx), keyPath(ref)); err != nil {
					return rep, fmt.Errorf("crypt: rewrap %s: re-delete a key shredded meanwhile: %w", ref.ID, err)
				}
				rep.Shredded++
				continue
			} else if err != nil {
				return rep, fmt.Errorf("crypt: rewrap: %w", err)
			}
			rep.Rewrapped++
		}
		n, err := k.dropOldVersions(ctx, keyPath(ref))
		rep.Versions += n
		if err != nil {
			return rep, fmt.Errorf("crypt: rewrap %s: %w", ref.ID, err)
		}
	}
	b, err := json.Marshal(kekMarker{KEK: k.kek.ID(), Created: k.now().UTC()})
	if err != nil {
		return rep, err
	}
	if _, err := k.store.Put(ctx, kekMarkerPath, bytes.NewReader(b), int64(len(b)), storage.PutOptions{ContentType: "application/json"}); err != nil {
		return rep, fmt.Errorf("crypt: rewrap: record the KEK: %w", err)
	}
	k.log.Info("data keys re-wrapped", "kek", k.kek.ID(), "keys", rep.Keys, "rewrapped", rep.Rewrapped, "old_versions_deleted", rep.Versions)
	return rep, nil
}

// dropOldVersions deletes every version of key but the latest, when the
// store keeps versions: they hold the key wrapped by a retired KEK.
func (k *Keyring) dropOldVersions(ctx context.Context, key string) (int, error) {
	vl, ok1 := k.store.(storage.VersionLister)
	vd, ok2 := k.store.(storage.VersionDeleter)
	if !ok1 || !ok2 {
		return 0, nil
	}
	n := 0
	for v, err := range vl.ListVersions(ctx, key) {
		if err != nil {
			return n, fmt.Errorf("list versions: %w", err)
		}
		if v.Key != key || v.IsLatest {
			continue
		}
		if err := vd.DeleteVersion(ctx, key, v.VersionID); err != nil {
			return n, fmt.Errorf("delete old version: %w", err)
		}
		n++
	}
	return n, nil
}
