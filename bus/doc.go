// Package bus is Earshot's Kafka wiring: a synchronous producer, a
// consumer-group member that commits only what is finished, a bounded
// event-ID dedupe set, a dead-letter helper, topic creation, and an
// in-process broker for evaluation and tests.
//
// The package knows no topic names; the event package defines them.
//
// Delivery is at least once. A [Producer] returns only after every replica in
// sync has the records (acks=all), so a caller may acknowledge its own input
// once Produce returns. A [Consumer] commits, per partition, only up to the
// oldest record its handler has not finished, so records finished out of
// order are never skipped after a restart or a rebalance; some are delivered
// again, which consumers absorb by deduplicating on the event ID ([Dedupe]).
//
// Both sides speak the Kafka protocol through github.com/segmentio/kafka-go,
// against a real cluster or against [Embedded] (franz-go's kfake), which
// keeps records in memory unless given a data folder: it is for evaluation
// and tests, not production.
package bus
