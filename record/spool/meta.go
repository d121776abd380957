package spool

import (
	"strconv"
	"time"

	"github.com/earshot/earshot/event"
)

// User metadata keys of a stored segment (Descriptor.Metadata) that place
// it on its track's timeline.
const (
	MetaTrack       = "track"
	MetaFirstSample = "first-sample"
	MetaLastSample  = "last-sample"
	MetaOrigin      = "origin"
	MetaAnchor      = "anchor"
)

// maxTimelineSamples bounds a track timeline to a year: beyond it a sample
// count is not a recording's, and its duration could overflow.
const maxTimelineSamples = 366 * 24 * 3600 * event.SampleRate

// SegmentEnd reads when a stored segment's audio ends (its timeline's
// End) from the segment's user metadata. ok is false when the metadata
// does not place it (an object ingest did not write, or one with broken
// values).
func SegmentEnd(md map[string]string) (end time.Time, ok bool) {
	last, err := strconv.ParseInt(md[MetaLastSample], 10, 64)
	if err != nil || last < 0 || last > maxTimelineSamples {
		return time.Time{}, false
	}
	origin, err := time.Parse(time.RFC3339Nano, md[MetaOrigin])
	if err != nil {
		return time.Time{}, false
	}
	return event.Timeline{Origin: origin, LastSample: last}.End(), true
}
