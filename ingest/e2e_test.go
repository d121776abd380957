package ingest_test

import (
	"crypto/rand"
	"math"
	"math/big"
	"slices"
	"testing"
	"time"

	"github.com/earshot/earshot/event"
	kit "github.com/earshot/earshot/internal/e2e"
	"github.com/earshot/earshot/internal/speakerbot"
	"github.com/earshot/earshot/internal/speech"
)

// Tolerances of the Must-show (issue 3).
const (
	maxDurationErrPct = 1.0
	maxToneOffsetMS   = 40.0
)

// toneDur is the length of the scripts' tones (speakerScript).
const toneDur = 250 * time.Millisecond

// randomFeedID returns a random 12-digit participant ID.
func randomFeedID() uint64 {
	n, _ := rand.Int(rand.Reader, big.NewInt(9e11))
	return 1e11 + n.Uint64()
}

// speakerTracks returns the recorded tracks of the speaker with the given
// pseudonym, by ordinal.
func speakerTracks(rec *recording, pseudonym string) []*recTrack {
	var out []*recTrack
	for _, tr := range rec.tracks {
		if tr.speaker == pseudonym {
			out = append(out, tr)
		}
	}
	slices.SortFunc(out, func(a, b *recTrack) int { return a.ordinal - b.ordinal })
	return out
}

// figures collects the worst values a run measured.
type figures struct {
	durErrPct, toneAbsMS, toneRelMS float64
	tones                           int
}

// checkSpeaker compares what a speaker published with what was recorded:
// one track per stretch of publishing, with the same pseudonym; each
// track's decoded duration against the stretch's; each tone at its
// published time on the decoded timeline, and (at least minToneCover of
// it) at its level.
func checkSpeaker(t testing.TB, sp *speaker, pub []pubTrack, tracks []*recTrack, minToneCover float64, fig *figures) {
	t.Helper()
	if len(tracks) != len(pub) {
		t.Errorf("speaker %s published %d tracks (joins), %d were recorded", sp.name, len(pub), len(tracks))
		return
	}
	for i, tr := range tracks {
		p := pub[i]
		if tr.ordinal != i {
			t.Errorf("speaker %s: track %d has ordinal %d", sp.name, i, tr.ordinal)
		}
		got, want := tr.duration(), p.duration()
		errPct := math.Abs(float64(got-want)) / float64(want) * 100
		fig.durErrPct = max(fig.durErrPct, errPct)
		t.Logf("speaker %s track %d: decoded %v, published %v (%+.3f%%, %v muted)",
			sp.name, i, got.Round(time.Millisecond), want.Round(time.Millisecond), float64(got-want)/float64(want)*100, p.muted.Round(time.Millisecond))
		if errPct > maxDurationErrPct {
			t.Errorf("speaker %s track %d: decoded duration %v, published %v: %.2f%% apart (max %.0f%%)",
				sp.name, i, got, want, errPct, maxDurationErrPct)
		}
		if len(p.tones) == 0 {
			t.Errorf("speaker %s track %d: no tones published", sp.name, i)
			continue
		}
		checks := locateTones(tr, p.tones, toneDur)
		var first *toneCheck
		for j, c := range checks {
			if c.got < 0 {
				t.Errorf("speaker %s track %d: tone %d (published at sample %d) not found within 3 s", sp.name, i, j, c.want)
				continue
			}
			fig.tones++
			off := c.offsetMS()
			fig.toneAbsMS = max(fig.toneAbsMS, math.Abs(off))
			if first == nil {
				first = &checks[j]
			} else {
				rel := float64((c.got-first.got)-(c.want-first.want)) * 1000 / 48000
				fig.toneRelMS = max(fig.toneRelMS, math.Abs(rel))
			}
			if onsetOff := float64(c.onset-c.want) / 48; math.Abs(off) > 10 || c.onset >= 0 && math.Abs(onsetOff) > 10 {
				t.Logf("speaker %s track %d: tone %d at %+.1f ms (its onset at %+.1f ms); tone level from 20 ms before its published start, every 5 ms (z: digital silence, L: lost):%s",
					sp.name, i, j, off, onsetOff, describeSpan(tr, c.want-960, c.want+event.DurationToSamples(toneDur)+960))
			}
			if math.Abs(off) > maxToneOffsetMS {
				t.Errorf("speaker %s track %d: tone %d at %.1f ms from its published time (max %.0f ms)", sp.name, i, j, off, maxToneOffsetMS)
			}
			if cover, excused := toneCover(tr, c.got, toneDur); cover < minToneCover {
				t.Errorf("speaker %s track %d: tone %d is at its level in %.0f%% of it on the decoded timeline (%d windows after lost packets left out), want %.0f%%; tone level from 20 ms before it, every 5 ms (z: digital silence, L: lost):%s",
					sp.name, i, j, 100*cover, excused, 100*minToneCover, describeSpan(tr, c.got-960, c.got+event.DurationToSamples(toneDur)+960))
			} else if excused > 0 {
				t.Logf("speaker %s track %d: tone %d is at its level in %.0f%% of it (%d windows after lost packets left out)", sp.name, i, j, 100*cover, excused)
			}
		}
	}
}

// TestE2EThreeSpeakers is issue 3's main Must-show: three speaker bots
// talk for about 60 s each, with pauses and timed 1 kHz tones; B mutes
// for 5 s, C leaves and rejoins. The stored segments, decoded, must last
// as long as each speaker published (within 1 %), hold every tone at its
// published time (±40 ms), and agree with their segment_stored events.
func TestE2EThreeSpeakers(t *testing.T) { threeSpeakers(t) }

// BenchmarkE2EThreeSpeakers runs TestE2EThreeSpeakers's scenario once,
// whatever b.N is (it takes minutes), with the same checks, and reports
// its worst track's duration error and its worst tone's offset.
func BenchmarkE2EThreeSpeakers(b *testing.B) {
	fig := threeSpeakers(b)
	reportMediaFigures(b, fig)
}

// reportMediaFigures reports a media scenario's figures: the worst
// track's decoded-duration error and the worst tone's offset from its
// published time (record_*), and the worst tone offset relative to its
// track's first tone and the number of tones located.
func reportMediaFigures(b *testing.B, fig figures) {
	b.ReportMetric(fig.toneRelMS, "tone-rel-ms")
	b.ReportMetric(float64(fig.tones), "tones-located")
	b.ReportMetric(fig.durErrPct, "record_duration_error_pct")
	b.ReportMetric(fig.toneAbsMS, "record_tone_offset_ms")
}

// threeSpeakers is TestE2EThreeSpeakers's scenario; it returns the worst
// values it measured.
func threeSpeakers(t testing.TB) figures {
	t.Helper()
	const room = 1236
	h := newE2E(t, e2eConfig{room: room, identity: "feed_id", segment: 10 * time.Second})
	tools := speechTools(t)
	clips := synthesize(t, tools, t.TempDir(), map[string][]speech.Item{
		"a": speakerScript("en-us", 0, 12),
		"b": speakerScript("en-gb", 4, 12),
		"c": speakerScript("en-gb-scotland", 8, 12),
	})
	a := &speaker{name: "a", display: "speaker-a-" + kit.RandHex(4), feed: randomFeedID(), clip: clips["a"]}
	b := &speaker{name: "b", display: "speaker-b-" + kit.RandHex(4), feed: randomFeedID(), clip: clips["b"]}
	c := &speaker{name: "c", display: "speaker-c-" + kit.RandHex(4), feed: randomFeedID(), clip: clips["c"]}
	// The windows open in long pauses, so that no tone is split by them
	// (a tone cut in two by a mute would not be a 250 ms tone).
	b.mutes = []speakerbot.Window{{At: longPauseNear(b.clip, 25*time.Second), For: 5 * time.Second}}
	c.rejoins = []speakerbot.Window{{At: longPauseNear(c.clip, 30*time.Second), For: 3 * time.Second}}
	speakers := []*speaker{a, b, c}
	for _, sp := range speakers {
		sp.leadIn = 5 * time.Second
		t.Logf("speaker %s: %d ms of audio", sp.name, sp.clip.DurationMS)
	}

	h.talk(speakers, 4*time.Minute)
	h.stop(nil)
	rec := h.collect(tools)

	var fig figures
	mine := 0
	for _, sp := range speakers {
		pseud := h.pseud.Person(sp.identity("feed_id"))
		tracks := speakerTracks(rec, pseud)
		mine += len(tracks)
		checkSpeaker(t, sp, sp.published(t), tracks, 0.85, &fig)
	}
	if mine != len(rec.tracks) {
		t.Errorf("%d tracks recorded, %d of them from the three speakers", len(rec.tracks), mine)
	}

	// B's timeline went on through the mute: digital silence where the
	// mute was, counted as a gap.
	if bt := speakerTracks(rec, h.pseud.Person(b.identity("feed_id"))); len(bt) == 1 {
		var muteAt, unmuteAt time.Time
		for _, e := range b.entries(t) {
			switch e.Event {
			case speakerbot.EventMute:
				muteAt = *e.UTC
			case speakerbot.EventUnmute:
				unmuteAt = *e.UTC
			}
		}
		from, to := bt[0].position(muteAt.Add(100*time.Millisecond)), bt[0].position(unmuteAt.Add(-100*time.Millisecond))
		if to-from < 4*48000 {
			t.Errorf("speaker b: mute spans samples %d..%d on the timeline, want about 5 s", from, to)
		} else if r := rms(bt[0].pcm, from, to); r > 0.001 {
			t.Errorf("speaker b: RMS %.4f during the mute, want silence", r)
		}
		if g := bt[0].ended; g != nil && g.GapSamples < 4*48000 {
			t.Errorf("speaker b: %d gap samples, want at least the 5 s mute", g.GapSamples)
		}
	}
	checkChunks(t, rec, noLiveFaults)
	checkSession(t, rec)

	// Silence the recorder filled for want of packets, beyond B's mute:
	// the wait for the first packet and re-anchorings.
	var muted time.Duration
	for _, sp := range speakers {
		for _, p := range sp.published(t) {
			muted += p.muted
		}
	}
	fill := event.SamplesToDuration(int64(h.gapSamples("mute")))
	t.Logf("mute-gap fill beyond the speakers' own mutes: %v", (fill - muted).Round(time.Millisecond))

	anchors := map[string]int{}
	for _, tr := range rec.tracks {
		for _, s := range tr.segs {
			anchors[string(s.ev.Timeline.Anchor)]++
		}
	}
	t.Logf("segment anchors %v; largest EARSHOT_ORIGIN tag vs event origin difference %v", anchors, rec.tagOriginSkew)
	t.Logf("segments: %d announced (%d duplicates dropped), %d objects; tones located: %d", rec.segEvents, rec.segDups, len(rec.objects), fig.tones)
	t.Logf("record_duration_error_pct=%.3f", fig.durErrPct)
	t.Logf("record_tone_offset_ms=%.1f (relative to each track's first tone: %.1f)", fig.toneAbsMS, fig.toneRelMS)
	return fig
}
