package crypt

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/storage"
)

// Object key prefixes of the keyring. crypt.Store refuses puts under them,
// so no stage can overwrite or plant a wrapped key through it.
const (
	// KeysPrefix holds wrapped data keys:
	// keys/<room>/<session>/<speaker>, "_session" for the session key.
	KeysPrefix = "keys/"
	// SpeakerIndexPrefix holds empty markers
	// keyindex/speaker/<speaker>/<room>/<session>, one per speaker key, so
	// that ShredSpeaker finds a person's keys in every room without a scan.
	SpeakerIndexPrefix = "keyindex/speaker/"
	// DestroyedPrefix holds tombstones keys-destroyed/<key ID>: a shredded
	// key is never created again (see Keyring.Seal). Tombstones name only
	// the key ID, a one-way digest, never a pseudonym.
	DestroyedPrefix = "keys-destroyed/"
	// sessionSpeaker stands for "no speaker" (the session key) in paths.
	sessionSpeaker = "_session"
	// kekMarkerPath records the ID of the KEK that wraps the deployment's
	// keys (see CheckKEK). One segment under keys/, so it never parses as
	// a key path.
	kekMarkerPath = KeysPrefix + "_kek.json"
)

// DefaultCacheTTL is how long a Keyring keeps an unwrapped data key in
// memory after loading it.
const DefaultCacheTTL = time.Minute

// maxCachedKeys bounds the cache; beyond it, expired entries go first, then
// arbitrary ones (they are reloaded on demand).
const maxCachedKeys = 10000

// KeyStore is what a Keyring needs of the object store that holds wrapped
// keys, index markers and tombstones: any storage.Store (not a crypt.Store:
// wrapped keys are already encrypted, and the keyring must not depend on
// itself).
type KeyStore interface {
	storage.Putter
	storage.Getter
	storage.Stater
	storage.Lister
	storage.Eraser
}

// KeyringConfig configures a Keyring.
type KeyringConfig struct {
	// KEK wraps new data keys and unwraps existing ones. Required.
	KEK KEK
	// Previous are KEKs being rotated out: keys they wrapped are still
	// unwrapped with them until Rewrap has wrapped every key under KEK.
	Previous []KEK
	// Store holds the wrapped keys, shared by every instance. Required.
	Store KeyStore
	// CacheTTL is how long an unwrapped key stays in memory
	// (DefaultCacheTTL when zero; negative disables the cache). It is also
	// how long another process may go on using a key this one shredded.
	CacheTTL time.Duration
	// Logger gets key creation and shredding (key IDs, never key material).
	Logger *slog.Logger
}

// Keyring is the durable event.Keys: data keys are created on first use,
// wrapped by the KEK and kept in object storage, where every instance finds
// them; unwrapped keys stay in memory for CacheTTL. See the package doc for
// the layout and the shredding guarantees.
type Keyring struct {
	kek   KEK
	prev  map[string]KEK // by ID: unwrap only
	store KeyStore
	ttl   time.Duration
	log   *slog.Logger
	now   func() time.Time

	flights singleflight.Group

	mu    sync.Mutex
	cache map[string]cached // by key ID
}

type cached struct {
	key     []byte
	expires time.Time
}

var _ event.Keys = (*Keyring)(nil)

// NewKeyring checks the configuration and returns a keyring. It touches no
// storage until the first key is needed.
func NewKeyring(cfg KeyringConfig) (*Keyring, error) {
	var errs []error
	if cfg.KEK == nil {
		errs = append(errs, errors.New("KEK is nil"))
	}
	if cfg.Store == nil {
		errs = append(errs, errors.New("Store is nil"))
	}
	prev := map[string]KEK{}
	for i, p := range cfg.Previous {
		switch {
		case p == nil:
			errs = append(errs, fmt.Errorf("Previous[%d] is nil", i))
		case cfg.KEK != nil && p.ID() == cfg.KEK.ID():
			errs = append(errs, fmt.Errorf("Previous[%d] is the current KEK %s", i, p.ID()))
		default:
			prev[p.ID()] = p
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("crypt: keyring config: %w", errors.Join(errs...))
	}
	ttl := cfg.CacheTTL
	if ttl == 0 {
		ttl = DefaultCacheTTL
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Keyring{kek: cfg.KEK, prev: prev, store: cfg.Store, ttl: ttl, log: log, now: time.Now, cache: map[string]cached{}}, nil
}

// kekMarker is the JSON object stored at kekMarkerPath.
type kekMarker struct {
	KEK     string    `json:"kek"`
	Created time.Time `json:"created"`
}

// CheckKEK makes sure this process wraps keys with the deployment's KEK:
// the first process records its KEK's ID in the store, every later one must
// have the same. Without it, an instance started with a missing or wrong
// key file (and crypto.create_kek on) would wrap new keys that no other
// instance can unwrap. Processes call it once at start.
func (k *Keyring) CheckKEK(ctx context.Context) error {
	b, err := json.Marshal(kekMarker{KEK: k.kek.ID(), Created: k.now().UTC()})
	if err != nil {
		return err
	}
	_, err = k.store.Put(ctx, kekMarkerPath, bytes.NewReader(b), int64(len(b)), storage.PutOptions{IfAbsent: true, ContentType: "application/json"})
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, storage.ErrExists):
		return fmt.Errorf("crypt: record the KEK: %w", err)
	}
	rc, _, err := k.store.Get(ctx, kekMarkerPath)
	if err != nil {
		return fmt.Errorf("crypt: read the KEK record: %w", err)
	}
	defer rc.Close()
	var m kekMarker
	if err := json.NewDecoder(io.LimitReader(rc, maxRecordBytes)).Decode(&m); err != nil {
		return fmt.Errorf("crypt: read the KEK record %s: %w", kekMarkerPath, err)
	}
	if _, rotating := k.prev[m.KEK]; m.KEK != k.kek.ID() && !rotating {
		return fmt.Errorf("crypt: this deployment's data keys are wrapped by KEK %s, this process has KEK %s: point crypto.kek_file at the deployment's key file (every instance needs the same one; while rotating, list the old one in crypto.previous_kek_files)", m.KEK, k.kek.ID())
	}
	return nil
}

// Ref returns the reference of the data key of a speaker in a session
// (speaker "" for the session key).
func Ref(room, session, speaker string) event.KeyRef {
	return event.KeyRef{ID: event.KeyID(session, speaker), Room: room, Session: session, Speaker: speaker}
}

// Seal encrypts plaintext under ref's data key (nonce ‖ AES-256-GCM, aad
// bound), creating the key on first use. It fails with ErrKeyDestroyed for
// a key that was shredded: a person's erased data does not come back under
// a new key.
func (k *Keyring) Seal(ctx context.Context, ref event.KeyRef, plaintext, aad []byte) ([]byte, error) {
	dek, err := k.dataKey(ctx, ref, true)
	if err != nil {
		return nil, fmt.Errorf("crypt: seal under %s: %w", ref.ID, err)
	}
	return seal(dek, plaintext, aad)
}

// Open decrypts what Seal returned. A shredded or unknown key fails with
// ErrKeyDestroyed; altered bytes, a wrong key or wrong aad with ErrDecrypt.
func (k *Keyring) Open(ctx context.Context, ref event.KeyRef, ciphertext, aad []byte) ([]byte, error) {
	dek, err := k.dataKey(ctx, ref, false)
	if err != nil {
		return nil, fmt.Errorf("crypt: open under %s: %w", ref.ID, err)
	}
	return open(dek, ciphertext, aad)
}

// checkRef verifies that ref is complete, consistent and maps onto object
// keys.
func checkRef(ref event.KeyRef) error {
	switch {
	case ref.Room == "" || ref.Session == "":
		return fmt.Errorf("key ref %s: room and session are required", ref.ID)
	case ref.ID != event.KeyID(ref.Session, ref.Speaker):
		return fmt.Errorf("key ref %s does not name the key of its session and speaker", ref.ID)
	case ref.Speaker == sessionSpeaker:
		return fmt.Errorf("key ref %s: speaker %q is reserved", ref.ID, sessionSpeaker)
	}
	for _, part := range []string{ref.Room, ref.Session, ref.Speaker} {
		if part != "" && (strings.Contains(part, "/") || storage.ValidateKey(part) != nil) {
			return fmt.Errorf("key ref %s: room, session and speaker must be single key segments", ref.ID)
		}
	}
	return nil
}

func keyPath(ref event.KeyRef) string {
	spk := ref.Speaker
	if spk == "" {
		spk = sessionSpeaker
	}
	return KeysPrefix + ref.Room + "/" + ref.Session + "/" + spk
}

func indexPath(ref event.KeyRef) string {
	return SpeakerIndexPrefix + ref.Speaker + "/" + ref.Room + "/" + ref.Session
}

func tombstonePath(ref event.KeyRef) string { return DestroyedPrefix + ref.ID }

// wrapAAD binds a wrapped key to the key it is and to where it belongs, so
// a wrapped key copied to another path does not unwrap.
func wrapAAD(ref event.KeyRef) []byte {
	return []byte("earshot dek v1\x00" + ref.ID + "\x00" + ref.Room + "\x00" + ref.Session + "\x00" + ref.Speaker)
}

// keyRecord is the JSON object stored at keyPath.
type keyRecord struct {
	Format  int       `json:"format"`
	KeyID   string    `json:"key_id"`
	KEK     string    `json:"kek"`
	Alg     string    `json:"alg"`
	Wrapped []byte    `json:"wrapped"`
	Created time.Time `json:"created"`
}

// tombstone is the JSON object stored at tombstonePath.
type tombstone struct {
	KeyID     string    `json:"key_id"`
	Destroyed time.Time `json:"destroyed"`
}

const maxRecordBytes = 16 << 10

// dataKey returns ref's unwrapped key, from the cache or the store;
// with create, a missing key is made.
//
// When the cached entry has expired and the store cannot be read (an
// outage: anything but "not found"), the expired key is used on and a
// refresh is tried again after staleRetry: a key that existed a TTL ago is
// still the key, and the live path (sealing audio chunks) must not stall
// on an object-store outage. A shred, which removes the key, is seen at
// the first successful refresh.
func (k *Keyring) dataKey(ctx context.Context, ref event.KeyRef, create bool) ([]byte, error) {
	if err := checkRef(ref); err != nil {
		return nil, err
	}
	if dek, fresh := k.cached(ref.ID); fresh {
		return dek, nil
	}
	flight := "o:" + ref.ID
	if create {
		flight = "c:" + ref.ID
	}
	v, err, _ := k.flights.Do(flight, func() (any, error) {
		stale, fresh := k.cached(ref.ID)
		if fresh {
			return stale, nil
		}
		dek, err := k.load(ctx, ref)
		if errors.Is(err, storage.ErrNotFound) {
			k.forget(ref.ID)
			if !create {
				return nil, fmt.Errorf("%w (no wrapped key)", ErrKeyDestroyed)
			}
			dek, err = k.create(ctx, ref)
		} else if err != nil && stale != nil && !errors.Is(err, ErrDecrypt) && ctx.Err() == nil {
			k.log.Warn("data key refresh failed; using the cached key", "key_id", ref.ID, "retry_in", staleRetry, "err", err)
			k.extend(ref.ID, staleRetry)
			return stale, nil
		}
		if err != nil {
			return nil, err
		}
		k.remember(ref.ID, dek)
		return dek, nil
	})
	if err != nil {
		return nil, err
	}
	return v.([]byte), nil
}

// staleRetry is how long an expired key serves on after a failed refresh.
const staleRetry = 5 * time.Second

// cached returns id's cached key, if any, and whether it is still fresh.
func (k *Keyring) cached(id string) (dek []byte, fresh bool) {
	if k.ttl < 0 {
		return nil, false
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	c, ok := k.cache[id]
	if !ok {
		return nil, false
	}
	return c.key, !k.now().After(c.expires)
}

func (k *Keyring) extend(id string, d time.Duration) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if c, ok := k.cache[id]; ok {
		c.expires = k.now().Add(d)
		k.cache[id] = c
	}
}

func (k *Keyring) remember(id string, dek []byte) {
	if k.ttl < 0 {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.cache) >= maxCachedKeys {
		// Expired entries go first (they would be reloaded anyway), then
		// arbitrary ones.
		now := k.now()
		for id, c := range k.cache {
			if now.After(c.expires) {
				delete(k.cache, id)
			}
		}
		for id := range k.cache {
			if len(k.cache) < maxCachedKeys {
				break
			}
			delete(k.cache, id)
		}
	}
	k.cache[id] = cached{key: dek, expires: k.now().Add(k.ttl)}
}

func (k *Keyring) forget(id string) {
	k.mu.Lock()
	delete(k.cache, id)
	k.mu.Unlock()
}

// load reads and unwraps ref's key; storage.ErrNotFound when there is none.
func (k *Keyring) load(ctx context.Context, ref event.KeyRef) ([]byte, error) {
	rec, err := k.readRecord(ctx, ref)
	if err != nil {
		return nil, err
	}
	return k.unwrap(ctx, ref, &rec)
}

// readRecord reads ref's wrapped key record; storage.ErrNotFound when
// there is none.
func (k *Keyring) readRecord(ctx context.Context, ref event.KeyRef) (keyRecord, error) {
	var rec keyRecord
	rc, _, err := k.store.Get(ctx, keyPath(ref))
	if err != nil {
		return rec, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxRecordBytes))
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, fmt.Errorf("wrapped key at %s: %w", keyPath(ref), err)
	}
	if rec.Format != 1 || rec.KeyID != ref.ID {
		return rec, fmt.Errorf("wrapped key at %s: format %d, key %s: not the record of %s", keyPath(ref), rec.Format, rec.KeyID, ref.ID)
	}
	return rec, nil
}

// unwrap returns the data key of rec, unwrapped by whichever of this
// keyring's KEKs wrapped it.
func (k *Keyring) unwrap(ctx context.Context, ref event.KeyRef, rec *keyRecord) ([]byte, error) {
	kek := k.kek
	if rec.KEK != kek.ID() {
		kek = k.prev[rec.KEK]
	}
	if kek == nil {
		return nil, fmt.Errorf("%w: key %s is wrapped by KEK %s, this process has KEK %s (wrong crypto.kek_file, or a rotated-out KEK missing from crypto.previous_kek_files?)", ErrDecrypt, ref.ID, rec.KEK, k.kek.ID())
	}
	dek, err := kek.Unwrap(ctx, rec.Wrapped, wrapAAD(ref))
	if err != nil {
		return nil, fmt.Errorf("unwrap key %s: %w", ref.ID, err)
	}
	if len(dek) != 32 {
		return nil, fmt.Errorf("unwrap key %s: %d bytes, want 32", ref.ID, len(dek))
	}
	return dek, nil
}

// create makes ref's key. The index marker goes first, so every key is
// found by ShredSpeaker even after a crash between the two puts. The key
// itself is a create-only put: of two instances racing, one stores its key
// and the other adopts it, before either has used its own. A tombstone
// checked before and after the put keeps a concurrent Shred from being
// undone (Shred writes the tombstone before it deletes the key).
func (k *Keyring) create(ctx context.Context, ref event.KeyRef) ([]byte, error) {
	if err := k.checkNotDestroyed(ctx, ref); err != nil {
		return nil, err
	}
	dek := make([]byte, 32)
	if _, err := rand.Read(dek); err != nil {
		return nil, fmt.Errorf("new data key: %w", err)
	}
	wrapped, err := k.kek.Wrap(ctx, dek, wrapAAD(ref))
	if err != nil {
		return nil, fmt.Errorf("wrap key %s: %w", ref.ID, err)
	}
	rec, err := json.Marshal(keyRecord{Format: 1, KeyID: ref.ID, KEK: k.kek.ID(), Alg: "A256GCM", Wrapped: wrapped, Created: k.now().UTC()})
	if err != nil {
		return nil, err
	}
	if ref.Speaker != "" {
		_, err := k.store.Put(ctx, indexPath(ref), bytes.NewReader(nil), 0, storage.PutOptions{IfAbsent: true})
		if err != nil && !errors.Is(err, storage.ErrExists) {
			return nil, fmt.Errorf("index key %s: %w", ref.ID, err)
		}
	}
	_, err = k.store.Put(ctx, keyPath(ref), bytes.NewReader(rec), int64(len(rec)), storage.PutOptions{IfAbsent: true, ContentType: "application/json"})
	if errors.Is(err, storage.ErrExists) {
		return k.load(ctx, ref) // another instance won: use its key
	}
	if err != nil {
		return nil, fmt.Errorf("store key %s: %w", ref.ID, err)
	}
	if err := k.checkNotDestroyed(ctx, ref); err != nil {
		// Shredded while we created it: undo, so the shred holds.
		_ = k.store.DeleteAll(context.WithoutCancel(ctx), keyPath(ref))
		return nil, err
	}
	k.log.Debug("data key created", "key_id", ref.ID, "kek", k.kek.ID())
	return dek, nil
}

func (k *Keyring) checkNotDestroyed(ctx context.Context, ref event.KeyRef) error {
	_, err := k.store.Stat(ctx, tombstonePath(ref))
	switch {
	case err == nil:
		return fmt.Errorf("%w (shredded; it is not created again)", ErrKeyDestroyed)
	case errors.Is(err, storage.ErrNotFound):
		return nil
	default:
		return fmt.Errorf("check tombstone of %s: %w", ref.ID, err)
	}
}

// Shred destroys ref's data key for good: it records a tombstone (so the key
// is never created again), forgets the key in this process at once, and
// deletes the wrapped key with all its object versions and its index
// marker. Everything sealed under the key, wherever a copy lives (objects
// and their old versions, retained Kafka records, backups), is unreadable
// from then on; other processes may go on using the key until their cache
// entry expires (CacheTTL). Shredding again, or a key that never existed,
// is not an error.
func (k *Keyring) Shred(ctx context.Context, ref event.KeyRef) error {
	if err := checkRef(ref); err != nil {
		return fmt.Errorf("crypt: shred: %w", err)
	}
	k.forget(ref.ID)
	ts, err := json.Marshal(tombstone{KeyID: ref.ID, Destroyed: k.now().UTC()})
	if err != nil {
		return err
	}
	if _, err := k.store.Put(ctx, tombstonePath(ref), bytes.NewReader(ts), int64(len(ts)), storage.PutOptions{IfAbsent: true, ContentType: "application/json"}); err != nil && !errors.Is(err, storage.ErrExists) {
		return fmt.Errorf("crypt: shred %s: tombstone: %w", ref.ID, err)
	}
	if err := k.store.DeleteAll(ctx, keyPath(ref)); err != nil {
		return fmt.Errorf("crypt: shred %s: delete wrapped key: %w", ref.ID, err)
	}
	if ref.Speaker != "" {
		if err := k.store.DeleteAll(ctx, indexPath(ref)); err != nil {
			return fmt.Errorf("crypt: shred %s: delete index marker: %w", ref.ID, err)
		}
	}
	k.forget(ref.ID) // in case a Seal in this process loaded it meanwhile
	k.log.Info("data key shredded", "key_id", ref.ID)
	return nil
}

// Destroyed reports whether ref's key was shredded (has a tombstone).
func (k *Keyring) Destroyed(ctx context.Context, ref event.KeyRef) (bool, error) {
	if err := checkRef(ref); err != nil {
		return false, fmt.Errorf("crypt: %w", err)
	}
	err := k.checkNotDestroyed(ctx, ref)
	if errors.Is(err, ErrKeyDestroyed) {
		return true, nil
	}
	return false, err
}

// KeyFilter selects keys in List; an empty field matches anything.
type KeyFilter struct {
	Room, Session, Speaker string
}

// List yields the existing (not shredded) keys that match f. With a
// speaker it reads that speaker's index (every room, no scan); with a room
// (and session) it lists that room's keys; a filter on the session alone
// scans every key. An index marker whose key was never stored (a crash
// between the two puts of a key's creation) is yielded too: shredding it is
// harmless. An error ends the sequence.
func (k *Keyring) List(ctx context.Context, f KeyFilter) iter.Seq2[event.KeyRef, error] {
	return func(yield func(event.KeyRef, error) bool) {
		for _, part := range []string{f.Room, f.Session, f.Speaker} {
			if strings.Contains(part, "/") || (part != "" && storage.ValidateKey(part) != nil) {
				yield(event.KeyRef{}, errors.New("crypt: list keys: filter fields must be single key segments"))
				return
			}
		}
		match := func(ref event.KeyRef) bool {
			return (f.Room == "" || ref.Room == f.Room) && (f.Session == "" || ref.Session == f.Session) &&
				(f.Speaker == "" || ref.Speaker == f.Speaker)
		}
		var prefix string
		var parse func(string) (event.KeyRef, bool)
		switch {
		case f.Speaker != "":
			prefix, parse = SpeakerIndexPrefix+f.Speaker+"/", parseIndexPath
			if f.Room != "" {
				prefix += f.Room + "/"
			}
		default:
			prefix, parse = KeysPrefix, parseKeyPath
			if f.Room != "" {
				prefix += f.Room + "/"
				if f.Session != "" {
					prefix += f.Session + "/"
				}
			}
		}
		for info, err := range k.store.List(ctx, prefix) {
			if err != nil {
				yield(event.KeyRef{}, fmt.Errorf("crypt: list keys: %w", err))
				return
			}
			ref, ok := parse(info.Key)
			if !ok || !match(ref) {
				continue
			}
			if !yield(ref, nil) {
				return
			}
		}
	}
}

func parseKeyPath(p string) (event.KeyRef, bool) {
	parts := strings.Split(strings.TrimPrefix(p, KeysPrefix), "/")
	if len(parts) != 3 {
		return event.KeyRef{}, false
	}
	spk := parts[2]
	if spk == sessionSpeaker {
		spk = ""
	}
	return Ref(parts[0], parts[1], spk), true
}

func parseIndexPath(p string) (event.KeyRef, bool) {
	parts := strings.Split(strings.TrimPrefix(p, SpeakerIndexPrefix), "/")
	if len(parts) != 3 || parts[0] == sessionSpeaker {
		return event.KeyRef{}, false
	}
	return Ref(parts[1], parts[2], parts[0]), true
}

// ShredSpeaker shreds every key of a speaker pseudonym, in every room and
// session, and returns the keys it shredded (none when there were none
// left: it is idempotent).
func (k *Keyring) ShredSpeaker(ctx context.Context, speaker string) ([]event.KeyRef, error) {
	if speaker == "" || speaker == sessionSpeaker {
		return nil, fmt.Errorf("crypt: shred speaker: %q is not a speaker pseudonym", speaker)
	}
	return k.shredAll(ctx, KeyFilter{Speaker: speaker})
}

// ShredRoom shreds every key of a room (each speaker's and each session's)
// and returns the keys it shredded.
func (k *Keyring) ShredRoom(ctx context.Context, room string) ([]event.KeyRef, error) {
	if room == "" {
		return nil, errors.New("crypt: shred room: empty room pseudonym")
	}
	return k.shredAll(ctx, KeyFilter{Room: room})
}

func (k *Keyring) shredAll(ctx context.Context, f KeyFilter) ([]event.KeyRef, error) {
	// Collect first: shredding deletes entries of the listing under way.
	var refs []event.KeyRef
	for ref, err := range k.List(ctx, f) {
		if err != nil {
			return nil, err
		}
		refs = append(refs, ref)
	}
	done := make([]event.KeyRef, 0, len(refs))
	for _, ref := range refs {
		if err := k.Shred(ctx, ref); err != nil {
			return done, err
		}
		done = append(done, ref)
	}
	return done, nil
}

// Close forgets every unwrapped key held in memory. The keyring still works
// afterwards (keys are loaded again); Close is idempotent. Keys are dropped,
// not zeroed: a seal in progress may still hold one.
func (k *Keyring) Close() error {
	k.mu.Lock()
	clear(k.cache)
	k.mu.Unlock()
	return nil
}
