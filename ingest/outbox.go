package ingest

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/earshot/earshot/bus"
)

// outbox decouples track goroutines from Kafka. Live chunks are queued
// without blocking: when the queue is full (a dead or slow broker) the chunk
// is dropped and counted, because a track goroutine that blocked would stop
// reading RTP and lose audio for good, whereas a dropped live chunk is only
// a gap in live transcription — the durable record is the stored segment,
// which replay can transcribe. Lifecycle events are queued with SendWait,
// which waits for room instead.
//
// One goroutine produces, in queue order, so a track's chunks reach Kafka in
// order.
type outbox struct {
	sender  bus.Sender
	log     *slog.Logger
	ch      chan bus.Message
	dropped atomic.Int64
	sent    atomic.Int64

	once sync.Once
	quit chan struct{} // closed by close: no more intake
	done chan struct{} // closed when run returns
}

func newOutbox(sender bus.Sender, size int, log *slog.Logger) *outbox {
	return &outbox{sender: sender, log: log, ch: make(chan bus.Message, size), quit: make(chan struct{}), done: make(chan struct{})}
}

// Send queues m, or drops it when the queue is full. It reports whether m
// was queued.
func (o *outbox) Send(m bus.Message) bool {
	select {
	case <-o.quit:
	default:
		select {
		case o.ch <- m:
			return true
		default:
		}
	}
	if n := o.dropped.Add(1); n == 1 || n%100 == 0 {
		o.log.Warn("live queue full: dropping chunks (broker slow or down)", "topic", m.Topic, "dropped", n)
	}
	return false
}

// SendWait queues m, waiting for room until ctx ends.
func (o *outbox) SendWait(ctx context.Context, m bus.Message) error {
	select {
	case o.ch <- m:
		return nil
	case <-o.quit:
		return errors.New("ingest: outbox closed")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run produces queued records until close, then flushes what is queued,
// giving up (and counting the rest as dropped) when flushCtx ends.
func (o *outbox) run(flushCtx context.Context) {
	defer close(o.done)
	const maxBatch = 64
	batch := make([]bus.Message, 0, maxBatch)
	for {
		select {
		case m := <-o.ch:
			batch = append(batch[:0], m)
		case <-o.quit:
			// Drain what was queued before close.
			for {
				batch = batch[:0]
			drain:
				for len(batch) < maxBatch {
					select {
					case m := <-o.ch:
						batch = append(batch, m)
					default:
						break drain
					}
				}
				if len(batch) == 0 {
					return
				}
				o.produce(flushCtx, batch)
			}
		}
	fill:
		for len(batch) < maxBatch {
			select {
			case m := <-o.ch:
				batch = append(batch, m)
			default:
				break fill
			}
		}
		o.produce(flushCtx, batch)
	}
}

// produce retries with backoff until the batch is acknowledged or ctx ends.
func (o *outbox) produce(ctx context.Context, batch []bus.Message) {
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err := o.sender.Produce(pctx, batch...)
		cancel()
		if err == nil {
			o.sent.Add(int64(len(batch)))
			return
		}
		if ctx.Err() != nil {
			o.dropped.Add(int64(len(batch)))
			o.log.Error("giving up on queued events at shutdown", "events", len(batch), "error", err)
			return
		}
		o.log.Warn("produce failed; retrying", "attempt", attempt, "events", len(batch), "error", err)
		sleep := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-time.After(sleep):
		case <-ctx.Done():
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// close stops intake; run then flushes and returns.
func (o *outbox) close() { o.once.Do(func() { close(o.quit) }) }
