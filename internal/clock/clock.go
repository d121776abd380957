// Package clock holds the one way Earshot waits: a pause that ends early
// when its context does, so that no goroutine sleeps through a shutdown.
package clock

import (
	"context"
	"time"
)

// Sleep waits d, or until ctx ends; it reports whether the full wait
// passed (false: ctx ended). A zero or negative d returns at once.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
