package webrtcbench

import (
	"errors"
	"fmt"

	"github.com/earshot/earshot/record"
)

// Status is what the receiver's /status answers while it runs.
type Status struct {
	// Tracks is how many tracks have started recording (their first
	// packet is on the timeline).
	Tracks int `json:"tracks"`
	// PeerConnections is how many are connected.
	PeerConnections int `json:"peer_connections"`
}

// TrackResult is one track's recorder counters when it was closed.
type TrackResult struct {
	Track string       `json:"track"`
	Stats record.Stats `json:"stats"`
	// ChunkBytes is the size of the sealed audio.chunk events it produced.
	ChunkBytes int64 `json:"chunk_bytes"`
	// SegmentBytes is the Ogg bytes written into its segments.
	SegmentBytes int64 `json:"segment_bytes"`
}

// Report is what the receiver's /finish answers: every track, closed.
type Report struct {
	Tracks []TrackResult `json:"tracks"`
	// ChunksDropped counts chunk events the bounded outgoing queue could
	// not take (the ingest stage counts them the same way).
	ChunksDropped int64 `json:"chunks_dropped"`
}

// Totals sums the tracks' counters.
func (r *Report) Totals() record.Stats {
	var t record.Stats
	for _, tr := range r.Tracks {
		s := tr.Stats
		t.Packets += s.Packets
		t.Lost += s.Lost
		t.Late += s.Late
		t.Duplicates += s.Duplicates
		t.Malformed += s.Malformed
		t.Resyncs += s.Resyncs
		t.Samples += s.Samples
		t.Gaps.Loss += s.Gaps.Loss
		t.Gaps.Silence += s.Gaps.Silence
		t.Gaps.Mute += s.Gaps.Mute
		t.Chunks += s.Chunks
		t.Segments += s.Segments
		t.ChunkErrors += s.ChunkErrors
		t.SegmentErrors += s.SegmentErrors
	}
	return t
}

// GapFree checks that every one of want tracks was recorded without a
// gap: no packet lost, late or malformed, no resync, no silence filled, every sample
// of the timeline from a received packet (20 ms packets: 960 samples
// each), every chunk and segment written, no chunk event dropped.
// minPackets is the fewest packets a track must have recorded.
func (r *Report) GapFree(want int, minPackets int64) error {
	var errs []error
	if len(r.Tracks) != want {
		errs = append(errs, fmt.Errorf("%d tracks recorded, want %d", len(r.Tracks), want))
	}
	if r.ChunksDropped != 0 {
		errs = append(errs, fmt.Errorf("%d chunk events dropped", r.ChunksDropped))
	}
	for _, tr := range r.Tracks {
		s := tr.Stats
		var why []string
		if s.Lost != 0 || s.Late != 0 || s.Malformed != 0 {
			why = append(why, fmt.Sprintf("lost %d, late %d, malformed %d packets", s.Lost, s.Late, s.Malformed))
		}
		if s.Resyncs != 0 {
			why = append(why, fmt.Sprintf("%d resyncs", s.Resyncs))
		}
		if s.Gaps.Total() != 0 {
			why = append(why, fmt.Sprintf("gaps %+v samples", s.Gaps))
		}
		if s.Samples != s.Packets*960 {
			why = append(why, fmt.Sprintf("%d samples from %d packets", s.Samples, s.Packets))
		}
		if s.Packets < minPackets {
			why = append(why, fmt.Sprintf("%d packets, want at least %d", s.Packets, minPackets))
		}
		if s.ChunkErrors != 0 || s.SegmentErrors != 0 || s.Segments == 0 {
			why = append(why, fmt.Sprintf("%d chunk errors, %d segment errors, %d segments", s.ChunkErrors, s.SegmentErrors, s.Segments))
		}
		if len(why) > 0 {
			errs = append(errs, fmt.Errorf("track %s: %v", tr.Track, why))
		}
		if len(errs) >= 10 {
			errs = append(errs, errors.New("(more not shown)"))
			break
		}
	}
	return errors.Join(errs...)
}
