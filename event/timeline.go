package event

import (
	"errors"
	"fmt"
	"time"
)

// SampleRate is the rate of every track's timeline. Opus always decodes at
// 48 kHz and RTP timestamps for Opus count 48 kHz samples, so the timeline
// needs no conversion anywhere between the wire and the transcript.
const SampleRate = 48000

// Anchor says how a timeline's sample 0 was tied to UTC.
type Anchor string

const (
	// AnchorRTCP means sample 0's UTC time came from an RTCP sender report
	// (the sender's NTP clock mapped to the RTP timestamp).
	AnchorRTCP Anchor = "rtcp_sr"
	// AnchorArrival means sample 0's UTC time is the arrival time of the
	// first packet at the bot (no sender report yet).
	AnchorArrival Anchor = "arrival"
)

// Timeline names a stretch of one track: the inclusive sample range
// [FirstSample, LastSample] on that track's 48 kHz timeline. Gaps (loss,
// DTX, mute) are filled with silence by the recorder, so sample n always
// sits n/48000 s after sample 0, and sample 0 sits at Origin in UTC.
//
// Chunks, segments, transcript words, alerts and evidence all refer to
// audio through a Timeline, which is what makes their IDs stable.
type Timeline struct {
	Track       string    `json:"track"`
	FirstSample int64     `json:"first_sample"`
	LastSample  int64     `json:"last_sample"`
	Origin      time.Time `json:"origin"` // UTC time of sample 0
	Anchor      Anchor    `json:"anchor"`
}

// Samples is the number of samples the range covers.
func (t Timeline) Samples() int64 { return t.LastSample - t.FirstSample + 1 }

// Duration is the length of the range.
func (t Timeline) Duration() time.Duration { return SamplesToDuration(t.Samples()) }

// Start is the UTC time of the first sample.
func (t Timeline) Start() time.Time { return t.Origin.Add(SamplesToDuration(t.FirstSample)) }

// End is the UTC time just after the last sample.
func (t Timeline) End() time.Time { return t.Origin.Add(SamplesToDuration(t.LastSample + 1)) }

// Sub returns the sub-range [first, last] of the same track.
func (t Timeline) Sub(first, last int64) Timeline {
	t.FirstSample, t.LastSample = first, last
	return t
}

// Overlaps reports whether two ranges share a sample of the same track.
func (t Timeline) Overlaps(o Timeline) bool {
	return t.Track == o.Track && t.FirstSample <= o.LastSample && o.FirstSample <= t.LastSample
}

// Validate checks the range is well formed.
func (t Timeline) Validate() error {
	var errs []error
	if t.Track == "" {
		errs = append(errs, errors.New("timeline: track is empty"))
	}
	if t.FirstSample < 0 {
		errs = append(errs, fmt.Errorf("timeline: first_sample %d is negative", t.FirstSample))
	}
	if t.LastSample < t.FirstSample {
		errs = append(errs, fmt.Errorf("timeline: last_sample %d is before first_sample %d", t.LastSample, t.FirstSample))
	}
	if t.Origin.IsZero() {
		errs = append(errs, errors.New("timeline: origin is not set"))
	}
	switch t.Anchor {
	case AnchorRTCP, AnchorArrival:
	default:
		errs = append(errs, fmt.Errorf("timeline: anchor %q is not %q or %q", t.Anchor, AnchorRTCP, AnchorArrival))
	}
	return errors.Join(errs...)
}

// SamplesToDuration converts a sample count at SampleRate to a duration
// without overflowing for any timeline shorter than ~6 years.
func SamplesToDuration(n int64) time.Duration {
	sec := n / SampleRate
	rem := n % SampleRate
	return time.Duration(sec)*time.Second + time.Duration(rem)*time.Second/SampleRate
}

// DurationToSamples converts a duration to whole samples, rounding down.
func DurationToSamples(d time.Duration) int64 {
	sec := int64(d / time.Second)
	rem := int64(d % time.Second)
	return sec*SampleRate + rem*SampleRate/int64(time.Second)
}
