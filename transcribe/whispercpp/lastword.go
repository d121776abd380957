package whispercpp

import (
	"math"
	"slices"

	"github.com/earshot/earshot/transcribe"
)

// The last word of a call: a correction from the audio.
//
// libwhisper's DTW (whisper_exp_compute_token_level_timestamps_dtw) takes
// the softmax of each token's cross-attention over the whole 30 s window
// before it cuts the window to the audio, and cuts at the closing
// timestamp when that comes before the audio's end. OpenAI's Whisper and
// faster-whisper cut first, to all of the audio, and then take the
// softmax. The call's last text token, whose attention lies mostly past a
// short utterance's speech, then weighs almost nothing inside the cut, and
// the monotone path, which must end on it at the cut's last frame, enters
// its row only there: its time says where the alignment was cut (the
// audio's end, 0.3 s into the pause after the speech, or a closing
// timestamp before the speech ends), not where the word ends. The C API
// exposes neither the attention nor the cut, and the libwhisper the engine
// links is Debian's, so the engine corrects that one time from the audio it
// was given: a word cannot end after the speech does, and a last token the
// alignment placed only at its cut ends where the speech ends. Every other
// token keeps its DTW time. See transcribe/README.md, "Last-word times".

const (
	// frameSamples is one energy frame: 10 ms, whisper.cpp's time unit.
	frameSamples = transcribe.AudioRate / 100
	// voicedRange: a frame is voiced within this many dB of the loudest
	// frame (speech's quiet closing consonants sit 20-35 dB below its
	// peak).
	voicedRange = 40.0
	// voicedAboveFloor: and at least this many dB above the noise floor
	// (the quietest tenth of the frames), so that steady background noise
	// is not speech. Frame energies of stationary noise over 160 samples
	// vary by about 1 dB.
	voicedAboveFloor = 10.0
	// atCut is how close (10 ms units) a DTW time must be to the cut to
	// count as placed there: the cut's last encoder position (20 ms) and
	// whisper.cpp's rounding of mel frames.
	atCut = 4
)

// voicedEnd returns where the last voiced 10 ms frame of samples ends, in
// 10 ms units, or -1 when no frame is voiced (silence, or noise alone). A
// frame is voiced when its energy is within voicedRange of the loudest
// frame's and voicedAboveFloor above the quietest tenth's.
func voicedEnd(samples []float32) int64 {
	n := len(samples) / frameSamples
	if n == 0 {
		return -1
	}
	db := make([]float64, n)
	for i := range n {
		var sum float64
		for _, s := range samples[i*frameSamples : (i+1)*frameSamples] {
			sum += float64(s) * float64(s)
		}
		db[i] = 10 * math.Log10(sum/frameSamples+1e-12)
	}
	sorted := slices.Clone(db)
	slices.Sort(sorted)
	floor, peak := sorted[n/10], sorted[n-1]
	threshold := max(peak-voicedRange, floor+voicedAboveFloor)
	for i := n - 1; i >= 0; i-- {
		if db[i] >= threshold {
			return int64(i + 1)
		}
	}
	return -1
}

// lastWordEnd returns the end (10 ms units) of a call's last text token,
// given the start of the word it ends (-1 unknown), its DTW time dtw, the last frame the
// alignment saw, cut (min of the closing timestamp and the audio's end),
// and the audio's voiced end (voicedEnd; -1 none).
//
// A token placed at the cut ends at the voiced end (earlier or later);
// any other ends no later than the voiced end. A voiced end at or before
// the word's start contradicts the alignment about which speech the word
// is, and is ignored, as is none at all.
func lastWordEnd(start, dtw, cut, voiced int64) int64 {
	if dtw < 0 || voiced < 0 || voiced <= start {
		return dtw
	}
	if dtw >= cut-atCut {
		return voiced
	}
	return min(dtw, voiced)
}

// audioFrames is the audio's length in 10 ms units, as whisper.cpp's mel
// spectrogram counts it.
func audioFrames(samples int) int64 { return int64(samples / frameSamples) }
