package policy

import (
	"slices"
	"sync"
	"time"
)

// RateLimit bounds the alerts of one room, rule and speaker: at most Burst
// alerts within any Every of room time (the timeline of what was said, not
// the clock of the machine evaluating it, so a restart or a replay makes
// the same decisions). Findings over the limit are not alerted; they are
// counted in a metric and folded into the next alert of the key
// (AlertPayload.Suppressed).
type RateLimit struct {
	// Every is the window; default 60 s. Negative disables the limit.
	Every time.Duration
	// Burst is how many alerts a window allows; default 1.
	Burst int
}

func (r *RateLimit) defaults() {
	if r.Every == 0 {
		r.Every = time.Minute
	}
	if r.Burst <= 0 {
		r.Burst = 1
	}
}

type limitKey struct{ room, rule, speaker string }

type limitEntry struct {
	at time.Time
	id string
}

type limitState struct {
	recent     []limitEntry // newest last, at most Burst
	suppressed int
	newest     time.Time
}

// limiter is the rate limiter's state, shared by the stage's partitions.
type limiter struct {
	cfg    RateLimit
	mu     sync.Mutex
	keys   map[limitKey]*limitState
	latest time.Time
}

// maxLimitKeys bounds the state; past it, keys idle for a window go.
const maxLimitKeys = 1 << 14

func newLimiter(cfg RateLimit) *limiter {
	cfg.defaults()
	return &limiter{cfg: cfg, keys: map[limitKey]*limitState{}}
}

// allow decides on an alert with ID id at room time t. An ID already
// admitted is admitted again (the retry of an alert whose produce failed).
// folded is the number of findings suppressed since the key's last alert,
// handed to this one.
func (l *limiter) allow(k limitKey, t time.Time, id string) (ok bool, folded int) {
	if l.cfg.Every < 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.state(k)
	n := 0
	for _, e := range st.recent {
		if e.id == id {
			return true, 0
		}
		if d := t.Sub(e.at); d < l.cfg.Every && d > -l.cfg.Every {
			n++
		}
	}
	if n >= l.cfg.Burst {
		st.suppressed++
		return false, 0
	}
	folded, st.suppressed = st.suppressed, 0
	l.add(st, t, id)
	return true, folded
}

// note records an alert found on the alerts topic (a rebuild).
func (l *limiter) note(k limitKey, t time.Time, id string) {
	if l.cfg.Every < 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.state(k)
	for _, e := range st.recent {
		if e.id == id {
			return
		}
	}
	l.add(st, t, id)
}

func (l *limiter) state(k limitKey) *limitState {
	st, ok := l.keys[k]
	if !ok {
		if len(l.keys) >= maxLimitKeys {
			l.evict()
		}
		st = &limitState{}
		l.keys[k] = st
	}
	return st
}

func (l *limiter) add(st *limitState, t time.Time, id string) {
	i, _ := slices.BinarySearchFunc(st.recent, t, func(e limitEntry, t time.Time) int { return e.at.Compare(t) })
	st.recent = slices.Insert(st.recent, i, limitEntry{at: t, id: id})
	if n := len(st.recent) - l.cfg.Burst; n > 0 {
		st.recent = slices.Delete(st.recent, 0, n)
	}
	if t.After(st.newest) {
		st.newest = t
	}
	if t.After(l.latest) {
		l.latest = t
	}
}

// evict drops keys whose newest alert is a window older than the newest
// alert of all.
func (l *limiter) evict() {
	for k, st := range l.keys {
		if l.latest.Sub(st.newest) > l.cfg.Every {
			delete(l.keys, k)
		}
	}
}
