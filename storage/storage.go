// Package storage keeps Earshot's objects (Ogg/Opus segments, manifests,
// transcripts, evidence) in one of two stores with the same behaviour: a
// local directory (the embedded default) and S3 through minio-go.
//
// Both stores compute the SHA-256 of every object on write and keep it with
// the object; readers verify it as they stream. Keys are deterministic names
// chosen by the caller (see [ValidateKey]); a create-only put
// ([PutOptions.IfAbsent]) lets a restarted writer retry an upload without
// ever overwriting what an earlier run stored.
//
// The interfaces here are small so that consumers can name exactly what they
// use; [Store] is the whole contract that the conformance suite in
// storage/storagetest checks for every implementation.
package storage

import (
	"context"
	"errors"
	"io"
	"iter"
	"strconv"
	"time"
)

// Sentinel errors. Every error a store returns is an [*Error] naming the
// operation and the key; test for the cause with errors.Is.
var (
	// ErrNotFound: the key (or version) does not exist.
	ErrNotFound = errors.New("object not found")
	// ErrExists: a create-only put found the key already taken.
	ErrExists = errors.New("object already exists")
	// ErrInvalidKey: the key breaks the rules of ValidateKey.
	ErrInvalidKey = errors.New("invalid key")
	// ErrInvalidMetadata: user metadata breaks the rules of PutOptions.Metadata.
	ErrInvalidMetadata = errors.New("invalid metadata")
	// ErrChecksum: the bytes do not match their SHA-256 or size, on write
	// (PutOptions.SHA256 or a short reader) or on read (corruption).
	ErrChecksum = errors.New("checksum mismatch")
	// ErrUnavailable: the store could not be reached (network, DNS, refused).
	// The operation may succeed later; the error names the endpoint.
	ErrUnavailable = errors.New("store unavailable")
	// ErrLocked: the object version is protected (S3 object lock retention or
	// legal hold) and cannot be deleted yet.
	ErrLocked = errors.New("object is locked")
	// ErrErased: the object's data key was destroyed (crypto-shredding,
	// package crypt), so it can never be stored or read again. Writers drop
	// such data instead of retrying.
	ErrErased = errors.New("data erased (its key was destroyed)")
)

// Error is the error type of every store operation. Its message carries the
// operation and the key, never metadata values (which may be personal data).
type Error struct {
	Op  string // "put", "get", "stat", "list", "delete", ...
	Key string // the key or prefix; empty when the operation has none
	Err error
}

func (e *Error) Error() string {
	if e.Key == "" {
		return "storage: " + e.Op + ": " + e.Err.Error()
	}
	return "storage: " + e.Op + " " + strconv.Quote(e.Key) + ": " + e.Err.Error()
}

// Unwrap returns the cause, so errors.Is finds the sentinels.
func (e *Error) Unwrap() error { return e.Err }

func opErr(op, key string, err error) error {
	if err == nil {
		return nil
	}
	var se *Error
	if errors.As(err, &se) && se.Op == op && se.Key == key {
		return err
	}
	return &Error{Op: op, Key: key, Err: err}
}

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Key string
	// Size in bytes.
	Size int64
	// SHA256 is the lower-case hex SHA-256 of the content, computed when the
	// object was written. Empty in listings, and for objects that another
	// writer put into S3 without it.
	SHA256 string
	// ContentType defaults to application/octet-stream. Empty in listings.
	ContentType string
	// Metadata is the user metadata given to Put (lower-case keys); nil in
	// listings and when there is none.
	Metadata map[string]string
	// ModTime is when the object was written. For S3 Put it is the client's
	// clock at completion (the server's time would cost a round trip); Stat,
	// Get and List report the server's.
	ModTime time.Time
	// VersionID is the version this information is about, when the store
	// keeps versions (S3 with versioning); empty otherwise.
	VersionID string
}

// Version is one entry of a version listing: an object version or a delete
// marker.
type Version struct {
	ObjectInfo
	// IsLatest marks the current version of the key.
	IsLatest bool
	// DeleteMarker marks a tombstone left by Delete in a versioned bucket.
	DeleteMarker bool
}

// NullVersion is the version ID of the only version of an object in a store
// (or S3 bucket) without versioning, as version listings report it.
const NullVersion = "null"

// PutOptions tune a Put.
type PutOptions struct {
	// ContentType of the object; application/octet-stream when empty.
	ContentType string
	// Metadata is user metadata with S3 semantics: keys of lower-case ASCII
	// letters, digits and '-' (at most 128 bytes, not "sha256", which the
	// store uses itself); values of printable ASCII without leading or
	// trailing spaces. Keys and values together take at most
	// MaxMetadataBytes. Do not put personal data here unpseudonymised.
	Metadata map[string]string
	// IfAbsent makes the put create-only: when the key exists the put fails
	// with ErrExists and leaves the stored object untouched. Of several
	// concurrent create-only puts of one key, exactly one succeeds.
	IfAbsent bool
	// SHA256 is the hex SHA-256 of the content when the caller already knows
	// it (e.g. from its spool). The store then checks the bytes against it
	// (ErrChecksum on mismatch, nothing stored) and, for S3, can stream the
	// reader without a first pass to hash it.
	SHA256 string
}

// Putter stores objects.
type Putter interface {
	// Put stores size bytes read from r under key (size -1: read to EOF).
	// A reader that yields fewer or more bytes than size fails the put with
	// ErrChecksum; a failed put leaves no partial object. On ErrExists the
	// returned ObjectInfo describes the object already stored, when the
	// store could read it, so the caller can compare SHA256.
	Put(ctx context.Context, key string, r io.Reader, size int64, opts PutOptions) (ObjectInfo, error)
}

// Getter reads objects.
type Getter interface {
	// Get opens the object for reading. The reader verifies size and SHA-256
	// as it streams: the Read that reaches the end returns ErrChecksum
	// instead of io.EOF when the content does not match. The caller closes
	// the reader.
	Get(ctx context.Context, key string) (io.ReadCloser, ObjectInfo, error)
}

// Stater describes objects without reading them.
type Stater interface {
	Stat(ctx context.Context, key string) (ObjectInfo, error)
}

// Lister lists objects.
type Lister interface {
	// List yields the objects whose keys start with prefix, in lexical
	// (byte) order of their keys, with Key, Size and ModTime set. An error
	// ends the sequence. Stopping early is fine.
	List(ctx context.Context, prefix string) iter.Seq2[ObjectInfo, error]
}

// Deleter deletes objects.
type Deleter interface {
	// Delete removes the key; deleting a missing key is not an error. In a
	// versioned S3 bucket it leaves a delete marker and keeps older versions:
	// use Eraser to remove them.
	Delete(ctx context.Context, key string) error
}

// VersionLister lists every version of objects, delete markers included.
type VersionLister interface {
	// ListVersions yields the versions of keys starting with prefix, by key
	// in lexical order, newest first within a key. A store without versions
	// yields each object once, as IsLatest with VersionID NullVersion.
	ListVersions(ctx context.Context, prefix string) iter.Seq2[Version, error]
}

// VersionDeleter deletes one version.
type VersionDeleter interface {
	// DeleteVersion removes one version (or delete marker) of key for good.
	// versionID is one ListVersions reported; deleting a version that is
	// already gone is not an error.
	DeleteVersion(ctx context.Context, key, versionID string) error
}

// Eraser removes an object with its whole history.
type Eraser interface {
	// DeleteAll removes every version and delete marker of key, so nothing of
	// it remains (erasure). It is idempotent; it fails with ErrLocked while a
	// version is under retention or legal hold.
	DeleteAll(ctx context.Context, key string) error
}

// VersionStater describes one version of an object, metadata included:
// what a version listing leaves out.
type VersionStater interface {
	// StatVersion describes version versionID of key, one ListVersions
	// reported (NullVersion in a store without versions). A delete marker,
	// or a version that is gone, is ErrNotFound.
	StatVersion(ctx context.Context, key, versionID string) (ObjectInfo, error)
}

// Store is the whole contract of an object store, as storagetest checks it.
// Consumers should depend on the narrow interfaces they use instead.
type Store interface {
	Putter
	Getter
	Stater
	Lister
	Deleter
	VersionLister
	VersionStater
	VersionDeleter
	Eraser
}

// defaultContentType is what S3 assumes for objects put without one.
const defaultContentType = "application/octet-stream"

// metaSHA256 is the user-metadata key under which stores keep the hex
// SHA-256 of the content.
const metaSHA256 = "sha256"
