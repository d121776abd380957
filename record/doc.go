// Package record is the media core of the recorder: it turns one track's
// RTP Opus packets into a gap-true 48 kHz timeline, cut into live chunks
// and stored Ogg/Opus segments. It does no networking and no storage; the
// caller drives one Track per track from one goroutine (Push for packets,
// Tick on a timer, SenderReport for RTCP, Close at the end) and gets the
// output through two small sinks.
//
// # Timeline
//
// Sample n of a track is the n-th 48 kHz sample since its start and sits
// n/48000 s after Timeline.Origin. Every sample is covered exactly once by
// a packet: real audio, or an Opus silence packet where nothing usable
// arrived. Gaps are counted by cause (Gaps): loss (sequence numbers missing
// at their deadline), silence (the sender's timestamps skipped a pause
// while it kept sending: DTX) and mute (no packets at all for 500 ms or
// more).
//
// Packets are placed by RTP timestamp (unwrapped across the 32-bit wrap;
// the Opus RTP clock is 48 kHz), so within a stream positions are sample
// exact and free of network jitter. The recorder also tracks each packet's
// lateness (arrival position minus timestamp position) against the track's
// usual network delay; when a packet's timestamp disagrees with its arrival
// by more than 120 ms it is placed by arrival time instead. That covers a
// sender whose timestamps stop during a 5 s mute (the packet after the mute
// lands 5 s later, as on the wall clock) as well as one whose timestamps
// keep running (no change needed), and timestamps that jump. During a mute
// Tick fills silence up to 120 ms behind wall-clock, so chunks keep coming
// and the timeline keeps pace with wall-clock time. A network delay spike
// over 120 ms looks like a stalled timestamp at its first packet and moves
// the timeline later by the spike; the usual delay is not reset by the
// burst that follows, so the next pause in the audio (a gap before a
// packet) takes the lead back and the timeline is in step with wall-clock
// again. Placement never moves audio already written.
//
// Tick's idle rule (no packet for 500 ms means mute) sits above the 400 ms
// a sender in DTX leaves between its packets, so DTX gaps are filled when
// the next packet comes and counted as silence, not mute.
//
// # Reorder, de-duplication and loss
//
// Packets are reordered by sequence number with pion's jitter buffer
// (interceptor/pkg/jitterbuffer), which orders but has no deadline; the
// deadline is ours: a packet that arrives after a gap waits at most
// LossDeadline (default 80 ms) for the missing ones, which are then
// declared lost and filled with silence. In-order packets pass straight
// through, so the reorder stage adds no latency unless something is
// missing, and then at most LossDeadline. A window of 256 sequence numbers
// remembers what was placed or declared lost, to count duplicates and late
// packets; two consecutive packets far outside it start a new sequence.
//
// # Silence
//
// Gaps are filled with CELT-only fullband silence frames (TOC 0xF8, 0xF0,
// 0xE8, 0xE0 for 20, 10, 5 and 2.5 ms, payload 0xFF 0xFE, the silence
// flag), which libopus decodes to exactly the TOC's duration of digital
// zeros. Every Opus packet lasts a multiple of 2.5 ms, so positions stay on
// a 2.5 ms grid and every gap is filled exactly.
//
// # Chunks and segments
//
// A chunk (default 1 s) or segment (default 30 s) ends at the first packet
// boundary at or after each multiple of its duration on the timeline, so
// boundaries do not drift. It is emitted when the first packet of the next
// one is written (or by Close, with Final set): so the last chunk and
// segment of a track always carry Final. Each segment is a complete Ogg/Opus
// stream written by package ogg (one page per packet), with OpusTags naming
// room, session, speaker (pseudonyms), track, segment number, first sample
// and origin.
//
// Segments join sample-exactly. Every OpusHead has a pre-skip of 3840
// samples (80 ms, the decoder pre-roll RFC 7845 recommends), so every
// segment starts with exactly 3840 samples of warm-up: the packets that preceded the segment on the timeline (up to
// 80 ms), led by silence frames when there are fewer (always, for the
// first segment). Decoders drop the pre-skip, so a segment decodes to
// exactly its Timeline.Samples(), starting from a decoder state that has
// converged on the preceding audio; concatenating a track's decoded
// segments reproduces its timeline.
package record
