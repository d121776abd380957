// Package spool is the durable hand-off between the recorder and object
// storage: a local folder where finished segments wait, and the [Uploader]
// that drains it.
//
// The recorder writes each finished Ogg/Opus segment into the spool
// ([Spool.Create] and [Writer.Commit], or [Spool.Put]). An entry is a folder
// holding the segment's bytes and a JSON [Descriptor] with everything needed
// to announce it later: the object key ([event.SegmentKey]), size, SHA-256
// and the partly built audio.segment_stored envelope. Both files are written
// into a temporary folder, fsynced, and published by one rename, so after a
// crash an entry is either complete or absent; leftovers of interrupted
// writes are removed when the spool is opened.
//
// The uploader stores each entry with a create-only put carrying its SHA-256,
// announces it on earshot.segments, and only then removes it from the spool
// (acknowledge after durable). A put that finds the key taken compares
// hashes: the same bytes mean an earlier upload whose confirmation was lost,
// different bytes are a conflict that is never overwritten (the entry moves
// to conflicts/). Failures are retried with backoff, in order per track, and
// nothing is dropped: entries the uploader cannot use are moved aside
// (conflicts/, rejected/) with a reason file, never deleted. The one
// exception is erasure: when the store refuses a segment because its data
// key was destroyed (storage.ErrErased, from crypt.Store), the speaker was
// erased while the segment waited, and the entry is deleted unannounced
// (Stats.Erased) rather than keep their speech on this disk.
//
// Each object carries the segment's pseudonyms as user metadata ("room",
// "session", "speaker"); crypt.Store encrypts it under that speaker's key.
//
// On the ingest host's disk an entry is sealed too (Config.Sealer, the
// deployment's keyring): the recorder's bytes are encrypted under the
// speaker's data key as they are written, bound to a name kept in the
// descriptor, and conflicts/ and rejected/ keep them sealed. Erasing the
// speaker makes every host's spooled copies unreadable without reaching
// the host; the uploader then drops them. Entries set aside are deleted
// after Config.KeepAside (30 days).
//
// Layout under the spool folder:
//
//	pending/<name>/segment.ogg       the segment (sealed, with a Sealer)
//	pending/<name>/descriptor.json   the Descriptor
//	conflicts/<name>/                entries whose key holds other bytes (+ reason.txt)
//	rejected/<name>/                 entries that cannot be read (+ reason.txt)
//	tmp/                             writes and removals in progress
//	lock                             held (flock) by the process using the spool
//
// Entry names are the spool time in nanoseconds, zero-padded and strictly
// increasing, so names sort in the order entries were committed, across
// restarts. The spool holds only pseudonyms: a [Segment] has no field for a
// display name or raw identity, and its IDs must be plain ID-shaped strings.
package spool
