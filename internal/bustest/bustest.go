// Package bustest has test doubles for the bus package's interfaces.
package bustest

import (
	"context"
	"sync"

	"github.com/earshot/earshot/bus"
)

// Capture is a bus.Sender that keeps every record it is given.
type Capture struct {
	mu   sync.Mutex
	msgs []bus.Message
}

var _ bus.Sender = (*Capture)(nil)

// Produce implements bus.Sender.
func (c *Capture) Produce(_ context.Context, msgs ...bus.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, msgs...)
	return nil
}

// All returns every record so far.
func (c *Capture) All() []bus.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]bus.Message(nil), c.msgs...)
}

// Topic returns the records sent to one topic, in order.
func (c *Capture) Topic(name string) []bus.Message {
	var out []bus.Message
	for _, m := range c.All() {
		if m.Topic == name {
			out = append(out, m)
		}
	}
	return out
}
