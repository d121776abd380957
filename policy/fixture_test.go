package policy

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/speech"
	"github.com/earshot/earshot/internal/testbed"
	"github.com/earshot/earshot/transcribe"
	"github.com/earshot/earshot/transcribe/httpengine"
)

// heardLine is one line as the engine heard it: its text, words (samples
// relative to the line's start), the segment-level no-speech and mean
// log-probabilities, and the line's length.
type heardLine struct {
	text     string
	words    []event.TranscriptWord
	noSpeech float64
	logp     float64
	samples  int64
}

// TestIntegrationSpokenNumberAcrossCut: a phone number said as two live
// utterances ("My phone number is" / the digits read out slowly), each
// transcribed by the test bed's Whisper fixture with its word timings and
// probabilities and no-speech probability, goes through the policy stage
// as two live transcripts. Nothing between the engine and the alert (word
// confidences, the window join across the cut, the overlap dedupe) may
// lose a phone number that the policy finds in the same text with every
// word taken as sure, nor invent one it does not find.
//
// What the model hears is its own (int8 kernels differ between CPUs), so
// the test never requires it to hear a number: each reading owes exactly
// as many pii.phone alerts as its text holds, one or none. One case always
// owes one: the script's words put on the engine's own word timings and
// probabilities for the same audio ("grafted"), so the stage is always
// exercised with what the engine really gave. That every way an engine
// writes the spoken digits reads as the number is the normaliser's,
// checked by TestSpokenDigitSpellings.
func TestIntegrationSpokenNumberAcrossCut(t *testing.T) {
	url := testbed.WhisperURL(t)
	tools, err := speech.ToolsFromEnv(testbed.Require(t, testbed.Speech))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	eng, err := httpengine.New(httpengine.Config{BaseURL: url, Model: "tiny.en"})
	if err != nil {
		t.Fatal(err)
	}
	hear := func(text string) heardLine { return hearLine(ctx, t, tools, eng, text) }
	lead := hear("My phone number is")
	// Ways to read the digits out; tiny.en writes each differently, with
	// different word and no-speech probabilities.
	readings := []string{"is 4 1 5. 8 6 7. 5. 3. 0. 9.", "is 415, 867, 5, 3, 0, 9.", "is 4 1 5 8 6 7 5 3 0 9", "is four one five. eight six seven. five. three. oh. nine.", "is four one five, eight six seven, five three oh nine."}
	owed := 0
	for i, r := range readings {
		if spokenNumberAlerted(t, eng, fmt.Sprintf("ses_num%d", i), []heardLine{lead, hear(r)}) {
			owed++
		}
	}
	t.Logf("%d of %d readings held a phone number as the engine heard them", owed, len(readings))

	// Grafted: the number cut inside, as a speaker pausing mid-number
	// makes the segmenter cut it.
	script := []string{"My phone number is four one five", "eight six seven, five three oh nine."}
	var grafted []heardLine
	for _, s := range script {
		grafted = append(grafted, graft(t, hear(s), s))
	}
	if !spokenNumberAlerted(t, eng, "ses_graft", grafted) {
		t.Fatalf("the script %q on the engine's word timings holds no phone number as clean text (see TestSpokenDigitSpellings)", script)
	}
}

// hearLine synthesises text and transcribes it with the engine.
func hearLine(ctx context.Context, t *testing.T, tools speech.Tools, eng *httpengine.Engine, text string) heardLine {
	t.Helper()
	clip, err := tools.Synthesize(ctx, []speech.Item{{Kind: speech.KindSpeech, Text: text, WPM: 140}, {Kind: speech.KindPause, DurMS: 300}},
		filepath.Join(t.TempDir(), "line.ogg"))
	if err != nil {
		t.Fatal(err)
	}
	pcm, err := tools.Decode(ctx, clip.Path)
	if err != nil {
		t.Fatal(err)
	}
	res, err := eng.Transcribe(ctx, transcribe.Audio{Samples: to16k(pcm), Language: "en"})
	if err != nil {
		t.Fatal(err)
	}
	h := heardLine{samples: clip.Samples}
	var texts []string
	for _, s := range res.Segments {
		texts = append(texts, strings.TrimSpace(s.Text))
		h.noSpeech, h.logp = max(h.noSpeech, s.NoSpeechProb), min(h.logp, s.AvgLogProb)
		for _, w := range s.Words {
			first := int64(w.Start * event.SampleRate)
			h.words = append(h.words, event.TranscriptWord{Word: strings.TrimSpace(w.Word), FirstSample: first,
				LastSample: max(first, int64(w.End*event.SampleRate)-1), Probability: w.Prob})
		}
	}
	h.text = strings.Join(texts, " ")
	t.Logf("%q heard as %q (no-speech %.2f, avg log-prob %.2f, %d words)", text, h.text, h.noSpeech, h.logp, len(h.words))
	return h
}

// maxGraftNoSpeech caps the grafted case's no-speech probability. The
// policy gates and scales a segment by it (max_no_speech_prob), so a line
// the engine doubts was speech rightly owes no alert; the readings cover
// that. The grafted case must always owe one: at 0.3 a validated number of
// strength 0.9 scores 0.63, over min_score 0.5.
const maxGraftNoSpeech = 0.3

// graft puts script's words on the engine's word timings and
// probabilities for the same audio: the engine's words are spread evenly
// over the script's, each script word taking the timing (split evenly
// among the script words that share it) and probability of its engine
// word. With no engine words the script spans the line at probability 0
// (none given).
func graft(t *testing.T, h heardLine, script string) heardLine {
	t.Helper()
	words := strings.Fields(script)
	src := h.words
	if len(src) == 0 {
		src = []event.TranscriptWord{{FirstSample: 0, LastSample: h.samples - 1}}
	}
	out := heardLine{text: script, noSpeech: min(h.noSpeech, maxGraftNoSpeech), logp: h.logp, samples: h.samples}
	for i := 0; i < len(words); {
		k := i * len(src) / len(words)
		j := i + 1 // words [i, j) share engine word k
		for j < len(words) && j*len(src)/len(words) == k {
			j++
		}
		e := src[k]
		span := e.LastSample - e.FirstSample + 1
		for n := i; n < j; n++ {
			first := e.FirstSample + span*int64(n-i)/int64(j-i)
			last := e.FirstSample + span*int64(n-i+1)/int64(j-i) - 1
			out.words = append(out.words, event.TranscriptWord{Word: words[n], FirstSample: first, LastSample: max(first, last), Probability: e.Probability})
		}
		i = j
	}
	return out
}

// spokenNumberAlerted sends the lines, as the engine heard them, through
// the stage as consecutive live transcripts of one track of one session.
// It fails the test unless the stage raised as many pii.phone alerts as
// the policy finds phone numbers in the same text taken as clean text (one
// or none), and reports whether the text had one. Clean text keeps each
// line's no-speech probability: the policy gates on it by design.
func spokenNumberAlerted(t *testing.T, eng *httpengine.Engine, session string, lines []heardLine) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := mustDefault(t)
	var msgs []bus.Message
	var clean []Segment
	at := int64(0)
	for _, h := range lines {
		words := make([]event.TranscriptWord, len(h.words))
		for i, w := range h.words {
			w.FirstSample += at
			w.LastSample += at
			words[i] = w
		}
		// Live utterances of one track, the second cut right after the first.
		tl := event.Timeline{Track: "trk_num", FirstSample: at, LastSample: at + h.samples - 1,
			Origin: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC), Anchor: event.AnchorArrival}
		e, err := event.New(event.TypeTranscript, event.Producer{Name: "test"}, transcribe.Processing(eng, "en"),
			"r1_room", session, "p1_num", &tl, event.TranscriptSegment{Language: "en", AvgLogProb: h.logp, NoSpeechProb: h.noSpeech, Speech: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Seal(ctx, testKeys, event.TranscriptSegmentData{Text: h.text, Words: words}); err != nil {
			t.Fatal(err)
		}
		b, err := e.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, bus.Message{Topic: event.TopicTranscripts, Key: []byte("r1_room"), Value: b})
		clean = append(clean, Segment{ID: e.EventID, Room: "r1_room", Session: session, Speaker: "p1_num", Timeline: tl, Speech: true,
			NoSpeechProb: h.noSpeech, Text: h.text})
		at += h.samples
	}
	// What the policy finds in the engine's text as clean text, on each
	// line alone and across them.
	want := 0
	w := NewWindow(WindowConfig{})
	for _, s := range clean {
		for _, f := range append(p.Evaluate(&s), w.Push(p, s)...) {
			if f.Category == "pii.phone" {
				want = 1 // one number said, however many ways it is found
			}
		}
	}
	st, feed, out := feedStage(t, StageConfig{Logger: quiet()})
	stop := startStage(t, st)
	feed.WaitAcked(t, feed.Push(msgs...)...)
	stop()
	got := decodeRevisionOutput(t, out.Topic(event.TopicAlerts))
	phone := 0
	for _, a := range got.payloads {
		if a.Category == "pii.phone" {
			phone++
		}
	}
	if phone != want {
		t.Errorf("%s: %d pii.phone alerts from the engine's transcripts, want %d (as many as the clean text holds)", session, phone, want)
	}
	return want == 1
}

// to16k turns 48 kHz PCM into the engine's 16 kHz mono float samples
// (mean of each three samples, a low-pass good enough for speech).
func to16k(p *speech.PCM) []float32 {
	ch := max(p.Channels, 1)
	n := p.Frames() / 3
	out := make([]float32, n)
	for i := range n {
		sum := 0
		for k := range 3 {
			sum += int(p.Samples[(3*i+k)*ch])
		}
		out[i] = float32(sum) / 3 / 32768
	}
	return out
}
