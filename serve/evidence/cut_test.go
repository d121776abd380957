package evidence_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/speech"
	"github.com/earshot/earshot/internal/testbed"
	"github.com/earshot/earshot/record/opus"
	"github.com/earshot/earshot/serve/evidence"
	"github.com/earshot/earshot/serve/evidence/evidencetest"
)

// The fixture testdata/tones.opus (made with internal/speech: opusenc of
// tones and pauses) is recorded through the real recorder into 2 s
// segments; cuts are decoded back with libopus and with opusdec.

const (
	fxRoom    = "room_test"
	fxSession = "ses_test"
	fxTrack   = "trk_test"
	segLen    = 2 * time.Second
)

// fixture is the recorded tones file.
type fixture struct {
	evidencetest.Recording
	store *evidencetest.Store
}

// at returns the timeline sample of the fixture's offset ms.
func (f *fixture) at(ms int64) int64 { return f.At(ms) }

func recordFixture(t testing.TB) *fixture {
	t.Helper()
	s := evidencetest.NewStore()
	rec := evidencetest.Record(t, s, filepath.Join("testdata", "tones.opus"), evidencetest.Track{
		Room: fxRoom, Session: fxSession, Track: fxTrack, Speaker: "spk_test", SegmentDuration: segLen,
	})
	if len(rec.Keys) < 3 {
		t.Fatalf("the fixture made %d segments, want at least 3", len(rec.Keys))
	}
	return &fixture{Recording: rec, store: s}
}

const decRate = opus.SampleRate

// toneLevel is the amplitude of freq over [from, to) samples (Goertzel).
func toneLevel(pcm []float32, rate int, freq float64, from, to int) float64 {
	from, to = max(from, 0), min(to, len(pcm))
	if to <= from {
		return 0
	}
	coeff := 2 * math.Cos(2*math.Pi*freq/float64(rate))
	var s1, s2 float64
	for _, v := range pcm[from:to] {
		s := float64(v) + coeff*s1 - s2
		s2, s1 = s1, s
	}
	p := s1*s1 + s2*s2 - coeff*s1*s2
	return 2 * math.Sqrt(math.Max(p, 0)) / float64(to-from)
}

// onset returns where freq first sounds, in ms from the start, scanning
// 5 ms steps with 10 ms windows; -1 when it never does.
func onset(pcm []float32, rate int, freq float64) int64 {
	step, win := rate/200, rate/100
	for i := 0; i+win <= len(pcm); i += step {
		if toneLevel(pcm, rate, freq, i, i+win) > 0.1 {
			return int64(i) * 1000 / int64(rate)
		}
	}
	return -1
}

func TestCut(t *testing.T) {
	f := recordFixture(t)
	type tone struct {
		freq float64
		atMS int64 // fixture offset of the tone's start
	}
	tests := []struct {
		name        string
		first, last int64
		drop        []int // segment indexes to delete before cutting
		wantLast    int64 // 0: the request's last
		tones       []tone
		absent      []float64
		silence     int64 // at least this many samples filled
	}{
		{name: "across two segment boundaries", first: f.at(1000), last: f.at(4500),
			tones: []tone{{440, 1500}, {880, 3500}}, absent: []float64{660}},
		{name: "from the first sample", first: 0, last: f.at(2000), tones: []tone{{440, 1500}}},
		{name: "pre-roll from the previous segment", first: event.DurationToSamples(segLen) + 960, last: f.at(4000),
			tones: []tone{{880, 3500}}, absent: []float64{440}},
		{name: "window past the end is clipped", first: f.at(4800), last: f.at(9000), wantLast: -1,
			tones: []tone{{660, 5000}}},
		{name: "missing segment becomes silence", first: f.at(1000), last: f.at(4500), drop: []int{1},
			tones: []tone{{440, 1500}}, absent: []float64{880}, silence: event.DurationToSamples(segLen) - evidence.PreRoll}, // the next segment's warm-up covers the rest
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := f.store.Clone()
			for _, i := range tc.drop {
				src.Delete(f.Keys[i])
			}
			var out bytes.Buffer
			res, err := evidence.Cut(context.Background(), src, evidence.Request{Room: fxRoom, Session: fxSession, Track: fxTrack,
				First: tc.first, Last: tc.last, Tags: [][2]string{{"EARSHOT_ALERT", "evt_x"}}}, &out)
			if err != nil {
				t.Fatal(err)
			}
			wantLast := tc.last
			if tc.wantLast == -1 {
				wantLast = f.Samples - 1
			}
			if res.First != tc.first || res.Last != wantLast {
				t.Errorf("cut covers %d-%d, want %d-%d", res.First, res.Last, tc.first, wantLast)
			}
			if res.PreSkip < evidence.PreRoll || res.PreSkip > evidence.PreRoll+5760 {
				t.Errorf("pre-skip %d, want at least %d", res.PreSkip, evidence.PreRoll)
			}
			if res.SilenceSamples < tc.silence || (tc.silence == 0 && res.SilenceSamples > 0) {
				t.Errorf("silence filled %d samples, want %d", res.SilenceSamples, tc.silence)
			}
			if !res.Origin.Equal(f.Origin) {
				t.Errorf("origin %v, want %v", res.Origin, f.Origin)
			}
			if res.Bytes != int64(out.Len()) {
				t.Errorf("result says %d bytes, wrote %d", res.Bytes, out.Len())
			}
			pcm := evidencetest.Decode16k(t, out.Bytes())
			want := int((wantLast - tc.first + 1) / (event.SampleRate / decRate))
			if len(pcm) != want {
				t.Errorf("decodes to %d samples (%v), want %d", len(pcm), time.Duration(len(pcm))*time.Second/decRate, want)
			}
			for _, tn := range tc.tones {
				wantMS := (f.at(tn.atMS) - tc.first) / 48
				if got := onset(pcm, decRate, tn.freq); got < 0 || abs(got-wantMS) > 20 {
					t.Errorf("%v Hz tone starts at %d ms of the cut, want %d ms ± 20", tn.freq, got, wantMS)
				}
			}
			for _, fq := range tc.absent {
				if got := onset(pcm, decRate, fq); got >= 0 {
					t.Errorf("%v Hz tone heard at %d ms; it is outside the cut", fq, got)
				}
			}
			checkWithOpusdec(t, out.Bytes(), wantLast-tc.first+1, func(p *speech.PCM) {
				for _, tn := range tc.tones {
					wantMS := (f.at(tn.atMS) - tc.first) / 48
					if lvl := p.ToneLevel(tn.freq, wantMS+20, wantMS+120); lvl < 0.1 {
						t.Errorf("opusdec: %v Hz tone level %.3f at %d ms", tn.freq, lvl, wantMS)
					}
					if lvl := p.ToneLevel(tn.freq, wantMS-120, wantMS-20); lvl > 0.05 {
						t.Errorf("opusdec: %v Hz tone level %.3f before its start at %d ms", tn.freq, lvl, wantMS)
					}
				}
			})
		})
	}
}

// checkWithOpusdec decodes with opus-tools' opusdec, a decoder that honours
// pre-skip and end trimming (testbed/speech.sh installs it; without it the
// test fails under EARSHOT_TESTBED=1 and is skipped otherwise).
func checkWithOpusdec(t *testing.T, ogg []byte, wantSamples int64, check func(*speech.PCM)) {
	t.Helper()
	tools := speech.Tools{Opusdec: testbed.RequireTool(t, "opusdec")}
	path := filepath.Join(t.TempDir(), "cut.opus")
	if err := os.WriteFile(path, ogg, 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := tools.Decode(context.Background(), path)
	if err != nil {
		t.Fatalf("opusdec: %v", err)
	}
	if int64(p.Frames()) != wantSamples {
		t.Errorf("opusdec decodes %d samples, want %d", p.Frames(), wantSamples)
	}
	check(p)
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

func TestCutErrors(t *testing.T) {
	f := recordFixture(t)
	ctx := context.Background()
	_, err := evidence.Cut(ctx, f.store, evidence.Request{Room: fxRoom, Session: fxSession, Track: "trk_other", First: 0, Last: 48000}, io.Discard)
	if !errors.Is(err, evidence.ErrNoAudio) {
		t.Errorf("unknown track: %v, want evidence.ErrNoAudio", err)
	}
	_, err = evidence.Cut(ctx, f.store, evidence.Request{Room: fxRoom, Session: fxSession, Track: fxTrack, First: f.Samples + 48000, Last: f.Samples + 96000}, io.Discard)
	if !errors.Is(err, evidence.ErrNoAudio) {
		t.Errorf("window after the end: %v, want evidence.ErrNoAudio", err)
	}
	_, err = evidence.Cut(ctx, f.store, evidence.Request{Room: fxRoom, Session: fxSession, Track: fxTrack, First: 100, Last: 50}, io.Discard)
	if err == nil {
		t.Error("last before first: no error")
	}
}

func TestCutDamagedSegment(t *testing.T) {
	f := recordFixture(t)
	// A segment cut short (a crash before its end) is used up to where it
	// breaks; the rest of its stretch is silence.
	b := f.store.Object(f.Keys[1])
	f.store.Set(f.Keys[1], b[:len(b)/2])
	var out bytes.Buffer
	res, err := evidence.Cut(context.Background(), f.store, evidence.Request{Room: fxRoom, Session: fxSession, Track: fxTrack,
		First: f.at(1000), Last: f.at(4500)}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Damaged) != 1 || res.Damaged[0] != f.Keys[1] {
		t.Errorf("damaged %v, want [%s]", res.Damaged, f.Keys[1])
	}
	if res.SilenceSamples == 0 {
		t.Error("no silence filled for the lost half segment")
	}
	pcm := evidencetest.Decode16k(t, out.Bytes())
	if want := int(res.Samples() / 3); len(pcm) != want {
		t.Errorf("decodes to %d samples, want %d", len(pcm), want)
	}
}

func TestOrigin(t *testing.T) {
	f := recordFixture(t)
	got, err := evidence.Origin(context.Background(), f.store, fxRoom, fxSession, fxTrack)
	if err != nil || !got.Equal(f.Origin) {
		t.Errorf("Origin = %v, %v; want %v", got, err, f.Origin)
	}
	if _, err := evidence.Origin(context.Background(), f.store, fxRoom, fxSession, "trk_none"); !errors.Is(err, evidence.ErrNoAudio) {
		t.Errorf("Origin of a track without segments: %v", err)
	}
}
