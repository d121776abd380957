package whispercpp

import "testing"

func TestAudioCtx(t *testing.T) {
	for _, tc := range []struct {
		name            string
		n, margin, full int
		want            int
	}{
		// 3 s: 300 mel frames (301 counted), 151 positions, plus margin.
		{"3 s utterance", 48000, 50, 1500, 201},
		{"no margin", 48000, 0, 1500, 151},
		{"padded 1.02 s minimum", 16320, 50, 1500, 102},
		{"odd frame count rounds up", 16000 + 160, 0, 1500, 51},
		{"25 s batch", 25 * 16000, 50, 1500, 1301},
		{"fills the window: whole", 29 * 16000, 50, 1500, 0},
		{"30 s: whole", 30 * 16000, 0, 1500, 0},
		{"over 30 s: whole", 45 * 16000, 50, 1500, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := audioCtx(tc.n, tc.margin, tc.full)
			if got != tc.want {
				t.Errorf("audioCtx(%d, %d, %d) = %d, want %d", tc.n, tc.margin, tc.full, got, tc.want)
			}
			// whisper.cpp asserts that DTW's frames fit into audio_ctx.
			if frames := 1 + (tc.n-200)/160; got != 0 && frames > 2*got {
				t.Errorf("audio_ctx %d holds %d frames, the audio has %d", got, 2*got, frames)
			}
		})
	}
}

func TestDTWSpan(t *testing.T) {
	for _, tc := range []struct {
		name                string
		prev, dtw, t0, t1   int64
		start, end, nextDTW int64
	}{
		{"first token starts with its segment", -1, 42, 10, 30, -1, 42, 42},
		{"a token spans from the previous token's end", 42, 80, 40, 70, 42, 80, 80},
		{"the same time twice is an empty span", 80, 80, 70, 75, 80, 80, 80},
		{"times going back: segment start", 90, 80, 70, 75, -1, 80, 80},
		{"no DTW time: token-level times, prev kept", 42, -1, 50, 60, 50, 60, 42},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, e, n := dtwSpan(tc.prev, tc.dtw, tc.t0, tc.t1)
			if s != tc.start || e != tc.end || n != tc.nextDTW {
				t.Errorf("dtwSpan(%d, %d, %d, %d) = %d, %d, %d, want %d, %d, %d",
					tc.prev, tc.dtw, tc.t0, tc.t1, s, e, n, tc.start, tc.end, tc.nextDTW)
			}
		})
	}
}
