package e2etest

import (
	"bytes"
	"cmp"
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/e2e"
	"github.com/earshot/earshot/policy"
	"github.com/earshot/earshot/record/ogg"

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
// packets, less the recorder's own silence fill, must be a run of the
// clip's, byte for byte. Fill inside the run is the recorder keeping its
// timeline in step with arrival when packets came late in a burst (a
// stalled sender or receiver, as on a loaded machine): every packet sent
// is still there, in order. A lost or altered packet breaks the run. It
// returns the stretch of the clip a decoder outputs from the evidence (its
// pre-skip hides the cut's pre-roll), or fails the test, saying how many
// packets differ at the best alignment.
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
	// The fill between the first and the last packet of the clip's audio;
	// fill at either end is the cut's own margin.
	var sent []speakerbot.Packet
	var fill, fillSamples int
	lead, tail := 0, len(ev.Packets)
	for lead < tail && isFill(ev.Packets[lead].Data) {
		lead++
	}
	for tail > lead && isFill(ev.Packets[tail-1].Data) {
		tail--
	}
	for _, p := range ev.Packets[lead:tail] {
		if isFill(p.Data) {
			fill++
			fillSamples += p.Samples
			continue
		}
		sent = append(sent, p)
	}
	if fill > 0 {
		t.Logf("the evidence holds %d fill packets (%d ms) between the clip's packets: the recorder's timeline followed a late burst", fill, fillSamples*1000/speakerbot.SampleRate)
	}
	n := len(sent)
	if n == 0 || n > len(clip.Packets) {
		t.Fatalf("the evidence has %d of the clip's packets (%d in all), the clip %d", n, len(ev.Packets), len(clip.Packets))
	}
	best, bestDiff := -1, n+1
	for k := 0; k+n <= len(clip.Packets); k++ {
		diff := 0
		for j := 0; j < n && diff < bestDiff; j++ {
			if !bytes.Equal(sent[j].Data, clip.Packets[k+j].Data) {
				diff++
			}
		}
		if diff < bestDiff {
			best, bestDiff = k, diff
		}
	}
	if bestDiff > 0 {
		t.Fatalf("the evidence's %d packets (less %d fill) are not the clip's: %d differ at the best alignment (clip packet %d): audio lost, altered or out of order", n, fill, bestDiff, best)
	}
	first := clip.Packets[best].Start + int64(ev.PreSkip()) - int64(clip.PreSkip()) - int64(ev.Packets[lead].Start-ev.Packets[0].Start)
	return clipSpan{first: first, end: first + ev.DurationSamples() - int64(fillSamples)}
}

// isFill says p is one of the recorder's silence packets (record/ogg's
// Silence), which no encoder of speech writes.
func isFill(p []byte) bool {
	for _, n := range []int64{960, 480, 240, 120} {
		if s, _ := ogg.Silence(n); bytes.Equal(p, s) {
			return true
		}
	}
	return false
}

// owedFindings is what the pipeline's policy (p.pol) finds in the
// transcripts the pipeline wrote, evaluated here the way the policy stage
// does (one window, in timeline order), by category, each with the text
// it was found in. Whether tiny.en hears a spoken phone number as ten digits
// moves between machines and runs, and the engine is not deterministic on
// every audio (Whisper falls back to sampling when greedy decoding fails
// its checks); the pipeline owes an alert where its transcripts hold the
// finding. It waits until a transcript reaches the track's last line,
// which starts at last.
func owedFindings(t *testing.T, p *pipeline, last time.Time) map[string]string {
	t.Helper()
	var evs []*event.Envelope
	e2e.WaitFor(t, "a transcript of the last line", 3*time.Minute, func() bool {
		evs, _ = e2e.Events(t, p.brokers, p.topics.Of(event.TopicTranscripts))
		return slices.ContainsFunc(evs, func(e *event.Envelope) bool { return e.Timeline.End().After(last) })
	})
	pol := p.pol
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var segs []policy.Segment
	seen := map[string]bool{}
	for _, e := range evs {
		if seen[e.EventID] {
			continue
		}
		seen[e.EventID] = true
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
		t.Logf("transcript: %q", s.Text)
		for _, f := range w.Push(pol, s) {
			found[f.Category] = s.Text
		}
	}
	return found
}
