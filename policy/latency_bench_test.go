package policy_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/bustest"
	"github.com/earshot/earshot/internal/config"
	"github.com/earshot/earshot/internal/e2e"
	"github.com/earshot/earshot/internal/speech"
	"github.com/earshot/earshot/internal/testbed"
	"github.com/earshot/earshot/policy"
	"github.com/earshot/earshot/policy/notify"
	"github.com/earshot/earshot/transcribe"
	"github.com/earshot/earshot/transcribe/httpengine"
)

// latencyRoom is the VideoRoom of the alert latency benchmark (rooms
// 1600-1649 belong to the policy package).
const latencyRoom = 1601

// threats are what the speaker says, in turn; the default policy alerts on
// each of them, and the Whisper fixture (tiny.en) hears each of them right
// when espeak-ng says them ("hurt" comes out as "third", "burn" as
// "learn", so those are not used).
var threats = []string{
	"I will kill you.",
	"I know where you live.",
	"I'm going to kill you.",
	"I will shoot you.",
	"I will stab you.",
	"I am going to kill you.",
}

// BenchmarkAlertLatency runs the live pipeline on the test bed: a speaker
// bot says violating utterances into a Janus room, the ingest stage records
// them into Kafka, a transcription worker (with the settled pass, as
// shipped) sends them to the Whisper fixture, the policy stage raises
// alerts, and the notifier posts them to a webhook receiver in the test.
// It reports:
//
//   - alert_latency_p50_s, alert_latency_p95_s: from the end of each
//     utterance in the bot's publish log (when its last sample was sent)
//     to the alert event (its hops.alerted), for alerts the live revision
//     raised, over the utterances alerted (alerted_utterances);
//   - speech_to_webhook_live_p50_s, speech_to_webhook_live_p95_s: from
//     the end of each utterance to the webhook receiver getting the POST
//     of the live revision's alert, over every utterance: one without
//     (no alert, or one only a later revision raised) is a miss and counts
//     as the time from its end to the end of the run, a lower bound;
//   - alert_revision_delay_p50_s: for alerts first raised by a later
//     revision (settled, final), their delay after the speech (the
//     alert's delay_s); reported when there are any.
//
// It takes real time (about 3 s per utterance, then up to a minute for
// the settled revision), so it runs once whatever b.N is; run it under the
// real-time lock:
//
//	flock /tmp/earshot-realtime.lock go test -run '^$' -bench AlertLatency ./policy/
//
// EARSHOT_ALERT_BENCH_UTTERANCES changes the number of utterances (default
// 110, of which at least 100 must be alerted).
func BenchmarkAlertLatency(b *testing.B) {
	n := 110
	if s := os.Getenv("EARSHOT_ALERT_BENCH_UTTERANCES"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			b.Fatalf("EARSHOT_ALERT_BENCH_UTTERANCES=%q is not a positive number", s)
		}
		n = v
	}
	need := min(100, n)
	bustest.Kafka(b)
	testbed.Require(b, testbed.Janus)
	testbed.WhisperURL(b)
	tools := e2e.SpeechTools(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()

	var items []speech.Item
	for i := range n {
		items = append(items, speech.Item{Kind: speech.KindSpeech, Text: threats[i%len(threats)]}, speech.Item{Kind: speech.KindPause, DurMS: 1500})
	}
	clip, err := tools.Synthesize(ctx, items, filepath.Join(b.TempDir(), "threats.ogg"))
	if err != nil {
		b.Fatal(err)
	}

	lines, es, hook := runAlertPipeline(b, ctx, latencyRoom, "policy-helper-latency", clip, n, time.Duration(n)*10*time.Second+time.Minute)
	b.StopTimer()
	runEnd := time.Now()

	// Each utterance's first alert: the alert whose matched words start
	// within the utterance (±0.5 s) on the pacing schedule.
	first := make([]time.Duration, n)
	hook1 := make([]time.Duration, n) // to the webhook, live alerts
	hops := make([]event.Hops, n)
	for i := range first {
		first[i], hook1[i] = -1, -1
	}
	unmatched := 0
	var revDelay []float64
	for _, e := range es {
		if e.Type != event.TypeAlert || e.Timeline == nil || e.Hops.Alerted == nil {
			continue
		}
		var pl policy.AlertPayload
		if err := e.DecodePayload(&pl); err != nil {
			b.Fatal(err)
		}
		if pl.Pass != "" && pl.Pass != policy.PassLive {
			revDelay = append(revDelay, pl.DelayS)
			continue
		}
		at := e.Timeline.Start()
		i := slices.IndexFunc(lines, func(l e2e.Line) bool {
			return !at.Before(l.SchedStart.Add(-500*time.Millisecond)) && !at.After(l.SchedEnd.Add(500*time.Millisecond))
		})
		if i < 0 {
			unmatched++
			continue
		}
		lat := e.Hops.Alerted.Sub(lines[i].End)
		if first[i] < 0 || lat < first[i] {
			first[i] = lat
			hops[i] = e.Hops
		}
		if at, ok := hook.at(e.EventID); ok {
			if d := at.Sub(lines[i].End); hook1[i] < 0 || d < hook1[i] {
				hook1[i] = d
			}
		}
	}
	var lat []float64
	for _, d := range first {
		if d >= 0 {
			lat = append(lat, d.Seconds())
		}
	}
	slices.Sort(lat)
	b.Logf("%d utterances, %d alerted, %d alerts outside any utterance, %d alerts in all", n, len(lat), unmatched, len(es))
	// Where the time goes, per utterance: end of speech → last packet at
	// the bot (recorded) → live chunk produced → engine returned → alert.
	var slow []string
	for i, d := range first {
		h := hops[i]
		if d < 0 || h.Recorded == nil || h.Chunked == nil || h.Transcribed == nil {
			continue
		}
		if d > 3*time.Second {
			slow = append(slow, fmt.Sprintf("#%d %.1fs (recorded +%.2f, chunked +%.2f, transcribed +%.2f, alerted +%.2f)", i, d.Seconds(),
				h.Recorded.Sub(lines[i].End).Seconds(), h.Chunked.Sub(*h.Recorded).Seconds(), h.Transcribed.Sub(*h.Chunked).Seconds(), h.Alerted.Sub(*h.Transcribed).Seconds()))
		}
	}
	if len(slow) > 0 {
		b.Logf("utterances alerted after more than 3 s:\n%s", strings.Join(slow, "\n"))
	}
	missed := map[string]int{}
	for i, d := range first {
		if d < 0 {
			missed[lines[i].Text]++
		}
	}
	if len(missed) > 0 {
		b.Logf("utterances without an alert, by text: %v", missed)
	}
	if len(lat) < need {
		b.Fatalf("only %d of %d utterances raised an alert; need %d for the figure", len(lat), n, need)
	}
	q := func(p float64) float64 { return lat[max(0, int(math.Ceil(p*float64(len(lat))))-1)] } // nearest rank
	b.ReportMetric(q(0.50), "alert_latency_p50_s")
	b.ReportMetric(q(0.95), "alert_latency_p95_s")
	b.ReportMetric(float64(len(lat)), "alerted_utterances")
	var toHook []float64
	hookMissed := 0
	for i, d := range hook1 {
		if d < 0 {
			hookMissed++
			d = runEnd.Sub(lines[i].End)
		}
		toHook = append(toHook, d.Seconds())
	}
	slices.Sort(toHook)
	qh := func(p float64) float64 { return toHook[max(0, int(math.Ceil(p*float64(len(toHook))))-1)] }
	b.Logf("speech to webhook, live alerts: %d of %d utterances missed (counted as the time to the end of the run); %d POSTs received",
		hookMissed, n, hook.count())
	b.ReportMetric(qh(0.50), "speech_to_webhook_live_p50_s")
	b.ReportMetric(qh(0.95), "speech_to_webhook_live_p95_s")
	if len(revDelay) > 0 {
		slices.Sort(revDelay)
		b.Logf("%d alerts first raised by a later revision, delays %v s", len(revDelay), revDelay)
		b.ReportMetric(revDelay[max(0, int(math.Ceil(0.5*float64(len(revDelay))))-1)], "alert_revision_delay_p50_s")
	} else {
		b.Logf("no alert was first raised by a later revision: alert_revision_delay_p50_s not reported")
	}
	fmt.Fprintf(os.Stderr, "alert_latency_p50_s=%.3f alert_latency_p95_s=%.3f utterances=%d alerted=%d\n", q(0.50), q(0.95), n, len(lat))
}

// shippedSettle is the settled pass as the earshot binary runs it.
func shippedSettle(tb testing.TB) transcribe.SettleConfig {
	tb.Helper()
	s := config.Default().Transcribe.Settle
	if !s.Enabled {
		tb.Fatal("transcribe.settle is off by default")
	}
	return transcribe.SettleConfig{Batch: s.Batch, Quiet: s.Quiet, Queue: s.Queue}
}

// hookReceiver is a webhook endpoint that notes when each alert's first
// POST arrived (by webhook-id, the alert's event ID).
type hookReceiver struct {
	mu    sync.Mutex
	first map[string]time.Time
	posts int
}

func newHookReceiver() *hookReceiver { return &hookReceiver{first: map[string]time.Time{}} }

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	id := r.Header.Get("webhook-id")
	h.mu.Lock()
	h.posts++
	if _, ok := h.first[id]; !ok && id != "" {
		h.first[id] = now
	}
	h.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (h *hookReceiver) at(id string) (time.Time, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t, ok := h.first[id]
	return t, ok
}

func (h *hookReceiver) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.posts
}

// runAlertPipeline runs the live pipeline on the test bed for one speaker
// bot saying clip (n speech lines) into Janus room: ingest, a
// transcription worker on the Whisper fixture with the settled pass as
// shipped, the policy stage (rate limit off) and the notifier posting to a
// webhook receiver here. It returns the bot's publish log lines, the
// events on the alerts topic once they stop coming (a minute without a new
// one: the settled revision comes about half a minute late) and the
// receiver. name prefixes the topics and consumer groups.
func runAlertPipeline(b *testing.B, ctx context.Context, room uint64, name string, clip speech.Clip, n int, talkFor time.Duration) (lines []e2e.Line, es []*event.Envelope, hook *hookReceiver) {
	b.Helper()
	brokers := bustest.Kafka(b)
	testbed.Require(b, testbed.Janus)
	whisperURL := testbed.WhisperURL(b)
	// The stages stop (their contexts end) before they are closed, when
	// this returns.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	logs := &testbed.SyncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	b.Cleanup(func() {
		if b.Failed() {
			b.Logf("pipeline log (last 40 lines):\n%s", e2e.Tail(logs.String(), 40))
		}
	})
	topics := e2e.NewTopics(b, brokers, name, 1)
	keys := e2e.DerivedKeys{Secret: []byte(e2e.RandHex(16))}
	ep := testbed.JanusServer(b)
	e2e.CreateRoom(b, ep, room)
	producer, err := bus.NewProducer(bus.ProducerConfig{Cluster: brokers, Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	defer producer.Close()
	sender := topics.Sender(producer)
	run := func(name string, r interface{ Run(context.Context) error }) {
		go func() {
			if err := r.Run(ctx); err != nil && ctx.Err() == nil {
				b.Errorf("%s: %v", name, err)
			}
		}()
	}

	// Transcription worker on the Whisper fixture, the engine as the stage
	// ships it (transcribe.cover_tail on).
	plain, err := httpengine.New(httpengine.Config{BaseURL: whisperURL, Model: "tiny.en", Timeout: 2 * time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	eng := transcribe.CoverTail(plain, transcribe.TailConfig{})
	tcons, err := bus.NewConsumer(bus.ConsumerConfig{Cluster: brokers, GroupID: name + "-tr-" + e2e.RandHex(4),
		Topics: []string{topics.Of(event.TopicAudio)}, Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	w, err := transcribe.NewWorker(transcribe.WorkerConfig{
		Consumer: tcons, Sender: producer, Engine: eng, Language: "en",
		Producer: event.Producer{Name: "earshot-transcribe", Version: "bench"}, Keys: keys, Logger: log, Metrics: prometheus.NewRegistry(),
		Topics: transcribe.Topics{Transcripts: topics.Of(event.TopicTranscripts), DeadLetter: topics.Of(event.TopicDeadLetter), Ops: topics.Of(event.TopicOps)},
		Settle: shippedSettle(b),
	})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	run("transcribe", w)

	// Policy stage, rate limit off: every utterance should alert.
	p, err := policy.Default()
	if err != nil {
		b.Fatal(err)
	}
	pcons, err := bus.NewConsumer(bus.ConsumerConfig{Cluster: brokers, GroupID: name + "-pol-" + e2e.RandHex(4),
		Topics: []string{topics.Of(event.TopicTranscripts)}, Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	st, err := policy.NewStage(policy.StageConfig{
		Consumer: pcons, Sender: sender, Policy: policy.Fixed{P: p}, Producer: event.Producer{Name: "earshot-policy", Version: "bench"},
		Keys: keys, Logger: log, RateLimit: policy.RateLimit{Every: -1},
		Topics:  policy.Topics{Transcripts: topics.Of(event.TopicTranscripts), Alerts: topics.Of(event.TopicAlerts), DeadLetter: topics.Of(event.TopicDeadLetter)},
		Rebuild: policy.RebuildConfig{Tail: &policy.KafkaTail{Cluster: brokers}},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	run("policy", st)

	// The notifier, posting every alert to a webhook receiver here.
	hook = newHookReceiver()
	srv := httptest.NewServer(hook)
	defer srv.Close()
	secret, err := notify.ParseSecret("whsec_" + base64.StdEncoding.EncodeToString([]byte(e2e.RandHex(16))))
	if err != nil {
		b.Fatal(err)
	}
	wh, err := notify.NewWebhook(notify.WebhookConfig{Name: "bench", URL: srv.URL, Secret: secret})
	if err != nil {
		b.Fatal(err)
	}
	ncons, err := bus.NewConsumer(bus.ConsumerConfig{Cluster: brokers, GroupID: name + "-notify-" + e2e.RandHex(4),
		Topics: []string{topics.Of(event.TopicAlerts)}, Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	ns, err := notify.NewStage(notify.StageConfig{Consumer: ncons, Sender: sender, Routes: []notify.Route{{Notifier: wh}}, Keys: keys,
		DeadLetterTopic: topics.Of(event.TopicDeadLetter), Logger: log, Metrics: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	defer ns.Close()
	run("notify", ns)

	// Both consumers hold their partitions before anyone speaks: a group's
	// first join takes seconds, which is start-up, not alert latency.
	for name, c := range map[string]*bus.Consumer{"transcribe": tcons, "policy": pcons, "notify": ncons} {
		e2e.WaitFor(b, "the "+name+" consumer joins its group", 2*time.Minute, func() bool {
			lctx, lcancel := context.WithTimeout(ctx, 5*time.Second)
			defer lcancel()
			l, err := c.Lag(lctx)
			return err == nil && len(l) > 0
		})
	}
	ing := e2e.StartIngest(b, e2e.IngestConfig{Room: room, Cluster: brokers, Topics: topics, Keys: keys})
	ing.WaitJoined()
	sp := &e2e.Speaker{Name: "mallory", Feed: room, Clip: clip}
	b.ResetTimer()
	e2e.Talk(b, ep, room, []*e2e.Speaker{sp}, talkFor)
	lines = sp.Lines(b)
	if len(lines) != n {
		b.Fatalf("publish log has %d speech lines, want %d", len(lines), n)
	}

	// Wait until the alerts stop coming (the tail of the pipeline drains,
	// the settled revision included: it comes about half a minute late).
	alerted := func() ([]*event.Envelope, []e2e.Record) { return e2e.Events(b, brokers, topics.Of(event.TopicAlerts)) }
	last, stable := -1, time.Now()
	for time.Since(stable) < 60*time.Second {
		es, _ := alerted()
		if len(es) != last {
			last, stable = len(es), time.Now()
		}
		time.Sleep(time.Second)
	}
	es, _ = alerted()
	cancel()
	return lines, es, hook
}
