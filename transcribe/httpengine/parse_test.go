package httpengine

import (
	"encoding/binary"
	"errors"
	"math"
	"reflect"
	"testing"

	"github.com/earshot/earshot/transcribe"
)

func TestParseShapes(t *testing.T) {
	for _, tc := range []struct {
		name, body, lang string
		want             transcribe.Result
	}{
		{
			name: "faster-whisper fixture: top-level words, language code and probability",
			body: `{"task":"transcribe","language":"en","language_probability":0.97,"duration":2.0,"text":"Hi. Bye.",
				"segments":[{"id":0,"start":0.0,"end":1.0,"text":" Hi.","avg_logprob":-0.1,"no_speech_prob":0.02},
				            {"id":1,"start":1.0,"end":2.0,"text":" Bye.","avg_logprob":-0.4,"no_speech_prob":0.03}],
				"words":[{"word":"Hi.","start":0.1,"end":0.5,"probability":0.9},{"word":"Bye.","start":1.2,"end":1.8,"probability":0.7}]}`,
			want: transcribe.Result{Language: "en", LanguageProb: 0.97, Segments: []transcribe.Segment{
				{Start: 0, End: 1, Text: " Hi.", AvgLogProb: -0.1, NoSpeechProb: 0.02, Words: []transcribe.Word{{Word: "Hi.", Start: 0.1, End: 0.5, Prob: 0.9}}},
				{Start: 1, End: 2, Text: " Bye.", AvgLogProb: -0.4, NoSpeechProb: 0.03, Words: []transcribe.Word{{Word: "Bye.", Start: 1.2, End: 1.8, Prob: 0.7}}},
			}},
		},
		{
			name: "whisper.cpp server: token pieces in segments, language name, no no_speech_prob",
			body: `{"task":"transcribe","language":"english","duration":1.5,"text":" Hello, world",
				"segments":[{"id":0,"text":" Hello, world","start":0.0,"end":1.5,"tokens":[1,2,3,4],
				"words":[{"word":" Hel","start":0.0,"end":0.2,"t_dtw":-1,"probability":0.9},
				         {"word":"lo","start":0.2,"end":0.4,"probability":0.8},
				         {"word":",","start":0.4,"end":0.45,"probability":0.95},
				         {"word":" world","start":0.5,"end":1.0,"probability":0.7}],
				"temperature":0.0,"avg_logprob":-0.25}]}`,
			want: transcribe.Result{Language: "en", Segments: []transcribe.Segment{
				{Start: 0, End: 1.5, Text: " Hello, world", AvgLogProb: -0.25, Words: []transcribe.Word{
					{Word: "Hello,", Start: 0, End: 0.45, Prob: 0.8}, {Word: "world", Start: 0.5, End: 1, Prob: 0.7}}},
			}},
		},
		{
			name: "text only, requested language kept",
			body: `{"text":" Just text.","duration":1.25}`, lang: "ar",
			want: transcribe.Result{Language: "ar", Segments: []transcribe.Segment{{Start: 0, End: 1.25, Text: " Just text."}}},
		},
		{
			name: "no speech: empty segments",
			body: `{"text":"","segments":[],"language":"en"}`,
			want: transcribe.Result{Language: "en"},
		},
		{
			name: "bad times and probabilities are made well formed",
			body: `{"language":"Arabic","language_probability":7,"segments":[{"start":-3,"end":-5,"text":"x","avg_logprob":0.5,"no_speech_prob":-1,
				"words":[{"word":"x","start":2,"end":1,"probability":3}]}]}`,
			want: transcribe.Result{Language: "ar", LanguageProb: 1, Segments: []transcribe.Segment{
				{Start: 0, End: 0, Text: "x", AvgLogProb: 0, NoSpeechProb: 0, Words: []transcribe.Word{{Word: "x", Start: 2, End: 2, Prob: 1}}}}},
		},
		{
			name: "top-level word outside every segment goes to the nearest",
			body: `{"segments":[{"start":0,"end":1,"text":"a"},{"start":2,"end":3,"text":"b"}],
				"words":[{"word":"b","start":3.2,"end":3.4},{"word":"a","start":0.2,"end":0.4}]}`,
			want: transcribe.Result{Segments: []transcribe.Segment{
				{Start: 0, End: 1, Text: "a", Words: []transcribe.Word{{Word: "a", Start: 0.2, End: 0.4, Prob: 1}}},
				{Start: 2, End: 3, Text: "b", Words: []transcribe.Word{{Word: "b", Start: 3.2, End: 3.4, Prob: 1}}},
			}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseVerbose([]byte(tc.body), tc.lang)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestEncodeWAV(t *testing.T) {
	b := encodeWAV([]float32{0, 1, -1, 2, -2, 0.5, float32(math.NaN())})
	if len(b) != 44+14 || binary.LittleEndian.Uint32(b[4:]) != uint32(len(b)-8) || binary.LittleEndian.Uint32(b[40:]) != 14 {
		t.Fatalf("header sizes wrong: % x", b[:44])
	}
	var got []int16
	for i := 44; i < len(b); i += 2 {
		got = append(got, int16(binary.LittleEndian.Uint16(b[i:])))
	}
	if want := []int16{0, 32767, -32767, 32767, -32767, 16384, 0}; !reflect.DeepEqual(got, want) {
		t.Fatalf("samples %v, want %v", got, want)
	}
}

func FuzzParseVerbose(f *testing.F) {
	f.Add([]byte(okBody), "")
	f.Add([]byte(`{"segments":[{"start":1,"end":0.5,"words":[{"word":" a"},{"word":"b"}]}],"words":[{"word":"c","start":9}]}`), "en")
	f.Add([]byte(`{"error":{"message":"x"}}`), "auto")
	f.Add([]byte(`{"text":null,"segments":null}`), "")
	f.Fuzz(func(t *testing.T, body []byte, lang string) {
		res, err := parseVerbose(body, lang)
		if err != nil {
			if !errors.Is(err, ErrBadResponse) {
				t.Fatalf("error %v is not ErrBadResponse", err)
			}
			return
		}
		check := func(what string, start, end, p float64) {
			if !(start >= 0 && end >= start) || math.IsNaN(p) || p < 0 || p > 1 {
				t.Fatalf("%s: start %v end %v p %v", what, start, end, p)
			}
		}
		check("language", 0, 0, res.LanguageProb)
		for _, s := range res.Segments {
			check("segment", s.Start, s.End, s.NoSpeechProb)
			if s.AvgLogProb > 0 {
				t.Fatalf("avg_logprob %v > 0", s.AvgLogProb)
			}
			for _, w := range s.Words {
				check("word", w.Start, w.End, w.Prob)
				if w.Word == "" {
					t.Fatal("empty word")
				}
			}
		}
	})
}
