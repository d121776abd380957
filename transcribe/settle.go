package transcribe

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
)

// The settled pass. Whisper hears a 2–3 s utterance on its own worse than
// inside a longer stretch of speech (see batch.go): on the test bed the
// live revision is about 6 WER points behind the whole file, 25 s batches
// less than 1. The live path cannot wait for 25 s of speech before it
// answers, so a worker answers twice: each utterance at once (the live
// revision, which the policy stage evaluates), and, once a speaker has said
// about Batch of speech or gone quiet, those same utterances again as one
// spliced audio (the settled revision, pass=settled), while the room is
// still live. The final pass does the same from stored audio after the
// session ends; the settled pass gives moderators that quality within a
// minute or so (on the test bed's benchmark: 28 s median, 53 s p95, from
// the end of a line) instead of at the end of the room.
//
// It is best effort by design: live chunks are acknowledged once their
// live transcripts are written, so a batch waiting when the worker stops
// or crashes, or held by a track that moves to another worker, is not
// redone (the final pass covers it); and a batch that finds the queue full
// or the worker behind on live audio is dropped and counted rather than
// slowing the live path. One settler goroutine per worker sends batches
// to the engine one at a time.

// SettleConfig configures the settled pass.
type SettleConfig struct {
	// Batch is how much of a track's speech is transcribed again as one
	// audio; zero or negative turns the settled pass off (the default of
	// WorkerConfig; the earshot binary turns it on with 25 s). At most 28
	// s, so a batch fits Whisper's 30 s window.
	Batch time.Duration
	// Quiet settles what a track holds once its speaker has said nothing
	// for this long (15 s): their last words need not wait for the next
	// time they speak.
	Quiet time.Duration
	// Queue bounds the batches waiting for the engine across the worker's
	// tracks (16); a batch that finds it full is dropped and counted.
	Queue int
}

func (c *SettleConfig) on() bool { return c.Batch > 0 }

func (c *SettleConfig) setDefaults() {
	c.Batch = min(c.Batch, 28*time.Second)
	if c.Quiet <= 0 {
		c.Quiet = 15 * time.Second
	}
	if c.Queue <= 0 {
		c.Queue = 16
	}
}

// SettledProcessing is the processing of a settled revision: the live
// revision's, marked pass=settled with its batch length.
func SettledProcessing(e Engine, language string, batch time.Duration) *event.Processing {
	p := Processing(e, language)
	p.Options["pass"] = event.PassSettled
	p.Options["batch"] = batch.String()
	return p
}

// settleBuffer is a track's utterances transcribed live and not yet
// settled.
type settleBuffer struct {
	utts []Utterance
	n    int // audio samples, spliced (with batchGap between utterances)
}

// settleJob is one batch: a track's utterances and where their transcripts
// go.
type settleJob struct {
	utts []Utterance
	src  transcriptSource
	lang string
}

// settleAdd keeps an utterance the live pass transcribed, settling what the
// track holds first when the utterance would not fit in the batch.
func (t *trackWorker) settleAdd(u Utterance) {
	c := &t.w.cfg.Settle
	if !c.on() {
		return
	}
	s := &t.settle
	limit := int(c.Batch.Seconds() * AudioRate)
	if len(s.utts) > 0 && s.n+batchGap+len(u.Samples) > limit {
		t.settleNow()
	}
	if len(s.utts) > 0 {
		s.n += batchGap
	}
	s.utts = append(s.utts, u)
	s.n += len(u.Samples)
}

// settleIfQuiet settles what the track holds when its timeline has reached
// pos and the speaker has been quiet for SettleConfig.Quiet (no utterance
// in progress either).
func (t *trackWorker) settleIfQuiet(pos int64) {
	s := &t.settle
	if len(s.utts) == 0 {
		return
	}
	if t.seg.speaking() {
		return
	}
	quiet := int64(t.w.cfg.Settle.Quiet.Seconds() * event.SampleRate)
	if pos-s.utts[len(s.utts)-1].Span().Last >= quiet {
		t.settleNow()
	}
}

// settleNow queues the track's held utterances as one batch, without
// waiting: when the queue is full, or the worker is behind on live audio
// (consumer lag over Backlog.LagAlert: the engine is needed there), the
// batch is dropped and counted.
func (t *trackWorker) settleNow() {
	s := &t.settle
	if len(s.utts) == 0 || t.last == nil {
		return
	}
	if t.w.Overloaded() {
		*s = settleBuffer{}
		t.w.m.settleDropped.Inc()
		return
	}
	lang := t.w.language(t.last.Room)
	job := settleJob{utts: s.utts, lang: lang, src: transcriptSource{
		producer: t.w.cfg.Producer, proc: SettledProcessing(t.w.cfg.Engine, lang, t.w.cfg.Settle.Batch), keys: t.w.cfg.Keys,
		topic: t.w.cfg.Topics.Transcripts, room: t.last.Room, session: t.last.Session, speaker: t.last.Speaker,
		timeline: *t.last.Timeline, hops: t.last.Hops,
	}}
	*s = settleBuffer{}
	select {
	case t.w.settleQ <- job:
		t.w.m.settlePending.Inc()
	default:
		t.w.m.settleDropped.Inc()
		t.w.log.Warn("settled pass behind: batch dropped (the final pass still covers it)", "track", t.id, "utterances", len(job.utts))
	}
}

// settler transcribes queued batches one at a time until the queue is
// closed; with ctx ended it drops what is left.
func (w *Worker) settler(ctx context.Context) {
	for job := range w.settleQ {
		err := ctx.Err()
		if err == nil {
			err = w.settleBatch(ctx, job)
		}
		switch {
		case ctx.Err() != nil:
			w.m.settleDropped.Inc() // shutting down
		case err != nil:
			w.m.settleErrors.Inc()
			w.log.Warn("settled pass failed for a batch (the final pass still covers it)", "utterances", len(job.utts), "error", err)
		}
		w.m.settlePending.Dec()
	}
}

// settleBatch sends a batch to the engine as one spliced audio and writes
// each utterance's transcripts as the settled revision.
func (w *Worker) settleBatch(ctx context.Context, job settleJob) error {
	start := time.Now()
	var said []string
	msgs, err := batchMessages(ctx, w.cfg.Engine, job.lang, job.src, job.utts, func(_ event.Timeline, text string) { said = append(said, text) })
	w.m.settleSeconds.Add(time.Since(start).Seconds())
	if err != nil {
		return fmt.Errorf("transcribe: settled pass: %w", err)
	}
	if len(msgs) > 0 {
		if err := w.cfg.Sender.Produce(ctx, msgs...); err != nil {
			return fmt.Errorf("transcribe: settled pass: produce: %w", err)
		}
	}
	w.m.settleBatches.Inc()
	w.m.settleTranscripts.Add(float64(len(msgs)))
	first, last := job.utts[0].Span().First, job.utts[len(job.utts)-1].Span().Last
	attrs := []any{"room", job.src.room, "speaker", job.src.speaker, "track", job.src.timeline.Track, "utterances", len(job.utts),
		"seconds", fmt.Sprintf("%.2f-%.2f", float64(first)/event.SampleRate, float64(last+1)/event.SampleRate)}
	if w.cfg.LogText {
		attrs = append(attrs, "text", strings.Join(said, " "))
	}
	w.log.Info("transcripts settled", attrs...)
	return nil
}

// batchMessages transcribes utts as one spliced audio and returns each
// utterance's transcript records, in order; logf as transcriptMessages'.
func batchMessages(ctx context.Context, eng Engine, lang string, src transcriptSource, utts []Utterance, logf func(event.Timeline, string)) ([]bus.Message, error) {
	audio, starts := splice(utts)
	res, err := eng.Transcribe(ctx, Audio{Samples: audio, Language: lang})
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	var msgs []bus.Message
	for i, part := range splitBatch(utts, starts, res) {
		m, err := transcriptMessages(ctx, src, utts[i], part, logf)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, m...)
	}
	return msgs, nil
}
