package config

import (
	"encoding/hex"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
	"time"
)

// Serve configures the evidence and alert-action HTTP API (earshot serve).
type Serve struct {
	// Listen is host:port for the API; empty disables it. Keep it on
	// loopback or behind a TLS-terminating proxy: tokens travel in headers
	// and links.
	Listen string `yaml:"listen"`
	// PublicURL is the base URL notification links point at (what
	// moderators' browsers reach, e.g. https://earshot.example.org).
	// Default http://<listen>.
	PublicURL string `yaml:"public_url"`
	// Operators are the staff members allowed to use the API, each with a
	// bearer token. Give token_file (a file holding the token) or
	// token_sha256 (hex SHA-256 of the token, so the configuration holds
	// no secret). YAML only (a list of entries).
	Operators []Operator `yaml:"operators"`
	// LinkSecretFile holds the HMAC key of signed evidence links; created
	// on first start when missing. Default <data_dir>/secrets/links.key.
	LinkSecretFile string `yaml:"link_secret_file"`
	// LinkTTL is how long a signed link stays valid (default 15m).
	LinkTTL time.Duration `yaml:"link_ttl"`
	// EvidenceContext widens an alert's audio window on each side
	// (default 10s).
	EvidenceContext time.Duration `yaml:"evidence_context"`
	// MaxAlerts bounds the in-memory alert index (oldest dropped first;
	// default 100000).
	MaxAlerts int `yaml:"max_alerts"`
	// Console configures the moderator console's sign-in and sessions.
	Console Console `yaml:"console"`
}

// Console configures the moderator console (the web pages under
// /console/ that earshot serve also serves).
type Console struct {
	// SessionIdle ends a session nobody used for this long (default 30m).
	SessionIdle time.Duration `yaml:"session_idle"`
	// SessionMax ends every session this long after sign-in (default 12h:
	// one shift).
	SessionMax time.Duration `yaml:"session_max"`
	// ProxyHeader, when set, signs in the operator a reverse proxy in
	// front of an identity provider names in this request header (e.g.
	// X-Forwarded-User). Off by default; trusted only from ProxyCIDRs.
	ProxyHeader string `yaml:"proxy_header"`
	// ProxyCIDRs are the address ranges of that proxy.
	ProxyCIDRs []string `yaml:"proxy_cidrs"`
}

// Operator is one member of staff who may use the API.
type Operator struct {
	Name        string `yaml:"name"`
	TokenFile   string `yaml:"token_file"`
	TokenSHA256 string `yaml:"token_sha256"`
	// Role is moderator (alerts and evidence; the default), compliance
	// (plus holds, exports, the audit log) or admin (plus sessions).
	Role string `yaml:"role"`
	// Rooms, when set, limits the operator to these rooms (raw room IDs
	// as the room server names them, or room pseudonyms): they see
	// nothing of any other room.
	Rooms []string `yaml:"rooms"`
}

// Operator roles.
const (
	RoleModerator  = "moderator"
	RoleCompliance = "compliance"
	RoleAdmin      = "admin"
)

func defaultServe() Serve {
	return Serve{
		Listen:          "127.0.0.1:8470",
		LinkTTL:         15 * time.Minute,
		EvidenceContext: 10 * time.Second,
		MaxAlerts:       100000,
		Console:         Console{SessionIdle: 30 * time.Minute, SessionMax: 12 * time.Hour},
	}
}

// validate reports every problem of the section through bad.
func (x *Serve) validate(bad func(key, format string, a ...any)) {
	if x.Listen != "" && !hostPort.MatchString(x.Listen) {
		bad("serve.listen", "%q is not host:port (e.g. 127.0.0.1:8470; empty disables the API)", x.Listen)
	}
	if x.PublicURL != "" {
		u, err := url.Parse(x.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			bad("serve.public_url", "%q is not an http(s) base URL like https://earshot.example.org", x.PublicURL)
		}
	}
	if x.LinkTTL < time.Minute || x.LinkTTL > 24*time.Hour {
		bad("serve.link_ttl", "%v must be between 1m and 24h (links are meant to be short-lived; 15m is a good value)", x.LinkTTL)
	}
	if x.EvidenceContext < 0 || x.EvidenceContext > 5*time.Minute {
		bad("serve.evidence_context", "%v must be between 0 and 5m", x.EvidenceContext)
	}
	if x.MaxAlerts < 100 {
		bad("serve.max_alerts", "%d must be at least 100", x.MaxAlerts)
	}
	c := x.Console
	if c.SessionIdle < time.Minute || c.SessionIdle > 24*time.Hour {
		bad("serve.console.session_idle", "%v must be between 1m and 24h", c.SessionIdle)
	}
	if c.SessionMax < c.SessionIdle || c.SessionMax > 7*24*time.Hour {
		bad("serve.console.session_max", "%v must be at least session_idle (%v) and at most 168h", c.SessionMax, c.SessionIdle)
	}
	if c.ProxyHeader != "" && len(c.ProxyCIDRs) == 0 {
		bad("serve.console.proxy_cidrs", "proxy_header is set but no proxy_cidrs: list the reverse proxy's address ranges (a header from anywhere else is ignored)")
	}
	if c.ProxyHeader == "" && len(c.ProxyCIDRs) > 0 {
		bad("serve.console.proxy_header", "proxy_cidrs is set but proxy_header is empty; name the header the proxy sets, or drop proxy_cidrs")
	}
	for _, cidr := range c.ProxyCIDRs {
		if _, err := netip.ParsePrefix(cidr); err != nil {
			bad("serve.console.proxy_cidrs", "%q is not an address range like 10.0.0.0/24", cidr)
		}
	}
	seen := map[string]bool{}
	for i, op := range x.Operators {
		key := "serve.operators"
		switch op.Role {
		case "", RoleModerator, RoleCompliance, RoleAdmin:
		default:
			bad(key, "operator %q: role %q is not moderator, compliance or admin", op.Name, op.Role)
		}
		for _, r := range op.Rooms {
			if strings.TrimSpace(r) == "" {
				bad(key, "operator %q: an entry of rooms is empty", op.Name)
			}
		}
		switch {
		case strings.TrimSpace(op.Name) == "":
			bad(key, "entry %d has no name; name the member of staff (it is recorded in the audit log)", i)
		case seen[op.Name]:
			bad(key, "operator %q is listed twice; give each member of staff one entry", op.Name)
		}
		seen[op.Name] = true
		switch {
		case op.TokenFile == "" && op.TokenSHA256 == "":
			bad(key, "operator %q has neither token_file nor token_sha256; set one (token_sha256 is the hex SHA-256 of the token)", op.Name)
		case op.TokenFile != "" && op.TokenSHA256 != "":
			bad(key, "operator %q has both token_file and token_sha256; keep one", op.Name)
		case op.TokenSHA256 != "":
			if b, err := hex.DecodeString(op.TokenSHA256); err != nil || len(b) != 32 {
				bad(key, "operator %q: token_sha256 is not 64 hex digits (use: printf %%s TOKEN | sha256sum)", op.Name)
			}
		}
	}
}

// resolvePaths fills path defaults under dataDir.
func (x *Serve) resolvePaths(dataDir string) {
	if x.LinkSecretFile == "" {
		x.LinkSecretFile = filepath.Join(dataDir, "secrets", "links.key")
	}
	if x.PublicURL == "" && x.Listen != "" {
		x.PublicURL = "http://" + x.Listen
	}
	x.PublicURL = strings.TrimRight(x.PublicURL, "/")
	for i := range x.Operators {
		if x.Operators[i].Role == "" {
			x.Operators[i].Role = RoleModerator
		}
	}
}
