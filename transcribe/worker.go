package transcribe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
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
	w := &Worker{cfg: cfg, log: cfg.Logger.With("stage", "transcribe"), m: newWorkerMetrics(), tracks: map[string]*trackWorker{}}
	if cfg.Metrics != nil {
		if err := cfg.Metrics.Register(w.m); err != nil {
			return nil, fmt.Errorf("transcribe: metrics: %w", err)
		}
	}
	return w, nil
}

// Run consumes until ctx ends, then lets every track finish what it holds.
func (w *Worker) Run(ctx context.Context) error {
	w.log.Info("transcription worker started", "engine", w.cfg.Engine.Name(), "model", w.cfg.Engine.Model(), "language", w.cfg.Language)
	err := w.cfg.Consumer.Run(ctx, w.handle)
	w.mu.Lock()
	for _, t := range w.tracks {
		close(t.in)
	}
	w.tracks = map[string]*trackWorker{}
	w.mu.Unlock()
	w.wg.Wait()
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
	if t, ok := w.tracks[id]; ok {
		return t
	}
	t := &trackWorker{w: w, id: id, in: make(chan item, 64)}
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
	if err := bus.DeadLetter(dctx, w.cfg.Sender, event.TopicDeadLetter, d.Message, reason.Error()); err != nil {
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
	w  *Worker
	id string
	in chan item

	dec     *TrackDecoder
	seg     *Segmenter
	pending []pendingChunk
	last    *event.Envelope // newest chunk: room, session, speaker, hops
	final   bool            // the track's final chunk was handled
}

func (t *trackWorker) run(ctx context.Context) {
	log := t.w.log.With("track", t.id)
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
	if t.dec != nil {
		_ = t.dec.Close()
	}
}

// chunk decodes one chunk, cuts utterances, transcribes them and acks what
// is done.
func (t *trackWorker) chunk(ctx context.Context, it item) error {
	var data event.AudioChunkData
	if err := it.e.Open(ctx, t.w.cfg.Keys, &data); err != nil {
		t.w.deadLetter(ctx, it.d, err)
		return nil
	}
	var payload event.AudioChunk
	_ = it.e.DecodePayload(&payload) // Final is false when absent
	if t.dec == nil {
		dec, err := NewTrackDecoder(DecoderConfig{})
		if err != nil {
			return err
		}
		seg, err := NewSegmenter(t.w.cfg.Segmenter)
		if err != nil {
			return err
		}
		t.dec, t.seg = dec, seg
	}
	t.last = it.e
	pcm, err := t.dec.Decode(*it.e.Timeline, data)
	switch {
	case errors.Is(err, ErrCorruptAudio):
		// The audio that did decode is kept (concealed where corrupt); the
		// record goes to the dead-letter topic for inspection.
		t.w.m.corrupt.Inc()
		if dlErr := bus.DeadLetter(ctx, t.w.cfg.Sender, event.TopicDeadLetter, it.d.Message, err.Error()); dlErr != nil {
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
	t.ack()
}

// ack acknowledges every pending chunk that no future utterance can include.
func (t *trackWorker) ack() {
	first, held := t.seg.Pending()
	n := 0
	for _, p := range t.pending {
		if held && p.last >= first {
			break
		}
		p.d.Ack()
		n++
	}
	t.pending = t.pending[n:]
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
	res, err := w.cfg.Engine.Transcribe(ctx, Audio{Samples: u.Samples, Language: w.cfg.Language})
	w.m.engineSeconds.Observe(time.Since(start).Seconds())
	w.m.utterances.Inc()
	if err != nil {
		w.m.engineErrors.Inc()
		t.deadLetterUtterance(ctx, u, err)
		return fmt.Errorf("transcribe: engine: %w", err)
	}
	src := t.last
	proc := Processing(w.cfg.Engine, w.cfg.Language)
	var msgs []bus.Message
	for _, tr := range Attribute(u, res, DefaultFilter) {
		tl := src.Timeline.Sub(tr.Span.First, tr.Span.Last)
		e, err := event.New(event.TypeTranscript, w.cfg.Producer, proc, src.Room, src.Session, src.Speaker, &tl, tr.Payload)
		if err != nil {
			return err
		}
		e.Hops = src.Hops
		e.Hops.Transcribed = event.Stamp(time.Now())
		if err := e.Seal(ctx, w.cfg.Keys, tr.Data); err != nil {
			return err
		}
		b, err := e.Marshal()
		if err != nil {
			return err
		}
		msgs = append(msgs, bus.Message{Topic: event.TopicTranscripts, Key: []byte(src.Room), Value: b})
		attrs := []any{"room", src.Room, "speaker", src.Speaker, "track", t.id,
			"seconds", fmt.Sprintf("%.2f-%.2f", float64(tl.FirstSample)/event.SampleRate, float64(tl.LastSample+1)/event.SampleRate)}
		if w.cfg.LogText {
			attrs = append(attrs, "text", tr.Data.Text)
		}
		w.log.Info("transcript", attrs...)
	}
	if len(msgs) == 0 {
		return nil
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := w.cfg.Sender.Produce(pctx, msgs...); err != nil {
		return fmt.Errorf("transcribe: produce: %w", err)
	}
	w.m.transcripts.Add(float64(len(msgs)))
	return nil
}
