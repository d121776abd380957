package serve

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Signed links let a notification (webhook, chat message) point a
// moderator at one alert's evidence without a long-lived credential and
// without ever exposing an object-store URL. A link token is
//
//	<expiry unix seconds>.<base64url HMAC-SHA256(key, "earshot-evidence-link\x00" alert "\x00" expiry)>
//
// so it is bound to one alert and stops working at its expiry. Every
// process that mints or checks links reads the same key file
// (serve.link_secret_file).

// Link errors (wrapped by Verify).
var (
	ErrLinkInvalid = errors.New("serve: link token is invalid")
	ErrLinkExpired = errors.New("serve: link token has expired")
)

// linkKeyBytes is the size of a generated link key.
const linkKeyBytes = 32

// LinkSigner mints and checks signed evidence links. It is safe for
// concurrent use.
type LinkSigner struct {
	key  []byte
	base string // public URL without a trailing slash
	ttl  time.Duration
	now  func() time.Time
}

// NewLinkSigner returns a signer for links under publicURL (e.g.
// https://earshot.example.org) valid for ttl.
func NewLinkSigner(key []byte, publicURL string, ttl time.Duration) (*LinkSigner, error) {
	if len(key) < 16 {
		return nil, errors.New("serve: link key is shorter than 16 bytes")
	}
	if ttl <= 0 {
		return nil, errors.New("serve: link TTL must be positive")
	}
	u, err := url.Parse(publicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("serve: public URL %q is not an http(s) base URL", publicURL)
	}
	return &LinkSigner{key: append([]byte(nil), key...), base: strings.TrimRight(publicURL, "/"), ttl: ttl, now: time.Now}, nil
}

// Link returns the signed evidence link for an alert and when it expires:
// <public_url>/evidence/<alert>?t=<token>. Notifiers put this, and only
// this, in what they send.
func (s *LinkSigner) Link(alertID string) (string, time.Time) {
	exp := s.now().Add(s.ttl).Truncate(time.Second)
	return s.base + "/evidence/" + url.PathEscape(alertID) + "?t=" + s.Token(alertID, exp), exp
}

// ConsoleLink returns the signed link to an alert's console page and when
// it expires: <public_url>/console/alerts/<alert>?t=<token>. The page
// shows that alert (transcript, audio) without a session, and no action.
// The token is the same as Link's: bound to the alert, short-lived.
func (s *LinkSigner) ConsoleLink(alertID string) (string, time.Time) {
	exp := s.now().Add(s.ttl).Truncate(time.Second)
	return s.base + "/console/alerts/" + url.PathEscape(alertID) + "?t=" + s.Token(alertID, exp), exp
}

// Token returns the link token for an alert valid until exp.
func (s *LinkSigner) Token(alertID string, exp time.Time) string {
	e := strconv.FormatInt(exp.Unix(), 10)
	return e + "." + base64.RawURLEncoding.EncodeToString(s.mac(alertID, e))
}

func (s *LinkSigner) mac(alertID, exp string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte("earshot-evidence-link\x00" + alertID + "\x00" + exp))
	return m.Sum(nil)
}

// Verify checks that token grants access to alertID now.
func (s *LinkSigner) Verify(alertID, token string) error {
	e, sig, ok := strings.Cut(token, ".")
	if !ok || len(e) == 0 || len(e) > 12 {
		return ErrLinkInvalid
	}
	exp, err := strconv.ParseInt(e, 10, 64)
	if err != nil {
		return ErrLinkInvalid
	}
	got, err := base64.RawURLEncoding.Strict().DecodeString(sig) // one encoding per token
	if err != nil || !hmac.Equal(got, s.mac(alertID, e)) {
		return ErrLinkInvalid
	}
	if !s.now().Before(time.Unix(exp, 0)) {
		return ErrLinkExpired
	}
	// A token valid far beyond the TTL was not minted by this signer's
	// settings (or the key leaked together with a clock far ahead).
	if time.Unix(exp, 0).After(s.now().Add(s.ttl + time.Minute)) {
		return ErrLinkInvalid
	}
	return nil
}

// LoadOrCreateLinkKey reads the hex link key at path, creating it (and its
// folder, mode 0700; the file 0600) with a random key when it does not
// exist.
func LoadOrCreateLinkKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key := make([]byte, linkKeyBytes)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("serve: link key: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("serve: link key: %w", err)
		}
		// Written aside, then linked into place: a concurrent reader never
		// sees a half-written key, and of two processes creating it at once
		// one wins and the other reads the winner's.
		tmp, err := os.CreateTemp(filepath.Dir(path), ".links-key-*")
		if err != nil {
			return nil, fmt.Errorf("serve: link key: %w", err)
		}
		defer os.Remove(tmp.Name())
		_, werr := tmp.WriteString(hex.EncodeToString(key) + "\n")
		if err := errors.Join(werr, tmp.Chmod(0o600), tmp.Sync(), tmp.Close()); err != nil {
			return nil, fmt.Errorf("serve: write link key %s: %w", path, err)
		}
		if err := os.Link(tmp.Name(), path); errors.Is(err, os.ErrExist) {
			return LoadOrCreateLinkKey(path)
		} else if err != nil {
			return nil, fmt.Errorf("serve: link key: %w", err)
		}
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("serve: link key: %w", err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) < 16 {
		return nil, fmt.Errorf("serve: link key %s is not at least 16 hex-encoded bytes", path)
	}
	return key, nil
}

// One-time sign-in links let an operator's first session (or the demo's)
// start from a link instead of a typed token. The token is
//
//	<expiry unix seconds>.<nonce>.<base64url HMAC-SHA256(key, "earshot-signin\x00" operator "\x00" expiry "\x00" nonce)>
//
// so any process holding the link key can mint one (earshot console
// link); the server that takes it remembers its nonce until it expires,
// so it works once.

// maxSignInTTL bounds a one-time sign-in link's life.
const maxSignInTTL = time.Hour

// SignInLink returns a one-time sign-in link for operator valid for ttl
// (at most an hour).
func (s *LinkSigner) SignInLink(operator string, ttl time.Duration) string {
	ttl = min(ttl, maxSignInTTL)
	exp := strconv.FormatInt(s.now().Add(ttl).Unix(), 10)
	nonce := rand.Text()
	tok := exp + "." + nonce + "." + base64.RawURLEncoding.EncodeToString(s.signInMAC(operator, exp, nonce))
	return s.base + "/console/signin/once?" + url.Values{"op": {operator}, "c": {tok}}.Encode()
}

func (s *LinkSigner) signInMAC(operator, exp, nonce string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte("earshot-signin\x00" + operator + "\x00" + exp + "\x00" + nonce))
	return m.Sum(nil)
}

// verifySignIn checks a one-time sign-in token for operator and returns
// its nonce and expiry.
func (s *LinkSigner) verifySignIn(operator, token string) (string, time.Time, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 || len(parts[0]) == 0 || len(parts[0]) > 12 || len(parts[1]) == 0 || len(parts[1]) > 64 {
		return "", time.Time{}, ErrLinkInvalid
	}
	exp, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil {
		return "", time.Time{}, ErrLinkInvalid
	}
	got, err := base64.RawURLEncoding.Strict().DecodeString(parts[2])
	if err != nil || !hmac.Equal(got, s.signInMAC(operator, parts[0], parts[1])) {
		return "", time.Time{}, ErrLinkInvalid
	}
	e := time.Unix(exp, 0)
	if !s.now().Before(e) {
		return "", time.Time{}, ErrLinkExpired
	}
	if e.After(s.now().Add(maxSignInTTL + time.Minute)) {
		return "", time.Time{}, ErrLinkInvalid
	}
	return parts[1], e, nil
}
