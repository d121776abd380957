package config

import (
	"fmt"
	"path/filepath"
	"time"
)

// Crypto configures envelope encryption of speech and identity data (package
// crypt): a key-encryption key (KEK) from a local file wraps the data keys,
// which live in object storage next to the data.
type Crypto struct {
	// KEKFile holds the KEK: 32 random bytes as 64 hex digits, mode 0600.
	// Default <data_dir>/secrets/kek.key. Losing it makes every recording
	// unreadable; back it up apart from the object store.
	KEKFile string `yaml:"kek_file"`
	// CreateKEK writes a new KEK when KEKFile is missing (embedded and
	// single-machine runs). Production sets it false and provisions the
	// file, so a missing mount fails at start instead of starting a new key
	// under which nothing stored earlier can be read.
	CreateKEK bool `yaml:"create_kek"`
	// KeyCacheTTL is how long an unwrapped data key stays in memory. It is
	// also how long another process may still use a key after it was
	// shredded (erasure). 0 disables the cache (every seal and open reads
	// the wrapped key from storage).
	KeyCacheTTL time.Duration `yaml:"key_cache_ttl"`
	// PreviousKEKFiles are KEKs being rotated out: data keys they wrapped
	// are still unwrapped with them, new keys are wrapped by KEKFile. After
	// `earshot keys rewrap` has moved every key to KEKFile, remove them
	// (docs/privacy.md, "Rotating the KEK"). Never created.
	PreviousKEKFiles []string `yaml:"previous_kek_files"`
}

// maxKeyCacheTTL bounds KeyCacheTTL: a shredded key must stop working in
// every process within minutes, not hours.
const maxKeyCacheTTL = time.Hour

func defaultCrypto() Crypto {
	return Crypto{CreateKEK: true, KeyCacheTTL: time.Minute}
}

// validate reports every problem of the section through bad.
func (x *Crypto) validate(bad func(key, format string, a ...any)) {
	if x.KEKFile == "" {
		bad("crypto.kek_file", "is empty; point it at the deployment's key-encryption key (64 hex digits, mode 0600)")
	}
	for i, f := range x.PreviousKEKFiles {
		switch {
		case f == "":
			bad(fmt.Sprintf("crypto.previous_kek_files[%d]", i), "is empty; list the files of the KEKs being rotated out, or remove the entry")
		case filepath.Clean(f) == filepath.Clean(x.KEKFile):
			bad(fmt.Sprintf("crypto.previous_kek_files[%d]", i), "%q is crypto.kek_file itself; list only the KEKs being rotated out", f)
		}
	}
	if x.KeyCacheTTL < 0 || x.KeyCacheTTL > maxKeyCacheTTL {
		bad("crypto.key_cache_ttl", "%v is outside [0, %v]: a shredded key stays usable in other processes for this long; 1m is a good value, 0 disables the cache", x.KeyCacheTTL, maxKeyCacheTTL)
	}
}

// resolvePaths fills path defaults under dataDir.
func (x *Crypto) resolvePaths(dataDir string) {
	if x.KEKFile == "" {
		x.KEKFile = filepath.Join(dataDir, "secrets", "kek.key")
	}
}
