package serve

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/clock"
)

// Tail reads topics from their oldest retained record, one plain reader
// per partition (no consumer group, no commits: every start reads
// everything again), and hands each event to Apply. It rebuilds the alert
// index on start and keeps it current. A partition's reader that fails is
// restarted from where it stopped, with backoff, and Health says so
// meanwhile. Partitions added after Run started are not read until the
// next start.
type Tail struct {
	Cluster bus.Cluster
	Topics  []string
	Apply   func(*event.Envelope)
	Logger  *slog.Logger
	// Retry bounds the backoff between restarts of a failed partition
	// reader (defaults 500 ms to 30 s).
	RetryMin, RetryMax time.Duration
	// FromEnd starts every partition at its end when Run starts: only
	// what arrives afterwards is applied (the console's live view).
	FromEnd bool

	pending atomic.Int64 // partitions not yet read up to their start-time end
	started atomic.Bool

	mu      sync.Mutex
	failing map[string]partitionFailure // "topic/partition" -> its failure
}

// partitionFailure is a partition reader that failed and is being
// restarted.
type partitionFailure struct {
	since time.Time
	err   error
}

// CaughtUp reports whether every partition has been read up to where it
// ended when Run started: the index then holds everything retained.
func (t *Tail) CaughtUp() bool { return t.started.Load() && t.pending.Load() == 0 }

// Health returns nil while every partition reader runs, else an error
// naming those that failed and are being restarted (the index is not
// current for them).
func (t *Tail) Health() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	var errs []error
	for _, p := range slices.Sorted(maps.Keys(t.failing)) {
		f := t.failing[p]
		errs = append(errs, fmt.Errorf("%s: reader failing since %s, restarting: %w", p, f.since.UTC().Format(time.RFC3339), f.err))
	}
	return errors.Join(errs...)
}

func (t *Tail) setFailing(p string, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.failing == nil {
		t.failing = map[string]partitionFailure{}
	}
	if err == nil {
		delete(t.failing, p)
		return
	}
	f, ok := t.failing[p]
	if !ok {
		f.since = time.Now()
	}
	f.err = err
	t.failing[p] = f
}

// Run reads until ctx ends.
func (t *Tail) Run(ctx context.Context) error {
	log := t.Logger
	if log == nil {
		log = slog.Default()
	}
	lr := bus.LogReader{Cluster: t.Cluster, ClientID: "earshot-serve"}
	type part struct {
		topic string
		id    int
		first int64
		end   int64
	}
	var parts []part
	for _, topic := range t.Topics {
		var (
			ranges map[int]bus.PartitionRange
			err    error
		)
		// A topic created moments ago may not answer yet.
		for try := 0; ; try++ {
			if ranges, err = lr.Offsets(ctx, topic); err == nil || try == 30 || ctx.Err() != nil {
				break
			}
			time.Sleep(time.Second)
		}
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		for id, r := range ranges {
			if t.FromEnd {
				r.First = r.End
			}
			parts = append(parts, part{topic, id, r.First, r.End})
		}
	}
	for _, p := range parts {
		if p.end > p.first {
			t.pending.Add(1)
		}
	}
	t.started.Store(true)
	minWait, maxWait := cmp.Or(t.RetryMin, 500*time.Millisecond), cmp.Or(t.RetryMax, 30*time.Second)
	var wg sync.WaitGroup
	for _, p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("%s/%d", p.topic, p.id)
			waiting := p.end > p.first
			next, wait := p.first, minWait
			for {
				err := lr.Follow(ctx, p.topic, p.id, next, func(m bus.Message) error {
					if e, err := event.Decode(m.Value); err == nil {
						t.Apply(e)
					} else {
						log.Warn("record on an alert topic is not an event; skipped", "topic", p.topic, "partition", p.id, "offset", m.Offset, "error", err)
					}
					next = m.Offset + 1
					wait = minWait // it reads again: a later failure starts the backoff over
					t.setFailing(name, nil)
					if waiting && next >= p.end {
						waiting = false
						t.pending.Add(-1)
					}
					return nil
				})
				if ctx.Err() != nil {
					return
				}
				t.setFailing(name, err)
				log.Error("alert index: partition reader failed; restarting", "partition", name, "offset", next, "retry_in", wait, "error", err)
				if !clock.Sleep(ctx, wait) {
					return
				}
				wait = min(2*wait, maxWait)
			}
		}()
	}
	wg.Wait()
	return ctx.Err()
}

// FindAlert reads the alerts topic from its start up to its current end
// and returns the alert.raised event with the given ID: for tools that
// act on an alert without a running server.
func FindAlert(ctx context.Context, cl bus.Cluster, topic, id string) (*event.Envelope, error) {
	if topic == "" {
		topic = event.TopicAlerts
	}
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		found *event.Envelope
	)
	t := &Tail{Cluster: cl, Topics: []string{topic}, Apply: func(e *event.Envelope) {
		if e.Type == event.TypeAlert && e.EventID == id {
			mu.Lock()
			found = e
			mu.Unlock()
			cancel()
		}
	}}
	done := make(chan error, 1)
	go func() { done <- t.Run(ctx) }()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			mu.Lock()
			defer mu.Unlock()
			if found != nil {
				return found, nil
			}
			switch {
			case parent.Err() != nil:
				err = parent.Err()
			case err == nil || errors.Is(err, context.Canceled):
				err = ErrAlertNotFound
			}
			return nil, fmt.Errorf("serve: find alert %s: %w", id, err)
		case <-tick.C:
			if t.CaughtUp() {
				cancel() // Run returns; found is then final
			}
		}
	}
}

// ErrAlertNotFound is returned by FindAlert when the topic holds no alert
// with the ID.
var ErrAlertNotFound = errors.New("serve: no such alert in the alerts topic")
