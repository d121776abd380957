package transcribe_test

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/opusenc"
	"github.com/earshot/earshot/internal/speech"
	"github.com/earshot/earshot/internal/testbed"
	"github.com/earshot/earshot/internal/wer"
	"github.com/earshot/earshot/transcribe"
	"github.com/earshot/earshot/transcribe/httpengine"
)

// The pipeline below is the one a transcription worker runs per track:
// chunks of Opus packets -> TrackDecoder -> Segmenter -> Engine ->
// Attribute. These tests run it on synthesized speech against the test
// bed's Whisper fixture (faster-whisper, tiny.en).

var origin = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

type pipelineOut struct {
	utterances  []transcribe.Utterance
	transcripts []transcribe.Transcript
}

// run feeds 20 ms packets that start at timeline sample first, in 1 s
// chunks, through the pipeline. A nil engine only segments.
func run(t *testing.T, packets [][]byte, first int64, eng transcribe.Engine) pipelineOut {
	t.Helper()
	dec, err := transcribe.NewTrackDecoder(transcribe.DecoderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	seg, err := transcribe.NewSegmenter(transcribe.SegmenterConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out pipelineOut
	handle := func(us []transcribe.Utterance) {
		for _, u := range us {
			out.utterances = append(out.utterances, u)
			if eng == nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			res, err := eng.Transcribe(ctx, transcribe.Audio{Samples: u.Samples, Language: "en"})
			cancel()
			if err != nil {
				t.Fatalf("utterance at %d: %v", u.Start, err)
			}
			out.transcripts = append(out.transcripts, transcribe.Attribute(u, res, transcribe.DefaultFilter)...)
		}
	}
	const per = 50
	for i := 0; i < len(packets); i += per {
		j := min(i+per, len(packets))
		tl := event.Timeline{Track: "trk_it", FirstSample: first + int64(i)*960, LastSample: first + int64(j)*960 - 1,
			Origin: origin, Anchor: event.AnchorArrival}
		var data event.AudioChunkData
		for k := i; k < j; k++ {
			data.Packets = append(data.Packets, packets[k])
			data.Offsets = append(data.Offsets, int64(k-i)*960)
		}
		pcm, err := dec.Decode(tl, data)
		if err != nil {
			t.Fatal(err)
		}
		handle(seg.Push(pcm.Start, pcm.Samples))
	}
	handle(seg.Flush())
	return out
}

// synthesize renders a script with internal/speech and returns its
// packets, pre-skip and cue sheet.
func synthesize(t *testing.T, items []speech.Item) ([][]byte, int64, speech.Clip) {
	t.Helper()
	tools, err := speech.ToolsFromEnv(testbed.Require(t, testbed.Speech))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	clip, err := tools.Synthesize(ctx, items, filepath.Join(t.TempDir(), "script.opus"))
	if err != nil {
		t.Fatal(err)
	}
	packets, preSkip := transcribe.OggPackets(t, clip.Path)
	return packets, preSkip, clip
}

func whisper(t *testing.T) transcribe.Engine {
	t.Helper()
	eng, err := httpengine.New(httpengine.Config{BaseURL: testbed.WhisperURL(t), Model: "tiny.en", Timeout: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return eng
}

func TestIntegrationWhisperPipeline(t *testing.T) {
	eng := whisper(t)
	const (
		s1 = "Please keep the conversation friendly and respectful."
		s2 = "I think we should talk about the schedule for next week."
	)
	packets, preSkip, clip := synthesize(t, []speech.Item{
		{Kind: speech.KindPause, DurMS: 1000},
		{Kind: speech.KindSpeech, Text: s1},
		{Kind: speech.KindPause, DurMS: 1500},
		{Kind: speech.KindSpeech, Text: s2},
		{Kind: speech.KindPause, DurMS: 1500},
		{Kind: speech.KindSpeech, Text: s1, GainDB: -20},
		{Kind: speech.KindPause, DurMS: 1000},
	})
	// Timeline sample 0 is the stream's first sample, pre-skip included;
	// the cue sheet counts from the first sample after it.
	cueSpan := func(c speech.Cue) transcribe.Span {
		return transcribe.Span{First: preSkip + c.StartMS*48, Last: preSkip + c.EndMS*48 - 1}
	}
	out := run(t, packets, 0, eng)

	var said []speech.Cue
	for _, c := range clip.Cues {
		if c.Kind == speech.KindSpeech {
			said = append(said, c)
		}
	}
	if len(out.utterances) != len(said) {
		t.Fatalf("%d utterances for %d sentences", len(out.utterances), len(said))
	}
	var all []string
	for i, c := range said {
		cs := cueSpan(c)
		var text []string
		for _, tr := range out.transcripts {
			if tr.Span.Overlaps(cs) {
				text = append(text, tr.Data.Text)
				// Transcript times within 0.5 s of the script's.
				if tr.Span.First < cs.First-24000 || tr.Span.Last > cs.Last+24000 {
					t.Errorf("sentence %d: segment %d–%d strays over 0.5 s from the cue %d–%d", i, tr.Span.First, tr.Span.Last, cs.First, cs.Last)
				}
				for _, w := range tr.Data.Words {
					if w.FirstSample < cs.First-24000 || w.LastSample > cs.Last+24000 {
						t.Errorf("sentence %d: word %q at %d–%d outside the cue %d–%d", i, w.Word, w.FirstSample, w.LastSample, cs.First, cs.Last)
					}
				}
			}
		}
		got := strings.Join(text, " ")
		t.Logf("sentence %d (%d–%d ms): %q -> %q, WER %.2f", i, c.StartMS, c.EndMS, c.Text, got, wer.WER(c.Text, got))
		// Every sentence is transcribed (coverage is the pipeline's);
		// how well is bounded over all of them below, where one word a
		// small model mishears on another machine is not the margin.
		if strings.TrimSpace(got) == "" {
			t.Errorf("sentence %d: no transcript", i)
		}
		all = append(all, got)
	}
	ref := s1 + " " + s2 + " " + s1
	if r := wer.WER(ref, strings.Join(all, " ")); r > 0.25 {
		t.Errorf("overall WER %.2f over 0.25", r)
	}
}

// TestIntegrationNoSpeechNoUtterance checks that silence and noise never
// reach the engine: the segmenter makes no utterance of them at all (so
// Whisper cannot invent text for them).
func TestIntegrationNoSpeechNoUtterance(t *testing.T) {
	eng := whisper(t) // required: with no utterance it is never called
	packets, _, _ := synthesize(t, []speech.Item{{Kind: speech.KindPause, DurMS: 5000}})
	if out := run(t, packets, 0, eng); len(out.utterances) != 0 {
		t.Fatalf("5 s of silence made %d utterances", len(out.utterances))
	}
	enc, err := opusenc.New(32000, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, level := range []float64{0.003, 0.03, 0.2} {
		r := rand.New(rand.NewPCG(uint64(level*1000), 7))
		x := make([]float32, 5*48000)
		for i := range x {
			x[i] = float32(r.NormFloat64() * level)
		}
		pk, err := enc.Encode(x)
		if err != nil {
			t.Fatal(err)
		}
		if out := run(t, pk, 0, eng); len(out.utterances) != 0 {
			t.Fatalf("5 s of white noise at RMS %.3f made %d utterances", level, len(out.utterances))
		}
	}
}

// TestIntegrationLongSpeechCutOnce runs speech longer than MaxLength with
// pauses too short to end an utterance: it is cut with overlap, and after
// Attribute's ownership rule every word is reported once.
func TestIntegrationLongSpeechCutOnce(t *testing.T) {
	eng := whisper(t)
	lines := []string{
		"Welcome to the room, everyone can hear you now.",
		"I think we should talk about the schedule for next week.",
		"Please keep the conversation friendly and respectful.",
		"The meeting will end at five o'clock today.",
	}
	items := []speech.Item{{Kind: speech.KindPause, DurMS: 500}}
	for _, l := range lines {
		items = append(items, speech.Item{Kind: speech.KindSpeech, Text: l}, speech.Item{Kind: speech.KindPause, DurMS: 250})
	}
	items = append(items, speech.Item{Kind: speech.KindPause, DurMS: 1000})
	packets, _, _ := synthesize(t, items)
	out := run(t, packets, 0, eng)
	if len(out.utterances) < 2 {
		t.Fatalf("%d utterances: the speech was not cut at MaxLength", len(out.utterances))
	}
	var text []string
	for _, tr := range out.transcripts {
		text = append(text, tr.Data.Text)
	}
	got := strings.Join(text, " ")
	m := wer.Measure(strings.Join(lines, " "), got)
	t.Logf("%d utterances; %q; WER %.2f (%d insertions)", len(out.utterances), got, m.WER(), m.Insertions)
	if m.WER() > 0.25 || m.Insertions > 1 {
		t.Fatalf("WER %.2f with %d insertions: words at the cut were lost or repeated", m.WER(), m.Insertions)
	}
}
