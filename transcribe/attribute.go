package transcribe

import (
	"strings"
	"time"

	"github.com/earshot/earshot/event"
)

// TranscriptSegment, TranscriptSegmentData and TranscriptWord are the
// transcript.segment event's payload and protected data (event package).
type (
	TranscriptSegment     = event.TranscriptSegment
	TranscriptSegmentData = event.TranscriptSegmentData
	TranscriptWord        = event.TranscriptWord
)

// wordSpan is a word's inclusive timeline range.
func wordSpan(w TranscriptWord) Span { return Span{First: w.FirstSample, Last: w.LastSample} }

// Transcript is one engine segment placed on a track's timeline: the content
// of one transcript.segment event, whose timeline is Span.
type Transcript struct {
	Span    Span
	Payload TranscriptSegment
	Data    TranscriptSegmentData
}

// Filter decides which engine segments are kept.
type Filter struct {
	// A segment is dropped as invented text when its NoSpeechProb is above
	// NoSpeech and its AvgLogProb below LogProb (Whisper's own rule).
	NoSpeech, LogProb float64
	// A segment is dropped unless it comes within SpeechSlack of audio where
	// voice activity was detected (Whisper's segment times are coarse).
	SpeechSlack time.Duration
}

// DefaultFilter is Whisper's hallucination rule (0.6, -1) and 300 ms slack.
var DefaultFilter = Filter{NoSpeech: 0.6, LogProb: -1, SpeechSlack: 300 * time.Millisecond}

// Attribute places an engine's result for utterance u on the track's
// timeline. It keeps only words whose centre lies in u.Own (so a word in
// the overlap of a cut at MaxLength is reported by one side only), drops
// segments with no text, segments the filter marks as invented, and
// segments away from detected speech. Times map exactly: second t of the
// audio is timeline sample u.Start + round(t * 48000).
func Attribute(u Utterance, r Result, f Filter) []Transcript {
	full := u.Span()
	at := func(sec float64) int64 {
		return min(max(u.Start+secondsToSamples(sec), full.First), full.Last+1)
	}
	span := func(start, end float64) Span {
		s := Span{First: min(at(start), full.Last), Last: at(end) - 1}
		s.Last = max(s.Last, s.First)
		return s
	}
	slack := event.DurationToSamples(f.SpeechSlack)
	var out []Transcript
	for _, seg := range r.Segments {
		if seg.NoSpeechProb > f.NoSpeech && seg.AvgLogProb < f.LogProb {
			continue
		}
		sspan := span(seg.Start, seg.End)
		var words []TranscriptWord
		dropped := false
		for _, w := range seg.Words {
			text := strings.TrimSpace(w.Word)
			if text == "" {
				continue
			}
			ws := span(w.Start, w.End)
			if c := ws.Center(); c < u.Own.First || c > u.Own.Last {
				dropped = true
				continue
			}
			words = append(words, TranscriptWord{Word: text, FirstSample: ws.First, LastSample: ws.Last, Probability: w.Prob})
		}
		text := strings.TrimSpace(seg.Text)
		switch {
		case len(seg.Words) == 0:
			if c := sspan.Center(); c < u.Own.First || c > u.Own.Last {
				continue
			}
			sspan = Span{First: max(sspan.First, u.Own.First), Last: min(sspan.Last, u.Own.Last)}
		case len(words) == 0:
			continue
		case dropped:
			parts := make([]string, len(words))
			for i, w := range words {
				parts[i] = w.Word
			}
			text = strings.Join(parts, " ")
			sspan = Span{First: words[0].FirstSample, Last: words[len(words)-1].LastSample}
		default:
			sspan.First = min(sspan.First, words[0].FirstSample)
			sspan.Last = max(sspan.Last, words[len(words)-1].LastSample)
		}
		if text == "" || !nearSpeech(sspan, u.Speech, slack) {
			continue
		}
		out = append(out, Transcript{
			Span: sspan,
			Payload: TranscriptSegment{
				Language:            r.Language,
				LanguageProbability: r.LanguageProb,
				AvgLogProb:          seg.AvgLogProb,
				NoSpeechProb:        seg.NoSpeechProb,
				Speech:              true,
			},
			Data: TranscriptSegmentData{Text: text, Words: words},
		})
	}
	return out
}

func nearSpeech(s Span, speech []Span, slack int64) bool {
	wide := Span{First: s.First - slack, Last: s.Last + slack}
	for _, sp := range speech {
		if wide.Overlaps(sp) {
			return true
		}
	}
	return false
}

// DedupeWords merges the words of two overlapping utterances of one track, a
// before b, each word transcribed once: the overlap [bSpan.First,
// aSpan.Last] is split at its middle, and a word belongs to the side that
// holds its centre. This is the rule Segmenter's Utterance.Own encodes, so
// Attribute's output needs no further dedupe; use this where whole
// utterances' word lists meet (a replay, a worker that re-cut audio after
// taking over a track). Utterances that do not overlap are concatenated.
func DedupeWords(a []TranscriptWord, aSpan Span, b []TranscriptWord, bSpan Span) []TranscriptWord {
	out := make([]TranscriptWord, 0, len(a)+len(b))
	if !aSpan.Overlaps(bSpan) {
		return append(append(out, a...), b...)
	}
	mid := bSpan.First + (aSpan.Last-bSpan.First+1)/2
	for _, w := range a {
		if wordSpan(w).Center() < mid {
			out = append(out, w)
		}
	}
	for _, w := range b {
		if wordSpan(w).Center() >= mid {
			out = append(out, w)
		}
	}
	return out
}
