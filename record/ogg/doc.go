// Package ogg reads and writes Ogg/Opus: Ogg pages and their checksum
// (RFC 3533), packets laced across pages, Opus encapsulation in Ogg
// (RFC 7845: OpusHead, OpusTags, granule positions, pre-skip, end
// trimming) and the Opus packet duration from its TOC byte (RFC 6716 §3).
// The recorder writes segments with it, the transcription replay and the
// evidence cutter read them (and the cutter writes clips), and the speaker
// bot reads opusenc files.
//
// Layers, each usable alone:
//   - PageReader and Page: pages, with checksum, capture pattern and
//     version checked.
//   - Reader and Writer: the packets of one logical stream, reassembled
//     across pages (continued packets) and split over pages as libogg does.
//   - OpusReader and OpusWriter: headers, then audio packets with their
//     durations; the writer derives granule positions from the packets.
//   - PacketSamples, Silence, Head, Tags: Opus packets and headers.
//
// Readers never panic on malformed input, bound what they allocate
// (MaxPageLen, MaxPacketLen) and return errors that wrap ErrMalformed and
// name the broken rule (ErrCapture, ErrCRC, ErrTruncated, ErrOversize, …).
//
// Why not pion's pkg/media/oggreader and oggwriter: the reader returns a
// page's payload whole, without its lacing values, so it cannot split a
// page holding many packets (opusenc puts up to a second on one) nor
// reassemble a packet continued on the next page, and its errors do not say
// truncated from corrupt. The writer takes RTP packets, writes exactly one
// page per packet, cannot set the final granule position that trims a
// clip's end, and marks the end of stream only by rewriting a seekable
// output or appending an empty page (which opusinfo flags). Earshot needs
// all of these.
package ogg
