package serve

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/netip"
	"sync"
	"time"
)

// ConsoleConfig configures the moderator console's sign-in and sessions.
type ConsoleConfig struct {
	// Idle ends a session unused for this long (default 30 min).
	Idle time.Duration
	// MaxAge ends a session this long after sign-in (default 12 h).
	MaxAge time.Duration
	// ProxyHeader, when set, names the request header in which a reverse
	// proxy in front of an identity provider names the signed-in operator.
	// It is believed only from ProxyNets.
	ProxyHeader string
	ProxyNets   []netip.Prefix
	// Secure marks the session cookie Secure even on plain-HTTP requests
	// (TLS terminated by a proxy in front; set when the public URL is
	// https). Requests over TLS always get a Secure cookie.
	Secure bool
	// MaxSessions bounds the sessions held (default 10000); past it the
	// least recently used is ended.
	MaxSessions int
}

// Session cookie and form field names.
const (
	sessionCookie = "earshot_session"
	csrfField     = "csrf"
	csrfHeader    = "X-CSRF-Token"
)

// session is one signed-in browser. Only the SHA-256 of its cookie is the
// map key, so the table holds no working cookie.
type consoleSession struct {
	key     [32]byte
	op      Operator
	via     string // "token", "proxy" or "link" (one-time sign-in link)
	csrf    string
	created time.Time
	seen    time.Time
}

// SessionInfo describes a session for the admin's sessions page (no
// cookie, no CSRF token).
type SessionInfo struct {
	ID       string // hex of the first 8 bytes of the cookie's hash
	Operator string
	Role     string
	Via      string
	Created  time.Time
	Seen     time.Time
}

// sessions holds the console's sessions in memory: a restart signs
// everybody out, which is the safe direction.
type sessions struct {
	mu     sync.Mutex
	cfg    ConsoleConfig
	now    func() time.Time
	m      map[[32]byte]*consoleSession
	used   map[string]time.Time // one-time sign-in nonces taken, until they expire
	onceMu sync.Mutex
}

func newSessions(cfg ConsoleConfig, now func() time.Time) *sessions {
	if cfg.Idle <= 0 {
		cfg.Idle = 30 * time.Minute
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = 12 * time.Hour
	}
	if cfg.MaxAge < cfg.Idle {
		cfg.MaxAge = cfg.Idle
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = 10000
	}
	return &sessions{cfg: cfg, now: now, m: map[[32]byte]*consoleSession{}, used: map[string]time.Time{}}
}

// randomToken returns 256 random bits as text.
func randomToken() string { return rand.Text() + rand.Text() }

// create starts a session for op and returns its cookie value.
func (ss *sessions) create(op Operator, via string) (string, *consoleSession) {
	cookie := randomToken()
	now := ss.now()
	s := &consoleSession{key: sha256.Sum256([]byte(cookie)), op: op, via: via, csrf: randomToken(), created: now, seen: now}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for len(ss.m) >= ss.cfg.MaxSessions {
		var oldest *consoleSession
		for _, o := range ss.m {
			if oldest == nil || o.seen.Before(oldest.seen) {
				oldest = o
			}
		}
		delete(ss.m, oldest.key)
	}
	ss.m[s.key] = s
	return cookie, s
}

// get returns the live session of a cookie value and marks it used, or
// the reason there is none (the session is then ended).
func (ss *sessions) get(cookie string) (consoleSession, string) {
	if cookie == "" {
		return consoleSession{}, "no session"
	}
	k := sha256.Sum256([]byte(cookie))
	now := ss.now()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.m[k]
	switch {
	case !ok:
		return consoleSession{}, "unknown session"
	case now.Sub(s.created) >= ss.cfg.MaxAge:
		delete(ss.m, k)
		return consoleSession{}, "session expired (absolute timeout)"
	case now.Sub(s.seen) >= ss.cfg.Idle:
		delete(ss.m, k)
		return consoleSession{}, "session expired (idle timeout)"
	}
	s.seen = now
	return *s, ""
}

// end ends the session of a cookie value.
func (ss *sessions) end(cookie string) {
	k := sha256.Sum256([]byte(cookie))
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.m, k)
}

// endByID ends the session SessionInfo.ID names; it reports whether one
// was.
func (ss *sessions) endByID(id string) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for k := range ss.m {
		if hex.EncodeToString(k[:8]) == id {
			delete(ss.m, k)
			return true
		}
	}
	return false
}

// list returns the live sessions.
func (ss *sessions) list() []SessionInfo {
	now := ss.now()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	var out []SessionInfo
	for k, s := range ss.m {
		if now.Sub(s.created) >= ss.cfg.MaxAge || now.Sub(s.seen) >= ss.cfg.Idle {
			delete(ss.m, k)
			continue
		}
		out = append(out, SessionInfo{ID: hex.EncodeToString(k[:8]), Operator: s.op.Name, Role: s.op.Role, Via: s.via, Created: s.created, Seen: s.seen})
	}
	return out
}

// validCSRF compares a request's CSRF token with the session's in
// constant time.
func (s consoleSession) validCSRF(got string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) == 1
}

// useOnce records a one-time sign-in nonce as used until exp; it
// reports false when it already was.
func (ss *sessions) useOnce(nonce string, exp time.Time) bool {
	ss.onceMu.Lock()
	defer ss.onceMu.Unlock()
	now := ss.now()
	for k, e := range ss.used {
		if !now.Before(e) {
			delete(ss.used, k)
		}
	}
	if _, ok := ss.used[nonce]; ok {
		return false
	}
	ss.used[nonce] = exp
	return true
}

// fromProxy reports whether a request's remote address is one of the
// trusted proxy's.
func (c ConsoleConfig) fromProxy(remoteAddr string) bool {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return false
	}
	a := ap.Addr().Unmap()
	for _, p := range c.ProxyNets {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
