package whispercpp

import "github.com/earshot/earshot/transcribe"

// Values of Config.Window.
const (
	// WindowFit encodes only the part of Whisper's 30 s window that the
	// audio fills, plus fitMargin: whisper.cpp's audio_ctx. The encoder's
	// cost grows with the window (its attention with the square), and a
	// live utterance fills a tenth of it, so a call costs a fraction of a
	// full window's.
	WindowFit = "fit"
	// WindowFull encodes the whole 30 s window for every call, whatever the
	// audio's length, as faster-whisper and OpenAI's Whisper do.
	WindowFull = "full"
)

// fitMargin is how many encoder positions (20 ms each) of the silence
// after the audio a fitted window keeps: the decoder places the closing
// timestamp in it.
const fitMargin = 50

// audioCtx returns whisper.cpp's audio_ctx for one call on n samples: the
// encoder positions that cover the audio's mel frames (10 ms each, two per
// position) and margin positions more, or 0, meaning the model's whole
// window of full positions, when that is no smaller. whisper.cpp asserts
// that DTW's frames (at most the audio's) fit into audio_ctx, so the
// count errs upwards.
func audioCtx(n, margin, full int) int {
	frames := n/(transcribe.AudioRate/100) + 1
	c := (frames+1)/2 + margin
	if c >= full {
		return 0
	}
	return c
}

// dtwSpan returns a text token's start and end (10 ms units) from its DTW
// time dtw, given the previous text token's (prev, -1 for a call's first
// token), and the DTW time the next token starts from.
//
// whisper.cpp gives each text token the time at which the alignment path
// reaches the decoder step that token is fed to, which is where the next
// token's audio begins: the token's end, which is where OpenAI's Whisper
// and faster-whisper end a word (the last token's is where the speech
// ends). So a token spans from the previous token's DTW time to its own;
// a call's first token starts at its segment's start (start -1). Without a
// DTW time (dtw < 0) the token keeps whisper.cpp's token-level times t0, t1.
func dtwSpan(prev, dtw, t0, t1 int64) (start, end, next int64) {
	if dtw < 0 {
		return t0, t1, prev
	}
	start = -1
	if prev >= 0 && prev <= dtw {
		start = prev
	}
	return start, dtw, dtw
}
