package bustest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/earshot/earshot/bus"
)

// Feed is a stand-in consumer: Run hands the records given to Push to the
// handler one after another, as offsets 0, 1, … of partition 0, and
// records which were acknowledged. A test can act between two records
// (shred a key, stop a sink) by pushing the next one when it is ready.
type Feed struct {
	ch chan bus.Message

	mu    sync.Mutex
	next  int64
	acked map[int64]bool
}

// NewFeed returns an empty feed.
func NewFeed() *Feed { return &Feed{ch: make(chan bus.Message, 1024), acked: map[int64]bool{}} }

// Push queues records and returns their offsets.
func (f *Feed) Push(msgs ...bus.Message) []int64 {
	offs := make([]int64, 0, len(msgs))
	for _, m := range msgs {
		f.mu.Lock()
		m.Partition, m.Offset = 0, f.next
		f.next++
		f.mu.Unlock()
		offs = append(offs, m.Offset)
		f.ch <- m
	}
	return offs
}

// Run hands queued records to h until ctx ends.
func (f *Feed) Run(ctx context.Context, h bus.Handler) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-f.ch:
			off := m.Offset
			h(ctx, bus.NewDelivery(m, func() {
				f.mu.Lock()
				defer f.mu.Unlock()
				f.acked[off] = true
			}))
		}
	}
}

// Close does nothing: there is no connection.
func (f *Feed) Close() error { return nil }

// Acked reports whether the record at off was acknowledged.
func (f *Feed) Acked(off int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.acked[off]
}

// WaitAcked fails the test unless every record at offs is acknowledged
// within a generous minute.
func (f *Feed) WaitAcked(tb testing.TB, offs ...int64) {
	tb.Helper()
	deadline := time.Now().Add(time.Minute)
	for _, off := range offs {
		for !f.Acked(off) {
			if time.Now().After(deadline) {
				tb.Fatalf("record %d not acknowledged within a minute", off)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// Start runs run (a stage's Run) until the returned stop is called; stop
// cancels it, waits for it and fails the test on its error. Only the first
// call counts; the test's cleanup calls it too.
func Start(tb testing.TB, run func(context.Context) error) (stop func()) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				tb.Errorf("stage: %v", err)
			}
		})
	}
	tb.Cleanup(stop)
	return stop
}
