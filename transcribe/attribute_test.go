package transcribe

import (
	"reflect"
	"testing"
)

func TestAttributeMapsTimesExactly(t *testing.T) {
	// A 2 s utterance at timeline sample 480,000 (10 s into the track).
	u := Utterance{
		Start:   480000,
		Samples: make([]float32, 32000),
		Own:     Span{First: 480000, Last: 575999},
		Speech:  []Span{{First: 490000, Last: 560000}},
	}
	r := Result{Language: "en", LanguageProb: 0.98, Segments: []Segment{{
		Start: 0.2, End: 1.5, Text: " Hello there.", AvgLogProb: -0.3, NoSpeechProb: 0.01,
		Words: []Word{{Word: " Hello", Start: 0.2, End: 0.6, Prob: 0.9}, {Word: "there.", Start: 0.6, End: 1.5, Prob: 0.8}},
	}}}
	got := Attribute(u, r, DefaultFilter)
	want := []Transcript{{
		Span:    Span{First: 480000 + 9600, Last: 480000 + 72000 - 1},
		Payload: TranscriptSegment{Language: "en", LanguageProbability: 0.98, AvgLogProb: -0.3, NoSpeechProb: 0.01, Speech: true},
		Data: TranscriptSegmentData{Text: "Hello there.", Words: []TranscriptWord{
			{Word: "Hello", FirstSample: 489600, LastSample: 508799, Probability: 0.9},
			{Word: "there.", FirstSample: 508800, LastSample: 551999, Probability: 0.8},
		}},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
}

func TestAttributeClampsToTheUtterance(t *testing.T) {
	u := Utterance{Start: 300, Samples: make([]float32, 16000), Speech: []Span{{First: 300, Last: 48299}}}
	u.Own = u.Span()
	r := Result{Segments: []Segment{{Start: -1, End: 99, Text: "x", Words: []Word{{Word: "x", Start: 0.99, End: 5}}}}}
	got := Attribute(u, r, DefaultFilter)
	if len(got) != 1 {
		t.Fatalf("got %d segments", len(got))
	}
	if got[0].Span != u.Span() {
		t.Fatalf("segment %+v not clamped to the utterance %+v", got[0].Span, u.Span())
	}
	if w := got[0].Data.Words[0]; w.FirstSample != 300+47520 || w.LastSample != u.Span().Last {
		t.Fatalf("word %+v", w)
	}
}

func TestAttributeOwnershipAndFilters(t *testing.T) {
	// An utterance after a cut at MaxLength: it owns from 0.25 s on.
	u := Utterance{Start: 0, Samples: make([]float32, 3*16000)}
	u.Own = Span{First: sec(0.25), Last: u.Span().Last}
	u.Speech = []Span{{First: 0, Last: sec(2)}}
	r := Result{Language: "en", Segments: []Segment{
		{Start: 0, End: 1, Text: " cut word kept", Words: []Word{
			{Word: " cut", Start: 0, End: 0.2}, {Word: " word", Start: 0.2, End: 0.4}, {Word: " kept", Start: 0.4, End: 1},
		}},
		{Start: 0, End: 0.3, Text: "all in the overlap", Words: []Word{{Word: "all", Start: 0, End: 0.2}}},
		{Start: 0, End: 0.4, Text: "no words, centred in the overlap"},
		{Start: 0.3, End: 1.2, Text: "no words, owned"},
		{Start: 1, End: 2, Text: "Thanks for watching!", NoSpeechProb: 0.9, AvgLogProb: -1.5},
		{Start: 2.6, End: 3, Text: "far from any speech"},
		{Start: 1, End: 1.5, Text: "   "},
	}}
	got := Attribute(u, r, DefaultFilter)
	var texts []string
	for _, tr := range got {
		texts = append(texts, tr.Data.Text)
	}
	want := []string{"word kept", "no words, owned"}
	if !reflect.DeepEqual(texts, want) {
		t.Fatalf("kept %q, want %q", texts, want)
	}
	if got[0].Span.First != sec(0.2) || got[1].Span.First != sec(0.3) {
		t.Fatalf("spans %+v %+v", got[0].Span, got[1].Span)
	}
	// Without speech detected nothing is reported.
	u.Speech = nil
	if got := Attribute(u, r, DefaultFilter); len(got) != 0 {
		t.Fatalf("utterance without speech gave %d segments", len(got))
	}
}

func TestDedupeWords(t *testing.T) {
	w := func(s string, a, b float64) TranscriptWord {
		return TranscriptWord{Word: s, FirstSample: sec(a), LastSample: sec(b) - 1}
	}
	aSpan, bSpan := Span{First: 0, Last: sec(8) - 1}, Span{First: sec(7.5), Last: sec(12) - 1}
	a := []TranscriptWord{w("one", 7.0, 7.4), w("two", 7.5, 7.7), w("thr", 7.7, 8.0)}
	b := []TranscriptWord{w("two", 7.5, 7.7), w("three", 7.7, 8.1), w("four", 8.2, 8.5)}
	got := DedupeWords(a, aSpan, b, bSpan)
	var words []string
	for _, x := range got {
		words = append(words, x.Word)
	}
	if want := []string{"one", "two", "three", "four"}; !reflect.DeepEqual(words, want) {
		t.Fatalf("got %v, want %v", words, want)
	}
	// No overlap: concatenated.
	if got := DedupeWords(a[:1], Span{0, 10}, b[:1], Span{11, 20}); len(got) != 2 {
		t.Fatalf("disjoint: %v", got)
	}
}
