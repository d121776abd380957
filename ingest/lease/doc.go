// Package lease keeps at most one listener bot per room across several
// Earshot instances, and remembers each room's open recording session so
// that a bot that replaces another (after a crash, a restart or a move to
// another instance) continues the session instead of opening a new one.
//
// # Design: a lease log in Kafka
//
// All state lives in the compacted topic earshot.state, which every
// instance already has, so leases need no further infrastructure (no
// ZooKeeper, etcd or database):
//
//   - "lease/<room pseudonym>" records are claims: {holder, instance,
//     epoch, ttl}. Every instance reads the topic from the start, all
//     partitions, without a consumer group, and applies the records of each
//     key in partition order (one key, one partition) with the same
//     deterministic rule, so all instances agree on who holds each lease:
//
//     1. the first record seen for a key is accepted (older history may
//     have been compacted away);
//     2. a record of the current holder with the current epoch is accepted
//     (a renewal, or a release);
//     3. a record whose epoch is the current epoch + 1 is accepted (a
//     takeover): of several claimants racing for an expired lease, the one
//     whose record comes first in the partition wins, and the others'
//     records, carrying the same epoch, are ignored;
//     4. anything else is ignored.
//
//     A claimant produces its claim and then reads the partition back up
//     to its own record's offset: it holds the lease only if the table then
//     names it. This is first-writer-wins by offset.
//
//   - "session/<room pseudonym>" records hold the room's open session: its
//     ID, when it opened, how many bot stays it has had, and whether it
//     ended. The latest record wins.
//
// # Timing
//
// The defaults are TTL 10 s and renewal every 3 s, chosen for the resume
// target (recording resumes at most 15 s after a kill -9):
//
//   - The holder renews every Renew. It may record only while its latest
//     confirmed renewal is younger than TTL − Margin (Margin = TTL/5, 2 s
//     by default), measured from the moment it sent that renewal. When a
//     renewal cannot be confirmed in time (Kafka unreachable), Lost fires
//     and the bot stops recording before anyone else may take the room.
//   - Other instances measure expiry on their own clock from the moment
//     they saw the holder's latest record (never earlier than the holder
//     sent it), so a lease they consider expired is one its holder has
//     already given up: no wall-clock agreement is needed for safety. For
//     records read from history at start-up, the record's timestamp plus a
//     1 s skew allowance is used instead, so a long-dead lease is free at
//     once.
//   - After a kill -9, another instance takes the room at most TTL after
//     the last renewal (≤ 10 s): Acquire's HeldError says when the lease
//     runs out, so a contender can claim it right then. A
//     restarted process with the same instance name (Config.Instance: the
//     pod or host name) recognises its previous incarnation's lease and
//     takes it back at once (a new epoch, so a surviving old incarnation
//     would see it and stop); instance names must therefore be unique among
//     running instances.
//   - A clean stop releases the lease (a record with released set), so
//     another instance may take the room at its next poll.
//
// The in-memory log (NewMemoryLog) runs the same rules for unit tests and
// single-process use.
package lease
