package e2etest

import (
	"math"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/earshot/earshot/internal/speech"
	"github.com/earshot/earshot/internal/wer"
)

// benchSentences are the lines of the benchmark conversation; speakers take
// turns through them (repeats are fine: each is a separate utterance).
var benchSentences = speech.BenchSentences

// BenchmarkE2ETranscribe runs a scripted two-speaker conversation of at
// least 100 utterances (EARSHOT_BENCH_LINES, default 104) through the live
// pipeline (speaker bots, Janus, ingest, Kafka, a worker, the Whisper
// fixture) once, and reports:
//
//   - engine_rtf: engine wall time per second of audio sent to it;
//   - transcript_latency_p50_s, transcript_latency_p95_s: from the end of a
//     line in the speaker bot's publish log (its last sample sent) to the
//     Kafka timestamp of its last live transcript record;
//   - transcript_missing_lines: lines that never got a live transcript
//     (the latency quantiles cannot count them); the benchmark fails
//     when it is not zero;
//   - wer_shown: WER, in percent, of the conversation's transcript as a
//     reader of the transcripts topic shows it when the room ends (one
//     text per stretch of speech, event.PreferredTranscripts: settled
//     where the settled pass reached, live elsewhere), per speaker in
//     order;
//   - wer_shown_delta_vs_file: wer_shown minus the WER of each speaker's
//     track sent to the engine as one file, scored the same way (per
//     speaker, in order), in points;
//   - wer_live, wer_live_delta_vs_file: WER of the live revision alone
//     (each utterance as it ends, the one the latency figures time), and
//     it minus the WER of the room's mixed audio sent as one file and
//     scored as one text in script order (unchanged meaning);
//   - settled_lines_pct, settled_latency_p50_s, settled_latency_p95_s: the
//     share of lines with settled text when the room ends, and from a
//     line's end to its last settled record;
//   - wer_final, wer_final_delta_vs_file: the final revision (the stored
//     session replayed in 25 s batches after it ended).
//
// EARSHOT_BENCH_CHUNK sets ingest's chunk duration (default: the earshot
// binary's ingest.chunk_duration, 240 ms).
func BenchmarkE2ETranscribe(b *testing.B) {
	lines := 104
	if n, err := strconv.Atoi(os.Getenv("EARSHOT_BENCH_LINES")); err == nil && n > 0 {
		lines = n
	}
	chunk := time.Duration(0)
	if d, err := time.ParseDuration(os.Getenv("EARSHOT_BENCH_CHUNK")); err == nil {
		chunk = d
	}
	var script []speech.Line
	for i := range lines {
		sp := []string{"alice", "bob"}[i%2]
		script = append(script, speech.Line{Speaker: sp, Text: benchSentences[i%len(benchSentences)]})
	}
	for b.Loop() {
		runBench(b, script, chunk)
	}
}

func runBench(b *testing.B, script []speech.Line, chunk time.Duration) {
	b.StopTimer()
	tt := testing.TB(b)
	r := newRun(tt, 1410)
	clips := conversationClips(tt, script, 1000)
	b.StartTimer()
	res := r.converse(script, clips, chunk, workerOpts{name: "bench", settle: productSettle(tt)})
	b.StopTimer()
	var lat []float64
	missing := 0
	for _, l := range res.lines {
		if len(l.segs) == 0 {
			missing++
			continue
		}
		lat = append(lat, l.latency.Seconds())
		if w := wer.WER(l.line.Text, l.text); w > 0 {
			b.Logf("line %q -> %q (WER %.2f)", l.line.Text, l.text, w)
		}
	}
	w := res.workers[0]
	eng := w.metric(tt, "earshot_transcribe_engine_seconds")
	audio := w.metric(tt, "earshot_transcribe_engine_audio_seconds_total")
	pipe := w.metric(tt, "earshot_transcribe_pipeline_seconds_total")
	prod := w.metric(tt, "earshot_transcribe_produce_seconds_total")
	werFile, fileText := fileWER(tt, r.eng, clips, script)
	b.Logf("file text: %q", fileText)
	b.Logf("latency p50 %.2fs p95 %.2fs", quantile(lat, 0.5), quantile(lat, 0.95))
	b.Logf("%d lines (%d without transcript), %v utterances; engine %.1fs for %.1fs audio; pipeline %.2fs (produce %.2fs); WER live %.3f file %.3f",
		len(res.lines), missing, w.metric(tt, "earshot_transcribe_utterances_total"), eng, audio, pipe, prod, res.werLive, werFile)
	// transcribe_overhead_pct (pipe/eng) is retired: it divided wall time
	// by a slow engine's wall time. BenchmarkWorkerCPU reports the
	// worker's own CPU instead.
	b.ReportMetric(eng/audio, "engine_rtf")
	b.ReportMetric(quantile(lat, 0.5), "transcript_latency_p50_s")
	b.ReportMetric(quantile(lat, 0.95), "transcript_latency_p95_s")
	b.ReportMetric(float64(missing), "transcript_missing_lines")
	if missing > 0 {
		b.Errorf("%d of %d lines never got a live transcript", missing, len(res.lines))
	}
	b.ReportMetric(100*res.werLive, "wer_live")
	b.ReportMetric(math.Round(1000*(res.werLive-werFile))/10, "wer_live_delta_vs_file")
	// The settled revision: the same worker's batches while the room is
	// live; latency from a line's end to its last settled record.
	var settledLat []float64
	for _, l := range res.settledLines {
		if len(l.segs) > 0 {
			settledLat = append(settledLat, l.latency.Seconds())
		}
	}
	b.Logf("settled revision: WER %.3f (file %.3f), %d of %d lines, latency p50 %.1fs p95 %.1fs, %v batches, %v dropped",
		res.werSettled, werFile, len(settledLat), len(res.settledLines), quantile(settledLat, 0.5), quantile(settledLat, 0.95),
		w.metric(tt, "earshot_transcribe_settle_batches_total"), w.metric(tt, "earshot_transcribe_settle_dropped_total"))
	b.Logf("shown when the room ends: WER %.3f (live %.3f, settled %.3f, file %.3f)", res.werShown, res.werLive, res.werSettled, werFile)
	werFileSpeakers := fileSpeakerWER(tt, r.eng, clips, script)
	b.Logf("each speaker's track as one file, scored per speaker: WER %.3f", werFileSpeakers)
	b.ReportMetric(100*res.werShown, "wer_shown")
	b.ReportMetric(math.Round(1000*(res.werShown-werFileSpeakers))/10, "wer_shown_delta_vs_file")
	b.ReportMetric(100*float64(len(settledLat))/float64(max(1, len(res.settledLines))), "settled_lines_pct")
	b.ReportMetric(quantile(settledLat, 0.5), "settled_latency_p50_s")
	b.ReportMetric(quantile(settledLat, 0.95), "settled_latency_p95_s")
	// The final revision: the stored session replayed in 25 s batches.
	if len(res.all) > 0 {
		st, werFinal := replayWER(tt, r, res, scriptText(script), 25*time.Second)
		b.Logf("replay in 25 s batches: %d utterances, WER %.3f (file %.3f)", st.Utterances, werFinal, werFile)
		b.ReportMetric(100*werFinal, "wer_final")
		b.ReportMetric(math.Round(1000*(werFinal-werFile))/10, "wer_final_delta_vs_file")
	}
	b.StartTimer() // b.Loop needs the timer running
}
