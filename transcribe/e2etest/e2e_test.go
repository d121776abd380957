package e2etest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/bustest"
	"github.com/earshot/earshot/internal/config"
	"github.com/earshot/earshot/internal/e2e"
	"github.com/earshot/earshot/internal/speakerbot"
	"github.com/earshot/earshot/internal/speech"
	"github.com/earshot/earshot/internal/testbed"
	"github.com/earshot/earshot/internal/wer"
	"github.com/earshot/earshot/transcribe"
	"github.com/earshot/earshot/transcribe/httpengine"
)

// The end-to-end tests run the live pipeline on the test bed: speaker bots
// in a real Janus VideoRoom (rooms 1400-1449 belong to this package), the
// ingest stage, Kafka (the run's own topics), transcription workers with
// the HTTP engine on the Whisper fixture. The speaker bots' publish logs
// are the ground truth for text and time.

// conversation is the 60 s scripted conversation: two speakers taking
// turns.
var conversation = []speech.Line{
	{Speaker: "alice", Text: "Good morning everyone and welcome to the weekly community call."},
	{Speaker: "bob", Text: "Thanks for having me, I have a few updates about the project."},
	{Speaker: "alice", Text: "Great, please start with the release schedule."},
	{Speaker: "bob", Text: "The next release is planned for the end of the month."},
	{Speaker: "alice", Text: "Is the documentation ready for the new features?"},
	{Speaker: "bob", Text: "Most of it is written, but the examples still need work."},
	{Speaker: "alice", Text: "Could you share the draft with the team tomorrow?"},
	{Speaker: "bob", Text: "Yes, I will send it in the morning."},
	{Speaker: "alice", Text: "We also need volunteers to test the mobile version."},
	{Speaker: "bob", Text: "I can ask the people who joined last week."},
	{Speaker: "alice", Text: "Thank you, that would help a lot."},
	{Speaker: "bob", Text: "Let us meet again next Tuesday at the same time."},
}

// feeds are the speakers' VideoRoom feed IDs.
var feeds = map[string]uint64{"alice": 41, "bob": 42, "carol": 43}

// e2eRun is one test's pipeline around the test bed.
type e2eRun struct {
	t       testing.TB
	room    uint64
	brokers bus.Cluster
	topics  e2e.Topics
	keys    e2e.DerivedKeys
	eng     transcribe.Engine
	group   string
	logs    *testbed.SyncBuffer
}

func newRun(t testing.TB, room uint64) *e2eRun {
	t.Helper()
	if !testbed.Enabled() {
		// Real-time: never part of a plain `go test ./...`, which would
		// run it outside the shared real-time lock.
		t.Skip("real-time end-to-end test: run with EARSHOT_TESTBED=1 under flock /tmp/earshot-realtime.lock")
	}
	r := &e2eRun{t: t, room: room, brokers: bustest.Kafka(t), keys: e2e.DerivedKeys{Secret: []byte(e2e.RandHex(16))}, eng: whisper(t),
		group: "earshot-transcribe-e2e-" + e2e.RandHex(4), logs: &testbed.SyncBuffer{}}
	testbed.Require(t, testbed.Janus)
	r.topics = e2e.NewTopics(t, r.brokers, "earshot-tre2e", 3)
	e2e.CreateRoom(t, testbed.JanusServer(t), room)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("worker log (last 40 lines):\n%s", e2e.Tail(r.logs.String(), 40))
		}
	})
	return r
}

// worker is one running transcription worker.
type worker struct {
	w      *transcribe.Worker
	cons   *bus.Consumer
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

// workerOpts adjust a worker.
type workerOpts struct {
	name    string
	seg     transcribe.SegmenterConfig
	backlog transcribe.Backlog
	lang    func(string) string
	settle  transcribe.SettleConfig
}

// workerSpec is everything a worker process needs to join a run: the
// kill test passes it to a child process as JSON.
type workerSpec struct {
	// Cluster is not sent to a worker process (its TLS settings do not
	// serialise): the process reads the same test bed's broker itself.
	Cluster bus.Cluster `json:"-"`
	Topics  e2e.Topics
	Group   string
	Secret  []byte
	Name    string
}

func (r *e2eRun) spec(name string) workerSpec {
	return workerSpec{Cluster: r.brokers, Topics: r.topics, Group: r.group, Secret: r.keys.Secret, Name: name}
}

// productSettle is the settled pass as the earshot binary configures it
// by default.
func productSettle(t testing.TB) transcribe.SettleConfig {
	t.Helper()
	s := config.Default().Transcribe.Settle
	if !s.Enabled {
		t.Fatal("transcribe.settle is off by default")
	}
	return transcribe.SettleConfig{Batch: s.Batch, Quiet: s.Quiet, Queue: s.Queue}
}

// buildWorker builds (does not start) a worker from spec.
func buildWorker(t testing.TB, sp workerSpec, eng transcribe.Engine, o workerOpts, logTo io.Writer) *worker {
	t.Helper()
	log := slog.New(slog.NewJSONHandler(logTo, &slog.HandlerOptions{Level: slog.LevelDebug})).With("worker", sp.Name)
	cons, err := bus.NewConsumer(bus.ConsumerConfig{Cluster: sp.Cluster, GroupID: sp.Group, Topics: []string{sp.Topics.Of(event.TopicAudio)},
		StartOffset: bus.FirstOffset, SessionTimeout: 10 * time.Second, HeartbeatInterval: time.Second,
		RebalanceTimeout: 20 * time.Second, DrainTimeout: 5 * time.Second, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	producer, err := bus.NewProducer(bus.ProducerConfig{Cluster: sp.Cluster, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = producer.Close() })
	wk := &worker{cons: cons, reg: prometheus.NewRegistry(), done: make(chan error, 1)}
	wk.w, err = transcribe.NewWorker(transcribe.WorkerConfig{
		// The engine as the stage ships it (transcribe.cover_tail on); the
		// whole-file reference (fileWER) uses the plain engine.
		Consumer: cons, Sender: producer, Engine: transcribe.CoverTail(eng, transcribe.TailConfig{}), Language: "en",
		Producer: event.Producer{Name: "earshot-transcribe", Version: "e2e", Instance: sp.Name},
		Keys:     e2e.DerivedKeys{Secret: sp.Secret}, Logger: log, Segmenter: o.seg, Metrics: wk.reg, LogText: true,
		Topics: transcribe.Topics{Transcripts: sp.Topics.Of(event.TopicTranscripts), DeadLetter: sp.Topics.Of(event.TopicDeadLetter),
			Ops: sp.Topics.Of(event.TopicOps)},
		Backlog: o.backlog, RoomLanguage: o.lang, Settle: o.settle,
	})
	if err != nil {
		t.Fatal(err)
	}
	return wk
}

// run starts the worker; it runs until stop.
func (w *worker) run(t testing.TB) {
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	go func() { w.done <- w.w.Run(ctx) }()
	t.Cleanup(w.stop)
}

// waitAssigned waits until the worker has partitions.
func (w *worker) waitAssigned(t testing.TB, name string) {
	t.Helper()
	e2e.WaitFor(t, "worker "+name+" joins the group", time.Minute, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		l, err := w.cons.Lag(ctx)
		return err == nil && len(l) > 0
	})
}

// startWorker starts a worker in the run's consumer group and waits until
// it has partitions.
func (r *e2eRun) startWorker(o workerOpts) *worker {
	r.t.Helper()
	w := buildWorker(r.t, r.spec(o.name), r.eng, o, r.logs)
	w.run(r.t)
	w.waitAssigned(r.t, o.name)
	return w
}

// stop ends the worker gracefully; idempotent.
func (w *worker) stop() {
	w.cancel()
	select {
	case <-w.done:
	case <-time.After(time.Minute):
	}
	_ = w.w.Close()
}

func (w *worker) metric(t testing.TB, name string) float64 { return e2e.Metric(t, w.reg, name) }

// waitIdle waits until the worker holds no track and its lag is zero: every
// chunk produced so far was transcribed and committed.
func (r *e2eRun) waitIdle(ws ...*worker) {
	r.t.Helper()
	e2e.WaitFor(r.t, "the workers finish every track", 3*time.Minute, func() bool {
		var lag int64
		for _, w := range ws {
			if w.metric(r.t, "earshot_transcribe_tracks") > 0 || w.metric(r.t, "earshot_transcribe_settle_pending") > 0 {
				return false
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			l, err := w.cons.Lag(ctx)
			cancel()
			if err != nil {
				return false
			}
			for _, p := range l {
				lag += p.Lag
			}
		}
		return lag == 0
	})
}

// transcript is one transcript event, opened.
type transcript struct {
	e        *event.Envelope
	produced time.Time // the Kafka record's timestamp
	text     string
	start    time.Time
	end      time.Time
}

// transcripts reads the run's transcript events, deduplicated by event ID,
// in time order; dups counts the duplicates.
func (r *e2eRun) transcripts() (out []transcript, dups int) {
	r.t.Helper()
	evs, recs := e2e.Events(r.t, r.brokers, r.topics.Of(event.TopicTranscripts))
	seen := map[string]bool{}
	for i, e := range evs {
		if seen[e.EventID] {
			dups++
			continue
		}
		seen[e.EventID] = true
		var d event.TranscriptSegmentData
		if err := e.Open(context.Background(), r.keys, &d); err != nil {
			r.t.Fatalf("open transcript %s: %v", e.EventID, err)
		}
		out = append(out, transcript{e: e, produced: recs[i].Time, text: d.Text, start: e.Timeline.Start(), end: e.Timeline.End()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].start.Before(out[j].start) })
	return out, dups
}

// lineResult is what the pipeline made of one spoken line.
type lineResult struct {
	line     e2e.Line
	segs     []transcript
	text     string
	latency  time.Duration // the line's end in the publish log -> its last transcript produced
	startOff time.Duration // first segment's start - the line's start
	endOff   time.Duration // last segment's end - the line's end
}

const timeTolerance = 500 * time.Millisecond

// match assigns each transcript to the line of the same speaker it
// overlaps (with the tolerance); strays are transcripts of no line.
func match(lines []e2e.Line, speakerOf map[string]string, trs []transcript) (res []lineResult, strays []transcript) {
	res = make([]lineResult, len(lines))
	for i, l := range lines {
		res[i].line = l
	}
	for _, tr := range trs {
		best := -1
		for i, l := range lines {
			if speakerOf[l.Speaker] != tr.e.Speaker {
				continue
			}
			if tr.start.Before(l.End.Add(timeTolerance)) && tr.end.After(l.Start.Add(-timeTolerance)) {
				best = i
				break
			}
		}
		if best < 0 {
			strays = append(strays, tr)
			continue
		}
		res[best].segs = append(res[best].segs, tr)
	}
	for i := range res {
		r := &res[i]
		if len(r.segs) == 0 {
			continue
		}
		var texts []string
		var last time.Time
		for _, s := range r.segs {
			texts = append(texts, s.text)
			if s.produced.After(last) {
				last = s.produced
			}
		}
		r.text = strings.Join(texts, " ")
		r.latency = last.Sub(r.line.End)
		r.startOff = r.segs[0].start.Sub(r.line.Start)
		r.endOff = r.segs[len(r.segs)-1].end.Sub(r.line.End)
	}
	return res, strays
}

// conversationClips renders the conversation, one clip per speaker.
func conversationClips(t testing.TB, lines []speech.Line, gapMS int) map[string]speech.Clip {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	clips, err := e2e.SpeechTools(t).Conversation(ctx, lines, gapMS, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return clips
}

// fileWER sends the conversation as one file straight to the engine (no
// live pipeline: the speakers' clips, which share one timeline, mixed into
// one track as the room heard it, in one request) and returns its WER
// against the script in order, and the text.
func fileWER(t testing.TB, eng transcribe.Engine, clips map[string]speech.Clip, lines []speech.Line) (float64, string) {
	t.Helper()
	mix := mixClips(t, clips)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	res, err := eng.Transcribe(ctx, transcribe.Audio{Samples: mix, Language: "en"})
	cancel()
	if err != nil {
		t.Fatalf("transcribe the file: %v", err)
	}
	var texts []string
	for _, s := range res.Segments {
		texts = append(texts, strings.TrimSpace(s.Text))
	}
	hyp := strings.Join(texts, " ")
	return wer.WER(scriptText(lines), hyp), hyp
}

// fileSpeakerWER sends each speaker's track (the speaker's clip, on the
// conversation's timeline) straight to the engine as one file and scores
// the texts as the pipeline's are scored: speakerWER, per speaker in
// order.
func fileSpeakerWER(t testing.TB, eng transcribe.Engine, clips map[string]speech.Clip, lines []speech.Line) float64 {
	t.Helper()
	hyp := map[string]string{}
	for sp, c := range clips {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		res, err := eng.Transcribe(ctx, transcribe.Audio{Samples: decodeClipPCM(t, c.Path), Language: "en"})
		cancel()
		if err != nil {
			t.Fatalf("transcribe %s's track as a file: %v", sp, err)
		}
		var texts []string
		for _, s := range res.Segments {
			texts = append(texts, strings.TrimSpace(s.Text))
		}
		hyp[sp] = strings.Join(texts, " ")
	}
	return speakerWER(lines, hyp)
}

// speakerWER is the WER of the script against what was recognised, speaker
// by speaker (each speaker's lines in order against that speaker's text in
// time order), errors summed over speakers: how the lines of two speakers
// interleave in time does not count, only what each said.
func speakerWER(lines []speech.Line, hyp map[string]string) float64 {
	ref := map[string][]string{}
	for _, l := range lines {
		ref[l.Speaker] = append(ref[l.Speaker], l.Text)
	}
	var errs, words int
	for sp, r := range ref {
		m := wer.Measure(strings.Join(r, " "), hyp[sp])
		errs += m.Errors()
		words += m.RefWords
	}
	if words == 0 {
		return 0
	}
	return float64(errs) / float64(words)
}

func scriptText(lines []speech.Line) string {
	var s []string
	for _, l := range lines {
		s = append(s, l.Text)
	}
	return strings.Join(s, " ")
}

// mixClips decodes the speakers' clips, which share one timeline, and
// mixes them into one track as the room heard it.
func mixClips(t testing.TB, clips map[string]speech.Clip) []float32 {
	t.Helper()
	var mix []float32
	for _, c := range clips {
		p := decodeClipPCM(t, c.Path)
		if len(p) > len(mix) {
			mix = append(mix, make([]float32, len(p)-len(mix))...)
		}
		for i, v := range p {
			mix[i] += v
		}
	}
	return mix
}

// decodeClipPCM decodes an Ogg/Opus clip to 16 kHz audio.
func decodeClipPCM(t testing.TB, path string) []float32 {
	t.Helper()
	packets := oggPackets(t, path)
	dec, err := transcribe.NewTrackDecoder(transcribe.DecoderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	var data event.AudioChunkData
	for i, p := range packets {
		data.Packets = append(data.Packets, p)
		data.Offsets = append(data.Offsets, int64(i)*960)
	}
	tl := event.Timeline{Track: "trk_file", FirstSample: 0, LastSample: int64(len(packets))*960 - 1, Origin: origin, Anchor: event.AnchorArrival}
	pcm, err := dec.Decode(tl, data)
	if err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	return pcm.Samples
}

// conversationRun plays lines through the live pipeline and returns the
// per-line results; workers and chunk length as given.
type convResult struct {
	lines   []lineResult
	strays  []transcript
	all     []transcript // the live revision
	settled []transcript // the settled revision
	shown   []transcript // what a reader shows when the room ends
	werLive float64
	// The settled revision (workerOpts.settle): its lines and WER.
	settledLines []lineResult
	werSettled   float64
	settledHyp   string
	// What a reader shows when the room ends: settled text where the
	// settled pass reached, live text elsewhere (see shown).
	werShown float64
	shownHyp string
	hyp      string
	workers  []*worker
	ing      *e2e.Ingest
}

func (r *e2eRun) converse(lines []speech.Line, clips map[string]speech.Clip, chunk time.Duration, o workerOpts) convResult {
	t := r.t
	t.Helper()
	w := r.startWorker(o)
	if chunk == 0 {
		// As the earshot binary records (the record package's own default
		// is 1 s; the binary trades more records for latency, since a
		// worker cannot cut an utterance before the chunk holding its
		// pause arrives).
		chunk = config.Default().Ingest.ChunkDuration
	}
	ing := e2e.StartIngest(t, e2e.IngestConfig{Room: r.room, Cluster: r.brokers, Topics: r.topics, Keys: r.keys, ChunkDuration: chunk})
	ing.WaitJoined()
	var speakers []*e2e.Speaker
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range clips {
			if !yield(n) {
				return
			}
		}
	})
	for _, n := range names {
		speakers = append(speakers, &e2e.Speaker{Name: n, Feed: feeds[n], Clip: clips[n]})
	}
	var longest time.Duration
	for _, c := range clips {
		longest = max(longest, time.Duration(c.Samples)*time.Second/speech.SampleRate)
	}
	e2e.Talk(t, ing.Janus, r.room, speakers, longest+2*time.Minute)
	ing.WaitTracksEnded()
	r.waitIdle(w)
	speakerOf := map[string]string{}
	var logLines []e2e.Line
	for _, s := range speakers {
		speakerOf[s.Name] = ing.Speaker(s.Feed)
		logLines = append(logLines, s.Lines(t)...)
	}
	sort.Slice(logLines, func(i, j int) bool { return logLines[i].Start.Before(logLines[j].Start) })
	all, dups := r.transcripts()
	if dups > 0 {
		t.Logf("%d duplicate transcript records (at-least-once delivery) dropped by event ID", dups)
	}
	var trs, settled []transcript
	for _, tr := range all {
		switch {
		case tr.e.Processing.Options["pass"] == event.PassSettled:
			settled = append(settled, tr)
		case !tr.e.Processing.IsSecondPass():
			trs = append(trs, tr)
		}
	}
	res, strays := match(logLines, speakerOf, trs)
	settledRes, _ := match(logLines, speakerOf, settled)
	werLive, hyp := revisionWER(lines, speakerOf, trs)
	werSettled, settledHyp := revisionWER(lines, speakerOf, settled)
	shownTrs := shown(append(slices.Clone(trs), settled...))
	werShown, shownHyp := revisionWER(lines, speakerOf, shownTrs)
	return convResult{lines: res, strays: strays, all: trs, settled: settled, shown: shownTrs, werLive: werLive, hyp: hyp, settledLines: settledRes, werSettled: werSettled, settledHyp: settledHyp,
		werShown: werShown, shownHyp: shownHyp, workers: []*worker{w}, ing: ing}
}

// shown is what a reader of the transcripts topic shows once the room has
// ended (before the final pass): one text per stretch of speech, as
// event.PreferredTranscripts picks it, in time order.
func shown(trs []transcript) []transcript {
	byEnv := map[*event.Envelope]transcript{}
	envs := make([]*event.Envelope, 0, len(trs))
	for _, tr := range trs {
		byEnv[tr.e] = tr
		envs = append(envs, tr.e)
	}
	var out []transcript
	for _, e := range event.PreferredTranscripts(envs) {
		out = append(out, byEnv[e])
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].start.Before(out[j].start) })
	return out
}

// revisionWER is the speaker-wise WER of one revision's transcripts (in
// time order) against the script, and all their text.
func revisionWER(lines []speech.Line, speakerOf map[string]string, trs []transcript) (float64, string) {
	nameOf := map[string]string{}
	for n, p := range speakerOf {
		nameOf[p] = n
	}
	bySpeaker := map[string][]string{}
	var texts []string
	for _, tr := range trs {
		texts = append(texts, tr.text)
		n := nameOf[tr.e.Speaker]
		bySpeaker[n] = append(bySpeaker[n], tr.text)
	}
	hyp := map[string]string{}
	for n, ts := range bySpeaker {
		hyp[n] = strings.Join(ts, " ")
	}
	return speakerWER(lines, hyp), strings.Join(texts, " ")
}

// TestE2EConversation: a 60 s scripted conversation between two speaker
// bots through Janus, ingest, Kafka and a worker with the settled pass as
// the binary runs it. What the pipeline owns is checked exactly: every line
// of the publish log has live and settled transcripts, every transcript
// lies within 0.5 s of its line, no audio is transcribed twice within a
// revision, and the live and settled revisions are, place for place and
// word for word, what the same engine hears offline in the recorded audio
// cut the same way. The words themselves are the model's: they are bounded
// only in aggregate (see the WER bounds below), and the gap to the whole
// file is the benchmark's figure (wer_shown_delta_vs_file), not a check here.
func TestE2EConversation(t *testing.T) {
	r := newRun(t, 1400)
	clips := conversationClips(t, conversation, 1200)
	settle := productSettle(t)
	res := r.converse(conversation, clips, 0, workerOpts{name: "w1", settle: settle})

	checkLines(t, "live", res.lines)
	for _, s := range res.strays {
		t.Errorf("transcript of no line: %q at %s", s.text, s.start.Format("15:04:05.000"))
	}
	for i, l := range res.settledLines {
		if len(l.segs) == 0 {
			t.Errorf("line %d (%s) has no settled transcript", i, l.line.Speaker)
		}
	}
	transcribedOnce(t, "live", res.all)
	transcribedOnce(t, "settled", res.settled)
	transcribedOnce(t, "shown", res.shown)

	werFile, fileHyp := fileWER(t, r.eng, clips, conversation)
	t.Logf("live WER %.3f: %q", res.werLive, res.hyp)
	t.Logf("settled WER %.3f: %q", res.werSettled, res.settledHyp)
	t.Logf("shown WER %.3f: %q", res.werShown, res.shownHyp)
	t.Logf("file WER %.3f (not checked: how far the pipeline's text is from the whole file's is the model's, measured over 104 lines by the benchmark): %q", werFile, fileHyp)
	// 0.25 of 111 words is 28 words: tiny.en misses 3–10 of them in this
	// conversation on the machines measured so far, so the bound leaves
	// over 18 words for a machine's own mishearings and fails only on
	// garbage (audio decoded wrongly, a speaker's track lost or mixed).
	for _, c := range []struct {
		name string
		wer  float64
	}{{"live", res.werLive}, {"shown", res.werShown}} {
		if c.wer > 0.25 {
			t.Errorf("%s WER %.3f over 0.25", c.name, c.wer)
		}
	}

	// The same engine offline, on the recorded session: utterance by
	// utterance as the live pass cuts them, and in the settled pass's
	// batches (settled batches are the replay's: both fill a batch up to
	// the same length and flush at the track's end, and this conversation
	// has no 15 s pause for the settled pass to flush at).
	st, off := replayed(t, r, res.ing, res.all, 0)
	t.Logf("replay utterance by utterance: %+v", st)
	if st.Tracks != 2 {
		t.Errorf("replay found %d tracks, want 2", st.Tracks)
	}
	n := sameAsOffline(t, "live", res.all, off)
	_, offSettled := replayed(t, r, res.ing, res.all, settle.Batch)
	ns := sameAsOffline(t, "settled", res.settled, offSettled)
	t.Logf("live: %d of %d places as offline; settled: %d of %d", n, len(off), ns, len(offSettled))
	logFigures(t, res)
}

// checkLines checks what the pipeline made of each line of the publish
// log: some transcript, and every transcript within timeTolerance of the
// line's place (the match has already put each transcript on a line of
// its own speaker).
func checkLines(t testing.TB, what string, lines []lineResult) {
	t.Helper()
	for i, l := range lines {
		t.Logf("line %2d %-5s latency %5.2fs start %+.2fs end %+.2fs: %q -> %q", i, l.line.Speaker, l.latency.Seconds(),
			l.startOff.Seconds(), l.endOff.Seconds(), l.line.Text, l.text)
		if len(l.segs) == 0 {
			t.Errorf("%s: line %d (%s) has no transcript", what, i, l.line.Speaker)
			continue
		}
		for _, s := range l.segs {
			if s.start.Before(l.line.Start.Add(-timeTolerance)) || s.end.After(l.line.End.Add(timeTolerance)) {
				t.Errorf("%s: line %d: segment %s–%s strays over 0.5 s from the publish log's %s–%s", what, i,
					s.start.Format("15:04:05.000"), s.end.Format("15:04:05.000"), l.line.Start.Format("15:04:05.000"), l.line.End.Format("15:04:05.000"))
			}
		}
		if l.startOff.Abs() > timeTolerance {
			t.Errorf("%s: line %d: transcript starts %v from the publish log's start", what, i, l.startOff)
		}
	}
}

// logFigures logs latency and overhead figures (tests assert none of them).
func logFigures(t testing.TB, res convResult) {
	var lat []float64
	for _, l := range res.lines {
		if len(l.segs) > 0 {
			lat = append(lat, l.latency.Seconds())
		}
	}
	w := res.workers[0]
	eng := w.metric(t, "earshot_transcribe_engine_seconds")
	audio := w.metric(t, "earshot_transcribe_engine_audio_seconds_total")
	pipe := w.metric(t, "earshot_transcribe_pipeline_seconds_total")
	t.Logf("latency p50 %.2fs p95 %.2fs over %d lines; engine %.1fs for %.1fs audio (RTF %.3f); pipeline %.3fs (%.2f%% of engine)",
		quantile(lat, 0.5), quantile(lat, 0.95), len(lat), eng, audio, eng/audio, pipe, 100*pipe/eng)
	t.Logf("where the latency goes (medians over lines): %s", latencyHops(res.lines))
}

// latencyHops splits each line's latency along the hops its last
// transcript records: the line's end in the publish log to the bot
// receiving the last packet of the chunk that ended the utterance (the
// pause the segmenter waits for, plus the chunk), to the chunk produced,
// to the engine's answer (Kafka, decoding, the engine), to the transcript
// in Kafka.
func latencyHops(lines []lineResult) string {
	var pause, chunk, engine, produce []float64
	for _, l := range lines {
		if len(l.segs) == 0 {
			continue
		}
		last := l.segs[len(l.segs)-1]
		h := last.e.Hops
		if h.Recorded == nil || h.Chunked == nil || h.Transcribed == nil {
			continue
		}
		pause = append(pause, h.Recorded.Sub(l.line.End).Seconds())
		chunk = append(chunk, h.Chunked.Sub(*h.Recorded).Seconds())
		engine = append(engine, h.Transcribed.Sub(*h.Chunked).Seconds())
		produce = append(produce, last.produced.Sub(*h.Transcribed).Seconds())
	}
	return fmt.Sprintf("end→recorded %.2fs, recorded→chunked %.2fs, chunked→transcribed %.2fs, transcribed→in Kafka %.2fs",
		quantile(pause, 0.5), quantile(chunk, 0.5), quantile(engine, 0.5), quantile(produce, 0.5))
}

func quantile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Sorted(slices.Values(v))
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(i, 0)]
}

// origin is the timeline origin of audio decoded from files.
var origin = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// whisper is the HTTP engine on the test bed's Whisper fixture.
func whisper(t testing.TB) transcribe.Engine {
	t.Helper()
	eng, err := httpengine.New(httpengine.Config{BaseURL: testbed.WhisperURL(t), Model: "tiny.en", Timeout: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return eng
}

// oggPackets reads the 20 ms packets of an Ogg/Opus file.
func oggPackets(t testing.TB, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	file, err := speakerbot.ReadOpusFile(f)
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]byte, len(file.Packets))
	for i, p := range file.Packets {
		if p.Samples != 960 {
			t.Fatalf("%s has a %d-sample packet; 20 ms expected", path, p.Samples)
		}
		out[i] = p.Data
	}
	return out
}
