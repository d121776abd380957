package rebroadcast

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/earshot/earshot/policy/fingerprint"
)

// recordVersion is the layout of a fingerprint record.
const recordVersion = 1

// Bounds a record must keep: a chunk is about a second; a minute of
// frames and landmarks is far above any chunk the recorder writes.
const (
	maxRecordFrames    = 60 * 1000 / fingerprint.FrameMS
	maxRecordLandmarks = 60 * 1000
	maxRecordBytes     = 1 << 20
)

// Record is one chunk's fingerprints as they travel on
// earshot.fingerprints (key = track): the landmarks as keyed values,
// never the peak frequencies, and the frame levels (a loudness curve, one
// byte per 16 ms), which decide whether matched audio is speech.
type Record struct {
	V int `json:"v"`
	// Origin is the instance that extracted it: it indexed the record
	// already and skips it when reading the topic back.
	Origin string `json:"origin"`
	// Track is the pipeline's track ID; Start is the timeline sample (48
	// kHz) of the extractor's frame 0 (where this extraction of the track
	// began: a track taken over after a rebalance starts again).
	Track   string `json:"track"`
	Start   int64  `json:"start"`
	Room    string `json:"room"`
	Session string `json:"session"`
	Speaker string `json:"speaker"`
	// StartMS is the wall time of frame 0 (Unix ms).
	StartMS int64 `json:"start_ms"`
	Private bool  `json:"private,omitempty"`
	// Seq orders a track's records; a redelivered record is skipped.
	Seq int64 `json:"seq"`
	// Frame is the track frame of Levels[0].
	Frame  int32  `json:"frame"`
	Levels []byte `json:"levels,omitempty"`
	// Landmarks are 8 bytes each, big-endian: the keyed hash value
	// (uint32), then the anchor frame (int32).
	Landmarks []byte `json:"landmarks,omitempty"`
}

// name is the track's name in an index: one extraction of a track.
func (r *Record) name() string { return fmt.Sprintf("%s@%d", r.Track, r.Start) }

// packLandmarks encodes landmarks under p.
func packLandmarks(lms []fingerprint.Landmark, p *fingerprint.Permutation) []byte {
	b := make([]byte, 0, 8*len(lms))
	for _, l := range lms {
		b = binary.BigEndian.AppendUint32(b, p.Forward(l.Hash))
		b = binary.BigEndian.AppendUint32(b, uint32(l.T))
	}
	return b
}

// unpackLandmarks decodes landmarks with p.
func unpackLandmarks(b []byte, p *fingerprint.Permutation) ([]fingerprint.Landmark, error) {
	if len(b)%8 != 0 {
		return nil, fmt.Errorf("rebroadcast: record: %d landmark bytes is not a multiple of 8", len(b))
	}
	out := make([]fingerprint.Landmark, 0, len(b)/8)
	for i := 0; i < len(b); i += 8 {
		h, ok := p.Inverse(binary.BigEndian.Uint32(b[i:]))
		t := int32(binary.BigEndian.Uint32(b[i+4:]))
		if !ok || t < 0 {
			return nil, fmt.Errorf("rebroadcast: record: landmark %d out of range", i/8)
		}
		out = append(out, fingerprint.Landmark{Hash: h, T: t})
	}
	return out, nil
}

func (r *Record) marshal() ([]byte, error) { return json.Marshal(r) }

// ErrBadRecord is returned (wrapped) for a record that is not a valid
// fingerprint record.
var ErrBadRecord = errors.New("rebroadcast: bad fingerprint record")

// DecodeRecord parses and checks a record.
func DecodeRecord(b []byte) (*Record, error) {
	if len(b) > maxRecordBytes {
		return nil, fmt.Errorf("%w: %d bytes", ErrBadRecord, len(b))
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadRecord, err)
	}
	var errs []string
	if r.V != recordVersion {
		errs = append(errs, fmt.Sprintf("version %d", r.V))
	}
	if r.Origin == "" || r.Track == "" || r.Room == "" {
		errs = append(errs, "origin, track or room missing")
	}
	if r.Start < 0 || r.Seq < 0 || r.Frame < 0 {
		errs = append(errs, "negative start, seq or frame")
	}
	if len(r.Levels) > maxRecordFrames {
		errs = append(errs, fmt.Sprintf("%d levels", len(r.Levels)))
	}
	if len(r.Landmarks)%8 != 0 || len(r.Landmarks)/8 > maxRecordLandmarks {
		errs = append(errs, fmt.Sprintf("%d landmark bytes", len(r.Landmarks)))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %v", ErrBadRecord, errs)
	}
	return &r, nil
}

// levels converts record bytes to frame levels (dBFS, int8).
func levelsOf(b []byte) []int8 {
	out := make([]int8, len(b))
	for i, v := range b {
		out[i] = int8(v)
	}
	return out
}

func levelBytes(l []int8) []byte {
	out := make([]byte, len(l))
	for i, v := range l {
		out[i] = byte(v)
	}
	return out
}
