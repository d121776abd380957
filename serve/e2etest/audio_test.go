package e2etest

import (
	"bytes"
	"cmp"
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/bustest"
	"github.com/earshot/earshot/policy"
	"github.com/earshot/earshot/transcribe"

	"github.com/earshot/earshot/internal/speakerbot"
	"github.com/earshot/earshot/internal/speech"
)

// clipSpan is a stretch of the speaker's clip in 48 kHz samples of its
// audio, as its cue sheet counts them (sample 0 is the first after the
// clip's pre-skip).
type clipSpan struct{ first, end int64 } // end exclusive

// cueSpan is a cue's stretch of its clip.
func cueSpan(c speech.Cue) clipSpan {
	return clipSpan{first: c.StartMS * speakerbot.SampleRate / 1000, end: c.EndMS * speakerbot.SampleRate / 1000}
}

func (s clipSpan) contains(o clipSpan) bool { return s.first <= o.first && o.end <= s.end }

// evidenceInClip finds the evidence audio in the clip the speaker bot
// played: the evidence is cut from stored segments without re-encoding,
// and the bot sent the clip's Opus packets as they are, so the evidence's
// packets must be a run of the clip's, byte for byte. It returns the stretch
// of the clip a decoder outputs from the evidence (its pre-skip hides the
// cut's pre-roll), or fails the test, saying how many packets differ at
// the best alignment.
func evidenceInClip(t testing.TB, clipPath string, ogg []byte) clipSpan {
	t.Helper()
	f, err := os.Open(clipPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	clip, err := speakerbot.ReadOpusFile(f)
	if err != nil {
		t.Fatalf("read the clip: %v", err)
	}
	ev, err := speakerbot.ReadOpusFile(bytes.NewReader(ogg))
	if err != nil {
		t.Fatalf("read the evidence audio: %v", err)
	}
	n := len(ev.Packets)
	if n == 0 || n > len(clip.Packets) {
		t.Fatalf("the evidence has %d packets, the clip %d", n, len(clip.Packets))
	}
	best, bestDiff := -1, n+1
	for k := 0; k+n <= len(clip.Packets); k++ {
		diff := 0
		for j := 0; j < n && diff < bestDiff; j++ {
			if !bytes.Equal(ev.Packets[j].Data, clip.Packets[k+j].Data) {
				diff++
			}
		}
		if diff < bestDiff {
			best, bestDiff = k, diff
		}
	}
	if bestDiff > 0 {
		t.Fatalf("the evidence's %d packets are not the clip's: %d differ at the best alignment (clip packet %d): audio lost, altered or out of order", n, bestDiff, best)
	}
	first := clip.Packets[best].Start + ev.PreSkip() - clip.PreSkip()
	return clipSpan{first: first, end: first + ev.DurationSamples()}
}

// offlineFindings is what the default policy finds in what the same engine
// hears offline in the recorded session (transcribe.Replay over the bucket,
// utterance by utterance as the live worker cuts it, same decoding
// settings), by category, each with the transcript text it was found in.
// Whether tiny.en hears a spoken phone number as ten digits moves between
// machines and runs; the pipeline owes an alert where the engine's own
// text holds the finding, so this is the alerts the test waits for.
func offlineFindings(t *testing.T, p *pipeline, store transcribe.SegmentStore, room string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var session string
	for o, err := range store.List(ctx, "audio/"+room+"/") {
		if err != nil {
			t.Fatalf("list the session: %v", err)
		}
		session, _, _ = strings.Cut(strings.TrimPrefix(o.Key, "audio/"+room+"/"), "/")
		break
	}
	if session == "" {
		t.Fatal("no stored audio for the room")
	}
	out := &bustest.Capture{}
	if _, err := transcribe.Replay(ctx, transcribe.ReplayConfig{
		Store: store, Engine: p.eng, Sender: out, Producer: event.Producer{Name: "earshot-replay", Version: "e2e"},
		Keys: p.keys, Language: "en", Topic: "replay", Logger: p.log.With("stage", "replay"),
	}, room, session); err != nil {
		t.Fatalf("replay: %v", err)
	}
	pol, err := policy.Default()
	if err != nil {
		t.Fatal(err)
	}
	var segs []policy.Segment
	for _, m := range out.Topic("replay") {
		e, err := event.Decode(m.Value)
		if err != nil {
			t.Fatal(err)
		}
		s, err := policy.SegmentFromEvent(ctx, p.keys, e)
		if err != nil {
			t.Fatal(err)
		}
		segs = append(segs, s)
	}
	slices.SortFunc(segs, func(a, b policy.Segment) int { return cmp.Compare(a.Timeline.FirstSample, b.Timeline.FirstSample) })
	found := map[string]string{}
	w := policy.NewWindow(policy.WindowConfig{})
	for _, s := range segs {
		t.Logf("offline: %q", s.Text)
		for _, f := range w.Push(pol, s) {
			found[f.Category] = s.Text
		}
	}
	return found
}
