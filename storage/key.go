package storage

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Limits on keys and metadata, shared by both stores so that a key or a
// metadata map accepted by one is accepted by the other.
const (
	// MaxKeyBytes is S3's limit on key length.
	MaxKeyBytes = 1024
	// MaxSegmentBytes limits each '/'-separated segment of a key, so that
	// keys map onto file names (255 bytes on common file systems) in the
	// local store and in file-system-backed S3 servers such as versitygw.
	MaxSegmentBytes = 200
	// MaxMetadataBytes limits user metadata (keys plus values), leaving room
	// for the store's own sha256 entry within S3's 2 KB.
	MaxMetadataBytes = 1900
	// maxMetadataKeyBytes limits one metadata key.
	maxMetadataKeyBytes = 128
)

// ValidateKey reports whether key is a valid object key: non-empty UTF-8 of
// at most MaxKeyBytes bytes; '/'-separated segments that are neither empty
// (so no leading, trailing or doubled '/') nor "." or ".." and have at most
// MaxSegmentBytes bytes; no backslash, NUL or other control character
// (S3 lists keys in XML, which cannot carry most of them). The error wraps
// ErrInvalidKey and says which rule the key breaks.
func ValidateKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	}
	if len(key) > MaxKeyBytes {
		return fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidKey, len(key), MaxKeyBytes)
	}
	if err := checkKeyChars(key); err != nil {
		return err
	}
	if key[0] == '/' {
		return fmt.Errorf("%w: leading '/'", ErrInvalidKey)
	}
	for seg := range strings.SplitSeq(key, "/") {
		if err := checkSegment(seg); err != nil {
			return err
		}
	}
	return nil
}

func checkKeyChars(s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: not valid UTF-8", ErrInvalidKey)
	}
	for _, r := range s {
		switch {
		case r == '\\':
			return fmt.Errorf("%w: backslash", ErrInvalidKey)
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			return fmt.Errorf("%w: control character %U", ErrInvalidKey, r)
		}
	}
	return nil
}

func checkSegment(seg string) error {
	switch {
	case seg == "":
		return fmt.Errorf("%w: empty segment (leading, trailing or doubled '/')", ErrInvalidKey)
	case seg == "." || seg == "..":
		return fmt.Errorf("%w: %q segment", ErrInvalidKey, seg)
	case len(seg) > MaxSegmentBytes:
		return fmt.Errorf("%w: segment of %d bytes, more than %d", ErrInvalidKey, len(seg), MaxSegmentBytes)
	}
	return nil
}

// validatePrefix checks a listing prefix: any leading part of a valid key.
// It reports whether any valid key can start with prefix at all (a prefix
// with a ".." segment cannot match anything and lists nothing).
func validatePrefix(prefix string) (matchable bool, err error) {
	if prefix == "" {
		return true, nil
	}
	if len(prefix) > MaxKeyBytes {
		return false, fmt.Errorf("%w: prefix of %d bytes, more than %d", ErrInvalidKey, len(prefix), MaxKeyBytes)
	}
	if err := checkKeyChars(prefix); err != nil {
		return false, err
	}
	segs := strings.Split(prefix, "/")
	for _, seg := range segs[:len(segs)-1] { // the last one may be partial
		if checkSegment(seg) != nil {
			return false, nil
		}
	}
	return len(segs[len(segs)-1]) <= MaxSegmentBytes, nil
}

// validateMetadata checks user metadata against the rules documented on
// PutOptions.Metadata. Errors name the offending key but never a value.
func validateMetadata(md map[string]string) error {
	total := 0
	for k, v := range md {
		total += len(k) + len(v)
		if k == "" || len(k) > maxMetadataKeyBytes {
			return fmt.Errorf("%w: key %q must have 1 to %d bytes", ErrInvalidMetadata, k, maxMetadataKeyBytes)
		}
		for i := 0; i < len(k); i++ {
			c := k[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("%w: key %q: only lower-case ASCII letters, digits and '-'", ErrInvalidMetadata, k)
			}
		}
		if k == metaSHA256 {
			return fmt.Errorf("%w: key %q is reserved for the store", ErrInvalidMetadata, k)
		}
		for i := 0; i < len(v); i++ {
			if v[i] < 0x20 || v[i] > 0x7e {
				return fmt.Errorf("%w: value of %q: only printable ASCII", ErrInvalidMetadata, k)
			}
		}
		if strings.TrimSpace(v) != v {
			return fmt.Errorf("%w: value of %q: leading or trailing space", ErrInvalidMetadata, k)
		}
	}
	if total > MaxMetadataBytes {
		return fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidMetadata, total, MaxMetadataBytes)
	}
	return nil
}

// validateSHA256 checks the optional hex digest a caller passes in PutOptions
// and returns it in lower case.
func validateSHA256(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		return "", errors.New("PutOptions.SHA256 is not 64 hex digits")
	}
	return hex.EncodeToString(b), nil
}

// ValidatePut checks a Put's arguments (key, metadata, SHA256, size and
// context) as both stores do before touching anything, and returns
// PutOptions.SHA256 in lower case. Stores that wrap another store (package
// crypt) call it to fail early, before any work of their own.
func ValidatePut(ctx context.Context, key string, size int64, opts PutOptions) (string, error) {
	return checkPut(ctx, key, size, opts)
}

// checkPut validates a Put's arguments, as both stores do before touching
// anything, and returns PutOptions.SHA256 in lower case.
func checkPut(ctx context.Context, key string, size int64, opts PutOptions) (string, error) {
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	if err := validateMetadata(opts.Metadata); err != nil {
		return "", err
	}
	want, err := validateSHA256(opts.SHA256)
	if err != nil {
		return "", err
	}
	if size < -1 {
		return "", fmt.Errorf("negative size %d", size)
	}
	return want, ctx.Err()
}

// startList validates a listing's prefix and context. It returns false when
// the listing is over before it began: nothing can match the prefix, or an
// error (already yielded) stops it.
func startList[T any](ctx context.Context, op, prefix string, yield func(T, error) bool) bool {
	matchable, err := validatePrefix(prefix)
	if err == nil && matchable {
		err = ctx.Err()
	}
	if err != nil {
		var zero T
		yield(zero, opErr(op, prefix, err))
		return false
	}
	return matchable
}
