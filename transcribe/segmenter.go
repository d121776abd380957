package transcribe

import (
	"errors"
	"fmt"
	"time"
)

// SegmenterConfig tunes utterance segmentation. The zero value is the
// default; each field says its default.
type SegmenterConfig struct {
	// MaxLength bounds an utterance (8 s). Longer speech is cut at the
	// quietest 20 ms of the last two seconds before the limit, with Overlap
	// shared by both sides so a word cut at the boundary is whole in one of
	// them; Attribute keeps each word once, by timeline position.
	MaxLength time.Duration
	// Overlap is the audio shared by the two sides of a cut at MaxLength
	// (500 ms).
	Overlap time.Duration
	// MinPause is the silence that ends an utterance (500 ms): long enough
	// to bridge the gaps between words and at stops, short enough that
	// turn-taking shows up as separate utterances.
	MinPause time.Duration
	// PreRoll is audio kept before the detected onset (200 ms), so a soft
	// first consonant is not clipped.
	PreRoll time.Duration
	// PostRoll is audio kept after the last speech (200 ms), for trailing
	// consonants and because Whisper ends words late on abrupt cuts.
	PostRoll time.Duration
	// Margin is how far above the noise floor a frame must be to count as
	// sound, in dB (9).
	Margin float64
	// MinLevel is the least energy that can be speech, in dB relative to
	// full scale (-60; speech 20 dB below a normal level is around -40).
	MinLevel float64
	// Voicing is the periodicity (0–1) a loud frame needs to count as
	// voiced (0.45; vowels are 0.5–0.95, noise at most 0.3).
	Voicing float64
	// FloorWindow is how far back the noise floor looks (5 s).
	FloorWindow time.Duration
	// Onset is how much voiced audio within 200 ms opens an utterance
	// (60 ms): a short vowel does, a click or a knock does not.
	Onset time.Duration
}

const (
	onsetWindowFrames = 10 // 200 ms
	lookbackFrames    = 25 // loud audio up to 500 ms before the first voiced frame is speech...
	lookbackGapFrames = 4  // ...unless 80 ms of quiet come between
	hangoverFrames    = 15 // loud audio this close to a voiced frame is speech (unvoiced consonants)
	spanGapFrames     = 5  // speech frames this close join one span
)

func (c *SegmenterConfig) setDefaults() error {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.MaxLength, 8*time.Second)
	def(&c.Overlap, 500*time.Millisecond)
	def(&c.MinPause, 500*time.Millisecond)
	def(&c.PreRoll, 200*time.Millisecond)
	def(&c.PostRoll, 200*time.Millisecond)
	def(&c.FloorWindow, 5*time.Second)
	def(&c.Onset, 60*time.Millisecond)
	if c.Margin == 0 {
		c.Margin = 9
	}
	if c.MinLevel == 0 {
		c.MinLevel = -60
	}
	if c.Voicing == 0 {
		c.Voicing = 0.45
	}
	var errs []error
	for name, d := range map[string]time.Duration{"MaxLength": c.MaxLength, "Overlap": c.Overlap, "MinPause": c.MinPause,
		"PreRoll": c.PreRoll, "PostRoll": c.PostRoll, "FloorWindow": c.FloorWindow, "Onset": c.Onset} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s %v is negative", name, d))
		}
	}
	if c.MaxLength < 2*time.Second {
		errs = append(errs, fmt.Errorf("MaxLength %v is under 2s", c.MaxLength))
	}
	if c.Overlap > c.MaxLength/4 {
		errs = append(errs, fmt.Errorf("Overlap %v is over a quarter of MaxLength %v", c.Overlap, c.MaxLength))
	}
	if c.MinPause < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("MinPause %v is under 100ms", c.MinPause))
	}
	if c.Onset > onsetWindowFrames*20*time.Millisecond {
		errs = append(errs, fmt.Errorf("Onset %v is over the 200ms onset window", c.Onset))
	}
	if c.Margin < 0 || c.Voicing < 0 || c.Voicing >= 1 {
		errs = append(errs, fmt.Errorf("Margin %v must be >= 0 and Voicing %v in [0, 1)", c.Margin, c.Voicing))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("transcribe: segmenter config: %w", err)
	}
	return nil
}

// Utterance is a stretch of one track's audio with speech in it, ready for
// an Engine.
type Utterance struct {
	// Start is the timeline (48 kHz) sample of Samples[0].
	Start int64
	// Samples are mono float32 at AudioRate.
	Samples []float32
	// Own is the timeline range whose words this utterance reports. It is
	// the whole utterance, except next to a cut at MaxLength: there the
	// overlap is split at its middle, and a word belongs to the side that
	// holds its centre.
	Own Span
	// Speech lists the timeline ranges where voice activity was detected.
	Speech []Span
}

// Span is the inclusive timeline range of the utterance's audio.
func (u Utterance) Span() Span { return AudioSpan(ToAudio(u.Start), int64(len(u.Samples))) }

// Duration is the utterance's length.
func (u Utterance) Duration() time.Duration {
	return time.Duration(len(u.Samples)) * time.Second / AudioRate
}

type frameInfo struct {
	energy       float64
	loud, voiced bool
}

// Segmenter cuts one track's audio into utterances: it finds speech by
// energy against an adaptive noise floor plus voicing, ends an utterance at
// a pause or at MaxLength, and never returns audio without detected speech.
// Its decisions depend only on the audio and its timeline positions, not on
// how the audio was split into pushes. Use one per track; it is not safe for
// concurrent use.
type Segmenter struct {
	cfg                                    SegmenterConfig
	maxLen, overlap, minPause              int64 // audio samples
	preRoll, postRoll, idleKeep, cutSearch int64
	onsetFrames                            int

	buf      []float32
	bufStart int64 // audio index of buf[0]
	next     int64 // audio index expected next; -1 before the first push
	frameAt  int64 // audio index of the next frame to analyse
	floor    *floorTracker
	hist     []frameInfo // frames from histAt on, one per frameLen
	histAt   int64
	pitch    [pitchWindow]float64

	active     bool
	uttStart   int64      // audio index
	ownFirst   int64      // timeline sample
	lastVoiced int64      // audio index just after the last voiced frame
	speechEnd  int64      // audio index just after the last speech frame
	spans      [][2]int64 // audio index ranges [a, b) of speech
	prevEnd    int64      // audio index just after the last utterance

	// resume is set while a segmenter that began mid-track has not opened
	// its first utterance; viewStart is the audio index of its first
	// sample, and dropping marks an utterance in progress that is dropped.
	resume    bool
	viewStart int64
	dropping  bool
}

// Resume tells a new segmenter that its audio starts mid-track, where
// another worker left off (a rebalance or a restart). That worker
// transcribed every utterance that ended before its last commit, and the
// commit point can lie inside the tail of such an utterance; but it
// commits audio before an utterance it has not finished only up to
// MinPause before the utterance's onset (Pending). So the first utterance
// whose onset comes less than MinPause after the first sample is the tail
// of one transcribed before: it is dropped, not transcribed twice. The
// utterance the other worker was cutting has its whole pause in view, so
// it is cut exactly as that worker would have cut it (same event IDs).
// Known limit: after a cut at MaxLength the continuation has no pause
// before it, and is dropped up to the next pause. Call before the first
// Push.
func (s *Segmenter) Resume() { s.resume = true }

// NewSegmenter returns a segmenter for a track's start.
func NewSegmenter(cfg SegmenterConfig) (*Segmenter, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	samples := func(d time.Duration) int64 { return int64(d) * AudioRate / int64(time.Second) }
	s := &Segmenter{
		cfg:         cfg,
		maxLen:      samples(cfg.MaxLength),
		overlap:     samples(cfg.Overlap) &^ 1,
		minPause:    samples(cfg.MinPause),
		preRoll:     samples(cfg.PreRoll),
		postRoll:    samples(cfg.PostRoll),
		cutSearch:   samples(2 * time.Second),
		onsetFrames: max(1, int((cfg.Onset+10*time.Millisecond)/(20*time.Millisecond))),
	}
	s.idleKeep = (onsetWindowFrames+lookbackFrames+1)*frameLen + s.preRoll
	s.reset()
	return s, nil
}

func (s *Segmenter) reset() {
	s.resume, s.dropping = false, false
	s.floor = newFloorTracker(int(s.cfg.FloorWindow / (20 * time.Millisecond)))
	s.buf = s.buf[:0]
	s.next = -1
	s.hist = s.hist[:0]
	s.active = false
	s.spans = s.spans[:0]
	s.prevEnd = 0
}

// Push adds audio that starts at timeline sample start and returns the
// utterances it completes. Audio overlapping what was pushed before is
// ignored; a gap (a discontinuity in the decoded audio) ends any utterance
// in progress.
func (s *Segmenter) Push(start int64, samples []float32) []Utterance {
	k := ToAudio(start)
	var out []Utterance
	if s.next >= 0 && k != s.next {
		if k < s.next {
			d := s.next - k
			if d >= int64(len(samples)) {
				return nil
			}
			samples, k = samples[d:], s.next
		} else {
			out = s.end(out)
			s.buf = s.buf[:0]
			s.hist = s.hist[:0]
			s.next = -1
			s.prevEnd = k
		}
	}
	if s.next < 0 {
		if s.resume && len(s.hist) == 0 && !s.active {
			s.viewStart = k
		}
		s.bufStart, s.next = k, k
		// Frames sit on a grid of the track's timeline (the first whole
		// one from k), so decisions do not depend on how audio is pushed.
		s.frameAt = (k + frameLen - 1) / frameLen * frameLen
		s.histAt = s.frameAt
	}
	s.buf = append(s.buf, samples...)
	s.next += int64(len(samples))
	for s.frameAt+frameLen <= s.next {
		out = s.frame(out)
		s.frameAt += frameLen
	}
	s.trim()
	return out
}

// Flush ends the track: it returns the utterance in progress, if any, and
// resets the segmenter for a new track.
func (s *Segmenter) Flush() []Utterance {
	var out []Utterance
	if s.next >= 0 {
		out = s.end(out)
	}
	s.reset()
	return out
}

// Pending returns the earliest timeline sample that a future utterance may
// still include, and false when nothing is buffered. A consumer commits its
// input only up to the chunk holding this sample, so that a worker taking
// over the track re-reads all the audio of the utterance in progress.
func (s *Segmenter) Pending() (int64, bool) {
	if s.next < 0 {
		return 0, false
	}
	if s.active {
		// A pause of MinPause precedes an utterance (unless it follows a
		// cut at MaxLength): keeping it lets a worker that takes over
		// tell this utterance from the tail of one already transcribed
		// (Resume).
		return ToTimeline(max(s.uttStart-(s.minPause-s.preRoll), 0)), true
	}
	return ToTimeline(s.bufStart), true
}

// speaking reports whether an utterance is in progress: voice detected
// and not yet cut.
func (s *Segmenter) speaking() bool { return s.next >= 0 && s.active }

// frame analyses the frame at s.frameAt.
func (s *Segmenter) frame(out []Utterance) []Utterance {
	at := s.frameAt
	x := s.buf[at-s.bufStart : at-s.bufStart+frameLen]
	e := energyDB(x)
	floor := max(s.floor.add(e), silenceDB)
	loud := e >= max(floor+s.cfg.Margin, s.cfg.MinLevel)
	voiced := false
	if loud && at-frameLen >= s.bufStart {
		voiced = periodicity(s.buf[at-frameLen-s.bufStart:at+frameLen-s.bufStart], &s.pitch) >= s.cfg.Voicing
	}
	s.hist = append(s.hist, frameInfo{energy: e, loud: loud, voiced: voiced})
	end := at + frameLen
	if !s.active {
		s.maybeStart()
		return out
	}
	if voiced {
		s.lastVoiced = end
	}
	if voiced || (loud && at-s.lastVoiced < hangoverFrames*frameLen) {
		s.addSpeech(at, end)
	}
	switch {
	case end-s.speechEnd >= s.minPause:
		return s.end(out)
	case end-s.uttStart >= s.maxLen:
		return s.cut(out, end)
	}
	return out
}

// maybeStart opens an utterance when the onset window holds enough voiced
// frames.
func (s *Segmenter) maybeStart() {
	n := len(s.hist)
	w := min(onsetWindowFrames, n)
	voiced, first := 0, -1
	for i := n - w; i < n; i++ {
		if s.hist[i].voiced {
			voiced++
			if first < 0 {
				first = i
			}
		}
	}
	if voiced < s.onsetFrames {
		return
	}
	// Speech began with the loud audio that leads into the first voiced
	// frame: unvoiced and weakly voiced sounds, across short closures (the
	// silence of a stop consonant).
	i, quiet := first, 0
	for j := first - 1; j >= 0 && j >= first-lookbackFrames && quiet < lookbackGapFrames; j-- {
		if s.hist[j].loud {
			i, quiet = j, 0
		} else {
			quiet++
		}
	}
	onset := s.histAt + int64(i)*frameLen
	if s.resume {
		s.resume = false
		s.dropping = onset-s.viewStart < s.minPause
	}
	s.active = true
	s.uttStart = max(onset-s.preRoll, s.bufStart, s.prevEnd)
	s.ownFirst = ToTimeline(s.uttStart)
	s.spans = s.spans[:0]
	s.speechEnd = onset
	for j := i; j < n; j++ {
		f := s.hist[j]
		at := s.histAt + int64(j)*frameLen
		if f.voiced {
			s.lastVoiced = at + frameLen
		}
		if f.voiced || f.loud {
			s.addSpeech(at, at+frameLen)
		}
	}
}

func (s *Segmenter) addSpeech(a, b int64) {
	if n := len(s.spans); n > 0 && a-s.spans[n-1][1] <= spanGapFrames*frameLen {
		s.spans[n-1][1] = b
	} else {
		s.spans = append(s.spans, [2]int64{a, b})
	}
	s.speechEnd = b
}

// end closes the utterance in progress at its last speech plus PostRoll.
func (s *Segmenter) end(out []Utterance) []Utterance {
	if !s.active {
		return out
	}
	s.active = false
	b := min(s.speechEnd+s.postRoll, s.next)
	s.prevEnd = b
	if s.dropping {
		s.dropping = false
		return out
	}
	// After a cut, speech that ended before the middle of the overlap was
	// already reported by the previous utterance.
	if ToTimeline(s.speechEnd) <= s.ownFirst {
		return out
	}
	return append(out, s.emit(s.uttStart, b, ToTimeline(b)-1))
}

// cut splits an utterance that reached MaxLength at the quietest frame of
// its last two seconds. end is the current frame's end.
func (s *Segmenter) cut(out []Utterance, end int64) []Utterance {
	half := s.overlap / 2
	lo := max(end-s.cutSearch, s.uttStart+s.maxLen/2)
	hi := end - half - frameLen/2
	best, bestE := int64(-1), 0.0
	for at := lo / frameLen * frameLen; at <= hi; at += frameLen {
		i := (at - s.histAt) / frameLen
		if at < lo || i < 0 || i >= int64(len(s.hist)) {
			continue
		}
		if e := s.hist[i].energy; best < 0 || e <= bestE {
			best, bestE = at, e
		}
	}
	if best < 0 {
		best = hi - frameLen/2
	}
	c := best + frameLen/2 // the middle of the quietest frame
	if s.dropping {
		s.dropping = false // the tail ends here: what follows is new
	} else {
		out = append(out, s.emit(s.uttStart, c+half, ToTimeline(c)-1))
	}
	s.uttStart = c - half
	s.ownFirst = ToTimeline(c)
	return out
}

// emit copies audio [a, b) into an utterance owning timeline words up to
// ownLast.
func (s *Segmenter) emit(a, b, ownLast int64) Utterance {
	u := Utterance{
		Start:   ToTimeline(a),
		Samples: append([]float32(nil), s.buf[a-s.bufStart:b-s.bufStart]...),
		Own:     Span{First: s.ownFirst, Last: ownLast},
	}
	for _, sp := range s.spans {
		lo, hi := max(sp[0], a), min(sp[1], b)
		if lo < hi {
			u.Speech = append(u.Speech, AudioSpan(lo, hi-lo))
		}
	}
	return u
}

// trim drops audio and frames no future utterance can include.
func (s *Segmenter) trim() {
	keep := s.next - s.idleKeep
	if s.active {
		keep = min(keep, s.uttStart)
	}
	keep = min(max(keep, s.bufStart), s.frameAt-frameLen)
	if drop := keep - s.bufStart; drop >= AudioRate { // amortise the copy
		s.buf = s.buf[:copy(s.buf, s.buf[drop:])]
		s.bufStart = keep
	}
	if f := (s.bufStart - s.histAt) / frameLen; f > 0 && f <= int64(len(s.hist)) {
		s.hist = s.hist[:copy(s.hist, s.hist[f:])]
		s.histAt += f * frameLen
	}
	if s.active {
		n := 0
		for _, sp := range s.spans {
			if sp[1] > s.uttStart {
				s.spans[n] = sp
				n++
			}
		}
		s.spans = s.spans[:n]
	}
}
