package janus

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Config configures a Client. Only URL is required.
type Config struct {
	// URL is the HTTP API base, e.g. http://10.77.0.2:8088/janus.
	URL string
	// HTTPClient sends the requests. It must not set an overall Timeout
	// shorter than a long poll (30 s); requests are bounded by their
	// contexts instead. Default: a client of its own.
	HTTPClient *http.Client
	// LocalAddr, when set (and HTTPClient is not), is the source IP of API
	// connections. The test bed binds to its veth's host address, so a
	// request can only leave through that veth: if the namespace is gone,
	// it fails here instead of being routed elsewhere.
	LocalAddr string
	// APISecret and Token are sent with every request when set
	// (api_secret and token_auth in janus.jcfg).
	APISecret string
	Token     string
	// RequestTimeout bounds each request that has no earlier deadline.
	// Default 10 s.
	RequestTimeout time.Duration
	// KeepAlive is how often a session sends a keepalive. Janus drops a
	// session after its session_timeout (60 s by default) without traffic.
	// Default 25 s.
	KeepAlive time.Duration
	// SessionTimeout is the server's session_timeout: a session whose long
	// poll has failed for this long is declared gone. Default 60 s.
	SessionTimeout time.Duration
	// MaxEvents is how many events one long poll may return. Default 10.
	MaxEvents int
	// EventBuffer is the capacity of each handle's event channel. Default 128.
	EventBuffer int
	// Logger receives warnings (dropped events, poll failures). Default
	// slog.Default().
	Logger *slog.Logger
}

// Client talks to one Janus server over its HTTP API. It is safe for
// concurrent use and holds no goroutines itself; sessions do.
type Client struct {
	cfg  Config
	base string // without trailing slash
	http *http.Client
	log  *slog.Logger
}

// New checks cfg and returns a Client. It does not contact the server.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("janus: config URL %q must be an http(s) URL such as http://10.77.0.2:8088/janus", cfg.URL)
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 10 * time.Second
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 25 * time.Second
	}
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = 60 * time.Second
	}
	if cfg.MaxEvents <= 0 {
		cfg.MaxEvents = 10
	}
	if cfg.EventBuffer <= 0 {
		cfg.EventBuffer = 128
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	hc := cfg.HTTPClient
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		if cfg.LocalAddr != "" {
			ip := net.ParseIP(cfg.LocalAddr)
			if ip == nil {
				return nil, fmt.Errorf("janus: config LocalAddr %q is not an IP address", cfg.LocalAddr)
			}
			d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
			tr.DialContext = d.DialContext
			tr.Proxy = nil // straight to Janus through the bound address
		}
		hc = &http.Client{Transport: tr}
	}
	return &Client{
		cfg:  cfg,
		base: strings.TrimRight(cfg.URL, "/"),
		http: hc,
		log:  cfg.Logger.With("component", "janus"),
	}, nil
}

// URL returns the API base URL.
func (c *Client) URL() string { return c.base }

// ServerInfo is the reply to GET /info.
type ServerInfo struct {
	Name           string                `json:"name"`
	Version        int                   `json:"version"`
	VersionString  string                `json:"version_string"`
	ServerName     string                `json:"server-name"`
	SessionTimeout int                   `json:"session-timeout"`
	LocalIP        string                `json:"local-ip"`
	FullTrickle    bool                  `json:"full-trickle"`
	Plugins        map[string]PluginInfo `json:"plugins"`
	Transports     map[string]PluginInfo `json:"transports"`
}

// PluginInfo describes a loaded plugin or transport.
type PluginInfo struct {
	Name          string `json:"name"`
	Description   string `json:"description"`
	VersionString string `json:"version_string"`
	Version       int    `json:"version"`
}

// Info asks the server what it is and which plugins it runs.
func (c *Client) Info(ctx context.Context) (*ServerInfo, error) {
	body, err := c.do(ctx, http.MethodGet, "/info", nil, c.cfg.RequestTimeout)
	if err != nil {
		return nil, fmt.Errorf("janus: info: %w", err)
	}
	ev, err := ParseEvent(body)
	if err != nil {
		return nil, fmt.Errorf("janus: info: %w", err)
	}
	if ev.Kind == KindError && ev.Error != nil {
		return nil, fmt.Errorf("janus: info: %w", ev.Error)
	}
	if ev.Kind != KindServerInfo {
		return nil, fmt.Errorf("janus: info: unexpected reply %q", ev.Kind)
	}
	var info ServerInfo
	if err := json.Unmarshal(body, &info); err != nil {
		return nil, fmt.Errorf("janus: info: %w", err)
	}
	return &info, nil
}

// request sends a Janus API request (POST) to path and returns the reply,
// turning {"janus":"error"} into *Error.
func (c *Client) request(ctx context.Context, path string, req map[string]any) (*Event, error) {
	if _, ok := req["transaction"]; !ok {
		req["transaction"] = newTransaction()
	}
	if c.cfg.APISecret != "" {
		req["apisecret"] = c.cfg.APISecret
	}
	if c.cfg.Token != "" {
		req["token"] = c.cfg.Token
	}
	payload, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	body, err := c.do(ctx, http.MethodPost, path, payload, c.cfg.RequestTimeout)
	if err != nil {
		return nil, err
	}
	ev, err := ParseEvent(body)
	if err != nil {
		return nil, err
	}
	if ev.Kind == KindError {
		if ev.Error == nil {
			return nil, &Error{Code: CodeUnknown, Reason: "error without details"}
		}
		return nil, ev.Error
	}
	return ev, nil
}

// maxBody bounds what we read from Janus: long polls carry SDPs, a few KB
// each, times MaxEvents.
const maxBody = 16 << 20

func (c *Client) do(ctx context.Context, method, path string, payload []byte, timeout time.Duration) ([]byte, error) {
	if _, ok := ctx.Deadline(); !ok && timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("read reply: %w", err)
	}
	if len(body) > maxBody {
		return nil, fmt.Errorf("reply larger than %d bytes", maxBody)
	}
	if resp.StatusCode != http.StatusOK {
		// Janus answers API errors with a JSON body even on non-200 codes.
		if ev, perr := ParseEvent(body); perr == nil && ev.Error != nil {
			return nil, ev.Error
		}
		if resp.StatusCode == http.StatusNotFound {
			return nil, fmt.Errorf("HTTP %s from %s %s: %w", resp.Status, method, path, errNotFound)
		}
		return nil, fmt.Errorf("HTTP %s from %s %s", resp.Status, method, path)
	}
	return body, nil
}

// errNotFound marks an HTTP 404 without a Janus error body: Janus's answer
// to a request on a session path it does not know.
var errNotFound = errors.New("not found")

// CreateSession creates a Janus session and starts its long-poll and
// keepalive loops. Close it when done.
func (c *Client) CreateSession(ctx context.Context) (*Session, error) {
	ev, err := c.request(ctx, "", map[string]any{"janus": "create"})
	if err != nil {
		return nil, fmt.Errorf("janus: create session: %w", err)
	}
	id, err := replyID(ev)
	if err != nil {
		return nil, fmt.Errorf("janus: create session: %w", err)
	}
	return startSession(c, id), nil
}

// replyID reads data.id of a "success" reply (create, attach).
func replyID(ev *Event) (uint64, error) {
	if ev.Kind != KindSuccess {
		return 0, fmt.Errorf("unexpected reply %q", ev.Kind)
	}
	var d struct {
		ID uint64 `json:"id"`
	}
	if err := json.Unmarshal(ev.Data, &d); err != nil || d.ID == 0 {
		return 0, errors.New("reply has no id")
	}
	return d.ID, nil
}

func newTransaction() string {
	var b [9]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

func sessionPath(id uint64) string { return "/" + strconv.FormatUint(id, 10) }

func handlePath(sid, hid uint64) string { return sessionPath(sid) + "/" + strconv.FormatUint(hid, 10) }
