package e2etest

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/bustest"
	"github.com/earshot/earshot/internal/e2e"
	"github.com/earshot/earshot/internal/speech"
	"github.com/earshot/earshot/transcribe"
)

// BenchmarkWorkerCPU measures transcribe_worker_cpu_pct_of_engine: the
// transcription worker's own CPU time as a share of the engine's time on
// the same utterances, in percent. The worker (decode, voice activity and
// utterance cutting, opening chunks and sealing transcripts, attribution)
// runs on 20 lines of two speakers' synthesized speech as live audio
// chunks (240 ms, ingest's default), from a stand-in consumer to a
// capturing sender, against an engine that answers at once: the process's
// CPU (user + system, the garbage collector included) is the worker's.
// The engine's time is the wall time the test bed's Whisper fixture takes
// for the very utterances the worker sent, one request each, as the
// worker would send them. It leaves out Kafka (fetch, commit, produce) and
// the settled pass (batches on a timer). Replaces transcribe_overhead_pct,
// which divided the worker's wall time by a slow engine's wall time.
func BenchmarkWorkerCPU(b *testing.B) {
	eng := whisper(b)
	var script []speech.Line
	for i := range 20 {
		script = append(script, speech.Line{Speaker: []string{"alice", "bob"}[i%2], Text: benchSentences[i%len(benchSentences)]})
	}
	clips := conversationClips(b, script, 800)
	keys := e2e.DerivedKeys{Secret: []byte(e2e.RandHex(16))}
	var recs []bus.Message
	for sp, c := range clips {
		recs = append(recs, chunkRecords(b, keys, "trk_"+sp, "p1_"+sp, oggPackets(b, c.Path), 12)...)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	instant := &instantEngine{}
	runWorker := func() time.Duration {
		instant.reset()
		feed, out := bustest.NewFeed(), &bustest.Capture{}
		w, err := transcribe.NewWorker(transcribe.WorkerConfig{
			Consumer: feed, Sender: out, Engine: instant, Language: "en",
			Producer: event.Producer{Name: "earshot-transcribe", Version: "bench"}, Keys: keys, Logger: quiet, Metrics: prometheus.NewRegistry(),
		})
		if err != nil {
			b.Fatal(err)
		}
		start := procCPU(b)
		stop := bustest.Start(b, w.Run)
		feed.WaitAcked(b, feed.Push(recs...)...)
		cpu := procCPU(b) - start
		stop()
		_ = w.Close()
		if len(out.Topic(event.TopicTranscripts)) == 0 {
			b.Fatal("the worker wrote no transcript")
		}
		return cpu
	}
	runWorker() // warm up
	var cpu time.Duration
	b.ResetTimer()
	for b.Loop() {
		cpu += runWorker()
	}
	b.StopTimer()
	audios := instant.taken()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var engine time.Duration
	for _, a := range audios {
		t0 := time.Now()
		if _, err := eng.Transcribe(ctx, a); err != nil {
			b.Fatal(err)
		}
		engine += time.Since(t0)
	}
	perRun := cpu / time.Duration(b.N)
	b.Logf("%d utterances; worker CPU %.2fs per run, engine %.2fs", len(audios), perRun.Seconds(), engine.Seconds())
	b.ReportMetric(100*perRun.Seconds()/engine.Seconds(), "transcribe_worker_cpu_pct_of_engine")
	b.StartTimer() // b.Loop needs the timer running
}

// procCPU is the process's user+system CPU time.
func procCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// instantEngine answers at once with one segment covering the audio and
// keeps the audio it was given.
type instantEngine struct {
	mu     sync.Mutex
	audios []transcribe.Audio
}

func (e *instantEngine) Transcribe(ctx context.Context, a transcribe.Audio) (transcribe.Result, error) {
	if err := ctx.Err(); err != nil {
		return transcribe.Result{}, err
	}
	e.mu.Lock()
	e.audios = append(e.audios, transcribe.Audio{Samples: a.Samples, Language: a.Language, Prompt: a.Prompt})
	e.mu.Unlock()
	secs := float64(len(a.Samples)) / transcribe.AudioRate
	return transcribe.Result{Language: "en", LanguageProb: 0.99, Segments: []transcribe.Segment{{
		Start: 0, End: secs, Text: "the quick brown fox", AvgLogProb: -0.2, NoSpeechProb: 0.01,
	}}}, nil
}
func (e *instantEngine) Name() string  { return "instant" }
func (e *instantEngine) Model() string { return "none" }

func (e *instantEngine) reset() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.audios = nil
}

func (e *instantEngine) taken() []transcribe.Audio {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]transcribe.Audio(nil), e.audios...)
}

// chunkRecords makes the live audio.chunk records of one track from its
// 20 ms Opus packets, per packets to a chunk, sealed under keys; the last
// one is final.
func chunkRecords(tb testing.TB, keys event.Keys, track, speaker string, packets [][]byte, per int) []bus.Message {
	tb.Helper()
	origin := time.Now().UTC()
	var out []bus.Message
	for seq, i := 0, 0; i < len(packets); seq, i = seq+1, i+per {
		pk := packets[i:min(i+per, len(packets))]
		tl := event.Timeline{Track: track, FirstSample: int64(i) * 960, LastSample: int64(i+len(pk))*960 - 1, Origin: origin, Anchor: event.AnchorRTCP}
		data := event.AudioChunkData{Packets: pk}
		for k := range pk {
			data.Offsets = append(data.Offsets, int64(k)*960)
		}
		e, err := event.New(event.TypeAudioChunk, event.Producer{Name: "bench"}, nil, "r1_bench", "ses_bench", speaker, &tl,
			event.AudioChunk{Codec: "opus", Channels: 1, Seq: int64(seq), Frames: len(pk), Final: i+per >= len(packets)})
		if err != nil {
			tb.Fatal(err)
		}
		e.Hops.Recorded = event.Stamp(time.Now())
		if err := e.Seal(context.Background(), keys, data); err != nil {
			tb.Fatal(err)
		}
		v, err := e.Marshal()
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, bus.Message{Topic: event.TopicAudio, Key: []byte(track), Value: v})
	}
	return out
}
