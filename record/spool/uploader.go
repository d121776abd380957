package spool

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/storage"
)

// Store is where the uploader puts segments: storage.Local and storage.S3
// are both one.
type Store interface {
	// Put as storage.Putter: with IfAbsent a taken key fails with
	// storage.ErrExists and the ObjectInfo of the object already stored.
	Put(ctx context.Context, key string, r io.Reader, size int64, opts storage.PutOptions) (storage.ObjectInfo, error)
}

var (
	_ Store = (*storage.Local)(nil)
	_ Store = (*storage.S3)(nil)
)

// Defaults for UploaderConfig.
const (
	DefaultBackoffMin     = 250 * time.Millisecond
	DefaultBackoffMax     = 10 * time.Second
	DefaultRescan         = 10 * time.Second
	DefaultWorkers        = 4
	DefaultAttemptTimeout = time.Minute
	DefaultDrainTimeout   = 15 * time.Second
	// workerQueue bounds the entries handed to one worker ahead of time.
	workerQueue = 64
)

// UploaderConfig configures an Uploader. Zero values take the defaults.
type UploaderConfig struct {
	Spool *Spool
	Store Store
	// Sender publishes the announcements; it returns after acks=all.
	Sender bus.Sender
	// Topic for announcements; event.TopicSegments when empty.
	Topic  string
	Logger *slog.Logger
	// BackoffMin and BackoffMax bound the exponential backoff (with
	// jitter) between attempts of a failing step.
	BackoffMin, BackoffMax time.Duration
	// Rescan is how often the spool folder is listed again, besides the
	// wake-up each Put sends.
	Rescan time.Duration
	// Workers upload in parallel; entries of one track always go to the
	// same worker, so a track's segments are stored and announced in order.
	Workers int
	// AttemptTimeout bounds one put or produce attempt.
	AttemptTimeout time.Duration
	// DrainTimeout is how long the entries in flight may still take once
	// Run is asked to stop.
	DrainTimeout time.Duration
}

// Stats are the uploader's counters since NewUploader, and what the spool
// holds now.
type Stats struct {
	// Uploaded counts entries stored, announced and removed from the spool.
	Uploaded int64
	// AlreadyStored counts those whose object was already stored with the
	// same SHA-256 (an earlier upload whose confirmation was lost).
	AlreadyStored int64
	// Retries counts failed attempts that were retried (put, produce,
	// local read, removal).
	Retries int64
	// Conflicts counts entries whose key holds different bytes: never
	// overwritten, moved to conflicts/.
	Conflicts int64
	// Erased counts entries dropped because their data key was destroyed
	// (the speaker was erased while the segment waited): never uploaded,
	// never announced, deleted from the spool.
	Erased int64
	// Rejected counts entries moved to rejected/ (unreadable or corrupt).
	Rejected int64
	// PendingEntries and PendingBytes are what the spool holds now.
	PendingEntries int
	PendingBytes   int64
}

// Uploader drains a spool into object storage and announces each segment.
type Uploader struct {
	cfg UploaderConfig
	log *slog.Logger

	uploaded, alreadyStored, retries, conflicts, erased atomic.Int64

	kick    chan struct{} // a worker has room again after a scan skipped work
	starved atomic.Bool

	mu       sync.Mutex
	running  bool
	closed   bool
	inflight map[string]bool // entry names queued or being processed
	stop     chan struct{}   // closed by Close
	stopOnce sync.Once
	done     chan struct{} // closed when Run returns
}

// NewUploader checks the configuration and returns an idle uploader.
func NewUploader(cfg UploaderConfig) (*Uploader, error) {
	var errs []error
	if cfg.Spool == nil {
		errs = append(errs, errors.New("Spool is nil"))
	}
	if cfg.Store == nil {
		errs = append(errs, errors.New("Store is nil"))
	}
	if cfg.Sender == nil {
		errs = append(errs, errors.New("Sender is nil"))
	}
	cfg.Topic = cmp.Or(cfg.Topic, event.TopicSegments)
	cfg.BackoffMin = cmp.Or(cfg.BackoffMin, DefaultBackoffMin)
	cfg.BackoffMax = cmp.Or(cfg.BackoffMax, DefaultBackoffMax)
	cfg.Rescan = cmp.Or(cfg.Rescan, DefaultRescan)
	cfg.Workers = cmp.Or(cfg.Workers, DefaultWorkers)
	cfg.AttemptTimeout = cmp.Or(cfg.AttemptTimeout, DefaultAttemptTimeout)
	cfg.DrainTimeout = cmp.Or(cfg.DrainTimeout, DefaultDrainTimeout)
	if cfg.BackoffMin < 0 || cfg.BackoffMax < cfg.BackoffMin {
		errs = append(errs, fmt.Errorf("backoff %v..%v: want 0 < min <= max", cfg.BackoffMin, cfg.BackoffMax))
	}
	if cfg.Rescan < 0 || cfg.Workers < 0 || cfg.AttemptTimeout < 0 || cfg.DrainTimeout < 0 {
		errs = append(errs, errors.New("Rescan, Workers, AttemptTimeout and DrainTimeout must not be negative"))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("spool: uploader config: %w", errors.Join(errs...))
	}
	return &Uploader{
		cfg:      cfg,
		log:      cmp.Or(cfg.Logger, slog.Default()).With("spool", cfg.Spool.Dir()),
		kick:     make(chan struct{}, 1),
		inflight: map[string]bool{},
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}, nil
}

// Stats returns the counters.
func (u *Uploader) Stats() Stats {
	use := u.cfg.Spool.Usage()
	return Stats{
		Uploaded:       u.uploaded.Load(),
		AlreadyStored:  u.alreadyStored.Load(),
		Retries:        u.retries.Load(),
		Conflicts:      u.conflicts.Load(),
		Erased:         u.erased.Load(),
		Rejected:       u.cfg.Spool.Rejected(),
		PendingEntries: use.Entries,
		PendingBytes:   use.Bytes,
	}
}

// Run uploads and announces what the spool holds, then whatever arrives,
// until ctx is cancelled or Close is called. Stopping is two-phase: no new
// entry or retry starts, the entries in flight finish (their current
// steps get up to DrainTimeout), and Run returns nil; whatever is left stays
// in the spool for the next start.
func (u *Uploader) Run(ctx context.Context) error {
	u.mu.Lock()
	switch {
	case u.closed:
		u.mu.Unlock()
		return errors.New("spool: uploader: Run after Close")
	case u.running:
		u.mu.Unlock()
		return errors.New("spool: uploader: Run called twice")
	}
	u.running = true
	u.mu.Unlock()
	defer close(u.done)

	// stopCtx ends the first phase: nothing new starts. hardCtx bounds the
	// attempts in flight; it ends DrainTimeout after stopCtx.
	stopCtx, stopNow := context.WithCancel(ctx)
	defer stopNow()
	go func() {
		select {
		case <-u.stop:
			stopNow()
		case <-stopCtx.Done():
		}
	}()
	hardCtx, hardStop := context.WithCancel(context.WithoutCancel(ctx))
	defer hardStop()
	var drain atomic.Pointer[time.Timer]
	context.AfterFunc(stopCtx, func() { drain.Store(time.AfterFunc(u.cfg.DrainTimeout, hardStop)) })
	defer func() {
		if t := drain.Load(); t != nil {
			t.Stop()
		}
	}()

	queues := make([]chan Entry, u.cfg.Workers)
	var wg sync.WaitGroup
	for i := range queues {
		queues[i] = make(chan Entry, workerQueue)
		wg.Go(func() { u.work(stopCtx, hardCtx, queues[i]) })
	}
	u.log.Info("spool: uploader started", "pending", u.cfg.Spool.Usage().Entries, "workers", u.cfg.Workers)
	tick := time.NewTicker(u.cfg.Rescan)
	defer tick.Stop()
	var expired time.Time
	for stopCtx.Err() == nil {
		if time.Since(expired) >= time.Hour {
			expired = time.Now()
			if _, err := u.cfg.Spool.ExpireAside(expired); err != nil {
				u.log.Warn("spool: entries set aside could not all be expired", "err", err)
			}
		}
		u.dispatch(stopCtx, queues)
		select {
		case <-stopCtx.Done():
		case <-u.cfg.Spool.notify:
		case <-u.kick:
		case <-tick.C:
		}
	}
	for _, q := range queues {
		close(q)
	}
	wg.Wait()
	u.log.Info("spool: uploader stopped", "pending", u.cfg.Spool.Usage().Entries)
	return nil
}

// Close stops Run as cancelling its context does and waits for it to
// return. It is idempotent; after Close, Run fails.
func (u *Uploader) Close() error {
	u.mu.Lock()
	u.closed = true
	running := u.running
	u.mu.Unlock()
	u.stopOnce.Do(func() { close(u.stop) })
	if running {
		<-u.done
	}
	return nil
}

// dispatch hands the spool's entries that are not in flight to the workers,
// in commit order, each track to its own worker. A worker whose queue is
// full gets nothing more in this scan, so its later entries cannot overtake
// the ones left behind; the scan ends when every queue is full, and a
// worker with room again kicks off the next one.
func (u *Uploader) dispatch(stop context.Context, queues []chan Entry) {
	full := make([]bool, len(queues))
	nfull := 0
	err := u.cfg.Spool.scan(u.isInflight, func(e Entry) bool {
		w := shard(e.Track(), len(queues))
		if full[w] {
			return true
		}
		u.setInflight(e.Name, true)
		select {
		case queues[w] <- e:
		default:
			u.setInflight(e.Name, false)
			full[w] = true
			nfull++
			u.starved.Store(true)
		}
		return nfull < len(queues) && stop.Err() == nil
	})
	if err != nil {
		u.log.Warn("spool: scan failed; trying again at the next rescan", "err", err)
	}
}

func (u *Uploader) work(stop, hard context.Context, q chan Entry) {
	for e := range q {
		if stop.Err() == nil {
			u.process(stop, hard, e)
		}
		u.setInflight(e.Name, false)
		if len(q) == 0 && u.starved.CompareAndSwap(true, false) {
			select {
			case u.kick <- struct{}{}:
			default:
			}
		}
	}
}

func (u *Uploader) isInflight(name string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.inflight[name]
}

func (u *Uploader) setInflight(name string, on bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if on {
		u.inflight[name] = true
	} else {
		delete(u.inflight, name)
	}
}

func shard(track string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(track))
	return int(h.Sum32() % uint32(n))
}

// Outcomes of a step that are not worth retrying.
var (
	errConflict = errors.New("conflict")
	errStopped  = errors.New("uploader stopping")
)

// permanent marks an error that retrying cannot fix.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// process takes one entry through verify, put, announce and remove. Each
// step is retried until it succeeds, fails for good (the entry moves
// aside), or the uploader stops (the entry stays for the next start).
func (u *Uploader) process(stop, hard context.Context, e Entry) {
	log := u.log.With("entry", e.Name, "key", e.Key)
	step := func(what string, op func(context.Context) error) error {
		return u.retry(stop, hard, log, what, op)
	}

	err := step("read spooled segment", func(context.Context) error {
		err := u.cfg.Spool.verify(e)
		if errors.Is(err, storage.ErrErased) {
			return permanent{err} // the speaker was erased while it waited
		}
		return err
	})
	if err != nil {
		u.giveUp(stop, hard, log, e, err)
		return
	}

	var stored time.Time
	err = step("upload", func(ctx context.Context) error {
		var err error
		stored, err = u.put(ctx, log, e)
		return err
	})
	if err != nil {
		u.giveUp(stop, hard, log, e, err)
		return
	}

	env, err := e.Announcement(stored)
	var value []byte
	if err == nil {
		value, err = env.Marshal()
	}
	if err != nil {
		u.giveUp(stop, hard, log, e, permanent{err})
		return
	}
	msg := bus.Message{Topic: u.cfg.Topic, Key: []byte(e.Track()), Value: value}
	err = step("announce", func(ctx context.Context) error { return u.cfg.Sender.Produce(ctx, msg) })
	if err != nil {
		u.giveUp(stop, hard, log, e, err)
		return
	}

	// Stored and announced: only now may the spooled copy go. A removal
	// that never succeeds only means a duplicate announcement later, which
	// consumers drop by event ID.
	err = step("remove uploaded entry", func(context.Context) error { return u.cfg.Spool.remove(e.Name) })
	if err != nil {
		log.Warn("spool: entry stored and announced but still in the spool; it will be announced again", "err", err)
		return
	}
	u.uploaded.Add(1)
	log.Info("segment stored", "event_id", env.EventID, "size", e.Size)
}

// put stores the entry create-only. A taken key with the same SHA-256 is
// our own earlier upload; with another it is a conflict.
func (u *Uploader) put(ctx context.Context, log *slog.Logger, e Entry) (time.Time, error) {
	f, err := u.cfg.Spool.open(e)
	if err != nil {
		return time.Time{}, err
	}
	defer f.Close()
	info, err := u.cfg.Store.Put(ctx, e.Key, f, e.Size, storage.PutOptions{
		ContentType: ContentType,
		Metadata:    e.Metadata(),
		IfAbsent:    true,
		SHA256:      e.SHA256,
	})
	switch {
	case err == nil:
		return time.Now(), nil
	case errors.Is(err, storage.ErrExists):
		switch {
		case info.SHA256 == e.SHA256:
			u.alreadyStored.Add(1)
			log.Info("spool: segment already stored with the same SHA-256 (an earlier upload's confirmation was lost)")
			// hops.stored is when the bytes became durable: the earlier
			// upload, when the store says.
			if !info.ModTime.IsZero() {
				return info.ModTime, nil
			}
			return time.Now(), nil
		case info.Key == "":
			// The store could not describe what it holds: try again rather
			// than guess.
			return time.Time{}, fmt.Errorf("key taken, stored object not readable yet: %w", err)
		case info.SHA256 == "":
			return time.Time{}, permanent{fmt.Errorf("%w: the key holds an object without a SHA-256 (%d bytes), the segment has sha256 %s (%d bytes)", errConflict, info.Size, e.SHA256, e.Size)}
		default:
			return time.Time{}, permanent{fmt.Errorf("%w: the key holds sha256 %s (%d bytes), the segment has sha256 %s (%d bytes)", errConflict, info.SHA256, info.Size, e.SHA256, e.Size)}
		}
	case errors.Is(err, storage.ErrInvalidKey), errors.Is(err, storage.ErrInvalidMetadata), errors.Is(err, storage.ErrErased):
		return time.Time{}, permanent{err}
	}
	return time.Time{}, err
}

// giveUp handles a step that ended without success: a conflict or a
// malformed entry moves aside; anything else (stopping) leaves the entry in
// the spool.
func (u *Uploader) giveUp(stop, hard context.Context, log *slog.Logger, e Entry, err error) {
	var sub string
	switch {
	case errors.Is(err, storage.ErrErased):
		u.drop(stop, hard, log, e, err)
		return
	case errors.Is(err, errConflict):
		sub = conflictsDir
	case errors.Is(err, errGone):
		return // someone else took it out of pending/
	case errors.As(err, new(permanent)), errors.Is(err, ErrMalformed):
		sub = rejectedDir
	default:
		log.Info("spool: stopping; entry left in the spool for the next start", "err", err)
		return
	}
	// Moving aside is retried like any step, but not past a stop: the next
	// start meets the same entry and decides again.
	merr := u.retry(stop, hard, log, "move entry to "+sub+"/", func(context.Context) error {
		err := u.cfg.Spool.moveAside(sub, e.Name, err)
		if errors.Is(err, errGone) {
			return nil
		}
		return err
	})
	if merr != nil {
		log.Error("spool: entry could not be moved to "+sub+"/; left in the spool", "reason", err, "err", merr)
		return
	}
	if sub == conflictsDir {
		u.conflicts.Add(1)
		log.Error("spool: conflict: the key already holds different bytes; not overwritten, entry moved to conflicts/", "err", err)
		return
	}
	u.cfg.Spool.rejected.Add(1)
	log.Error("spool: entry cannot be uploaded; moved to rejected/", "err", err)
}

// drop deletes an entry whose data was erased: erasure wins over upload,
// and keeping the segment (even in rejected/) would keep the person's
// speech on this disk.
func (u *Uploader) drop(stop, hard context.Context, log *slog.Logger, e Entry, reason error) {
	if err := u.retry(stop, hard, log, "drop erased entry", func(context.Context) error { return u.cfg.Spool.remove(e.Name) }); err != nil {
		log.Error("spool: entry of erased data could not be deleted; left in the spool", "reason", reason, "err", err)
		return
	}
	u.erased.Add(1)
	log.Info("spool: segment dropped: its data key was destroyed (erasure)", "reason", reason)
}

// retry runs op until it succeeds or fails permanently. Once the uploader
// is stopping it starts no further attempt: the one in flight finishes
// (bounded by hard) and retry returns errStopped.
func (u *Uploader) retry(stop, hard context.Context, log *slog.Logger, what string, op func(context.Context) error) error {
	for n := 0; ; n++ {
		actx, cancel := context.WithTimeout(hard, u.cfg.AttemptTimeout)
		err := op(actx)
		cancel()
		if err == nil || errors.As(err, new(permanent)) || errors.Is(err, ErrMalformed) || errors.Is(err, errGone) {
			return err
		}
		if stop.Err() != nil {
			return fmt.Errorf("%w: %s: %w", errStopped, what, err)
		}
		u.retries.Add(1)
		d := backoff(u.cfg.BackoffMin, u.cfg.BackoffMax, n)
		log.Warn("spool: "+what+" failed; retrying", "attempt", n+1, "retry_in", d.Round(time.Millisecond), "err", err)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-stop.Done():
			t.Stop()
			return fmt.Errorf("%w: %s: %w", errStopped, what, err)
		}
	}
}

// backoff is min·2ⁿ capped at max, with "equal jitter": half fixed, half
// random, so retries of many uploaders spread out without ever collapsing
// to zero.
func backoff(lo, hi time.Duration, n int) time.Duration {
	d := lo
	for i := 0; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	half := d / 2
	return half + rand.N(d-half+1)
}
