// Package fingerprint finds the same audio in two tracks: the core of
// rebroadcast detection (a private room's audio replayed into another
// room). It follows Wang's landmark hashing (Shazam, 2003): spectral peaks
// of 16 kHz audio in 250–3500 Hz, pairs of nearby peaks hashed as (anchor
// frequency, frequency ratio, time distance), an index from hash to
// (track, time), and a match where many hashes agree on one time offset.
//
// Two changes make it hold for replays through people's equipment:
// frequencies are quantised on a log scale, so a replay played a few
// percent fast or slow moves every hash by the same number of cells, and
// each query is hashed under several speed hypotheses (0.97–1.03) that map
// it back; and a match counts seconds with several consistent hits, so a
// word two rooms happen to share (one synthetic voice says it alike
// everywhere) neither raises nor stretches a match.
//
// It is written here rather than taken from a library: no Go package in
// the module index fingerprints audio (Chromaprint and Panako are C and
// Java; gonum has an FFT, and one fixed-size FFT is all this needs). See
// docs/rebroadcast.md for how the stage uses it, its limits and why
// fingerprints cannot be turned back into speech.
package fingerprint
