// Package audit keeps Earshot's append-only audit log: every decrypt,
// evidence access, export, erasure and hold change is an event.AuditEntry,
// stored create-only under audit/<seq>.json and published on earshot.audit.
//
// Entries form a hash chain (Prev is the Hash of entry Seq-1, Hash the
// SHA-256 of the entry with Hash empty), so Verify detects an entry that was
// removed or edited.
//
// One writer per deployment is the simple case, and the only one that keeps
// Seq gap-free under load: the compliance stage, or one CLI run at a time.
// Several writers are safe, though: New reads the chain head from storage,
// and a writer that loses the create-only race for the next Seq reads the
// winner's entry, moves its head there and tries again.
package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/storage"
)

// Prefix is where entries live in object storage.
const Prefix = "audit/"

// seqDigits zero-pads Seq in keys so that they list in chain order.
const seqDigits = 20

// Key returns the object key of entry seq.
func Key(seq int64) string { return fmt.Sprintf("%s%0*d.json", Prefix, seqDigits, seq) }

// parseKey returns the Seq an entry key names.
func parseKey(key string) (int64, bool) {
	s, ok := strings.CutPrefix(key, Prefix)
	if !ok {
		return 0, false
	}
	s, ok = strings.CutSuffix(s, ".json")
	if !ok || len(s) != seqDigits {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n > 0
}

// Outcomes of an audited action (AuditEntry.Outcome).
const (
	OutcomeOK       = "ok"
	OutcomeDenied   = "denied"
	OutcomeDeferred = "deferred"
	OutcomeFailed   = "failed"
)

// Actions Earshot records (AuditEntry.Action).
const (
	ActionDecrypt  = "decrypt"
	ActionEvidence = "evidence.read"
	ActionExport   = "export"
	ActionErase    = "erase"
	ActionHoldSet  = "hold.set"
	ActionHoldLift = "hold.lift"
	ActionRewrap   = "keys.rewrap"
)

// Recorder is what other packages use to audit an action. The log fills
// Seq, Time, Prev and Hash.
type Recorder interface {
	Record(ctx context.Context, e event.AuditEntry) error
}

// Store is the part of object storage the log uses.
type Store interface {
	storage.Putter
	storage.Getter
	storage.Lister
}

// Config configures a Log.
type Config struct {
	// Store keeps the entries. Required.
	Store Store
	// Sender publishes each entry on earshot.audit; nil stores only (the
	// embedded evaluation broker, or tools without Kafka).
	Sender bus.Sender
	// Topic defaults to event.TopicAudit.
	Topic string
	// Producer names this process in the envelopes.
	Producer event.Producer
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Now defaults to time.Now (tests pin it).
	Now func() time.Time
	// StoreTimeout bounds each store call made while holding the chain
	// (default 30 s): a hung store fails one entry instead of blocking
	// every access waiting to be audited.
	StoreTimeout time.Duration
}

// Log appends to the chain. It is safe for concurrent use.
type Log struct {
	cfg Config
	log *slog.Logger

	mu   sync.Mutex
	seq  int64  // Seq of the head, 0 for an empty chain
	hash string // Hash of the head
}

var _ Recorder = (*Log)(nil)

// New opens the log at the head of the chain found in storage.
func New(ctx context.Context, cfg Config) (*Log, error) {
	if cfg.Store == nil {
		return nil, errors.New("audit: no store configured")
	}
	if cfg.Topic == "" {
		cfg.Topic = event.TopicAudit
	}
	if cfg.Producer.Name == "" {
		cfg.Producer.Name = "earshot"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.StoreTimeout <= 0 {
		cfg.StoreTimeout = 30 * time.Second
	}
	l := &Log{cfg: cfg, log: cfg.Logger}
	if l.log == nil {
		l.log = slog.Default()
	}
	var last string
	for oi, err := range cfg.Store.List(ctx, Prefix) {
		if err != nil {
			return nil, fmt.Errorf("audit: find chain head: %w", err)
		}
		if _, ok := parseKey(oi.Key); ok {
			last = oi.Key
		}
	}
	if last != "" {
		e, err := read(ctx, cfg.Store, last)
		if err != nil {
			return nil, fmt.Errorf("audit: read chain head: %w", err)
		}
		l.seq, l.hash = e.Seq, e.Hash
	}
	return l, nil
}

// Head returns the Seq and Hash of the newest entry this log knows.
func (l *Log) Head() (int64, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seq, l.hash
}

// maxRaces bounds how often Record retries after losing the race for a Seq.
const maxRaces = 100

// Record appends e to the chain: stored first (create-only, the record of
// truth), then published. A failed publish is returned but the entry stays
// in the chain.
func (l *Log) Record(ctx context.Context, e event.AuditEntry) error {
	if e.Action == "" || e.Outcome == "" {
		return fmt.Errorf("audit: record: action and outcome are required (got %q, %q)", e.Action, e.Outcome)
	}
	if e.Operator == "" {
		e.Operator = "system"
	}
	// Fields can come from outside (a request's path, an operator's
	// reason): bounded, no entry can grow past what readers accept.
	e = e.Bounded()
	l.mu.Lock()
	var stored event.AuditEntry
	for race := 0; ; race++ {
		if race == maxRaces {
			l.mu.Unlock()
			return fmt.Errorf("audit: record %s: lost the race for the next entry %d times; is a writer looping?", e.Action, maxRaces)
		}
		n := e
		n.Seq, n.Prev, n.Time, n.Hash = l.seq+1, l.hash, l.cfg.Now().UTC(), ""
		n.Hash = Hash(n)
		b, err := json.Marshal(n)
		if err != nil {
			l.mu.Unlock()
			return fmt.Errorf("audit: encode entry: %w", err)
		}
		sctx, cancel := context.WithTimeout(ctx, l.cfg.StoreTimeout)
		_, err = l.cfg.Store.Put(sctx, Key(n.Seq), bytes.NewReader(b), int64(len(b)), storage.PutOptions{
			ContentType: "application/json", IfAbsent: true,
		})
		if errors.Is(err, storage.ErrExists) {
			// Another writer took this Seq: move the head to its entry.
			w, rerr := read(sctx, l.cfg.Store, Key(n.Seq))
			cancel()
			if rerr != nil {
				l.mu.Unlock()
				return fmt.Errorf("audit: record %s: read entry %d written concurrently: %w", e.Action, n.Seq, rerr)
			}
			l.seq, l.hash = w.Seq, w.Hash
			continue
		}
		cancel()
		if err != nil {
			l.mu.Unlock()
			return fmt.Errorf("audit: record %s: %w", e.Action, err)
		}
		l.seq, l.hash = n.Seq, n.Hash
		stored = n
		break
	}
	l.mu.Unlock()
	if l.cfg.Sender == nil {
		return nil
	}
	return l.publish(ctx, stored)
}

func (l *Log) publish(ctx context.Context, e event.AuditEntry) error {
	env, err := Envelope(l.cfg.Producer, e)
	if err != nil {
		return err
	}
	b, err := env.Marshal()
	if err != nil {
		return fmt.Errorf("audit: publish entry %d: %w", e.Seq, err)
	}
	key := e.Subject
	if key == "" {
		key = e.Action
	}
	if err := l.cfg.Sender.Produce(ctx, bus.Message{Topic: l.cfg.Topic, Key: []byte(key), Value: b}); err != nil {
		return fmt.Errorf("audit: publish entry %d (stored as %s): %w", e.Seq, Key(e.Seq), err)
	}
	return nil
}

// Envelope wraps an entry as the event.TypeAudit event published on
// earshot.audit. Its ID follows from the entry's Seq and Hash.
func Envelope(prod event.Producer, e event.AuditEntry) (*event.Envelope, error) {
	env, err := event.New(event.TypeAudit, prod, nil, "", "", "", nil, e, "audit", strconv.FormatInt(e.Seq, 10), e.Hash)
	if err != nil {
		return nil, fmt.Errorf("audit: envelope for entry %d: %w", e.Seq, err)
	}
	env.Time = e.Time
	return env, nil
}

// Hash returns the hex SHA-256 over the canonical encoding of e with Hash
// empty: encoding/json of event.AuditEntry, whose field order is fixed and
// whose Time is written in UTC with nanoseconds (RFC 3339).
func Hash(e event.AuditEntry) string {
	e.Hash = ""
	e.Time = e.Time.UTC()
	b, _ := json.Marshal(e) // cannot fail: strings, ints and a time
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// maxEntryBytes bounds one stored entry; real ones are a few hundred bytes.
const maxEntryBytes = 64 << 10

// Decode parses one stored entry.
func Decode(b []byte) (event.AuditEntry, error) {
	var e event.AuditEntry
	if len(b) > maxEntryBytes {
		return e, fmt.Errorf("entry of %d bytes, over %d", len(b), maxEntryBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return e, fmt.Errorf("not an audit entry: %w", err)
	}
	if dec.More() {
		return e, errors.New("trailing data after the entry")
	}
	return e, nil
}

func read(ctx context.Context, s storage.Getter, key string) (event.AuditEntry, error) {
	rc, _, err := s.Get(ctx, key)
	if err != nil {
		return event.AuditEntry{}, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxEntryBytes+1))
	if err != nil {
		return event.AuditEntry{}, err
	}
	return Decode(b)
}

// ChainError names the first entry where the chain breaks.
type ChainError struct {
	Seq     int64  // the entry's sequence number
	Key     string // its object key
	Problem string // what is wrong: missing, altered, out of place...
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("audit: chain broken at entry %d (%s): %s", e.Seq, e.Key, e.Problem)
}

// Report summarises a verified chain.
type Report struct {
	Entries int64  // entries checked, 1..Entries
	Head    string // Hash of the last entry
}

// VerifyOptions anchor a verification. A chain alone cannot show that its
// newest entries were cut off; an anchor kept elsewhere (the last entry
// read from earshot.audit, or one noted at an earlier check) can.
type VerifyOptions struct {
	// MinEntries fails the check when the chain is shorter.
	MinEntries int64
	// Anchors are entries known from elsewhere (Seq and Hash); each must be
	// in the chain unchanged.
	Anchors []event.AuditEntry
}

// Verify walks the chain in storage from entry 1 and returns the first
// break as a *ChainError: a missing entry (a gap in the sequence), one that
// does not parse, whose Hash does not match its content or whose Prev does
// not match the entry before.
func Verify(ctx context.Context, s Store, opts ...VerifyOptions) (Report, error) {
	var o VerifyOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	anchors := map[int64]string{}
	for _, a := range o.Anchors {
		anchors[a.Seq] = a.Hash
	}
	var (
		rep  Report
		prev string
	)
	for key, err := range keys(ctx, s) {
		if err != nil {
			return rep, fmt.Errorf("audit: verify: %w", err)
		}
		want := rep.Entries + 1
		seq, ok := parseKey(key)
		if !ok {
			return rep, &ChainError{Seq: want, Key: key, Problem: "an object under audit/ that is not an entry key"}
		}
		if seq != want {
			return rep, &ChainError{Seq: want, Key: Key(want), Problem: fmt.Sprintf("missing (the next stored entry is %d)", seq)}
		}
		e, err := read(ctx, s, key)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			return rep, &ChainError{Seq: seq, Key: key, Problem: "missing (listed but not readable)"}
		case err != nil:
			return rep, &ChainError{Seq: seq, Key: key, Problem: err.Error()}
		case e.Seq != seq:
			return rep, &ChainError{Seq: seq, Key: key, Problem: fmt.Sprintf("holds entry %d", e.Seq)}
		case Hash(e) != e.Hash:
			return rep, &ChainError{Seq: seq, Key: key, Problem: "altered (its hash does not match its content)"}
		case e.Prev != prev:
			return rep, &ChainError{Seq: seq, Key: key, Problem: "does not follow the entry before (prev hash differs)"}
		}
		if h, ok := anchors[seq]; ok && h != e.Hash {
			return rep, &ChainError{Seq: seq, Key: key, Problem: "differs from the anchor kept elsewhere"}
		}
		delete(anchors, seq)
		prev = e.Hash
		rep.Entries, rep.Head = seq, e.Hash
	}
	if len(anchors) > 0 {
		seq := slices.Min(slices.Collect(maps.Keys(anchors)))
		return rep, &ChainError{Seq: seq, Key: Key(seq), Problem: "missing (an anchor kept elsewhere names it; the chain was cut)"}
	}
	if rep.Entries < o.MinEntries {
		n := rep.Entries + 1
		return rep, &ChainError{Seq: n, Key: Key(n), Problem: fmt.Sprintf("missing (expected at least %d entries)", o.MinEntries)}
	}
	return rep, nil
}

func keys(ctx context.Context, s storage.Lister) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		for oi, err := range s.List(ctx, Prefix) {
			if !yield(oi.Key, err) || err != nil {
				return
			}
		}
	}
}

// Entries yields the stored entries in chain order, without checking them
// (Verify does).
func Entries(ctx context.Context, s Store) iter.Seq2[event.AuditEntry, error] {
	return func(yield func(event.AuditEntry, error) bool) {
		for key, err := range keys(ctx, s) {
			if err != nil {
				yield(event.AuditEntry{}, err)
				return
			}
			if _, ok := parseKey(key); !ok {
				continue
			}
			e, err := read(ctx, s, key)
			if err != nil {
				err = fmt.Errorf("audit: read %s: %w", key, err)
			}
			if !yield(e, err) || err != nil {
				return
			}
		}
	}
}
