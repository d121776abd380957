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

// TestIntegrationSpokenNumberAcrossCut: a phone number said as two live
// utterances ("My phone number is" / the digits read out slowly), each
// transcribed by the test bed's Whisper fixture with its word
// probabilities and no-speech probability, goes through the policy stage
// as two live transcripts. Whatever the engine heard, when the policy
// finds a phone number in its text taken as clean text (every word sure,
// no doubt there was speech), the stage must alert on it: nothing between
// the engine and the alert (word confidences, the window join across the
// cut, the overlap dedupe) may lose it.
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
	// Ways to read the digits out; tiny.en writes each differently, with
	// different word and no-speech probabilities.
	readings := []string{"is 4 1 5. 8 6 7. 5. 3. 0. 9.", "is 415, 867, 5, 3, 0, 9.", "is 4 1 5 8 6 7 5 3 0 9", "is four one five. eight six seven. five. three. oh. nine.", "is four one five, eight six seven, five three oh nine."}
	checked := 0
	for i, r := range readings {
		if spokenNumberAlerted(ctx, t, tools, eng, fmt.Sprintf("ses_num%d", i), r) {
			checked++
		}
	}
	if checked == 0 {
		t.Fatalf("in none of the readings does the engine's text have a phone number even as clean text; the test needs one (see the log for what it heard)")
	}
}

// spokenNumberAlerted runs "My phone number is" and digits through the
// engine and the stage as two live utterances of one session. It fails
// the test when the engine's text, taken as clean text, has a phone
// number and the stage raised no pii.phone alert (or more than one), and
// reports whether the text had one.
func spokenNumberAlerted(ctx context.Context, t *testing.T, tools speech.Tools, eng *httpengine.Engine, session, digits string) bool {
	t.Helper()
	p := mustDefault(t)
	lines := []string{"My phone number is", digits}
	var msgs []bus.Message
	var clean []Segment
	at := int64(0)
	for i, text := range lines {
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
		var words []event.TranscriptWord
		var texts []string
		noSpeech, logp := 0.0, 0.0
		for _, s := range res.Segments {
			texts = append(texts, strings.TrimSpace(s.Text))
			noSpeech, logp = max(noSpeech, s.NoSpeechProb), min(logp, s.AvgLogProb)
			for _, w := range s.Words {
				first := at + int64(w.Start*event.SampleRate)
				words = append(words, event.TranscriptWord{Word: strings.TrimSpace(w.Word), FirstSample: first,
					LastSample: max(first, at+int64(w.End*event.SampleRate)-1), Probability: w.Prob})
			}
		}
		heard := strings.Join(texts, " ")
		t.Logf("%s line %d heard as %q (no-speech %.2f, avg log-prob %.2f, %d words)", session, i, heard, noSpeech, logp, len(words))
		// Live utterances of one track, the second cut right after the first.
		tl := event.Timeline{Track: "trk_num", FirstSample: at, LastSample: at + clip.Samples - 1,
			Origin: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC), Anchor: event.AnchorArrival}
		e, err := event.New(event.TypeTranscript, event.Producer{Name: "test"}, transcribe.Processing(eng, "en"),
			"r1_room", session, "p1_num", &tl, event.TranscriptSegment{Language: "en", AvgLogProb: logp, NoSpeechProb: noSpeech, Speech: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Seal(ctx, testKeys, event.TranscriptSegmentData{Text: heard, Words: words}); err != nil {
			t.Fatal(err)
		}
		b, err := e.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, bus.Message{Topic: event.TopicTranscripts, Key: []byte("r1_room"), Value: b})
		clean = append(clean, Segment{ID: e.EventID, Room: "r1_room", Session: session, Speaker: "p1_num", Timeline: tl, Speech: true, Text: heard})
		at += clip.Samples
	}
	// What the policy finds in the engine's text as clean text, on each
	// line alone and across the two.
	want := false
	w := NewWindow(WindowConfig{})
	for _, s := range clean {
		for _, f := range append(p.Evaluate(&s), w.Push(p, s)...) {
			want = want || f.Category == "pii.phone"
		}
	}
	if !want {
		return false
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
	if phone != 1 {
		t.Errorf("%s: %d pii.phone alerts from the engine's transcripts, want 1 (the clean text has the number)", session, phone)
	}
	return true
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
