package speech_test

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/earshot/earshot/internal/speech"
	"github.com/earshot/earshot/internal/testbed"
)

func tools(t *testing.T) speech.Tools {
	t.Helper()
	tl, err := speech.ToolsFromEnv(testbed.Require(t, testbed.Speech))
	if err != nil {
		t.Fatal(err)
	}
	return tl
}

func TestSynthesizeTimeline(t *testing.T) {
	tl := tools(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	items := []speech.Item{
		{Kind: speech.KindSpeech, Text: "Hello, this is a test.", Voice: "en-us"},
		{Kind: speech.KindPause, DurMS: 300},
		{Kind: speech.KindTone, FreqHz: 1000, DurMS: 400},
		{Kind: speech.KindPause, DurMS: 250},
		{Kind: speech.KindSpeech, Text: "مرحبا بكم", Voice: "ar", GainDB: -3},
		{Kind: speech.KindPause, DurMS: 120},
	}
	out := filepath.Join(t.TempDir(), "clip.ogg")
	clip, err := tl.Synthesize(ctx, items, out)
	if err != nil {
		t.Fatalf("Synthesize: %v", err)
	}
	if clip.CuesPath != speech.CuesPath(out) {
		t.Errorf("CuesPath = %q", clip.CuesPath)
	}
	onDisk, err := speech.ReadCues(clip.CuesPath)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(onDisk, clip.CueSheet) {
		t.Fatalf("cue sheet on disk differs from the returned one:\n%+v\n%+v", onDisk, clip.CueSheet)
	}
	if len(onDisk.Cues) != len(items) {
		t.Fatalf("%d cues for %d items", len(onDisk.Cues), len(items))
	}
	for i, c := range onDisk.Cues {
		if c.Kind != items[i].Kind {
			t.Errorf("cue %d kind %q, want %q", i, c.Kind, items[i].Kind)
		}
	}
	// Pauses and tones last exactly as long as asked.
	for _, i := range []int{1, 2, 3, 5} {
		c := onDisk.Cues[i]
		if got := c.EndMS - c.StartMS; got != int64(items[i].DurMS) {
			t.Errorf("cue %d lasts %d ms, want %d", i, got, items[i].DurMS)
		}
	}

	pcm, err := tl.Decode(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	if pcm.Rate != 48000 || pcm.Channels != 1 {
		t.Fatalf("decoded %d Hz × %d channels, want 48000 Hz mono", pcm.Rate, pcm.Channels)
	}
	got, want := pcm.DurationMS(), onDisk.DurationMS
	if math.Abs(float64(got-want)) > 0.01*float64(want) {
		t.Fatalf("decoded length %d ms, cue sheet says %d ms (more than 1%% apart)", got, want)
	}

	// The tone is where the cue sheet puts it, and only there. Opus smears
	// a few ms at the edges, so look inside each span.
	tone, before, after := onDisk.Cues[2], onDisk.Cues[1], onDisk.Cues[3]
	if lvl := pcm.ToneLevel(1000, tone.StartMS+20, tone.EndMS-20); lvl < 0.3 {
		t.Errorf("1 kHz level inside the tone cue [%d, %d) ms = %.3f, want about 0.5", tone.StartMS, tone.EndMS, lvl)
	}
	for _, p := range []speech.Cue{before, after} {
		if rms := pcm.RMS(p.StartMS+20, p.EndMS-20); rms > 0.01 {
			t.Errorf("RMS inside the pause [%d, %d) ms = %.4f, want silence", p.StartMS, p.EndMS, rms)
		}
	}
	// A tone cue shifted by its own length finds no tone.
	if lvl := pcm.ToneLevel(1000, after.EndMS+20, after.EndMS+200); lvl > 0.05 {
		t.Errorf("1 kHz level in the Arabic speech after the tone = %.3f, want little", lvl)
	}
	for _, i := range []int{0, 4} {
		c := onDisk.Cues[i]
		if rms := pcm.RMS(c.StartMS, c.EndMS); rms < 0.02 {
			t.Errorf("speech cue %d [%d, %d) ms is nearly silent (RMS %.4f)", i, c.StartMS, c.EndMS, rms)
		}
	}

	// The same script gives the same bytes.
	out2 := filepath.Join(t.TempDir(), "again.ogg")
	if _, err := tl.Synthesize(ctx, items, out2); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(out)
	b, _ := os.ReadFile(out2)
	if !bytes.Equal(a, b) {
		t.Error("synthesising the same script twice gave different files")
	}
}

func TestSynthesizeReportsToolErrors(t *testing.T) {
	tl := tools(t)
	_, err := tl.Synthesize(context.Background(), []speech.Item{
		{Kind: speech.KindSpeech, Text: "hello", Voice: "zzqq"},
	}, filepath.Join(t.TempDir(), "x.ogg"))
	if err == nil {
		t.Fatal("Synthesize with an unknown voice: no error")
	}
	if !strings.Contains(err.Error(), "espeak-ng") || !strings.Contains(err.Error(), "item 0") {
		t.Errorf("error %q should name the tool and the item", err)
	}
}
