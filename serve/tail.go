package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
)

// Tail reads topics from their oldest retained record, one plain reader
// per partition (no consumer group, no commits: every start reads
// everything again), and hands each event to Apply. It rebuilds the alert
// index on start and keeps it current. Partitions added after Run started
// are not read until the next start.
type Tail struct {
	Brokers []string
	Topics  []string
	Apply   func(*event.Envelope)
	Logger  *slog.Logger

	pending atomic.Int64 // partitions not yet read up to their start-time end
	started atomic.Bool
}

// CaughtUp reports whether every partition has been read up to where it
// ended when Run started: the index then holds everything retained.
func (t *Tail) CaughtUp() bool { return t.started.Load() && t.pending.Load() == 0 }

// Run reads until ctx ends.
func (t *Tail) Run(ctx context.Context) error {
	log := t.Logger
	if log == nil {
		log = slog.Default()
	}
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
			if ranges, err = (bus.LogReader{Brokers: t.Brokers, ClientID: "earshot-serve"}).Offsets(ctx, topic); err == nil || try == 30 || ctx.Err() != nil {
				break
			}
			time.Sleep(time.Second)
		}
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		for id, r := range ranges {
			parts = append(parts, part{topic, id, r.First, r.End})
		}
	}
	for _, p := range parts {
		if p.end > p.first {
			t.pending.Add(1)
		}
	}
	t.started.Store(true)
	var wg sync.WaitGroup
	errs := make(chan error, len(parts))
	for _, p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := kafka.NewReader(kafka.ReaderConfig{
				Brokers: t.Brokers, Topic: p.topic, Partition: p.id,
				StartOffset: kafka.FirstOffset, MinBytes: 1, MaxBytes: 8 << 20, MaxWait: time.Second,
			})
			defer r.Close()
			waiting := p.end > p.first
			for {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					if ctx.Err() == nil {
						errs <- fmt.Errorf("serve: read %s/%d: %w", p.topic, p.id, err)
					}
					return
				}
				if e, err := event.Decode(m.Value); err == nil {
					t.Apply(e)
				} else {
					log.Warn("record on an alert topic is not an event; skipped", "topic", p.topic, "partition", p.id, "offset", m.Offset, "error", err)
				}
				if waiting && m.Offset+1 >= p.end {
					waiting = false
					t.pending.Add(-1)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := errors.Join(collect(errs)...); err != nil {
		return err
	}
	return ctx.Err()
}

func collect(ch <-chan error) []error {
	var out []error
	for err := range ch {
		out = append(out, err)
	}
	return out
}

// FindAlert reads the alerts topic from its start up to its current end
// and returns the alert.raised event with the given ID: for tools that
// act on an alert without a running server.
func FindAlert(ctx context.Context, brokers []string, topic, id string) (*event.Envelope, error) {
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
	t := &Tail{Brokers: brokers, Topics: []string{topic}, Apply: func(e *event.Envelope) {
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
