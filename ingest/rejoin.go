package ingest

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/earshot/earshot/internal/clock"
)

// Rejoin timing. A bot that lost its room does not wait out a growing
// backoff before trying again: it probes Janus cheaply (GET /info) and
// backs off on the probe, so it rejoins within probeMax of Janus answering
// again however long the outage was. The growing backoff is kept only for
// stays that fail while Janus answers (a join refused, a subscription
// that cannot start), where trying at once again would only repeat the
// failure.
const (
	probeFirst   = 250 * time.Millisecond // first wait after a failed probe
	probeMax     = 2 * time.Second        // longest wait between probes
	probeTimeout = 2 * time.Second        // a probe's own deadline
	// probeFresh: a probe result this recent is shared by every bot of the
	// stage instead of probing again, so an outage costs Janus about one
	// probe per probeMax whatever the number of rooms.
	probeFresh = 200 * time.Millisecond

	retryFirst = time.Second      // wait before a stay's second retry while Janus answers
	retryMax   = 30 * time.Second // longest such wait

	// rejoinSpacing paces the stage's rejoins (at most 20 a second) and
	// rejoinJitter spreads them further, so that Janus coming back does not
	// meet every room of every instance at the same instant.
	rejoinSpacing = 50 * time.Millisecond
	rejoinJitter  = 250 * time.Millisecond
)

// reconnector decides when the stage's bots and its supervisor try Janus
// again after losing it. One per stage: it shares probe results and paces
// the rejoins of all rooms.
type reconnector struct {
	probe func(context.Context) error // a cheap request that succeeds when Janus answers
	sleep func(context.Context, time.Duration) bool
	now   func() time.Time
	rand  func(n time.Duration) time.Duration // uniform in [0, n)

	probing chan struct{} // a one-slot semaphore: one probe at a time

	mu      sync.Mutex
	probed  time.Time // when the last probe ended
	answers bool      // its result
	next    time.Time // the earliest start of the next rejoin
}

func newReconnector(probe func(context.Context) error) *reconnector {
	return &reconnector{
		probe: probe, sleep: clock.Sleep, now: time.Now,
		rand: func(n time.Duration) time.Duration {
			if n <= 0 {
				return 0
			}
			return rand.N(n)
		},
		probing: make(chan struct{}, 1),
	}
}

// retryDelay is the wait before retrying a stay that failed the failures-th
// time in a row while Janus answered: none after the first failure, then
// retryFirst doubling up to retryMax.
func retryDelay(failures int) time.Duration {
	if failures <= 1 {
		return 0
	}
	d := retryFirst
	for i := 2; i < failures && d < retryMax; i++ {
		d *= 2
	}
	return min(d, retryMax)
}

// wait returns when it is time to try Janus again after the failures-th
// failure in a row (≥ 1): once Janus answers a probe, after retryDelay
// unless Janus was unreachable meanwhile (an outage explains the failure,
// so the streak starts over), and after the stage's pacing. outage reports
// that a probe failed: the caller resets its failure count. ok is false
// when ctx ended.
func (r *reconnector) wait(ctx context.Context, failures int) (outage, ok bool) {
	delay := probeFirst
	for !r.up(ctx) {
		if ctx.Err() != nil {
			return outage, false
		}
		outage = true
		if !r.sleep(ctx, delay+r.rand(delay/4)) {
			return outage, false
		}
		delay = min(delay*2, probeMax)
	}
	if !outage && !r.sleep(ctx, retryDelay(failures)) {
		return outage, false
	}
	return outage, r.sleep(ctx, r.slot()+r.rand(rejoinJitter))
}

// slot reserves the next rejoin slot and returns how long until it.
func (r *reconnector) slot() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	at := now
	if r.next.After(now) {
		at = r.next
	}
	r.next = at.Add(rejoinSpacing)
	return at.Sub(now)
}

// up reports whether Janus answers, probing unless another caller's probe
// ended less than probeFresh ago.
func (r *reconnector) up(ctx context.Context) bool {
	select {
	case r.probing <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	defer func() { <-r.probing }()
	r.mu.Lock()
	if !r.probed.IsZero() && r.now().Sub(r.probed) < probeFresh {
		ok := r.answers
		r.mu.Unlock()
		return ok
	}
	r.mu.Unlock()
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	err := r.probe(pctx)
	cancel()
	r.mu.Lock()
	r.probed, r.answers = r.now(), err == nil
	r.mu.Unlock()
	return err == nil
}
