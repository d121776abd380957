package main

import (
	"context"
	"errors"
	"sync"
)

// runTogether runs the parts of a stage until the first of them returns,
// for any reason, then stops the others and waits for them: a stage runs
// only while all its parts do, and a part that fails makes the command
// exit instead of leaving it up half-working. It returns the errors of
// the parts, leaving out the cancellation it caused itself.
func runTogether(ctx context.Context, parts ...func(context.Context) error) error {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, run := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := run(ctx)
			stopped := ctx.Err() != nil
			stop()
			if err == nil || (stopped && errors.Is(err, context.Canceled)) {
				return
			}
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
