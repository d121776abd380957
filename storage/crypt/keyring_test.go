package crypt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/storage"
)

func TestKeyringSealOpenAcrossInstances(t *testing.T) {
	ctx := testCtx(t)
	store, kek := openLocal(t), newKEK(t)
	a := newKeyring(t, kek, store, 0)
	b := newKeyring(t, kek, store, 0)
	ref := Ref("room1", "ses_1", "spk_a")
	ct, err := a.Seal(ctx, ref, []byte("hello private words"), []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(ct, []byte("private")) {
		t.Fatal("ciphertext contains plaintext")
	}
	// Another instance (another process: its own cache) opens it.
	pt, err := b.Open(ctx, ref, ct, []byte("aad"))
	if err != nil || string(pt) != "hello private words" {
		t.Fatalf("open on another instance: %q, %v", pt, err)
	}
	if _, err := b.Open(ctx, ref, ct, []byte("other")); !errors.Is(err, ErrDecrypt) {
		t.Errorf("open with other aad: %v, want ErrDecrypt", err)
	}
	// Only wrapped keys reach the store: its raw bytes hold no key and no
	// plaintext, and the layout is the documented one.
	var paths []string
	for info, err := range store.List(ctx, "") {
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, info.Key)
	}
	want := []string{"keyindex/speaker/spk_a/room1/ses_1", "keys/room1/ses_1/spk_a"}
	if !slices.Equal(paths, want) {
		t.Errorf("store holds %q, want %q", paths, want)
	}
	dek, err := a.dataKey(ctx, ref, false)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := rawGet(t, store, "keys/room1/ses_1/spk_a")
	if bytes.Contains(raw, dek) || !bytes.Contains(raw, []byte(kek.ID())) {
		t.Errorf("wrapped key record %s: must not contain the key, must name the KEK", raw)
	}
	// A session key (no speaker) has no index marker.
	if _, err := a.Seal(ctx, Ref("room1", "ses_1", ""), []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Stat(ctx, "keys/room1/ses_1/_session"); err != nil {
		t.Errorf("session key: %v", err)
	}
}

func TestKeyringOpenUnknownKey(t *testing.T) {
	k := newKeyring(t, newKEK(t), openLocal(t), 0)
	ref := Ref("r", "s", "p")
	if _, err := k.Open(testCtx(t), ref, make([]byte, 40), nil); !errors.Is(err, ErrKeyDestroyed) {
		t.Fatalf("open under a key never created: %v, want ErrKeyDestroyed", err)
	}
	// Opening does not create the key.
	if _, err := k.store.Stat(testCtx(t), keyPath(ref)); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Open created a key: %v", err)
	}
}

func TestKeyringWrongKEK(t *testing.T) {
	ctx := testCtx(t)
	store := openLocal(t)
	a := newKeyring(t, newKEK(t), store, 0)
	other := newKeyring(t, newKEK(t), store, 0)
	ref := Ref("r", "s", "p")
	ct, err := a.Seal(ctx, ref, []byte("secret"), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = other.Open(ctx, ref, ct, nil)
	if !errors.Is(err, ErrDecrypt) || !strings.Contains(err.Error(), "kek_file") {
		t.Fatalf("open with another KEK: %v; want ErrDecrypt naming the KEK mismatch", err)
	}
	// Nor does it replace the key with one of its own.
	if _, err := other.Seal(ctx, ref, []byte("x"), nil); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("seal with another KEK: %v, want ErrDecrypt", err)
	}
	if _, err := a.Open(ctx, ref, ct, nil); err != nil {
		t.Fatalf("the right KEK no longer opens: %v", err)
	}
}

// Instances racing to create one key converge on the key stored first.
func TestKeyringCreateRace(t *testing.T) {
	ctx := testCtx(t)
	store, kek := openLocal(t), newKEK(t)
	const n = 8
	rings := make([]*Keyring, n)
	for i := range rings {
		rings[i] = newKeyring(t, kek, store, 0)
	}
	ref := Ref("room", "ses", "spk")
	cts := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { cts[i], errs[i] = rings[i].Seal(ctx, ref, fmt.Appendf(nil, "msg %d", i), nil) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("seal %d: %v", i, errs[i])
		}
		for j := range n {
			pt, err := rings[j].Open(ctx, ref, cts[i], nil)
			if err != nil || string(pt) != fmt.Sprintf("msg %d", i) {
				t.Fatalf("instance %d cannot open what %d sealed: %v", j, i, err)
			}
		}
	}
}

func TestKeyringShred(t *testing.T) {
	ctx := testCtx(t)
	store, kek := openLocal(t), newKEK(t)
	a := newKeyring(t, kek, store, time.Hour)
	b := newKeyring(t, kek, store, time.Hour)
	clock := time.Now()
	b.now = func() time.Time { return clock }
	ref := Ref("room", "ses", "spk")
	keep := Ref("room", "ses", "other")
	ct, err := a.Seal(ctx, ref, []byte("to be forgotten"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctKeep, err := a.Seal(ctx, keep, []byte("kept"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Open(ctx, ref, ct, nil); err != nil { // b caches the key
		t.Fatal(err)
	}
	for range 2 { // idempotent
		if err := a.Shred(ctx, ref); err != nil {
			t.Fatalf("shred: %v", err)
		}
	}
	if _, err := a.Open(ctx, ref, ct, nil); !errors.Is(err, ErrKeyDestroyed) {
		t.Errorf("open after shred, same instance: %v, want ErrKeyDestroyed", err)
	}
	// The other instance may use its cached copy until the TTL runs out,
	// then it cannot either.
	if _, err := b.Open(ctx, ref, ct, nil); err != nil {
		t.Errorf("within the cache TTL the other instance still opens (documented): %v", err)
	}
	clock = clock.Add(time.Hour + time.Second)
	if _, err := b.Open(ctx, ref, ct, nil); !errors.Is(err, ErrKeyDestroyed) {
		t.Errorf("open after shred and TTL, other instance: %v, want ErrKeyDestroyed", err)
	}
	// A shredded key is not created again.
	if _, err := a.Seal(ctx, ref, []byte("new"), nil); !errors.Is(err, ErrKeyDestroyed) {
		t.Errorf("seal after shred: %v, want ErrKeyDestroyed", err)
	}
	if d, err := a.Destroyed(ctx, ref); !d || err != nil {
		t.Errorf("Destroyed = %v, %v", d, err)
	}
	if pt, err := b.Open(ctx, keep, ctKeep, nil); err != nil || string(pt) != "kept" {
		t.Errorf("another speaker's key was hurt: %v", err)
	}
	// Nothing of the key is left but its tombstone, which names no pseudonym.
	for info, err := range store.List(ctx, "") {
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(info.Key, "/spk") && !strings.Contains(info.Key, "other") {
			t.Errorf("left behind: %s", info.Key)
		}
	}
	raw, _ := rawGet(t, store, DestroyedPrefix+ref.ID)
	if bytes.Contains(raw, []byte("spk")) || bytes.Contains(raw, []byte("room")) {
		t.Errorf("tombstone %s names a pseudonym", raw)
	}
	// Shredding a key that never existed is fine too.
	if err := a.Shred(ctx, Ref("room", "ses", "never")); err != nil {
		t.Errorf("shred of a missing key: %v", err)
	}
}

func collect(t *testing.T, k *Keyring, f KeyFilter) []string {
	t.Helper()
	var out []string
	for ref, err := range k.List(testCtx(t), f) {
		if err != nil {
			t.Fatal(err)
		}
		if ref.ID != event.KeyID(ref.Session, ref.Speaker) {
			t.Errorf("listed ref %+v has the wrong ID", ref)
		}
		out = append(out, ref.Room+"/"+ref.Session+"/"+ref.Speaker)
	}
	slices.Sort(out)
	return out
}

func TestKeyringListAndShredMany(t *testing.T) {
	ctx := testCtx(t)
	k := newKeyring(t, newKEK(t), openLocal(t), 0)
	refs := []event.KeyRef{
		Ref("r1", "s1", "alice"), Ref("r1", "s1", "bob"), Ref("r1", "s1", ""),
		Ref("r1", "s2", "alice"), Ref("r2", "s3", "alice"), Ref("r2", "s3", "carol"), Ref("r2", "s3", ""),
	}
	cts := map[event.KeyRef][]byte{}
	for _, ref := range refs {
		ct, err := k.Seal(ctx, ref, []byte("x"), nil)
		if err != nil {
			t.Fatal(err)
		}
		cts[ref] = ct
	}
	for _, tc := range []struct {
		f    KeyFilter
		want []string
	}{
		{KeyFilter{}, []string{"r1/s1/", "r1/s1/alice", "r1/s1/bob", "r1/s2/alice", "r2/s3/", "r2/s3/alice", "r2/s3/carol"}},
		{KeyFilter{Room: "r1"}, []string{"r1/s1/", "r1/s1/alice", "r1/s1/bob", "r1/s2/alice"}},
		{KeyFilter{Room: "r1", Session: "s2"}, []string{"r1/s2/alice"}},
		{KeyFilter{Session: "s3"}, []string{"r2/s3/", "r2/s3/alice", "r2/s3/carol"}},
		{KeyFilter{Speaker: "alice"}, []string{"r1/s1/alice", "r1/s2/alice", "r2/s3/alice"}},
		{KeyFilter{Speaker: "alice", Room: "r2"}, []string{"r2/s3/alice"}},
		{KeyFilter{Speaker: "alice", Session: "s2"}, []string{"r1/s2/alice"}},
		{KeyFilter{Speaker: "nobody"}, nil},
	} {
		if got := collect(t, k, tc.f); !slices.Equal(got, tc.want) {
			t.Errorf("List(%+v) = %q, want %q", tc.f, got, tc.want)
		}
	}
	for ref, err := range k.List(ctx, KeyFilter{Room: "a/b"}) {
		if err == nil {
			t.Errorf("List with a '/' in the room yielded %+v", ref)
		}
	}

	got, err := k.ShredSpeaker(ctx, "alice")
	if err != nil || len(got) != 3 {
		t.Fatalf("ShredSpeaker(alice) = %v, %v; want her 3 keys", got, err)
	}
	if again, err := k.ShredSpeaker(ctx, "alice"); err != nil || len(again) != 0 {
		t.Errorf("ShredSpeaker again = %v, %v; want nothing left, no error", again, err)
	}
	got, err = k.ShredRoom(ctx, "r2")
	if err != nil || len(got) != 2 {
		t.Fatalf("ShredRoom(r2) = %v, %v; want carol's and the session key", got, err)
	}
	if rest := collect(t, k, KeyFilter{}); !slices.Equal(rest, []string{"r1/s1/", "r1/s1/bob"}) {
		t.Errorf("left after shredding: %q", rest)
	}
	for ref, ct := range cts {
		_, err := k.Open(ctx, ref, ct, nil)
		alive := ref.Room == "r1" && ref.Session == "s1" && ref.Speaker != "alice"
		if alive != (err == nil) || (!alive && !errors.Is(err, ErrKeyDestroyed)) {
			t.Errorf("open under %s/%s/%s after shredding: %v", ref.Room, ref.Session, ref.Speaker, err)
		}
	}
	if _, err := k.ShredSpeaker(ctx, ""); err == nil {
		t.Error("ShredSpeaker(\"\") succeeded")
	}
	if _, err := k.ShredRoom(ctx, ""); err == nil {
		t.Error("ShredRoom(\"\") succeeded")
	}
}

func TestKeyringRejectsBadRefs(t *testing.T) {
	k := newKeyring(t, newKEK(t), openLocal(t), 0)
	for name, ref := range map[string]event.KeyRef{
		"no room":          {ID: event.KeyID("s", "p"), Session: "s", Speaker: "p"},
		"no session":       {ID: event.KeyID("", "p"), Room: "r", Speaker: "p"},
		"ID mismatch":      {ID: event.KeyID("s", "q"), Room: "r", Session: "s", Speaker: "p"},
		"slash in room":    Ref("a/b", "s", "p"),
		"dot-dot session":  Ref("r", "..", "p"),
		"reserved speaker": Ref("r", "s", "_session"),
	} {
		if _, err := k.Seal(testCtx(t), ref, []byte("x"), nil); err == nil {
			t.Errorf("%s: Seal succeeded", name)
		}
		if err := k.Shred(testCtx(t), ref); err == nil {
			t.Errorf("%s: Shred succeeded", name)
		}
	}
	if _, err := NewKeyring(KeyringConfig{}); err == nil || !strings.Contains(err.Error(), "KEK") || !strings.Contains(err.Error(), "Store") {
		t.Errorf("NewKeyring with nothing: %v", err)
	}
}

// A key created while it is being shredded does not survive the shred.
func TestKeyringCreateAfterTombstoneUndone(t *testing.T) {
	ctx := testCtx(t)
	store := openLocal(t)
	k := newKeyring(t, newKEK(t), store, -1)
	ref := Ref("r", "s", "p")
	// The shred's tombstone lands after create's first check but before
	// its second: simulate by writing the tombstone from the store hook.
	hooked := &hookStore{KeyStore: store, afterPut: func(key string) {
		if key == keyPath(ref) {
			rawPut(t, store, tombstonePath(ref), []byte("{}"), nil)
		}
	}}
	k.store = hooked
	if _, err := k.Seal(ctx, ref, []byte("x"), nil); !errors.Is(err, ErrKeyDestroyed) {
		t.Fatalf("seal racing a shred: %v, want ErrKeyDestroyed", err)
	}
	if _, err := store.Stat(ctx, keyPath(ref)); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("the key created during the shred survived: %v", err)
	}
}

type hookStore struct {
	KeyStore
	afterPut func(key string)
}

func (h *hookStore) Put(ctx context.Context, key string, r io.Reader, size int64, opts storage.PutOptions) (storage.ObjectInfo, error) {
	info, err := h.KeyStore.Put(ctx, key, r, size, opts)
	if err == nil {
		h.afterPut(key)
	}
	return info, err
}

// failingStore fails every read while down is set, as an unreachable S3.
type failingStore struct {
	KeyStore
	down bool
}

func (f *failingStore) Get(ctx context.Context, key string) (io.ReadCloser, storage.ObjectInfo, error) {
	if f.down {
		return nil, storage.ObjectInfo{}, &storage.Error{Op: "get", Key: key, Err: storage.ErrUnavailable}
	}
	return f.KeyStore.Get(ctx, key)
}

// An object-store outage does not stop sealing with a key loaded before it
// (the live path keeps going); a shred during the outage is seen at the
// first refresh that reaches the store.
func TestKeyringOutageServesCachedKey(t *testing.T) {
	ctx := testCtx(t)
	store := openLocal(t)
	fs := &failingStore{KeyStore: store}
	k := newKeyring(t, newKEK(t), fs, time.Minute)
	clock := time.Now()
	k.now = func() time.Time { return clock }
	ref := Ref("r", "s", "p")
	ct, err := k.Seal(ctx, ref, []byte("before"), nil)
	if err != nil {
		t.Fatal(err)
	}
	fs.down = true
	clock = clock.Add(2 * time.Minute) // expired
	if _, err := k.Seal(ctx, ref, []byte("during"), nil); err != nil {
		t.Fatalf("seal during the outage with an expired cached key: %v", err)
	}
	if _, err := k.Open(ctx, ref, ct, nil); err != nil {
		t.Fatalf("open during the outage: %v", err)
	}
	// A key never loaded cannot be served.
	if _, err := k.Open(ctx, Ref("r", "s", "q"), ct, nil); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("open of an unloaded key during the outage: %v, want ErrUnavailable", err)
	}
	// Shredded elsewhere meanwhile; the store comes back.
	other := newKeyring(t, k.kek, store, 0)
	if err := other.Shred(ctx, ref); err != nil {
		t.Fatal(err)
	}
	fs.down = false
	clock = clock.Add(staleRetry + time.Second)
	if _, err := k.Open(ctx, ref, ct, nil); !errors.Is(err, ErrKeyDestroyed) {
		t.Errorf("open after the outage of a key shredded meanwhile: %v, want ErrKeyDestroyed", err)
	}
}

// Every instance must wrap with the deployment's KEK: one started with
// another key file is refused at start.
func TestKeyringCheckKEK(t *testing.T) {
	ctx := testCtx(t)
	store, kek := openLocal(t), newKEK(t)
	for range 2 { // first start records it, a restart agrees
		if err := newKeyring(t, kek, store, 0).CheckKEK(ctx); err != nil {
			t.Fatal(err)
		}
	}
	other := newKEK(t)
	err := newKeyring(t, other, store, 0).CheckKEK(ctx)
	if err == nil || !strings.Contains(err.Error(), kek.ID()) || !strings.Contains(err.Error(), other.ID()) || !strings.Contains(err.Error(), "kek_file") {
		t.Fatalf("CheckKEK with another KEK: %v; want an error naming both KEKs and crypto.kek_file", err)
	}
	// The record is not a key: listings ignore it.
	if got := collect(t, newKeyring(t, kek, store, 0), KeyFilter{}); len(got) != 0 {
		t.Errorf("List = %q", got)
	}
}
