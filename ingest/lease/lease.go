package lease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Defaults for Config.
const (
	DefaultTTL   = 10 * time.Second
	DefaultRenew = 3 * time.Second
	// skewAllowance bounds how far a record's timestamp (the writer's
	// clock) is trusted when the record is read from history.
	skewAllowance = time.Second
)

// Key prefixes in the state topic.
const (
	leasePrefix   = "lease/"
	sessionPrefix = "session/"
)

// ErrHeld is returned by Acquire when another instance holds the lease.
var ErrHeld = errors.New("lease: held by another instance")

// HeldError is Acquire's error when another instance holds the lease: it
// matches ErrHeld and says until when, on this instance's clock, the lease
// lives without another renewal, so a contender can retry right then.
type HeldError struct{ Until time.Time }

func (e *HeldError) Error() string { return ErrHeld.Error() }

// Is makes errors.Is(err, ErrHeld) true.
func (e *HeldError) Is(target error) bool { return target == ErrHeld }

// Config configures a Manager.
type Config struct {
	// Instance names this instance (pod or host name). It must be unique
	// among running instances and stable across restarts: a process that
	// finds a lease held under its own instance name takes it back at once.
	Instance string
	// TTL is how long a lease lives without renewal (default 10 s); Renew
	// how often the holder renews it (default 3 s, at most TTL/3).
	TTL, Renew time.Duration
	// Logger; default slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() error {
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.Renew == 0 {
		c.Renew = DefaultRenew
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	switch {
	case c.Instance == "":
		return errors.New("lease: Instance is empty: name this instance (host or pod name)")
	case c.TTL < time.Second:
		return fmt.Errorf("lease: TTL %v is under 1s", c.TTL)
	case c.Renew <= 0 || c.Renew*3 > c.TTL:
		return fmt.Errorf("lease: Renew %v must be positive and at most TTL/3 (%v), so two renewals can fail before the lease expires", c.Renew, c.TTL/3)
	}
	return nil
}

// record is a lease record's value.
type record struct {
	Holder   string `json:"holder"`   // instance + "/" + incarnation
	Instance string `json:"instance"` // Config.Instance of the holder
	Epoch    int64  `json:"epoch"`
	TTLMS    int64  `json:"ttl_ms"`
	// Expires is the holder's own view (its clock), for people reading the
	// topic; instances judge expiry on their own clocks.
	Expires  time.Time `json:"expires"`
	Released bool      `json:"released,omitempty"`
}

// position is a record's place in the log.
type position struct {
	partition int
	offset    int64
}

// entry is the accepted state of one lease key.
type entry struct {
	rec record
	// seen is when this instance applied the record, or the record's
	// timestamp plus skewAllowance when that is earlier (history).
	seen time.Time
	// last is the timestamp of the latest accepted record; before the
	// timestamp of the latest accepted record of an earlier holder or
	// incarnation (when the lease changed hands), so a new holder can tell
	// how long the room had no bot.
	last, before time.Time
}

func (e *entry) expired(now time.Time) bool {
	return e.rec.Released || now.After(e.seen.Add(time.Duration(e.rec.TTLMS)*time.Millisecond))
}

// Session is a room's recording session as kept in the state topic.
type Session struct {
	ID     string    `json:"session"`
	Opened time.Time `json:"opened"`
	// Stays counts the bot stays in the session before the current one:
	// 0 for the first bot, 1 after one restart or takeover, ...
	Stays   int       `json:"stays"`
	Ended   bool      `json:"ended,omitempty"`
	Updated time.Time `json:"updated"`
	// Held is when the room last had a bot other than this instance's
	// current one (the latest lease record of an earlier holder), zero
	// when unknown. It is not stored: Manager.Session fills it in.
	Held time.Time `json:"-"`
}

// backend is the log the Manager writes to and reads from.
type backend interface {
	// append writes one record and returns its position once durable.
	append(ctx context.Context, key string, value []byte) (position, error)
	// waitApplied returns once every record up to pos was applied.
	waitApplied(ctx context.Context, pos position) error
	close() error
}

// Manager holds and renews leases for this instance, and keeps the table
// of every lease and session in the log. It is safe for concurrent use.
type Manager struct {
	cfg    Config
	holder string
	log    *slog.Logger
	be     backend

	mu       sync.Mutex
	leases   map[string]*entry
	sessions map[string]Session
	held     map[string]*Lease // by lease key
	closed   bool
}

func newManager(cfg Config) (*Manager, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	var nonce [6]byte
	_, _ = rand.Read(nonce[:])
	return &Manager{
		cfg:      cfg,
		holder:   cfg.Instance + "/" + hex.EncodeToString(nonce[:]),
		log:      cfg.Logger.With("component", "lease"),
		leases:   map[string]*entry{},
		sessions: map[string]Session{},
		held:     map[string]*Lease{},
	}, nil
}

// Holder is this process's holder name (instance and incarnation).
func (m *Manager) Holder() string { return m.holder }

// apply applies one record of the log, in log order per key. value nil is
// a tombstone. ts is the record's timestamp.
func (m *Manager) apply(key string, value []byte, ts time.Time) {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case strings.HasPrefix(key, leasePrefix):
		if value == nil {
			delete(m.leases, key)
			m.lostLocked(key)
			return
		}
		var r record
		if err := json.Unmarshal(value, &r); err != nil || r.Holder == "" || r.TTLMS <= 0 {
			return // not ours to understand; ignored by every instance alike
		}
		cur := m.leases[key]
		switch {
		case cur == nil:
		case r.Holder == cur.rec.Holder && r.Epoch == cur.rec.Epoch:
		case r.Epoch == cur.rec.Epoch+1:
		default:
			return
		}
		seen := now
		if !ts.IsZero() && ts.Add(skewAllowance).Before(seen) {
			seen = ts.Add(skewAllowance)
		}
		e := &entry{rec: r, seen: seen, last: ts}
		if cur != nil {
			e.before = cur.before
			if cur.rec.Holder != r.Holder {
				e.before = cur.last
			}
		}
		m.leases[key] = e
		if r.Holder != m.holder || r.Released {
			m.lostLocked(key)
		}
	case strings.HasPrefix(key, sessionPrefix):
		if value == nil {
			delete(m.sessions, key)
			return
		}
		var s Session
		if err := json.Unmarshal(value, &s); err != nil || s.ID == "" {
			return
		}
		m.sessions[key] = s
	}
}

// lostLocked tells a lease this process holds under key that it is gone.
func (m *Manager) lostLocked(key string) {
	if l := m.held[key]; l != nil {
		delete(m.held, key)
		l.markLost()
	}
}

// Acquire claims the lease on room (a pseudonym) for this process. It
// returns ErrHeld when another instance holds it. The returned Lease is
// renewed in the background until Release, or until it is lost (Lost).
func (m *Manager) Acquire(ctx context.Context, room string) (*Lease, error) {
	key := leasePrefix + room
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, errors.New("lease: manager closed")
	}
	if m.held[key] != nil {
		m.mu.Unlock()
		return nil, fmt.Errorf("lease: %s is already held by this process", key)
	}
	var epoch int64 = 1
	if cur := m.leases[key]; cur != nil {
		own := cur.rec.Instance == m.cfg.Instance // ours, or a previous incarnation's
		if !own && !cur.expired(time.Now()) {
			until := cur.seen.Add(time.Duration(cur.rec.TTLMS) * time.Millisecond)
			m.mu.Unlock()
			return nil, &HeldError{Until: until}
		}
		epoch = cur.rec.Epoch + 1
	}
	m.mu.Unlock()

	sent := time.Now()
	if err := m.write(ctx, key, epoch, false); err != nil {
		return nil, fmt.Errorf("lease: claim %s: %w", key, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := m.leases[key]
	if cur == nil || cur.rec.Holder != m.holder || cur.rec.Epoch != epoch {
		return nil, ErrHeld // another claim came first
	}
	l := &Lease{
		m: m, key: key, epoch: epoch, deadline: sent.Add(m.validFor()),
		lost: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{}),
	}
	m.held[key] = l
	go l.renew()
	return l, nil
}

// validFor is how long after sending a confirmed renewal the holder may
// still act on it: TTL less a fifth of it, for clock rates and the time
// stopping a room takes.
func (m *Manager) validFor() time.Duration { return m.cfg.TTL - m.cfg.TTL/5 }

// write appends a lease record and waits until the table has applied it.
func (m *Manager) write(ctx context.Context, key string, epoch int64, released bool) error {
	now := time.Now()
	v, err := json.Marshal(record{
		Holder: m.holder, Instance: m.cfg.Instance, Epoch: epoch,
		TTLMS: m.cfg.TTL.Milliseconds(), Expires: now.Add(m.cfg.TTL).UTC(), Released: released,
	})
	if err != nil {
		return err
	}
	pos, err := m.be.append(ctx, key, v)
	if err != nil {
		return err
	}
	return m.be.waitApplied(ctx, pos)
}

// Session returns the room's session record, with Held filled in from the
// lease table.
func (m *Manager) Session(room string) (Session, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.sessions[sessionPrefix+room]
	if !ok {
		return Session{}, false
	}
	if e := m.leases[leasePrefix+room]; e != nil {
		s.Held = e.last
		if e.rec.Holder == m.holder {
			s.Held = e.before
		}
	}
	return s, true
}

// PutSession stores the room's session record and waits until it is
// durable and applied.
func (m *Manager) PutSession(ctx context.Context, room string, s Session) error {
	s.Updated = time.Now().UTC()
	v, err := json.Marshal(s)
	if err != nil {
		return err
	}
	pos, err := m.be.append(ctx, sessionPrefix+room, v)
	if err != nil {
		return fmt.Errorf("lease: store session of %s: %w", room, err)
	}
	return m.be.waitApplied(ctx, pos)
}

// Close stops renewing every lease without releasing them (they expire
// after TTL, as after a crash) and closes the log. Release leases first
// for a clean stop. It is idempotent.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	held := make([]*Lease, 0, len(m.held))
	for k, l := range m.held {
		held = append(held, l)
		delete(m.held, k)
	}
	m.mu.Unlock()
	for _, l := range held {
		l.markLost()
		l.halt()
	}
	return m.be.close()
}

// Lease is a lease this process holds.
type Lease struct {
	m        *Manager
	key      string
	epoch    int64
	deadline time.Time // renewal goroutine's only

	lostOnce, stopOnce sync.Once
	lost, stop, done   chan struct{}
}

// Lost is closed when the lease is gone: another instance took it, or it
// could not be renewed before it would expire. The holder must stop
// recording at once.
func (l *Lease) Lost() <-chan struct{} { return l.lost }

func (l *Lease) markLost() { l.lostOnce.Do(func() { close(l.lost) }) }

func (l *Lease) halt() {
	l.stopOnce.Do(func() { close(l.stop) })
	<-l.done
}

// Release stops renewing and, if the lease is still held, releases it so
// another instance may take the room at once. It is idempotent.
func (l *Lease) Release(ctx context.Context) error {
	l.halt()
	m := l.m
	m.mu.Lock()
	mine := m.held[l.key] == l
	if mine {
		delete(m.held, l.key)
	}
	closed := m.closed
	m.mu.Unlock()
	l.markLost()
	if !mine || closed {
		return nil
	}
	if err := m.write(ctx, l.key, l.epoch, true); err != nil {
		return fmt.Errorf("lease: release %s: %w", l.key, err)
	}
	return nil
}

// renew renews the lease every Renew until halted or lost. A renewal that
// cannot be confirmed before the deadline loses the lease.
func (l *Lease) renew() {
	defer close(l.done)
	m := l.m
	t := time.NewTicker(m.cfg.Renew)
	defer t.Stop()
	expire := time.NewTimer(time.Until(l.deadline))
	defer expire.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-l.lost:
			return
		case <-expire.C:
			m.log.Warn("lease not renewed in time; giving the room up", "key", l.key)
			l.drop()
			return
		case <-t.C:
		}
		sent := time.Now()
		ctx, cancel := context.WithDeadline(context.Background(), l.deadline)
		go func() {
			select {
			case <-l.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		err := m.write(ctx, l.key, l.epoch, false)
		cancel()
		if err != nil {
			m.log.Warn("lease renewal failed", "key", l.key, "error", err)
			continue // the deadline timer decides
		}
		m.mu.Lock()
		cur := m.leases[l.key]
		ok := cur != nil && cur.rec.Holder == m.holder && cur.rec.Epoch == l.epoch && !cur.rec.Released
		m.mu.Unlock()
		if !ok {
			l.drop()
			return
		}
		l.deadline = sent.Add(m.validFor())
		if !expire.Stop() {
			select {
			case <-expire.C:
			default:
			}
		}
		expire.Reset(time.Until(l.deadline))
	}
}

// drop forgets the lease as lost.
func (l *Lease) drop() {
	m := l.m
	m.mu.Lock()
	if m.held[l.key] == l {
		delete(m.held, l.key)
	}
	m.mu.Unlock()
	l.markLost()
}
