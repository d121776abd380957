// Package rebroadcast is the live rebroadcast stage: it finds one room's
// audio played into another room while both are live, and raises
// leak.rebroadcast (or audio.shared for matched audio without speech) on
// the alerts topic. The matching itself is package policy/fingerprint.
//
// Scaling out: every instance is a member of one consumer group on
// earshot.audio and fingerprints the tracks of the partitions it owns
// (decoding and extraction, most of the CPU). It publishes each chunk's
// landmarks, as keyed values (fingerprint.Permutation under the
// deployment's secret) with pseudonymous track, room and speaker, to
// earshot.fingerprints, keyed by track. Every instance follows all of
// earshot.fingerprints (no group) into its own index, so each index holds
// every room's recent audio, and matches only the tracks it owns against
// it. Decoding, extraction and matching divide across instances; index
// memory does not (each holds the whole window: about 2 MB per
// track-hour). docs/rebroadcast.md says where that stops and what then.
package rebroadcast
