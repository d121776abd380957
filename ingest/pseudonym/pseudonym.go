// Package pseudonym turns room-server identities into stable pseudonyms at
// the ingest boundary: HMAC-SHA256 under a deployment secret, with the key
// version in the pseudonym so the secret can be rotated.
//
// A pseudonym is the same across rooms, so a repeat offender stays linkable
// and erasure by person reaches every room, yet without the secret nobody
// can go from pseudonym back to identity or test a guessed identity.
package pseudonym

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// MinSecretBytes is the shortest secret accepted: 256 bits, the HMAC-SHA256
// block strength.
const MinSecretBytes = 32

// Kinds of identity. Each is hashed under its own domain, so a room and a
// person with the same raw ID never share a pseudonym.
const (
	KindPerson = "p"
	KindRoom   = "r"
)

var enc = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Pseudonymizer derives pseudonyms. It is safe for concurrent use.
type Pseudonymizer struct {
	version int
	secret  []byte
	older   map[int][]byte // earlier key versions, to find old pseudonyms for erasure
}

// New returns a Pseudonymizer for secret at key version (>= 1).
func New(secret []byte, version int) (*Pseudonymizer, error) {
	if len(secret) < MinSecretBytes {
		return nil, fmt.Errorf("pseudonym: secret is %d bytes; use at least %d random bytes (earshot writes one with `earshot keygen`)", len(secret), MinSecretBytes)
	}
	if version < 1 {
		return nil, fmt.Errorf("pseudonym: key version %d must be >= 1", version)
	}
	return &Pseudonymizer{version: version, secret: append([]byte(nil), secret...), older: map[int][]byte{}}, nil
}

// AddOlder registers a retired secret so All can list pseudonyms made
// under it (erasure must reach data pseudonymised before a rotation).
func (p *Pseudonymizer) AddOlder(secret []byte, version int) error {
	if version < 1 || version == p.version {
		return fmt.Errorf("pseudonym: older key version %d must be >= 1 and differ from the current %d", version, p.version)
	}
	if len(secret) < MinSecretBytes {
		return fmt.Errorf("pseudonym: older secret v%d is %d bytes; need %d", version, len(secret), MinSecretBytes)
	}
	p.older[version] = append([]byte(nil), secret...)
	return nil
}

// Version is the current key version.
func (p *Pseudonymizer) Version() int { return p.version }

// Person returns the pseudonym of a participant identity.
func (p *Pseudonymizer) Person(identity string) string {
	return derive(p.secret, p.version, KindPerson, identity)
}

// Room returns the pseudonym of a room ID.
func (p *Pseudonymizer) Room(id string) string {
	return derive(p.secret, p.version, KindRoom, id)
}

// All returns the pseudonyms of identity under every known key version,
// current first: what erasure by person must look for.
func (p *Pseudonymizer) All(kind, identity string) []string {
	out := []string{derive(p.secret, p.version, kind, identity)}
	for v, s := range p.older {
		out = append(out, derive(s, v, kind, identity))
	}
	return out
}

// Resolve turns what an operator typed (a raw ID, or already a
// pseudonym of kind) into the pseudonyms data may be stored under: the
// pseudonym itself, or the raw ID's under every key version.
func (p *Pseudonymizer) Resolve(kind, id string) []string {
	if IsPseudonym(kind, id) {
		return []string{id}
	}
	return p.All(kind, id)
}

// ResolveCurrent is Resolve for the current key version only: the
// pseudonym itself, or the raw ID's pseudonym today.
func (p *Pseudonymizer) ResolveCurrent(kind, id string) string {
	if IsPseudonym(kind, id) {
		return id
	}
	return derive(p.secret, p.version, kind, id)
}

// derive computes "<kind><version>_<base32(HMAC(secret, kind NUL identity))>".
// 20 bytes of the MAC (160 bits) keep collisions out of reach.
func derive(secret []byte, version int, kind, identity string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(kind))
	m.Write([]byte{0})
	m.Write([]byte(identity))
	return kind + strconv.Itoa(version) + "_" + enc.EncodeToString(m.Sum(nil)[:20])
}

// IsPseudonym reports whether s has the shape of a pseudonym of kind, so
// `erase --person` can take either an identity or a pseudonym.
func IsPseudonym(kind, s string) bool {
	head, body, ok := strings.Cut(s, "_")
	if !ok || !strings.HasPrefix(head, kind) || len(body) != 32 {
		return false
	}
	if v, err := strconv.Atoi(head[len(kind):]); err != nil || v < 1 {
		return false
	}
	_, err := enc.DecodeString(body)
	return err == nil
}

// LoadSecret reads a hex-encoded secret from path.
func LoadSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pseudonym: read secret: %w", err)
	}
	s, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("pseudonym: secret file %s is not hex: %w", path, err)
	}
	return s, nil
}

// LoadOrCreateSecret reads the secret at path, or creates a new random one
// there (mode 0600) when the file does not exist. Only the embedded default
// setup uses this; production points at a managed secret.
func LoadOrCreateSecret(path string) ([]byte, error) {
	s, err := LoadSecret(path)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		return s, err
	}
	s = make([]byte, MinSecretBytes)
	if _, err := rand.Read(s); err != nil {
		return nil, fmt.Errorf("pseudonym: generate secret: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("pseudonym: create secret folder: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) { // created concurrently: use that one
			return LoadSecret(path)
		}
		return nil, fmt.Errorf("pseudonym: create secret: %w", err)
	}
	_, werr := f.WriteString(hex.EncodeToString(s) + "\n")
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return nil, fmt.Errorf("pseudonym: write secret: %w", err)
	}
	return s, nil
}
