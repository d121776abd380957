package spool

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/fsync"
	"github.com/earshot/earshot/storage"
)

// Defaults for Config.
const (
	// DefaultMaxBytes bounds the segment bytes waiting in the spool: about
	// 10 minutes of 30 s segments for 1,000 speakers at 32 kbit/s, far more
	// than a store outage the uploader is meant to ride out.
	DefaultMaxBytes = 4 << 30
	// DefaultMaxEntries bounds the number of entries (folders in pending/).
	DefaultMaxEntries = 200_000
)

// Folder and file names inside the spool.
const (
	pendingDir   = "pending"
	conflictsDir = "conflicts"
	rejectedDir  = "rejected"
	tmpDir       = "tmp"
	lockName     = "lock"
	dataFile     = "segment.ogg"
	descFile     = "descriptor.json"
	reasonFile   = "reason.txt"
	// nameDigits is the width of entry names (nanoseconds since 1970).
	nameDigits = 20
)

var (
	// ErrFull is returned when a segment would take the spool over its
	// configured bounds. The recorder decides what to do (usually: drop the
	// segment and count it); the spool never evicts what it holds.
	ErrFull = errors.New("spool full")
	// ErrClosed is returned by operations on a closed spool.
	ErrClosed = errors.New("spool closed")
	// ErrInvalidSegment is returned by Put and Commit for a Segment that
	// cannot be spooled (missing or malformed fields, checksum mismatch).
	ErrInvalidSegment = errors.New("invalid segment")
	// errGone: the entry left pending/ meanwhile (uploaded or moved aside).
	errGone = errors.New("spool entry gone")
)

// Config configures a Spool.
type Config struct {
	// Dir is the spool folder; created when missing.
	Dir string
	// Producer is written into each spooled event (the recording process).
	Producer event.Producer
	// MaxBytes bounds the segment bytes in the spool, counting segments
	// being written; 0 means DefaultMaxBytes, negative means no bound.
	MaxBytes int64
	// MaxEntries bounds the entries waiting; 0 means DefaultMaxEntries,
	// negative means no bound.
	MaxEntries int
	// Logger receives a line for each entry moved aside; slog.Default()
	// when nil.
	Logger *slog.Logger
	// Sealer encrypts every entry under its speaker's data key as it is
	// written (package crypt's Keyring), so speech never rests on this disk
	// in the clear, and erasing a speaker makes their waiting segments
	// unreadable here too (the uploader then drops them). Nil keeps
	// plaintext: for tests and tools without keys.
	Sealer Sealer
	// KeepAside is how long entries moved to conflicts/ or rejected/ are
	// kept for an operator before ExpireAside deletes them (default 30
	// days).
	KeepAside time.Duration
}

// Sealer seals and opens spool entries (crypt.Keyring implements it).
type Sealer interface {
	// SealTo returns a writer that encrypts into w under ref's data key,
	// bound to name; Close writes the final part.
	SealTo(ctx context.Context, ref event.KeyRef, name string, w io.Writer) (io.WriteCloser, error)
	// OpenFrom returns the plaintext of r; a destroyed key fails with
	// event.ErrKeyDestroyed.
	OpenFrom(ctx context.Context, ref event.KeyRef, name string, r io.Reader) (io.Reader, error)
}

// DefaultKeepAside is Config.KeepAside's default.
const DefaultKeepAside = 30 * 24 * time.Hour

// keyTimeout bounds a Sealer's key lookups (the keyring may read or
// create a wrapped key in object storage).
const keyTimeout = 30 * time.Second

// Segment is what the recorder knows about a finished segment. It carries
// pseudonyms only: room, session, speaker and track must be ID-shaped (see
// the package documentation); display names and raw identities have no
// place here.
type Segment struct {
	Room, Session string
	// Speaker is the speaker's pseudonym; empty for a room-wide mix.
	Speaker  string
	Timeline event.Timeline
	// Seq is the segment number on the track, from 0.
	Seq int64
	// PreSkip is OpusHead's pre-skip.
	PreSkip int
	// GapSamples counts samples filled with silence.
	GapSamples int64
	// KeyID names the data key the audio is encrypted under, if any.
	KeyID string
	// Recorded, when set, is hops.recorded: when the last sample's packet
	// reached the bot.
	Recorded time.Time
	// SHA256, when set, is the hex SHA-256 the recorder computed; Commit
	// refuses bytes that do not match it.
	SHA256 string
}

// Entry is a complete spooled segment.
type Entry struct {
	// Name is the entry's folder under pending/. Names sort in commit order.
	Name string
	Descriptor
}

// Usage is how much the spool holds.
type Usage struct {
	Entries int   // entries waiting in pending/
	Bytes   int64 // their segment bytes
	Writing int64 // bytes of segments being written (counted against MaxBytes)
}

// Spool is a folder of segments waiting for upload. It is safe for
// concurrent use; one process at a time may open a folder.
type Spool struct {
	dir, pending, tmp string
	producer          event.Producer
	sealer            Sealer
	keepAside         time.Duration
	maxBytes          int64
	maxEntries        int
	log               *slog.Logger
	lock              *os.File
	notify            chan struct{}
	rejected          atomic.Int64

	mu      sync.Mutex
	closed  bool
	last    int64            // newest entry name, as a number
	sizes   map[string]int64 // pending entry name -> segment bytes
	bytes   int64            // sum of sizes
	writing int64            // bytes written by open Writers
}

// Open opens (creating if needed) the spool folder, takes its lock, removes
// leftovers of writes and removals a crash interrupted, and moves entries
// it cannot read to rejected/.
func Open(cfg Config) (*Spool, error) {
	if cfg.Dir == "" {
		return nil, errors.New("spool: open: empty folder path")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("spool: open %s: %w", cfg.Dir, err)
	}
	s := &Spool{
		dir:        dir,
		pending:    filepath.Join(dir, pendingDir),
		tmp:        filepath.Join(dir, tmpDir),
		producer:   cfg.Producer,
		sealer:     cfg.Sealer,
		keepAside:  cmp.Or(cfg.KeepAside, DefaultKeepAside),
		maxBytes:   cmp.Or(cfg.MaxBytes, DefaultMaxBytes),
		maxEntries: cmp.Or(cfg.MaxEntries, DefaultMaxEntries),
		log:        cmp.Or(cfg.Logger, slog.Default()),
		notify:     make(chan struct{}, 1),
		sizes:      map[string]int64{},
	}
	for _, d := range []string{dir, s.pending, s.tmp, filepath.Join(dir, conflictsDir), filepath.Join(dir, rejectedDir)} {
		if err := fsync.MkdirAll(d); err != nil {
			return nil, s.fsErr("open", err)
		}
	}
	if s.lock, err = lockDir(filepath.Join(dir, lockName)); err != nil {
		return nil, fmt.Errorf("spool: open %s: %w", dir, err)
	}
	if err := s.recover(); err != nil {
		s.lock.Close()
		return nil, err
	}
	return s, nil
}

// recover empties tmp/ (half-written entries and interrupted removals) and
// loads the sizes of the pending entries.
func (s *Spool) recover() error {
	leftovers, err := os.ReadDir(s.tmp)
	if err != nil {
		return s.fsErr("open", err)
	}
	for _, e := range leftovers {
		if err := os.RemoveAll(filepath.Join(s.tmp, e.Name())); err != nil {
			return s.fsErr("open: remove leftover", err)
		}
	}
	if len(leftovers) > 0 {
		s.log.Info("spool: removed leftovers of interrupted writes", "spool", s.dir, "count", len(leftovers))
	}
	// scan moves unreadable entries aside and reports the good ones; no
	// entry is in flight yet, so every name is loaded.
	err = s.scan(nil, func(e Entry) bool {
		s.sizes[e.Name] = e.Size
		s.bytes += e.Size
		n, _ := strconv.ParseInt(e.Name, 10, 64)
		s.last = max(s.last, n)
		return true
	})
	if err != nil {
		return fmt.Errorf("spool: open: %w", err)
	}
	return nil
}

// Dir returns the spool folder.
func (s *Spool) Dir() string { return s.dir }

// Usage reports what the spool holds.
func (s *Spool) Usage() Usage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Usage{Entries: len(s.sizes), Bytes: s.bytes, Writing: s.writing}
}

// Rejected counts entries moved to rejected/ since Open.
func (s *Spool) Rejected() int64 { return s.rejected.Load() }

// Close releases the spool's lock. Entries stay on disk for the next Open.
// Stop the uploader first: once the lock is released another process may
// take the folder over. It is idempotent.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.lock.Close()
}

// Put spools a segment whose bytes r yields: Create, copy, Commit. The
// segment is checked before anything is written.
func (s *Spool) Put(seg Segment, r io.Reader) (Entry, error) {
	if err := checkSegment(seg); err != nil {
		return Entry{}, fmt.Errorf("spool: put: %w", err)
	}
	w, err := s.Create(segmentRef(seg))
	if err != nil {
		return Entry{}, err
	}
	if _, err := io.Copy(w, r); err != nil {
		w.Abort()
		return Entry{}, fmt.Errorf("spool: put %s: %w", event.SegmentKey(seg.Room, seg.Session, seg.Timeline), err)
	}
	return w.Commit(seg)
}

// segmentRef is the data key reference of a segment's speaker (the
// session key for a room's mix).
func segmentRef(seg Segment) event.KeyRef {
	return event.KeyRef{ID: event.KeyID(seg.Session, seg.Speaker), Room: seg.Room, Session: seg.Session, Speaker: seg.Speaker}
}

// Create starts a segment of the speaker ref names (room, session and
// speaker pseudonyms) whose bytes are streamed in with Write; Commit
// publishes it, Abort discards it. This matches the recorder's segment
// sink, which learns a segment's end only after writing its bytes. With a
// Sealer the bytes are encrypted before they reach the disk.
func (s *Spool) Create(ref event.KeyRef) (*Writer, error) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("spool %s: create: %w", s.dir, ErrClosed)
	}
	dir, err := os.MkdirTemp(s.tmp, "w-")
	if err != nil {
		return nil, s.fsErr("create", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, dataFile), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		os.RemoveAll(dir)
		return nil, s.fsErr("create", err)
	}
	w := &Writer{s: s, dir: dir, f: f, h: sha256.New(), ref: ref, out: &countWriter{w: f}}
	if s.sealer != nil {
		// The seal is bound to a name of the entry's own, kept in its
		// descriptor: sealed bytes cannot be passed off as another entry's.
		w.sealName = "spool-" + filepath.Base(dir) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
		ctx, cancel := context.WithTimeout(context.Background(), keyTimeout)
		defer cancel()
		if w.sw, err = s.sealer.SealTo(ctx, ref, w.sealName, w.out); err != nil {
			f.Close()
			os.RemoveAll(dir)
			return nil, fmt.Errorf("spool %s: create: seal under the speaker's key: %w", s.dir, err)
		}
	}
	return w, nil
}

// countWriter counts the bytes that reach the segment file.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Writer streams one segment into the spool. It is not safe for concurrent
// use. Exactly one of Commit or Abort ends it; both are safe to call again
// afterwards (Abort then does nothing).
type Writer struct {
	s        *Spool
	dir      string // tmp/w-*: becomes pending/<name> on Commit
	f        *os.File
	out      *countWriter   // f, counted
	sw       io.WriteCloser // the sealing writer over out; nil without a Sealer
	sealName string
	ref      event.KeyRef
	h        hash.Hash // of the plaintext
	n        int64     // bytes written (plaintext)
	reserved int64     // bytes counted in s.writing
	err      error     // sticky write error
	done     bool
}

// Write appends p to the segment. It fails with ErrFull when the spool
// would exceed MaxBytes, and with an error naming the spool folder when the
// disk is full; the caller then aborts.
func (w *Writer) Write(p []byte) (int, error) {
	switch {
	case w.done:
		return 0, fmt.Errorf("spool %s: write after commit or abort", w.s.dir)
	case w.err != nil:
		return 0, w.err
	}
	if w.n+int64(len(p)) > MaxSegmentBytes {
		w.err = fmt.Errorf("spool %s: %w: a segment over %d bytes", w.s.dir, ErrFull, MaxSegmentBytes)
		return 0, w.err
	}
	if err := w.s.reserve(int64(len(p))); err != nil {
		w.err = err
		return 0, err
	}
	w.reserved += int64(len(p))
	var dst io.Writer = w.out
	if w.sw != nil {
		dst = w.sw
	}
	n, err := dst.Write(p)
	w.h.Write(p[:n])
	w.n += int64(n)
	if err != nil {
		w.err = w.s.fsErr("write", err)
		return n, w.err
	}
	return n, nil
}

// Abort discards the segment's bytes.
func (w *Writer) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.f.Close()
	os.RemoveAll(w.dir)
	w.s.unreserve(w.reserved)
}

// Commit makes the segment durable and publishes it as a pending entry: the
// bytes and the descriptor are fsynced in a temporary folder that one
// rename moves into pending/. On error nothing is published and the
// writer's bytes are discarded.
func (w *Writer) Commit(seg Segment) (Entry, error) {
	if w.done {
		return Entry{}, fmt.Errorf("spool %s: commit after commit or abort", w.s.dir)
	}
	e, err := w.commit(seg)
	if err != nil {
		w.Abort()
		return Entry{}, err
	}
	return e, nil
}

func (w *Writer) commit(seg Segment) (Entry, error) {
	s := w.s
	if w.err != nil {
		return Entry{}, w.err
	}
	key := event.SegmentKey(seg.Room, seg.Session, seg.Timeline)
	if err := checkSegment(seg); err != nil {
		return Entry{}, fmt.Errorf("spool: commit: %w", err)
	}
	sum := hex.EncodeToString(w.h.Sum(nil))
	if seg.SHA256 != "" && seg.SHA256 != sum {
		return Entry{}, fmt.Errorf("spool: commit %s: %w: %d bytes written hash to %s, the recorder computed %s", key, ErrInvalidSegment, w.n, sum, seg.SHA256)
	}
	if ref := segmentRef(seg); ref.ID != w.ref.ID {
		return Entry{}, fmt.Errorf("spool: commit %s: %w: the segment's speaker key is %s, the writer was created for %s", key, ErrInvalidSegment, ref.ID, w.ref.ID)
	}
	if w.sw != nil {
		if err := w.sw.Close(); err != nil {
			return Entry{}, s.fsErr("commit "+key, err)
		}
	}
	if err := w.f.Sync(); err != nil {
		return Entry{}, s.fsErr("commit "+key, err)
	}
	if err := w.f.Close(); err != nil {
		return Entry{}, s.fsErr("commit "+key, err)
	}
	d, err := newDescriptor(s.producer, seg, key, w.n, sum, time.Now())
	if err != nil {
		return Entry{}, fmt.Errorf("spool: commit %s: %w", key, err)
	}
	if w.sw != nil {
		d.Sealed, d.StoredSize = w.sealName, w.out.n
	}
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return Entry{}, fmt.Errorf("spool: commit %s: encode descriptor: %w", key, err)
	}
	if err := writeFileSync(filepath.Join(w.dir, descFile), b); err != nil {
		return Entry{}, s.fsErr("commit "+key, err)
	}
	if err := fsync.Dir(w.dir); err != nil {
		return Entry{}, s.fsErr("commit "+key, err)
	}
	name, err := s.publish(w.dir, w.n, w.reserved)
	if err != nil {
		return Entry{}, fmt.Errorf("spool: commit %s: %w", key, err)
	}
	w.done = true
	s.wake()
	return Entry{Name: name, Descriptor: *d}, nil
}

// publish renames a complete temporary entry into pending/ under the next
// name and makes the rename durable.
func (s *Spool) publish(tmp string, size, reserved int64) (string, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return "", fmt.Errorf("spool %s: %w", s.dir, ErrClosed)
	}
	if s.maxEntries > 0 && len(s.sizes) >= s.maxEntries {
		s.mu.Unlock()
		return "", fmt.Errorf("spool %s: %w: %d entries waiting, the limit is %d (uploads are not keeping up, or the store is unreachable)", s.dir, ErrFull, len(s.sizes), s.maxEntries)
	}
	// Names grow strictly, even if the clock steps back, so that they sort
	// in commit order. Renaming under the lock keeps that order on disk.
	n := max(time.Now().UnixNano(), s.last+1)
	name := formatName(n)
	if err := os.Rename(tmp, filepath.Join(s.pending, name)); err != nil {
		s.mu.Unlock()
		return "", s.fsErr("publish", err)
	}
	s.last = n
	s.sizes[name] = size
	s.bytes += size
	s.writing -= reserved
	s.mu.Unlock()
	if err := fsync.Dir(s.pending); err != nil {
		// Not durable: take the entry back rather than report a segment
		// as spooled that a crash could lose.
		s.mu.Lock()
		if os.Rename(filepath.Join(s.pending, name), tmp) == nil {
			s.forget(name)
		}
		s.writing += reserved
		s.mu.Unlock()
		return "", s.fsErr("publish", err)
	}
	return name, nil
}

func (s *Spool) reserve(n int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.maxBytes > 0 && s.bytes+s.writing+n > s.maxBytes {
		return fmt.Errorf("spool %s: %w: %d bytes waiting and %d being written, the limit is %d (uploads are not keeping up, or the store is unreachable)", s.dir, ErrFull, s.bytes, s.writing, s.maxBytes)
	}
	s.writing += n
	return nil
}

func (s *Spool) unreserve(n int64) {
	s.mu.Lock()
	s.writing -= n
	s.mu.Unlock()
}

// forget drops a pending entry from the counters; s.mu must be held.
func (s *Spool) forget(name string) {
	if size, ok := s.sizes[name]; ok {
		s.bytes -= size
		delete(s.sizes, name)
	}
}

// wake tells the uploader that an entry arrived.
func (s *Spool) wake() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

func checkSegment(seg Segment) error {
	var errs []error
	if err := seg.Timeline.Validate(); err != nil {
		errs = append(errs, err)
	}
	for _, f := range []struct {
		name, v  string
		optional bool
	}{{"room", seg.Room, false}, {"session", seg.Session, false}, {"speaker", seg.Speaker, true}, {"track", seg.Timeline.Track, false}} {
		if err := checkID(f.name, f.v, f.optional); err != nil {
			errs = append(errs, err)
		}
	}
	if err := checkKeyID(seg.KeyID); err != nil {
		errs = append(errs, err)
	}
	if seg.Seq < 0 {
		errs = append(errs, fmt.Errorf("seq %d is negative", seg.Seq))
	}
	if seg.PreSkip < 0 || seg.PreSkip > 0xffff {
		errs = append(errs, fmt.Errorf("pre-skip %d is outside [0, 65535]", seg.PreSkip))
	}
	if seg.GapSamples < 0 || (seg.Timeline.LastSample >= seg.Timeline.FirstSample && seg.GapSamples > seg.Timeline.Samples()) {
		errs = append(errs, fmt.Errorf("gap samples %d is outside [0, samples]", seg.GapSamples))
	}
	if seg.SHA256 != "" && !isHexSHA256(seg.SHA256) {
		errs = append(errs, errors.New("sha256 is not 64 lower-case hex digits"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidSegment, errors.Join(errs...))
	}
	return nil
}

func newDescriptor(prod event.Producer, seg Segment, key string, size int64, sum string, now time.Time) (*Descriptor, error) {
	tl := seg.Timeline
	tl.Origin = tl.Origin.UTC()
	e, err := event.New(event.TypeSegmentStored, prod, nil, seg.Room, seg.Session, seg.Speaker, &tl, event.SegmentStored{
		Seq:        seg.Seq,
		PreSkip:    seg.PreSkip,
		GapSamples: seg.GapSamples,
		KeyID:      seg.KeyID,
	})
	if err != nil {
		return nil, err
	}
	if !seg.Recorded.IsZero() {
		e.Hops.Recorded = event.Stamp(seg.Recorded)
	}
	d := &Descriptor{Format: DescriptorFormat, Key: key, Size: size, SHA256: sum, Spooled: now.UTC(), Event: e}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	return d, nil
}

// Pending lists the complete entries in commit order. Entries it cannot
// read are moved to rejected/ (with a log line) and left out.
func (s *Spool) Pending() ([]Entry, error) {
	var out []Entry
	err := s.scan(nil, func(e Entry) bool {
		out = append(out, e)
		return true
	})
	return out, err
}

// scan visits the pending entries in commit order, skipping names skip
// reports (entries already in flight: their descriptors are not read
// again), until visit returns false. An entry that cannot be read because
// it is malformed is moved to rejected/; any other error ends the scan, so
// that a caller never sees an entry after one it could not read (which
// could reorder a track).
func (s *Spool) scan(skip func(name string) bool, visit func(Entry) bool) error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		// The lock is gone: another process may own the folder now.
		return fmt.Errorf("spool %s: scan: %w", s.dir, ErrClosed)
	}
	des, err := os.ReadDir(s.pending)
	if err != nil {
		return s.fsErr("scan", err)
	}
	names := make([]string, 0, len(des))
	for _, de := range des {
		if !de.IsDir() || !validName(de.Name()) {
			s.reject(de.Name(), fmt.Errorf("%w: %q is not a spool entry", ErrMalformed, de.Name()))
			continue
		}
		names = append(names, de.Name())
	}
	slices.Sort(names)
	for _, name := range names {
		if skip != nil && skip(name) {
			continue
		}
		e, err := s.load(name)
		switch {
		case errors.Is(err, errGone):
			continue
		case errors.Is(err, ErrMalformed):
			s.reject(name, err)
			continue
		case err != nil:
			return err
		}
		if !visit(e) {
			return nil
		}
	}
	return nil
}

// load reads an entry's descriptor and checks the segment file's size.
func (s *Spool) load(name string) (Entry, error) {
	dir := filepath.Join(s.pending, name)
	b, err := readLimited(filepath.Join(dir, descFile), maxDescriptorBytes)
	if err != nil {
		return Entry{}, s.missing(dir, "descriptor", err)
	}
	d, err := ParseDescriptor(b)
	if err != nil {
		return Entry{}, err
	}
	fi, err := os.Stat(filepath.Join(dir, dataFile))
	if err != nil {
		return Entry{}, s.missing(dir, "segment file", err)
	}
	want := d.Size
	if d.Sealed != "" {
		want = d.StoredSize
	}
	if !fi.Mode().IsRegular() || fi.Size() != want {
		return Entry{}, fmt.Errorf("%w: segment file has %d bytes, the descriptor says %d", ErrMalformed, fi.Size(), want)
	}
	return Entry{Name: name, Descriptor: *d}, nil
}

// missing classifies a file that could not be read: the whole entry gone
// (uploaded or moved aside meanwhile), one of its files missing
// (malformed), or an I/O error.
func (s *Spool) missing(dir, what string, err error) error {
	if !errors.Is(err, fs.ErrNotExist) {
		return s.fsErr("read "+filepath.Base(dir), err)
	}
	if _, serr := os.Stat(dir); errors.Is(serr, fs.ErrNotExist) {
		return errGone
	}
	return fmt.Errorf("%w: %s is missing", ErrMalformed, what)
}

// verify reads the entry's segment file and checks its size and SHA-256
// against the descriptor. A mismatch wraps ErrMalformed.
func (s *Spool) verify(e Entry) error {
	f, err := s.open(e)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	var pe *fs.PathError
	switch {
	case err != nil && errors.As(err, &pe):
		return s.fsErr("verify "+e.Name, err)
	case err != nil:
		// The sealed bytes do not open: altered or truncated.
		return fmt.Errorf("%w: segment file: %w", ErrMalformed, err)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); n != e.Size || sum != e.SHA256 {
		return fmt.Errorf("%w: segment file (%d bytes, sha256 %s) does not match its descriptor (%d bytes, sha256 %s)", ErrMalformed, n, sum, e.Size, e.SHA256)
	}
	return nil
}

// open opens the entry's segment, decrypting a sealed one. A sealed
// entry whose speaker's key was destroyed fails with storage.ErrErased:
// the speaker was erased while it waited.
func (s *Spool) open(e Entry) (io.ReadCloser, error) {
	dir := filepath.Join(s.pending, e.Name)
	f, err := os.Open(filepath.Join(dir, dataFile))
	if err != nil {
		return nil, s.missing(dir, "segment file", err)
	}
	if e.Sealed == "" {
		return f, nil
	}
	if s.sealer == nil {
		f.Close()
		return nil, fmt.Errorf("spool %s: entry %s is sealed and no keys are configured (Config.Sealer)", s.dir, e.Name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), keyTimeout)
	defer cancel()
	r, err := s.sealer.OpenFrom(ctx, e.Event.KeyRef(), e.Sealed, f)
	if err != nil {
		f.Close()
		if errors.Is(err, event.ErrKeyDestroyed) {
			return nil, fmt.Errorf("spool: entry %s: %w (%w)", e.Name, err, storage.ErrErased)
		}
		return nil, fmt.Errorf("spool: entry %s: %w", e.Name, err)
	}
	return struct {
		io.Reader
		io.Closer
	}{r, f}, nil
}

// remove deletes an uploaded entry: one rename takes it out of pending/
// (so a crash cannot leave half an entry there), then it is deleted.
func (s *Spool) remove(name string) error {
	trash, err := os.MkdirTemp(s.tmp, "del-")
	if err != nil {
		return s.fsErr("remove "+name, err)
	}
	defer os.RemoveAll(trash)
	s.mu.Lock()
	err = os.Rename(filepath.Join(s.pending, name), filepath.Join(trash, name))
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		s.forget(name)
	}
	s.mu.Unlock()
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return s.fsErr("remove "+name, err)
	}
	if err := fsync.Dir(s.pending); err != nil {
		return s.fsErr("remove "+name, err)
	}
	return nil
}

// moveAside moves a pending entry (or stray file) to conflicts/ or
// rejected/ with a reason file. Entries are never deleted there: an
// operator decides.
func (s *Spool) moveAside(sub, name string, reason error) error {
	src := filepath.Join(s.pending, name)
	dstDir := filepath.Join(s.dir, sub)
	dst := filepath.Join(dstDir, name)
	s.mu.Lock()
	if _, err := os.Lstat(dst); err == nil {
		dst += "-" + strconv.FormatInt(time.Now().UnixNano(), 10)
	}
	err := os.Rename(src, dst)
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		s.forget(name)
	}
	s.mu.Unlock()
	if errors.Is(err, fs.ErrNotExist) {
		return errGone
	}
	if err != nil {
		return s.fsErr("move "+name+" to "+sub, err)
	}
	if fi, err := os.Stat(dst); err == nil && fi.IsDir() {
		// Best effort: the reason is also logged.
		_ = writeFileSync(filepath.Join(dst, reasonFile), []byte(reason.Error()+"\n"))
	}
	if err := fsync.Dir(dstDir); err != nil {
		return s.fsErr("move "+name+" to "+sub, err)
	}
	if err := fsync.Dir(s.pending); err != nil {
		return s.fsErr("move "+name+" to "+sub, err)
	}
	return nil
}

// ExpireAside deletes the entries moved to conflicts/ and rejected/ more
// than KeepAside ago (by when they were moved), so that nothing of
// people's speech stays on an ingest host longer than the deployment
// keeps it anywhere. The uploader calls it while it runs. It returns how
// many entries it deleted.
func (s *Spool) ExpireAside(now time.Time) (int, error) {
	n := 0
	var errs []error
	for _, sub := range []string{conflictsDir, rejectedDir} {
		dir := filepath.Join(s.dir, sub)
		ents, err := os.ReadDir(dir)
		if err != nil {
			errs = append(errs, s.fsErr("expire "+sub, err))
			continue
		}
		for _, de := range ents {
			fi, err := de.Info()
			if err != nil || now.Sub(fi.ModTime()) <= s.keepAside {
				continue
			}
			if err := os.RemoveAll(filepath.Join(dir, de.Name())); err != nil {
				errs = append(errs, s.fsErr("expire "+sub+"/"+de.Name(), err))
				continue
			}
			n++
		}
		if n > 0 {
			if err := fsync.Dir(dir); err != nil {
				errs = append(errs, s.fsErr("expire "+sub, err))
			}
		}
	}
	if n > 0 {
		s.log.Info("spool: entries set aside past their keeping time deleted", "spool", s.dir, "count", n, "keep", s.keepAside)
	}
	return n, errors.Join(errs...)
}

// reject moves an unreadable entry to rejected/ and says so; it never fails
// the caller (the entry stays where it is if even that fails, and the next
// scan tries again).
func (s *Spool) reject(name string, reason error) {
	err := s.moveAside(rejectedDir, name, reason)
	switch {
	case errors.Is(err, errGone):
	case err != nil:
		s.log.Error("spool: cannot move an unreadable entry aside", "spool", s.dir, "entry", name, "reason", reason, "err", err)
	default:
		s.rejected.Add(1)
		s.log.Error("spool: entry moved to rejected/", "spool", s.dir, "entry", name, "reason", reason)
	}
}

// fsErr makes file-system errors name the spool folder, and a full disk say
// so plainly.
func (s *Spool) fsErr(op string, err error) error {
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return fmt.Errorf("spool %s: %s: disk full: %w", s.dir, op, err)
	case errors.Is(err, syscall.EDQUOT):
		return fmt.Errorf("spool %s: %s: disk quota exceeded: %w", s.dir, op, err)
	}
	return fmt.Errorf("spool %s: %s: %w", s.dir, op, err)
}

func formatName(n int64) string {
	s := strconv.FormatInt(n, 10)
	for len(s) < nameDigits {
		s = "0" + s
	}
	return s
}

func validName(name string) bool {
	if len(name) != nameDigits {
		return false
	}
	for i := 0; i < len(name); i++ {
		if name[i] < '0' || name[i] > '9' {
			return false
		}
	}
	_, err := strconv.ParseInt(name, 10, 64)
	return err == nil
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: descriptor over %d bytes", ErrMalformed, limit)
	}
	return b, nil
}

// writeFileSync creates path exclusively with b and fsyncs it.
func writeFileSync(path string, b []byte) error {
	return fsync.WriteFile(path, func(w io.Writer) error { _, err := w.Write(b); return err })
}
