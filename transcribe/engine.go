// Package transcribe is the media and engine core of Earshot's
// transcription workers: it decodes a track's live Opus chunks to 16 kHz
// mono audio on the track's 48 kHz timeline (TrackDecoder), cuts that audio
// into utterances at pauses (Segmenter), sends only utterances to a speech
// recognition Engine, and places the engine's segments and words back on
// the timeline (Attribute), so every transcript word names the exact
// inclusive 48 kHz sample range it was heard in.
//
// Everything here is synchronous and per track; the Kafka consumer that owns
// tracks, commits offsets and writes transcript events is built on top:
//
//	dec, _ := NewTrackDecoder(DecoderConfig{})   // per track, at its start
//	seg, _ := NewSegmenter(SegmenterConfig{})    // per track
//	for each audio.chunk of the track, in order:
//		pcm, err := dec.Decode(*env.Timeline, data) // ErrCorruptAudio: dead-letter, pcm still usable
//		for _, u := range seg.Push(pcm.Start, pcm.Samples) {
//			res, err := engine.Transcribe(ctx, Audio{Samples: u.Samples, Language: lang})
//			for _, tr := range Attribute(u, res, DefaultFilter) {
//				// one transcript.segment event on tl.Sub(tr.Span.First, tr.Span.Last),
//				// processing = Processing(engine, lang)
//			}
//		}
//		commit up to the chunk holding seg.Pending()
//	at the track's end (a final chunk): seg.Flush(), dec.Close()
//
// Timeline bookkeeping: 16 kHz sample k of a track is timeline samples
// [3k, 3k+2]. Opus frames last a multiple of 2.5 ms (120 timeline samples),
// so a timeline built from whole frames always starts packets on that grid;
// an off-grid packet start is floored to it (an error of at most 2 samples,
// 42 µs).
package transcribe

import (
	"context"

	"github.com/earshot/earshot/event"
)

// AudioRate is the rate of the audio an Engine receives: Whisper's.
const AudioRate = 16000

// Ratio is the number of timeline (48 kHz) samples one audio sample spans.
const Ratio = event.SampleRate / AudioRate

// Engine turns audio into timed text. Implementations: the OpenAI-compatible
// HTTP engine (package httpengine) and, with the `whisper` build tag,
// whisper.cpp in process.
type Engine interface {
	// Transcribe recognises one utterance. It may be called concurrently;
	// an engine that cannot run calls in parallel serialises them.
	Transcribe(ctx context.Context, a Audio) (Result, error)
	// Name identifies the engine kind (e.g. "whisper-http"); with Model it
	// makes a transcript's revision.
	Name() string
	// Model names the model the engine runs (e.g. "tiny.en").
	Model() string
}

// Audio is one utterance for an Engine.
type Audio struct {
	// Samples are mono float32 in [-1, 1] at AudioRate.
	Samples []float32
	// Language is an ISO 639-1 code ("en", "ar"), or "" or "auto" to let
	// the engine detect it. Set it when the room's language is known:
	// detection on a few seconds of audio is unreliable.
	Language string
	// Prompt is optional text that conditions the engine (the previous
	// utterance's text, vocabulary); it is not part of the transcript.
	Prompt string
}

// AutoLanguage reports whether lang asks the engine to detect the language.
func AutoLanguage(lang string) bool { return lang == "" || lang == "auto" }

// Result is an engine's transcript of one Audio.
type Result struct {
	// Language is the ISO 639-1 code of the language spoken (detected, or as
	// requested).
	Language string
	// LanguageProb is the engine's confidence in Language, 0 when the engine
	// does not say.
	LanguageProb float64
	Segments     []Segment
}

// Segment is a stretch of text with times relative to the start of the
// Audio.
type Segment struct {
	Start, End float64 // seconds from the first sample of the Audio
	Text       string
	// AvgLogProb is the mean log-probability of the segment's tokens.
	AvgLogProb float64
	// NoSpeechProb is the engine's probability that the audio holds no
	// speech (Whisper's <|nospeech|> token), 0 when the engine does not say.
	NoSpeechProb float64
	Words        []Word
}

// Word is one word with times relative to the start of the Audio.
type Word struct {
	Word       string
	Start, End float64 // seconds
	Prob       float64
}

// Processing describes an engine for an event's processing block, whose
// digest is the transcript's revision: replaying audio through another
// engine, model or language setting makes a new revision.
func Processing(e Engine, language string) *event.Processing {
	if AutoLanguage(language) {
		language = "auto"
	}
	return &event.Processing{
		Engine:  e.Name(),
		Model:   e.Model(),
		Options: map[string]string{"language": language},
	}
}
