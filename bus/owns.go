package bus

// Owns reports whether this member holds partition of topic in the current
// generation (false between generations). One member of a group holds a
// partition at a time, so "the member that owns partition 0" picks one
// instance for work that must run once (the rebroadcast stage's outside
// stream watcher); during a rebalance nobody owns it for a moment.
func (c *Consumer) Owns(topic string, partition int) bool {
	c.mu.Lock()
	g := c.current
	c.mu.Unlock()
	if g == nil {
		return false
	}
	_, ok := g.parts[topicPartition{topic, partition}]
	return ok
}
