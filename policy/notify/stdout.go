package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
)

// Stdout writes each alert as one JSON line (the Alert type), for log
// shippers and for trying Earshot out.
type Stdout struct {
	name string
	mu   sync.Mutex
	w    io.Writer
}

var _ Notifier = (*Stdout)(nil)

// NewStdout writes to w (os.Stdout in the binary).
func NewStdout(name string, w io.Writer) *Stdout {
	if name == "" {
		name = "stdout"
	}
	return &Stdout{name: name, w: w}
}

// Name implements Notifier.
func (s *Stdout) Name() string { return s.name }

// Notify implements Notifier.
func (s *Stdout) Notify(_ context.Context, a *Alert) error {
	b, err := json.Marshal(a)
	if err != nil {
		return Permanent(fmt.Errorf("notify: %s: %w", s.name, err))
	}
	b = append(b, '\n')
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.w.Write(b); err != nil {
		return fmt.Errorf("notify: %s: %w", s.name, err)
	}
	return nil
}
