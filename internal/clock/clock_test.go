package clock

import (
	"context"
	"testing"
	"time"
)

func TestSleep(t *testing.T) {
	if !Sleep(context.Background(), time.Millisecond) {
		t.Error("a full wait reported as cut short")
	}
	if !Sleep(context.Background(), -time.Second) {
		t.Error("a negative wait on a live context reported as cut short")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if Sleep(ctx, time.Hour) {
		t.Error("a wait on an ended context reported as full")
	}
	if time.Since(start) > time.Minute {
		t.Error("the wait did not end with its context")
	}
	if Sleep(ctx, 0) {
		t.Error("a zero wait on an ended context reported as full")
	}
}
