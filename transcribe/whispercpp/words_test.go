package whispercpp

import (
	"math"
	"testing"

	"github.com/earshot/earshot/transcribe"
)

func TestSegment(t *testing.T) {
	ln := math.Log
	for _, tc := range []struct {
		name     string
		t0, t1   int64
		text     string
		noSpeech float64
		toks     []token
		want     transcribe.Segment
	}{
		{
			name: "no text tokens",
			t0:   50, t1: 230, text: " ", noSpeech: 0.9,
			want: transcribe.Segment{Start: 0.5, End: 2.3, NoSpeechProb: 0.9},
		},
		{
			name: "punctuation stays with its word",
			t0:   0, t1: 200, text: " Hello, world.",
			toks: []token{
				{" Hello", 0.9, 0, 40}, {",", 0.5, 40, 50}, {" world", 0.8, 60, 120}, {".", 0.7, 120, 130},
			},
			want: transcribe.Segment{
				Start: 0, End: 2, Text: "Hello, world.",
				AvgLogProb: (ln(0.9) + ln(0.5) + ln(0.8) + ln(0.7)) / 4,
				Words: []transcribe.Word{
					{Word: "Hello,", Start: 0, End: 0.5, Prob: 0.7},
					{Word: "world.", Start: 0.6, End: 1.3, Prob: 0.75},
				},
			},
		},
		{
			name: "a word split into tokens, first token without a space",
			t0:   100, t1: 300, text: "Earshot",
			toks: []token{{"Ear", 0.5, 100, 150}, {"shot", 1, 150, 200}},
			want: transcribe.Segment{
				Start: 1, End: 3, Text: "Earshot", AvgLogProb: ln(0.5) / 2,
				Words: []transcribe.Word{{Word: "Earshot", Start: 1, End: 2, Prob: 0.75}},
			},
		},
		{
			name: "UTF-8 split across tokens joins; a cut-off rune is replaced",
			t0:   0, t1: 100, text: " مر",
			toks: []token{{" \xd9", 1, 0, 20}, {"\x85\xd8\xb1", 1, 20, 40}, {" \xd8", 1, 50, 60}},
			want: transcribe.Segment{
				Start: 0, End: 1, Text: "مر",
				Words: []transcribe.Word{
					{Word: "مر", Start: 0, End: 0.4, Prob: 1},
					{Word: "\uFFFD", Start: 0.5, End: 0.6, Prob: 1},
				},
			},
		},
		{
			name: "unknown token times fall back to the segment, outside ones are clamped",
			t0:   100, t1: 200, text: " a b",
			toks: []token{{" a", 1, -1, -1}, {" b", 1, 50, 900}},
			want: transcribe.Segment{
				Start: 1, End: 2, Text: "a b",
				Words: []transcribe.Word{
					{Word: "a", Start: 1, End: 2, Prob: 1},
					{Word: "b", Start: 1, End: 2, Prob: 1},
				},
			},
		},
		{
			name: "probabilities out of range are clamped, zero stays finite",
			t0:   0, t1: 100, text: " x y",
			noSpeech: math.NaN(),
			toks:     []token{{" x", 0, 0, 10}, {" y", math.NaN(), 10, 20}, {"z", 1.5, 20, 30}},
			want: transcribe.Segment{
				Start: 0, End: 1, Text: "x y",
				AvgLogProb: 2 * ln(minProb) / 3,
				Words: []transcribe.Word{
					{Word: "x", Start: 0, End: 0.1, Prob: 0},
					{Word: "yz", Start: 0.1, End: 0.3, Prob: 0.5},
				},
			},
		},
		{
			name: "end before start",
			t0:   300, t1: 200, text: "",
			want: transcribe.Segment{Start: 3, End: 3},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := segment(tc.t0, tc.t1, tc.text, tc.noSpeech, tc.toks)
			if !segmentsEqual(got, tc.want) {
				t.Errorf("segment() =\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}

func segmentsEqual(a, b transcribe.Segment) bool {
	near := func(x, y float64) bool { return math.Abs(x-y) < 1e-9 }
	if !near(a.Start, b.Start) || !near(a.End, b.End) || a.Text != b.Text ||
		!near(a.AvgLogProb, b.AvgLogProb) || !near(a.NoSpeechProb, b.NoSpeechProb) || len(a.Words) != len(b.Words) {
		return false
	}
	for i := range a.Words {
		x, y := a.Words[i], b.Words[i]
		if x.Word != y.Word || !near(x.Start, y.Start) || !near(x.End, y.End) || !near(x.Prob, y.Prob) {
			return false
		}
	}
	return true
}

func TestConfigDefaults(t *testing.T) {
	for _, tc := range []struct {
		cfg       Config
		wantModel string
		wantErr   bool
	}{
		{cfg: Config{ModelPath: "/models/ggml-tiny.en.bin"}, wantModel: "tiny.en"},
		{cfg: Config{ModelPath: "ggml-large-v3-q5_0.bin"}, wantModel: "large-v3-q5_0"},
		{cfg: Config{ModelPath: "/m/whisper.bin", Model: "tiny.en"}, wantModel: "tiny.en"},
		{cfg: Config{}, wantErr: true},
		{cfg: Config{ModelPath: "m.bin", Threads: -1}, wantErr: true},
	} {
		got, err := tc.cfg.withDefaults()
		if (err != nil) != tc.wantErr {
			t.Errorf("%+v: err = %v, want error %v", tc.cfg, err, tc.wantErr)
			continue
		}
		if err != nil {
			continue
		}
		if got.Model != tc.wantModel || got.Threads < 1 || got.Threads > 4 {
			t.Errorf("%+v: Model %q Threads %d; want Model %q, 1-4 threads", tc.cfg, got.Model, got.Threads, tc.wantModel)
		}
	}
}
