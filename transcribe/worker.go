package transcribe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/storage"
)

// consumer is the part of bus.Consumer the worker uses.
type consumer interface {
	Run(ctx context.Context, h bus.Handler) error
	Close() error
}

var _ consumer = (*bus.Consumer)(nil)

// WorkerConfig configures a transcription worker.
type WorkerConfig struct {
	// Consumer delivers earshot.audio records (a consumer-group member:
	// key = track, so one worker owns a track at a time).
	Consumer consumer
	// Sender writes transcripts and dead letters.
	Sender   bus.Sender
	Engine   Engine
	Language string // "auto" or an ISO 639-1 code
	Producer event.Producer
	// Keys opens audio chunks and seals transcripts (package crypt).
	Keys   event.Keys
	Logger *slog.Logger
	// Segmenter tunes utterance cutting; zero values take the defaults.
	Segmenter SegmenterConfig
	// IdleTrack is how long a track's state is kept without chunks before
	// it is flushed (default 30 s): a track whose final chunk never came.
	IdleTrack time.Duration
	// Metrics, when set, receives the worker's collectors.
	Metrics prometheus.Registerer
	// LogText puts transcript text in the log lines. Speech is personal
	// data: leave it off outside evaluation.
	LogText bool
	// Topics names the topics the worker writes; empty fields take the
	// event package's names.
	Topics Topics
	// RoomLanguage, when set, returns the language of a room (by its
	// pseudonym), or "" for Language. Whisper's detection on a few seconds
	// of audio is unreliable, so a room whose language is known says so.
	RoomLanguage func(room string) string
	// Backlog watches consumer lag and, optionally, sheds load.
	Backlog Backlog
	// Context is the audio context sent before each utterance: the
	// track's earlier speech, whose words are dropped from the transcript
	// (see ContextConfig). Off by default.
	Context ContextConfig
	// PromptPrevious passes the track's previous utterance to the engine
	// as its prompt. Off by default: on the test bed (tiny.en) it did not
	// lower WER and once added a word; measure before turning it on.
	PromptPrevious bool
	// Settle transcribes each track's speech again in batches, while the
	// room is live, as the settled revision (see SettleConfig). Off when
	// Settle.Batch is zero.
	Settle SettleConfig
}

// Topics are the topics a worker writes.
type Topics struct {
	Transcripts string // default event.TopicTranscripts
	DeadLetter  string // default event.TopicDeadLetter
	Ops         string // operational alerts; default event.TopicOps
}

func (t *Topics) setDefaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&t.Transcripts, event.TopicTranscripts)
	def(&t.DeadLetter, event.TopicDeadLetter)
	def(&t.Ops, event.TopicOps)
}

// Worker is a transcription worker: earshot.audio in, utterances to the
// engine, transcript.segment events out. One goroutine per track owns that
// track's decoder and segmenter; a record is acknowledged once every
// utterance that includes its audio has been transcribed and produced, so a
// crash or rebalance re-reads the audio of any utterance in progress.
type Worker struct {
	cfg WorkerConfig
	log *slog.Logger
	m   *workerMetrics

	mu     sync.Mutex
	tracks map[string]*trackWorker
	wg     sync.WaitGroup

	lag lagState

	settleQ chan settleJob // batches for the settled pass; nil when it is off

	closeOnce sync.Once
}

// NewWorker builds a worker.
func NewWorker(cfg WorkerConfig) (*Worker, error) {
	if cfg.Consumer == nil || cfg.Sender == nil || cfg.Engine == nil {
		return nil, errors.New("transcribe: worker needs a Consumer, a Sender and an Engine")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.IdleTrack <= 0 {
		cfg.IdleTrack = 30 * time.Second
	}
	if _, err := NewSegmenter(cfg.Segmenter); err != nil {
		return nil, err
	}
	cfg.Topics.setDefaults()
	cfg.Settle.setDefaults()
	if err := cfg.Backlog.setDefaults(); err != nil {
		return nil, err
	}
	w := &Worker{cfg: cfg, log: cfg.Logger.With("stage", "transcribe"), m: newWorkerMetrics(), tracks: map[string]*trackWorker{}}
	if cfg.Settle.on() {
		w.settleQ = make(chan settleJob, cfg.Settle.Queue)
	}
	if cfg.Metrics != nil {
		if err := cfg.Metrics.Register(w.m); err != nil {
			return nil, fmt.Errorf("transcribe: metrics: %w", err)
		}
	}
	return w, nil
}

// Run consumes until ctx ends, then lets every track finish what it holds.
func (w *Worker) Run(ctx context.Context) error {
	w.log.Info("transcription worker started", "engine", w.cfg.Engine.Name(), "model", w.cfg.Engine.Model(), "language", w.cfg.Language,
		"lag_alert", w.cfg.Backlog.LagAlert, "capacity_mode", w.cfg.Backlog.CapacityMode)
	mctx, stopMonitor := context.WithCancel(ctx)
	monitorDone := make(chan struct{})
	go func() {
		defer close(monitorDone)
		w.monitorLag(mctx)
	}()
	settlerDone := make(chan struct{})
	if w.settleQ != nil {
		go func() {
			defer close(settlerDone)
			w.settler(ctx)
		}()
	} else {
		close(settlerDone)
	}
	err := w.cfg.Consumer.Run(ctx, w.handle)
	stopMonitor()
	<-monitorDone
	w.mu.Lock()
	for _, t := range w.tracks {
		close(t.in)
	}
	w.tracks = map[string]*trackWorker{}
	w.mu.Unlock()
	w.wg.Wait()
	if w.settleQ != nil {
		close(w.settleQ) // no track is left to queue a batch
	}
	<-settlerDone
	return err
}

// Close releases the worker; idempotent.
func (w *Worker) Close() error {
	var err error
	w.closeOnce.Do(func() { err = w.cfg.Consumer.Close() })
	return err
}

// handle runs on the consumer's partition goroutine, in offset order: it
// routes the record to its track's goroutine, blocking when that track is
// behind (back-pressure: Kafka holds the backlog, nothing is dropped).
func (w *Worker) handle(ctx context.Context, d *bus.Delivery) {
	e, err := event.Decode(d.Value)
	if err == nil && (e.Type != event.TypeAudioChunk || e.Timeline == nil) {
		err = fmt.Errorf("transcribe: %s on the audio topic is not an audio chunk", e.Type)
	}
	if err == nil {
		err = e.CheckPayload()
	}
	if err != nil {
		w.deadLetter(ctx, d, err)
		return
	}
	t := w.track(ctx, e.Timeline.Track)
	select {
	case t.in <- item{d: d, e: e}:
	case <-ctx.Done():
		// Not acked: redelivered after the rebalance or restart.
	}
}

// track returns the track's worker, starting one when needed.
func (w *Worker) track(ctx context.Context, id string) *trackWorker {
	w.mu.Lock()
	defer w.mu.Unlock()
	if t, ok := w.tracks[id]; ok && t.ctx.Err() == nil {
		return t
	}
	// A worker whose context ended belongs to an earlier consumer
	// generation (a rebalance that left this partition here): what it
	// held unacked is delivered again, to this new one, which resumes
	// the track mid-way.
	t := &trackWorker{w: w, id: id, ctx: ctx, in: make(chan item, 64)}
	w.tracks[id] = t
	w.m.tracks.Inc()
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		defer w.m.tracks.Dec()
		t.run(ctx)
	}()
	return t
}

// forget removes a finished track, unless a newer worker replaced it.
func (w *Worker) forget(t *trackWorker) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.tracks[t.id] == t {
		delete(w.tracks, t.id)
	}
}

func (w *Worker) deadLetter(ctx context.Context, d *bus.Delivery, reason error) {
	w.m.deadLetters.Inc()
	w.log.Warn("audio chunk dead-lettered", "partition", d.Partition, "offset", d.Offset, "reason", reason)
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := bus.DeadLetter(dctx, w.cfg.Sender, w.cfg.Topics.DeadLetter, d.Message, reason.Error()); err != nil {
		// Not acked: it comes back, and is tried again.
		w.log.Error("dead letter failed; the record will be redelivered", "error", err)
		return
	}
	d.Ack()
}

type item struct {
	d *bus.Delivery
	e *event.Envelope
}

// pendingChunk is a delivered chunk whose audio may still be part of an
// utterance not yet transcribed.
type pendingChunk struct {
	d           *bus.Delivery
	first, last int64 // the chunk's timeline range
}

// trackWorker owns one track's state. Only its goroutine touches it.
type trackWorker struct {
	w   *Worker
	id  string
	ctx context.Context // the consumer generation's: done when it ends
	in  chan item

	dec     *TrackDecoder
	seg     *Segmenter
	pending []pendingChunk
	last    *event.Envelope // newest chunk: room, session, speaker, hops
	final   bool            // the track's final chunk was handled
	skip    *skipped        // the range skipped under capacity mode, if any
	engine  time.Duration   // engine wall time within the current chunk
	batch   []bus.Message   // transcripts of the current chunk, not yet sent
	context promptContext   // the track's previous utterance, for the engine
	audio   *TrackContext   // the track's recent speech, for the engine
	settle  settleBuffer    // utterances awaiting the settled pass
	jobs    chan produceJob // to the track's producer goroutine
	jobsWG  sync.WaitGroup
}

// produceJob is transcripts to produce and the chunks to acknowledge once
// they are in Kafka.
type produceJob struct {
	msgs []bus.Message
	acks []*bus.Delivery
}

// producer writes the track's transcripts in order, off the track's
// goroutine, so decoding and the next engine call need not wait for
// Kafka's acknowledgement. A chunk is acknowledged only after the
// transcripts that include its audio are written; if writing fails, its
// chunks stay unacknowledged and are delivered again after the next
// rebalance or restart.
func (t *trackWorker) producer(ctx context.Context) {
	defer t.jobsWG.Done()
	for j := range t.jobs {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		start := time.Now()
		err := t.w.cfg.Sender.Produce(pctx, j.msgs...)
		cancel()
		t.w.m.produceSeconds.Add(time.Since(start).Seconds())
		if err != nil {
			t.w.log.Error("transcripts not written; their audio will be transcribed again after a rebalance or restart",
				"track", t.id, "transcripts", len(j.msgs), "error", err)
			continue
		}
		t.w.m.transcripts.Add(float64(len(j.msgs)))
		for _, d := range j.acks {
			d.Ack()
		}
	}
}

func (t *trackWorker) run(ctx context.Context) {
	log := t.w.log.With("track", t.id)
	t.jobs = make(chan produceJob, 16)
	t.jobsWG.Add(1)
	go t.producer(ctx)
	defer func() {
		close(t.jobs)
		t.jobsWG.Wait()
	}()
	defer t.close()
	idle := time.NewTimer(t.w.cfg.IdleTrack)
	defer idle.Stop()
	for {
		select {
		case it, ok := <-t.in:
			if !ok {
				return // shutdown: unacked chunks are redelivered to the next owner
			}
			if err := t.chunk(ctx, it); err != nil {
				log.Warn("chunk failed", "error", err)
			}
			if t.final {
				t.w.forget(t)
				t.drain(ctx)
				return
			}
			idle.Reset(t.w.cfg.IdleTrack)
		case <-ctx.Done():
			// The consumer generation ended (rebalance, shutdown): chunks
			// not acked are delivered again, to a fresh worker.
			t.w.forget(t)
			return
		case <-idle.C:
			log.Info("track idle; flushing")
			t.flush(ctx)
			t.w.forget(t)
			t.drain(ctx)
			return
		}
	}
}

// drain routes chunks that raced with forget to a fresh track worker.
func (t *trackWorker) drain(ctx context.Context) {
	for {
		select {
		case it, ok := <-t.in:
			if !ok {
				return
			}
			nt := t.w.track(ctx, t.id)
			select {
			case nt.in <- it:
			case <-ctx.Done():
				return
			}
		default:
			return
		}
	}
}

func (t *trackWorker) close() {
	t.endSkip()
	if t.dec != nil {
		_ = t.dec.Close()
	}
}

// open opens the chunk's audio. While the key store cannot be reached (an
// object-store outage, and the speaker's data key not cached yet) it tries
// again, backing off up to 10 s, holding the track's later chunks back
// (Kafka keeps them): a chunk is dead-lettered for what it is, never for
// where its key lives.
func (t *trackWorker) open(ctx context.Context, e *event.Envelope, data *event.AudioChunkData) error {
	wait := 250 * time.Millisecond
	for {
		err := e.Open(ctx, t.w.cfg.Keys, data)
		if err == nil || !errors.Is(err, storage.ErrUnavailable) || ctx.Err() != nil {
			return err
		}
		t.w.log.Warn("audio chunk not opened: the key store is unreachable; trying again", "track", t.id, "retry_in", wait, "error", err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
		wait = min(2*wait, 10*time.Second)
	}
}

// chunk decodes one chunk, cuts utterances, transcribes them and acks what
// is done.
func (t *trackWorker) chunk(ctx context.Context, it item) error {
	start := time.Now()
	t.engine = 0
	defer func() { t.w.m.pipelineSeconds.Add((time.Since(start) - t.engine).Seconds()) }()
	var payload event.AudioChunk
	_ = it.e.DecodePayload(&payload) // Final is false when absent
	if t.w.shed(it.e.Room) {
		t.skipChunk(it, payload.Final)
		return nil
	}
	t.endSkip()
	var data event.AudioChunkData
	if err := t.open(ctx, it.e, &data); err != nil {
		if ctx.Err() != nil {
			return nil // not acked: delivered again after the rebalance or restart
		}
		if errors.Is(err, event.ErrKeyDestroyed) {
			// The speaker was erased: their audio is not transcribed, and
			// that is not a fault.
			t.w.m.erased.Inc()
			it.d.Ack()
			return nil
		}
		t.w.deadLetter(ctx, it.d, err)
		return nil
	}
	if t.dec == nil {
		dec, err := NewTrackDecoder(DecoderConfig{})
		if err != nil {
			return err
		}
		seg, err := NewSegmenter(t.w.cfg.Segmenter)
		if err != nil {
			return err
		}
		if payload.Seq > 0 {
			// Mid-track: another worker (or this one before a restart or
			// a skip) had the track up to here.
			seg.Resume()
		}
		t.dec, t.seg = dec, seg
		t.audio = NewTrackContext(t.w.cfg.Context)
	}
	t.last = it.e
	pcm, err := t.dec.Decode(*it.e.Timeline, data)
	switch {
	case errors.Is(err, ErrCorruptAudio):
		// The audio that did decode is kept (concealed where corrupt); the
		// record goes to the dead-letter topic for inspection.
		t.w.m.corrupt.Inc()
		if dlErr := bus.DeadLetter(ctx, t.w.cfg.Sender, t.w.cfg.Topics.DeadLetter, it.d.Message, err.Error()); dlErr != nil {
			t.w.log.Warn("dead letter failed", "error", dlErr)
		}
	case err != nil:
		t.w.deadLetter(ctx, it.d, err)
		return nil
	}
	t.w.m.audioSeconds.Add(float64(it.e.Timeline.Samples()) / event.SampleRate)
	t.pending = append(t.pending, pendingChunk{d: it.d, first: it.e.Timeline.FirstSample, last: it.e.Timeline.LastSample})
	utts := t.seg.Push(pcm.Start, pcm.Samples)
	if payload.Final {
		utts = append(utts, t.seg.Flush()...)
	}
	var errs []error
	for _, u := range utts {
		errs = append(errs, t.transcribe(ctx, u))
	}
	if ctx.Err() != nil {
		// Stopped: acking now would commit chunks of an utterance the
		// engine never finished.
		return errors.Join(errs...)
	}
	if payload.Final {
		t.settleNow()
	} else {
		t.settleIfQuiet(it.e.Timeline.LastSample)
	}
	t.ack()
	t.final = payload.Final
	return errors.Join(errs...)
}

// flush transcribes whatever the segmenter holds (idle track).
func (t *trackWorker) flush(ctx context.Context) {
	if t.seg == nil {
		return
	}
	for _, u := range t.seg.Flush() {
		if err := t.transcribe(ctx, u); err != nil {
			t.w.log.Warn("flush failed", "track", t.id, "error", err)
		}
	}
	if ctx.Err() != nil {
		return // as in chunk: nothing is acked once stopped
	}
	t.settleNow()
	t.ack()
}

// ack acknowledges every pending chunk that no future utterance can include.
func (t *trackWorker) ack() {
	first, held := t.seg.Pending()
	n := 0
	var done []*bus.Delivery
	for _, p := range t.pending {
		if held && p.last >= first {
			break
		}
		done = append(done, p.d)
		n++
	}
	t.pending = t.pending[n:]
	if len(t.batch) == 0 {
		for _, d := range done {
			d.Ack()
		}
		return
	}
	t.jobs <- produceJob{msgs: t.batch, acks: done}
	t.batch = nil
}

// deadLetterUtterance puts the chunks holding a failed utterance on the
// dead-letter topic with the reason and acknowledges them: the worker goes
// on, and replay can redo them.
func (t *trackWorker) deadLetterUtterance(ctx context.Context, u Utterance, cause error) {
	span := u.Span()
	keep := t.pending[:0]
	for _, p := range t.pending {
		if p.last < span.First || p.first > span.Last {
			keep = append(keep, p)
			continue
		}
		t.w.deadLetter(ctx, p.d, fmt.Errorf("engine failed on the utterance at samples %d-%d: %w", span.First, span.Last, cause))
	}
	t.pending = keep
}

// transcribe sends one utterance to the engine and produces its transcript
// segments.
func (t *trackWorker) transcribe(ctx context.Context, u Utterance) error {
	w := t.w
	start := time.Now()
	at, res, sent, err := t.audio.Transcribe(ctx, w.cfg.Engine, u, Audio{Language: w.language(t.last.Room), Prompt: t.prompt(u)})
	took := time.Since(start)
	t.engine += took
	w.m.engineSeconds.Observe(took.Seconds())
	w.m.engineAudioSeconds.Add(float64(sent) / AudioRate)
	w.m.utterances.Inc()
	if err != nil {
		if ctx.Err() != nil {
			// Stopped mid-call (shutdown, a lost partition): not the
			// engine's fault. The utterance's chunks stay unacked and
			// come back to the track's next owner.
			return fmt.Errorf("transcribe: engine, stopped (%w): %w", ctx.Err(), err)
		}
		w.m.engineErrors.Inc()
		t.deadLetterUtterance(ctx, u, err)
		return fmt.Errorf("transcribe: engine: %w", err)
	}
	t.settleAdd(u)
	src := t.last
	var said []string
	defer func() { t.context.update(u, said) }()
	msgs, err := transcriptMessages(ctx, transcriptSource{
		producer: w.cfg.Producer, proc: Processing(w.cfg.Engine, w.language(src.Room)), keys: w.cfg.Keys, topic: w.cfg.Topics.Transcripts,
		room: src.Room, session: src.Session, speaker: src.Speaker, timeline: *src.Timeline, hops: src.Hops,
	}, at, res, func(tl event.Timeline, text string) {
		said = append(said, text)
		attrs := []any{"room", src.Room, "speaker", src.Speaker, "track", t.id,
			"seconds", fmt.Sprintf("%.2f-%.2f", float64(tl.FirstSample)/event.SampleRate, float64(tl.LastSample+1)/event.SampleRate)}
		if w.cfg.LogText {
			attrs = append(attrs, "text", text)
		}
		w.log.Info("transcript", attrs...)
	})
	if err != nil {
		return err
	}
	t.batch = append(t.batch, msgs...)
	return nil
}

func (t *trackWorker) prompt(u Utterance) string {
	if !t.w.cfg.PromptPrevious {
		return ""
	}
	return t.context.prompt(u)
}

// promptContext is the text of a track's previous utterance. Whisper
// transcribes a short utterance better knowing what came just before
// (names, topic, casing); only the one previous utterance of the same
// speaker is passed, and only when it ended shortly before, so an error
// cannot propagate far.
type promptContext struct {
	text string
	end  int64 // timeline sample just after the utterance
	set  bool
}

const (
	promptMaxBytes = 200
	promptMaxGap   = 30 * event.SampleRate // samples
)

func (c *promptContext) prompt(u Utterance) string {
	if !c.set || u.Start-c.end > promptMaxGap {
		return ""
	}
	return c.text
}

func (c *promptContext) update(u Utterance, said []string) {
	text := strings.TrimSpace(strings.Join(said, " "))
	if text == "" {
		return
	}
	if len(text) > promptMaxBytes {
		// Keep the end, cut at a word.
		text = text[len(text)-promptMaxBytes:]
		if i := strings.IndexByte(text, ' '); i >= 0 {
			text = text[i+1:]
		}
	}
	c.text, c.end, c.set = text, u.Span().Last+1, true
}

// transcriptSource is what transcript events take from their input.
type transcriptSource struct {
	producer               event.Producer
	proc                   *event.Processing
	keys                   event.Keys
	topic                  string
	room, session, speaker string
	timeline               event.Timeline // any range of the track: its track, origin and anchor
	hops                   event.Hops
}

// transcriptMessages turns an engine's result for utterance u into sealed
// transcript.segment records; logf, when set, is called for each.
func transcriptMessages(ctx context.Context, src transcriptSource, u Utterance, res Result, logf func(tl event.Timeline, text string)) ([]bus.Message, error) {
	var msgs []bus.Message
	for _, tr := range Attribute(u, res, DefaultFilter) {
		tl := src.timeline.Sub(tr.Span.First, tr.Span.Last)
		e, err := event.New(event.TypeTranscript, src.producer, src.proc, src.room, src.session, src.speaker, &tl, tr.Payload)
		if err != nil {
			return nil, err
		}
		e.Hops = src.hops
		e.Hops.Transcribed = event.Stamp(time.Now())
		if err := e.Seal(ctx, src.keys, tr.Data); err != nil {
			return nil, err
		}
		b, err := e.Marshal()
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, bus.Message{Topic: src.topic, Key: []byte(src.room), Value: b})
		if logf != nil {
			logf(tl, tr.Data.Text)
		}
	}
	return msgs, nil
}
