package lease

import (
	"context"
	"errors"
	"sync"
	"time"
)

// MemoryLog is an in-memory log with the ordering of one Kafka partition:
// Managers built on the same MemoryLog behave like instances sharing
// earshot.state. It is for unit tests and single-process use.
type MemoryLog struct {
	mu   sync.Mutex
	recs []memRecord
	subs []*Manager
	down bool
}

type memRecord struct {
	key   string
	value []byte
	ts    time.Time
}

// NewMemoryLog returns an empty log.
func NewMemoryLog() *MemoryLog { return &MemoryLog{} }

// errDown is what appends fail with while the log is down.
var errDown = errors.New("lease: memory log is down")

// SetDown makes appends fail (down) or work again, as an unreachable
// broker would.
func (l *MemoryLog) SetDown(down bool) {
	l.mu.Lock()
	l.down = down
	l.mu.Unlock()
}

// NewMemory returns a Manager on log. The manager first applies what the
// log holds, as a Kafka manager reads the topic from the start.
func NewMemory(log *MemoryLog, cfg Config) (*Manager, error) {
	m, err := newManager(cfg)
	if err != nil {
		return nil, err
	}
	be := &memBackend{log: log, m: m}
	m.be = be
	log.mu.Lock()
	defer log.mu.Unlock()
	for _, r := range log.recs {
		m.apply(r.key, r.value, r.ts)
	}
	log.subs = append(log.subs, m)
	return m, nil
}

type memBackend struct {
	log *MemoryLog
	m   *Manager
}

func (b *memBackend) append(ctx context.Context, key string, value []byte) (position, error) {
	if err := ctx.Err(); err != nil {
		return position{}, err
	}
	l := b.log
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down {
		return position{}, errDown
	}
	r := memRecord{key: key, value: value, ts: time.Now()}
	l.recs = append(l.recs, r)
	for _, m := range l.subs {
		m.apply(r.key, r.value, r.ts)
	}
	return position{offset: int64(len(l.recs) - 1)}, nil
}

// waitApplied: append applies synchronously.
func (b *memBackend) waitApplied(ctx context.Context, _ position) error { return ctx.Err() }

func (b *memBackend) close() error {
	l := b.log
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, m := range l.subs {
		if m == b.m {
			l.subs = append(l.subs[:i], l.subs[i+1:]...)
			break
		}
	}
	return nil
}
