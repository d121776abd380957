package crypt

import (
	"errors"
	"strings"
	"testing"

	"github.com/earshot/earshot/storage"
)

// rotationStore is what the rotation check needs: a keyring store that
// can also list versions.
type rotationStore interface {
	KeyStore
	storage.VersionLister
}

// checkRotation is the KEK rotation procedure end to end on store:
// keys made under the old KEK open with the new one while the old one is
// listed as previous, Rewrap moves every key to the new KEK, deletes the
// old versions, leaves shredded keys shredded, and afterwards the new KEK
// alone opens everything and passes CheckKEK while the old one fails it.
// versioned says whether store keeps old versions (Rewrap must then
// delete the 3 it makes).
func checkRotation(t *testing.T, store rotationStore, versioned bool) {
	ctx := testCtx(t)
	oldKEK, newKEK := newKEK(t), newKEK(t)
	before := newKeyring(t, oldKEK, store, -1)
	if err := before.CheckKEK(ctx); err != nil {
		t.Fatal(err)
	}
	refs := []struct {
		room, session, speaker string
	}{{"r1_a", "ses_1", "p1_x"}, {"r1_a", "ses_1", ""}, {"r1_b", "ses_2", "p1_y"}, {"r1_b", "ses_2", "p1_gone"}}
	sealed := map[string][]byte{}
	for _, r := range refs {
		ref := Ref(r.room, r.session, r.speaker)
		ct, err := before.Seal(ctx, ref, []byte("speech of "+ref.ID), []byte("aad"))
		if err != nil {
			t.Fatal(err)
		}
		sealed[ref.ID] = ct
	}
	gone := Ref("r1_b", "ses_2", "p1_gone")
	if err := before.Shred(ctx, gone); err != nil {
		t.Fatal(err)
	}

	// Without the old KEK as previous, the new one is refused.
	if err := newKeyring(t, newKEK, store, -1).CheckKEK(ctx); err == nil || !strings.Contains(err.Error(), "previous_kek_files") {
		t.Fatalf("CheckKEK with only the new KEK before the rewrap: %v; want a refusal naming crypto.previous_kek_files", err)
	}
	during, err := NewKeyring(KeyringConfig{KEK: newKEK, Previous: []KEK{oldKEK}, Store: store, CacheTTL: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := during.CheckKEK(ctx); err != nil {
		t.Fatalf("CheckKEK while rotating: %v", err)
	}
	open := func(k *Keyring, id string) error {
		for _, r := range refs {
			if ref := Ref(r.room, r.session, r.speaker); ref.ID == id {
				pt, err := k.Open(ctx, ref, sealed[id], []byte("aad"))
				if err == nil && string(pt) != "speech of "+id {
					return errors.New("wrong plaintext")
				}
				return err
			}
		}
		t.Fatalf("no ref %s", id)
		return nil
	}
	for id := range sealed {
		if err := open(during, id); (err != nil) != (id == gone.ID) {
			t.Errorf("open %s while rotating: %v", id, err)
		}
	}
	// A key created during the rotation is wrapped by the new KEK.
	fresh := Ref("r1_c", "ses_3", "p1_z")
	if sealed[fresh.ID], err = during.Seal(ctx, fresh, []byte("speech of "+fresh.ID), []byte("aad")); err != nil {
		t.Fatal(err)
	}
	refs = append(refs, struct{ room, session, speaker string }{"r1_c", "ses_3", "p1_z"})

	rep, err := during.Rewrap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// 3 live keys of the old KEK, plus the fresh one already new.
	wantVersions := 0
	if versioned {
		wantVersions = 3
	}
	if rep.Keys != 4 || rep.Rewrapped != 3 || rep.Versions != wantVersions {
		t.Errorf("rewrap report %+v: want 4 keys, 3 re-wrapped, %d old versions deleted", rep, wantVersions)
	}
	for v, err := range store.ListVersions(ctx, KeysPrefix) {
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := parseKeyPath(v.Key); ok && (!v.IsLatest || v.DeleteMarker) {
			t.Errorf("old version of a key record left: %s %s", v.Key, v.VersionID)
		}
	}
	if again, err := during.Rewrap(ctx); err != nil || again.Rewrapped != 0 || again.Versions != 0 {
		t.Errorf("second rewrap: %+v, %v: want nothing to do", again, err)
	}

	after := newKeyring(t, newKEK, store, -1)
	if err := after.CheckKEK(ctx); err != nil {
		t.Fatalf("CheckKEK with the new KEK alone after the rewrap: %v", err)
	}
	for id := range sealed {
		if err := open(after, id); (err != nil) != (id == gone.ID) {
			t.Errorf("open %s with the new KEK alone: %v", id, err)
		}
	}
	if err := open(after, gone.ID); !errors.Is(err, ErrKeyDestroyed) {
		t.Errorf("shredded key after the rewrap: %v, want ErrKeyDestroyed", err)
	}
	if err := newKeyring(t, oldKEK, store, -1).CheckKEK(ctx); err == nil {
		t.Error("the retired KEK still passes CheckKEK")
	}
}

func TestKeyringRotateKEKLocal(t *testing.T) { checkRotation(t, openLocal(t), false) }

func TestKeyringRejectsBadPrevious(t *testing.T) {
	k := newKEK(t)
	for name, prev := range map[string][]KEK{"nil": {nil}, "same as current": {k}} {
		if _, err := NewKeyring(KeyringConfig{KEK: k, Previous: prev, Store: openLocal(t)}); err == nil {
			t.Errorf("%s previous KEK accepted", name)
		}
	}
}
