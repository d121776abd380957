package e2etest

import (
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/earshot/earshot/ingest/pseudonym"
	"github.com/earshot/earshot/internal/e2e"
	"github.com/earshot/earshot/internal/speech"
	"github.com/earshot/earshot/internal/testbed"
)

// feeds are the speaker bots' feed IDs (their identities in the room).
var feeds = map[string]uint64{"alice": 101, "bob": 102}

// BenchmarkE2EWhisperLatency runs the transcription benchmark's scripted
// two-speaker conversation (speech.BenchSentences in turn,
// EARSHOT_BENCH_LINES lines, default 104, 1 s between turns, as
// transcribe/e2etest's BenchmarkE2ETranscribe) through `earshot-whisper
// run` in the sid root: speaker bots, Janus, the ingest, the embedded
// broker, the transcription worker with whisper.cpp in process (the
// converted float16 tiny.en, 2 threads), in the shipped configuration
// (240 ms chunks, settled and final passes on, sharing the engine). It
// reports
//
//   - whispercpp_transcript_latency_p50_s: the median, over lines, of the
//     time from the end of a line in the speaker bot's publish log (its
//     last sample sent) to the broker timestamp of the line's last live
//     transcript record, the definition of transcript_latency_p50_s; a
//     line with no live transcript counts as a miss (infinite latency)
//     and fails the benchmark.
//
// It leaves out the policy stage and alerting after the transcript, and
// model loading (once, at start).
func BenchmarkE2EWhisperLatency(b *testing.B) {
	lines := 104
	if n, err := strconv.Atoi(os.Getenv("EARSHOT_BENCH_LINES")); err == nil && n > 0 {
		lines = n
	}
	var script []speech.Line
	for i := range lines {
		sp := []string{"alice", "bob"}[i%2]
		script = append(script, speech.Line{Speaker: sp, Text: speech.BenchSentences[i%len(speech.BenchSentences)]})
	}
	// One conversation is minutes long: b.Loop runs it once at make
	// bench's -benchtime 1s (the timer runs through it).
	for b.Loop() {
		lat := runLatency(b, script)
		b.ReportMetric(quantile(lat, 0.5), "whispercpp_transcript_latency_p50_s")
	}
}

// runLatency runs the conversation once and returns each line's latency
// in seconds (+Inf for a line without a live transcript).
func runLatency(b *testing.B, script []speech.Line) []float64 {
	const room = 1961
	r := newSidRun(b)
	defer r.close()
	janus := testbed.JanusServer(b)
	e2e.CreateRoom(b, janus, room)
	clips, err := e2e.SpeechTools(b).Conversation(b.Context(), script, 1000, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	r.start(r.config(room))
	r.waitLog("the ingest joining the room", 2*time.Minute, func(rec logRecord) bool { return rec.Msg == "room joined" })
	var speakers []*e2e.Speaker
	var longest time.Duration
	for _, n := range slices.Sorted(maps.Keys(clips)) {
		speakers = append(speakers, &e2e.Speaker{Name: n, Feed: feeds[n], Clip: clips[n]})
		longest = max(longest, time.Duration(clips[n].Samples)*time.Second/speech.SampleRate)
	}
	e2e.Talk(b, janus, room, speakers, longest+2*time.Minute)

	// The speakers' pseudonyms, with the run's own secret.
	secret, err := pseudonym.LoadSecret(filepath.Join(r.dir, "data", "secrets", "pseudonym.key"))
	if err != nil {
		b.Fatal(err)
	}
	ps, err := pseudonym.New(secret, 1)
	if err != nil {
		b.Fatal(err)
	}
	var said []e2e.Line
	speakerOf := map[string]string{}
	for _, s := range speakers {
		said = append(said, s.Lines(b)...)
		speakerOf[s.Name] = ps.Person(strconv.FormatUint(s.Feed, 10))
	}
	if len(said) != len(script) {
		b.Fatalf("the publish logs have %d lines, want %d", len(said), len(script))
	}
	// Generous: a line's live transcript is due seconds after it ends; the
	// wait only bounds a run whose engine fell behind, and what is still
	// missing then is a miss.
	last := make([]time.Time, len(said))
	covered := func() bool {
		for i := range last {
			last[i] = time.Time{}
		}
		for _, tr := range r.transcripts() {
			if tr.pass() != "live" {
				continue
			}
			for i, l := range said {
				if speakerOf[l.Speaker] == tr.e.Speaker && tr.e.Timeline.Start().Before(l.End.Add(timeTolerance)) &&
					tr.e.Timeline.End().After(l.Start.Add(-timeTolerance)) && tr.produced.After(last[i]) {
					last[i] = tr.produced
				}
			}
		}
		return !slices.Contains(last, time.Time{})
	}
	for deadline := time.Now().Add(3 * time.Minute); !covered() && time.Now().Before(deadline); {
		time.Sleep(time.Second) // each look reads the whole topic
	}
	eng := r.metrics("earshot_transcribe_engine_seconds_sum", "earshot_transcribe_engine_seconds_count", "earshot_transcribe_engine_audio_seconds_total")
	fig := r.stop()
	lat := make([]float64, len(said))
	missing := 0
	for i, l := range said {
		if last[i].IsZero() {
			lat[i] = math.Inf(1)
			missing++
			continue
		}
		lat[i] = last[i].Sub(l.End).Seconds()
	}
	b.Logf("%d lines, %d without a live transcript; latency p50 %.2fs p95 %.2fs; summary %v",
		len(said), missing, quantile(lat, 0.5), quantile(lat, 0.95), fig)
	// Where the time goes: engine calls of all passes share the engine.
	b.Logf("engine: %.0f calls (live, settled, final), %.1fs for %.1fs of audio (RTF %.3f, %.2fs a call)",
		eng[1], eng[0], eng[2], eng[0]/eng[2], eng[0]/eng[1])
	if missing > 0 {
		b.Errorf("%d of %d lines never got a live transcript", missing, len(said))
	}
	return lat
}

// quantile is the q-quantile of v (nearest rank), as transcribe/e2etest
// computes transcript_latency_p50_s.
func quantile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Sorted(slices.Values(v))
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(i, 0)]
}
