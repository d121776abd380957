// Package bus is Earshot's Kafka wiring and the only package that imports a
// Kafka client: a synchronous producer, a consumer-group member that commits
// only what is finished, a bounded event-ID dedupe set, a dead-letter
// helper, topic admin (creation, configs such as retention.ms, deletion),
// group-less log reads ([LogReader]: ranges, whole topics, following a
// partition), an [Appender] that says where a record landed (for state kept
// in a compacted topic, such as room leases), and an in-process broker for
// evaluation and tests. Tests and test kits elsewhere use these too.
//
// The package knows no topic names; the event package defines them (and
// which stage may read and write which, event.Access).
//
// Every client takes a [Cluster]: the brokers, and for a real cluster the
// TLS that encrypts and checks them and the SCRAM-SHA-512 credentials of
// the process's principal, whose ACLs ([CreateACLs]) say what it may do.
// A refused login, a broker certificate that does not verify and an ACL
// refusal are [Permanent] and name the principal, the operation and the
// resource. [Embedded] is plaintext without ACLs: it listens on loopback
// only, for evaluation and tests.
//
// Delivery is at least once. A [Producer] returns only after every replica in
// sync has the records (acks=all), so a caller may acknowledge its own input
// once Produce returns. A [Consumer] commits, per partition, only up to the
// oldest record its handler has not finished, so records finished out of
// order are never skipped after a restart or a rebalance; some are delivered
// again, which consumers absorb by deduplicating on the event ID ([Dedupe]).
//
// Everything speaks the Kafka protocol through one client library,
// github.com/segmentio/kafka-go, against a real cluster or against
// [Embedded]. franz-go is used for one thing only, its kfake broker behind
// [Embedded]: kafka-go has no broker of its own, and kfake serves the whole
// protocol kafka-go needs (consumer groups, admin, fetch waits) in process.
// (A test also uses franz-go's partitioner as an independent reference for
// which partition a key lands in.)
// Embedded keeps records in memory unless given a data folder: it is for
// evaluation and tests, not production.
package bus
