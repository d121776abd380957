package crypt

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"iter"
	"maps"
	"os"
	"strconv"
	"strings"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/storage"
)

// User metadata the Store keeps with each encrypted object. Callers may not
// set keys with the "crypt-" prefix.
const (
	metaPrefix = "crypt-"
	// MetaKeyID names the data key (event.KeyID) the object is encrypted
	// under; its presence marks an encrypted object.
	MetaKeyID = "crypt-key"
	// metaSize and metaSHA256 describe the plaintext, so that Stat and Get
	// report the plaintext's size and SHA-256 as a plain store would.
	metaSize   = "crypt-size"
	metaSHA256 = "crypt-sha256"
)

// Metadata keys naming the data key of an object (pseudonyms).
const (
	MetaRoom    = "room"
	MetaSession = "session"
	MetaSpeaker = "speaker"
)

// DefaultProtectedPrefixes are the key prefixes whose objects hold speech
// or identity as a whole and are therefore encrypted: audio segments,
// session manifests, and transcripts, alerts, evidence and exports kept as
// objects. Other prefixes pass through: audit/ (no speech), holds/ and
// erasure/ (pseudonyms), the keyring's own, and events/ (the event archive),
// whose envelopes already carry their speech sealed per speaker (and some
// of which, without a session, have no session key to use).
var DefaultProtectedPrefixes = []string{"audio/", "manifests/", "transcripts/", "alerts/", "evidence/", "exports/"}

// reservedPrefixes belong to the Keyring: the Store refuses puts there.
var reservedPrefixes = []string{KeysPrefix, SpeakerIndexPrefix, DestroyedPrefix}

// spoolMemBytes is the largest ciphertext of a put whose plaintext hash is
// not known up front that the Store keeps in memory; beyond it, a temporary
// file holds the ciphertext (never the plaintext).
const spoolMemBytes = 8 << 20

// ErrNoKeyRef is returned when an object under a protected prefix comes
// without "room" and "session" metadata: the Store cannot choose its data
// key, and refuses to store it in the clear. It also matches
// storage.ErrInvalidMetadata (a permanent error for the spool's uploader).
var ErrNoKeyRef = errors.New("crypt: protected object without room and session metadata (it is never stored unencrypted)")

// KeyRefFunc chooses the data key of an object from its key and metadata.
type KeyRefFunc func(key string, metadata map[string]string) (event.KeyRef, error)

// MetadataKeyRef is the default KeyRefFunc: the key of the "room",
// "session" and "speaker" metadata (speaker absent or empty: the session
// key).
func MetadataKeyRef(_ string, md map[string]string) (event.KeyRef, error) {
	room, session := md[MetaRoom], md[MetaSession]
	if room == "" || session == "" {
		return event.KeyRef{}, fmt.Errorf("%w (%w)", ErrNoKeyRef, storage.ErrInvalidMetadata)
	}
	return Ref(room, session, md[MetaSpeaker]), nil
}

// StoreOption tunes a Store.
type StoreOption func(*Store)

// WithProtectedPrefixes replaces DefaultProtectedPrefixes; "" protects
// every key.
func WithProtectedPrefixes(prefixes ...string) StoreOption {
	return func(s *Store) { s.protected = append([]string(nil), prefixes...) }
}

// WithKeyRef replaces MetadataKeyRef.
func WithKeyRef(fn KeyRefFunc) StoreOption { return func(s *Store) { s.refOf = fn } }

// Store is a storage.Store that encrypts objects under protected prefixes
// on Put and decrypts them on Get, with the data key of the object's room,
// session and speaker (from its metadata). Sizes and SHA-256s it reports
// are the plaintext's, so code written against a plain store works
// unchanged; whoever reads the underlying store sees only ciphertext.
// Objects under other prefixes pass through untouched.
type Store struct {
	inner     storage.Store
	keys      *Keyring
	protected []string
	refOf     KeyRefFunc
}

var _ storage.Store = (*Store)(nil)

// NewStore wraps inner; keys provides the data keys.
func NewStore(inner storage.Store, keys *Keyring, opts ...StoreOption) *Store {
	s := &Store{inner: inner, keys: keys, protected: DefaultProtectedPrefixes, refOf: MetadataKeyRef}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Inner returns the wrapped store (ciphertext), for tools that copy or
// scan raw objects.
func (s *Store) Inner() storage.Store { return s.inner }

// Protects reports whether objects under key are encrypted.
func (s *Store) Protects(key string) bool {
	for _, p := range s.protected {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

func opErr(op, key string, err error) error {
	if err == nil {
		return nil
	}
	var se *storage.Error
	if errors.As(err, &se) && se.Op == op && se.Key == key {
		return err
	}
	return &storage.Error{Op: op, Key: key, Err: err}
}

// Put encrypts (under a protected prefix) and stores an object; see
// storage.Putter. PutOptions.SHA256 is the plaintext's, checked before
// anything is stored. A put with a known size and SHA-256 (the spool's
// uploads) streams; otherwise the plaintext is hashed first (a seekable
// reader is read twice) or the ciphertext is buffered (memory up to 8 MiB,
// then a temporary file), because the plaintext's hash goes into the
// metadata, which S3 sends before the body.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64, opts storage.PutOptions) (storage.ObjectInfo, error) {
	info, err := s.put(ctx, key, r, size, opts)
	return info, opErr("put", key, err)
}

func (s *Store) put(ctx context.Context, key string, r io.Reader, size int64, opts storage.PutOptions) (storage.ObjectInfo, error) {
	want, err := storage.ValidatePut(ctx, key, size, opts)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	for k := range opts.Metadata {
		if strings.HasPrefix(k, metaPrefix) {
			return storage.ObjectInfo{}, fmt.Errorf("%w: key %q: the %q prefix is reserved for encryption", storage.ErrInvalidMetadata, k, metaPrefix)
		}
	}
	for _, p := range reservedPrefixes {
		if strings.HasPrefix(key, p) {
			return storage.ObjectInfo{}, fmt.Errorf("%w: %q is reserved for the keyring", storage.ErrInvalidKey, p)
		}
	}
	if !s.Protects(key) {
		return s.inner.Put(ctx, key, r, size, opts)
	}
	ref, err := s.refOf(key, opts.Metadata)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	dek, err := s.keys.dataKey(ctx, ref, true)
	if err != nil {
		return storage.ObjectInfo{}, keyErr(ref.ID, err)
	}
	if want == "" || size < 0 {
		if rs, ok := r.(io.ReadSeeker); ok {
			if size, want, err = hashSeekable(ctx, rs, size, want); err != nil {
				return storage.ObjectInfo{}, err
			}
		}
	}
	md := make(map[string]string, len(opts.Metadata)+3)
	maps.Copy(md, opts.Metadata)
	md[MetaKeyID] = ref.ID
	inner := storage.PutOptions{ContentType: opts.ContentType, Metadata: md, IfAbsent: opts.IfAbsent}

	var info storage.ObjectInfo
	if want != "" && size >= 0 {
		md[metaSize], md[metaSHA256] = strconv.FormatInt(size, 10), want
		enc, err := newEncrypter(dek, ref.ID, key, storage.NewCheckedReader(ctx, r, size, want))
		if err != nil {
			return storage.ObjectInfo{}, err
		}
		info, err = s.inner.Put(ctx, key, enc, CipherSize(size, len(ref.ID)), inner)
		return plainInfo(info), err
	}
	cr := storage.NewCheckedReader(ctx, r, size, want)
	enc, err := newEncrypter(dek, ref.ID, key, cr)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	sp, err := spoolCipher(enc)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	defer sp.cleanup()
	md[metaSize], md[metaSHA256] = strconv.FormatInt(cr.N(), 10), cr.Sum()
	inner.SHA256 = sp.sum
	info, err = s.inner.Put(ctx, key, sp.r, sp.n, inner)
	return plainInfo(info), err
}

// hashSeekable reads rs once to learn its size and SHA-256 (checking them
// against size and want), then seeks back.
func hashSeekable(ctx context.Context, rs io.ReadSeeker, size int64, want string) (int64, string, error) {
	start, err := rs.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0, "", err
	}
	cr := storage.NewCheckedReader(ctx, rs, size, want)
	if _, err := io.Copy(io.Discard, cr); err != nil {
		return 0, "", err
	}
	if _, err := rs.Seek(start, io.SeekStart); err != nil {
		return 0, "", err
	}
	return cr.N(), cr.Sum(), nil
}

// spooled is a buffered ciphertext.
type spooled struct {
	r       io.Reader
	n       int64
	sum     string
	cleanup func()
}

// spoolCipher buffers r (ciphertext) in memory, or in a temporary file once it
// exceeds spoolMemBytes, hashing it on the way.
func spoolCipher(r io.Reader) (spooled, error) {
	h := sha256.New()
	var buf bytes.Buffer
	n, err := io.Copy(io.MultiWriter(&buf, h), io.LimitReader(r, spoolMemBytes+1))
	if err != nil {
		return spooled{}, err
	}
	if n <= spoolMemBytes {
		return spooled{r: bytes.NewReader(buf.Bytes()), n: n, sum: hex.EncodeToString(h.Sum(nil)), cleanup: func() {}}, nil
	}
	f, err := os.CreateTemp("", "earshot-crypt-put-*")
	if err != nil {
		return spooled{}, fmt.Errorf("crypt: spool ciphertext: %w", err)
	}
	cleanup := func() { f.Close(); os.Remove(f.Name()) }
	if err := spoolFile(f, &buf, r, h); err != nil {
		cleanup()
		return spooled{}, err
	}
	fi, err := f.Stat()
	if err != nil {
		cleanup()
		return spooled{}, err
	}
	return spooled{r: f, n: fi.Size(), sum: hex.EncodeToString(h.Sum(nil)), cleanup: cleanup}, nil
}

func spoolFile(f *os.File, head *bytes.Buffer, rest io.Reader, h hash.Hash) error {
	if _, err := f.Write(head.Bytes()); err != nil {
		return fmt.Errorf("crypt: spool ciphertext: %w", err)
	}
	if _, err := io.Copy(io.MultiWriter(f, h), rest); err != nil {
		return err
	}
	_, err := f.Seek(0, io.SeekStart)
	return err
}

// plainInfo turns the description of a stored (encrypted) object into the
// plaintext's: size and SHA-256 from the metadata, without the Store's own
// metadata keys.
func plainInfo(info storage.ObjectInfo) storage.ObjectInfo {
	md := info.Metadata
	if md[MetaKeyID] == "" {
		return info
	}
	if n, err := strconv.ParseInt(md[metaSize], 10, 64); err == nil {
		info.Size = n
	}
	info.SHA256 = md[metaSHA256]
	info.Metadata = nil
	for k, v := range md {
		if strings.HasPrefix(k, metaPrefix) {
			continue
		}
		if info.Metadata == nil {
			info.Metadata = map[string]string{}
		}
		info.Metadata[k] = v
	}
	return info
}

// keyErr explains a failure to get an object's data key; a destroyed key
// also matches storage.ErrErased, which storage users (the spool's
// uploader) know without knowing this package.
func keyErr(id string, err error) error {
	if errors.Is(err, ErrKeyDestroyed) {
		return fmt.Errorf("crypt: data key %s: %w (%w)", id, err, storage.ErrErased)
	}
	return fmt.Errorf("crypt: data key %s: %w", id, err)
}

// Get opens an object, decrypting it when it lies under a protected prefix;
// see storage.Getter. The reader releases plaintext only frame by frame as
// each authenticates: an altered or truncated object fails with ErrDecrypt
// (never garbage), a shredded key with ErrKeyDestroyed, an object stored
// unencrypted under a protected prefix with ErrNotEncrypted.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, storage.ObjectInfo, error) {
	rc, info, err := s.inner.Get(ctx, key)
	if err != nil || !s.Protects(key) {
		return rc, info, err
	}
	dec, err := s.Decrypt(ctx, key, info.Metadata, rc)
	if err != nil {
		return nil, storage.ObjectInfo{}, opErr("get", key, err)
	}
	return dec, plainInfo(info), nil
}

// Decrypt decrypts a raw encrypted object read from elsewhere (an old
// object version, a copy or a backup) that was stored under key with the
// given user metadata. It takes ownership of raw: closing the result
// closes it, and on error it is closed already. Errors are as for Get.
func (s *Store) Decrypt(ctx context.Context, key string, metadata map[string]string, raw io.ReadCloser) (io.ReadCloser, error) {
	r, err := s.decrypt(ctx, key, metadata, raw)
	if err != nil {
		raw.Close()
	}
	return r, err
}

func (s *Store) decrypt(ctx context.Context, key string, metadata map[string]string, raw io.ReadCloser) (io.ReadCloser, error) {
	id := metadata[MetaKeyID]
	if id == "" {
		return nil, fmt.Errorf("%w (no %s metadata, under a protected prefix)", ErrNotEncrypted, MetaKeyID)
	}
	ref, err := s.refOf(key, metadata)
	if err != nil {
		return nil, err
	}
	if ref.ID != id {
		return nil, fmt.Errorf("%w: object records key %s, its metadata names key %s", ErrDecrypt, id, ref.ID)
	}
	h, header, err := readHeader(raw)
	if err != nil {
		return nil, err
	}
	if h.keyID != id {
		return nil, fmt.Errorf("%w: header names key %s, metadata %s", ErrDecrypt, h.keyID, id)
	}
	dek, err := s.keys.dataKey(ctx, ref, false)
	if err != nil {
		return nil, keyErr(id, err)
	}
	size := int64(-1)
	if n, err := strconv.ParseInt(metadata[metaSize], 10, 64); err == nil {
		size = n
	}
	d, err := newDecrypter(raw, dek, header, h.prefix, key, size, metadata[metaSHA256])
	if err != nil {
		return nil, err
	}
	return d, nil
}

// Stat describes an object (the plaintext's size and SHA-256); see
// storage.Stater.
func (s *Store) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	info, err := s.inner.Stat(ctx, key)
	return plainInfo(info), err
}

// StatVersion describes one version with its plaintext size and SHA-256;
// see storage.VersionStater.
func (s *Store) StatVersion(ctx context.Context, key, versionID string) (storage.ObjectInfo, error) {
	info, err := s.inner.StatVersion(ctx, key, versionID)
	return plainInfo(info), err
}

// listSize reports the plaintext size of a listed object: listings carry no
// metadata, so it follows from the stored size (see PlainSize).
func (s *Store) listSize(info *storage.ObjectInfo) {
	if s.Protects(info.Key) {
		if n, ok := PlainSize(info.Size, keyIDLen); ok {
			info.Size = n
		}
	}
}

// List lists objects with their plaintext sizes; see storage.Lister.
func (s *Store) List(ctx context.Context, prefix string) iter.Seq2[storage.ObjectInfo, error] {
	return func(yield func(storage.ObjectInfo, error) bool) {
		for info, err := range s.inner.List(ctx, prefix) {
			if err == nil {
				s.listSize(&info)
			}
			if !yield(info, err) {
				return
			}
		}
	}
}

// ListVersions lists versions with their plaintext sizes; see
// storage.VersionLister.
func (s *Store) ListVersions(ctx context.Context, prefix string) iter.Seq2[storage.Version, error] {
	return func(yield func(storage.Version, error) bool) {
		for v, err := range s.inner.ListVersions(ctx, prefix) {
			if err == nil && !v.DeleteMarker {
				s.listSize(&v.ObjectInfo)
			}
			if !yield(v, err) {
				return
			}
		}
	}
}

// Delete deletes an object; see storage.Deleter.
func (s *Store) Delete(ctx context.Context, key string) error { return s.inner.Delete(ctx, key) }

// DeleteVersion deletes one version; see storage.VersionDeleter.
func (s *Store) DeleteVersion(ctx context.Context, key, versionID string) error {
	return s.inner.DeleteVersion(ctx, key, versionID)
}

// DeleteAll deletes every version of an object; see storage.Eraser.
func (s *Store) DeleteAll(ctx context.Context, key string) error {
	return s.inner.DeleteAll(ctx, key)
}
