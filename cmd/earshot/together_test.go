package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/bustest"
	"github.com/earshot/earshot/policy"
	"github.com/earshot/earshot/policy/notify"
)

// failingConsumer fails at once, as a consumer refused by the brokers does.
type failingConsumer struct{ err error }

func (f failingConsumer) Run(context.Context, bus.Handler) error { return f.err }
func (failingConsumer) Close() error                             { return nil }

// TestPolicyStageEndsWhenAPartFails: when the policy engine's consumer
// fails, the stage stops its notifier and its policy loader and returns
// the error, so `earshot policy` exits instead of hanging.
func TestPolicyStageEndsWhenAPartFails(t *testing.T) {
	p, err := policy.Default()
	if err != nil {
		t.Fatal(err)
	}
	refused := errors.New("SASL authentication failed")
	st, err := policy.NewStage(policy.StageConfig{Consumer: failingConsumer{refused}, Sender: &bustest.Capture{}, Policy: policy.Fixed{P: p}, Producer: event.Producer{Name: "t"}})
	if err != nil {
		t.Fatal(err)
	}
	n, err := notify.NewStage(notify.StageConfig{Consumer: bustest.NewFeed(), Sender: &bustest.Capture{}, Routes: []notify.Route{{Notifier: notify.NewStdout("stdout", nil)}}})
	if err != nil {
		t.Fatal(err)
	}
	s := &policyStage{Stage: st, notifier: n}
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background()) }()
	select {
	case err := <-done:
		if !errors.Is(err, refused) {
			t.Fatalf("Run: %v, want the consumer's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the policy stage did not return after its consumer failed")
	}
}

func TestRunTogether(t *testing.T) {
	boom := errors.New("boom")
	waits := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	for name, tc := range map[string]struct {
		parts []func(context.Context) error
		want  error
	}{
		"a part fails":        {[]func(context.Context) error{waits, func(context.Context) error { return boom }, waits}, boom},
		"a part ends cleanly": {[]func(context.Context) error{waits, func(context.Context) error { return nil }}, nil},
		"no parts":            {nil, nil},
	} {
		t.Run(name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() { done <- runTogether(context.Background(), tc.parts...) }()
			select {
			case err := <-done:
				if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
					t.Fatalf("err %v, want %v", err, tc.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("runTogether did not return")
			}
		})
	}
	// The caller's cancellation ends every part without an error.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := runTogether(ctx, waits, waits); err != nil {
		t.Fatalf("cancelled: %v", err)
	}
}
