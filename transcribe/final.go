package transcribe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/clock"
	"github.com/earshot/earshot/storage"
)

// The final pass. Live transcription sends each utterance alone, as soon
// as it ends, and Whisper hears a 2–3 s utterance worse than the same
// words inside a longer stretch of speech (transcribe/README.md: 8.3 % WER
// live vs 2.3 % for the whole file over 104 lines). Once a session has
// ended, Final replays its stored audio in batches of speech (Replay with
// Batch): a second revision of the session's transcripts, close to what
// the whole file gives (3.0 %), which exports and evidence can prefer.
// Its processing carries pass=final (event.PassFinal); the policy stage
// alerts on what it finds that the earlier revisions did not, and
// recognises what they already alerted on (docs/alerts.md).

// FinalConfig configures a Final.
type FinalConfig struct {
	// Consumer reads earshot.lifecycle (key = room) in a group of its own.
	Consumer consumer
	// Replay is the replay each ended session gets; Batch is required.
	Replay ReplayConfig
	// Wait is the longest time to wait, after session_ended, for every
	// segment the session's manifest lists to be stored (bots upload
	// their last segments after the session ends; an S3 outage delays
	// them). The replay then runs on what is there. Default 10 min.
	Wait time.Duration
	// Poll is how often the manifest's segments are looked for (2 s).
	Poll time.Duration
	// Retry is the pause after a failed replay before it is tried again
	// (30 s), doubling with each attempt up to 10 min.
	Retry time.Duration
	// Attempts bounds the replays of one session (default 6: about half
	// an hour of retries at the default pause). After the last failure the
	// session_ended record is dead-lettered, with the reason, and acked:
	// one session whose audio cannot be replayed must not hold back every
	// later session on its partition. `earshot transcribe -replay` redoes
	// it by hand.
	Attempts int
	Logger   *slog.Logger
}

// Final replays every ended session in batches as a final revision of its
// transcripts. One session at a time per partition: the engine is the
// bottleneck, and live transcription shares it.
type Final struct {
	cfg FinalConfig
	log *slog.Logger
}

// NewFinal checks cfg.
func NewFinal(cfg FinalConfig) (*Final, error) {
	switch {
	case cfg.Consumer == nil:
		return nil, errors.New("transcribe: final pass: Consumer is required")
	case cfg.Replay.Store == nil || cfg.Replay.Engine == nil || cfg.Replay.Sender == nil:
		return nil, errors.New("transcribe: final pass: Replay needs a Store, an Engine and a Sender")
	case cfg.Replay.Batch <= 0:
		return nil, errors.New("transcribe: final pass: Replay.Batch must be positive (e.g. 25s)")
	}
	if cfg.Wait <= 0 {
		cfg.Wait = 10 * time.Minute
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 2 * time.Second
	}
	if cfg.Retry <= 0 {
		cfg.Retry = 30 * time.Second
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 6
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Replay.Logger == nil {
		cfg.Replay.Logger = cfg.Logger
	}
	cfg.Replay.Pass = event.PassFinal
	return &Final{cfg: cfg, log: cfg.Logger.With("stage", "transcribe-final")}, nil
}

// Run consumes lifecycle events until ctx ends.
func (f *Final) Run(ctx context.Context) error {
	err := f.cfg.Consumer.Run(ctx, f.handle)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// Close stops the consumer.
func (f *Final) Close() error { return f.cfg.Consumer.Close() }

func (f *Final) handle(ctx context.Context, d *bus.Delivery) {
	e, err := event.Decode(d.Value)
	if err != nil || e.Type != event.TypeSessionEnded {
		d.Ack() // not for this stage (a malformed record is the archive's to report)
		return
	}
	var p event.SessionEnded
	if err := e.CheckPayload(); err != nil {
		f.deadLetter(ctx, d, fmt.Sprintf("final pass: session_ended: %v", err))
		return
	}
	if err := e.DecodePayload(&p); err != nil {
		f.deadLetter(ctx, d, fmt.Sprintf("final pass: session_ended payload: %v", err))
		return
	}
	if !safeName(e.Room) || !safeName(e.Session) {
		f.deadLetter(ctx, d, "final pass: session_ended names no room and session usable in a storage key")
		return
	}
	log := f.log.With("room", e.Room, "session", e.Session)
	f.awaitSegments(ctx, log, p.Manifest, e.Time)
	pause := f.cfg.Retry
	for attempt := 1; ; attempt++ {
		st, err := Replay(ctx, f.cfg.Replay, e.Room, e.Session)
		switch {
		case err == nil:
			log.Info("final revision written", "revision", st.Revision, "tracks", st.Tracks, "segments", st.Segments,
				"utterances", st.Utterances, "transcripts", st.Transcripts)
			d.Ack()
			return
		case errors.Is(err, ErrNoSegments):
			log.Info("no stored audio: no final revision")
			d.Ack()
			return
		case ctx.Err() != nil:
			return // not acked: the next start does it
		case attempt >= f.cfg.Attempts:
			log.Error("final pass failed; giving up on this session", "attempts", attempt, "error", err)
			f.deadLetter(ctx, d, fmt.Sprintf("final pass failed %d times: %v", attempt, err))
			return
		}
		log.Warn("final pass failed; retrying", "attempt", attempt, "of", f.cfg.Attempts, "retry_in", pause, "error", err)
		if !clock.Sleep(ctx, pause) {
			return
		}
		pause = min(2*pause, 10*time.Minute)
	}
}

// safeName reports whether a room or session pseudonym can name a storage
// prefix: not empty, no path separators or dot segments.
func safeName(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, "/\\\x00")
}

// deadLetter copies the record to the dead-letter topic with reason and
// acks it once that is durable; if the dead letter cannot be written the
// record stays unacked and comes back after a restart.
func (f *Final) deadLetter(ctx context.Context, d *bus.Delivery, reason string) {
	if err := bus.DeadLetter(ctx, f.cfg.Replay.Sender, event.TopicDeadLetter, d.Message, reason); err != nil {
		f.log.Error("dead letter not written; the record stays unacked", "error", err, "reason", reason)
		return
	}
	d.Ack()
}

// awaitSegments waits until every segment the manifest lists is stored,
// or Wait after the session ended. Without a manifest (or a store that
// cannot tell) it waits a fixed grace, a tenth of Wait and at most 30 s,
// for the last uploads.
func (f *Final) awaitSegments(ctx context.Context, log *slog.Logger, manifest string, ended time.Time) {
	keys, err := f.manifestSegments(ctx, manifest)
	st, canStat := f.cfg.Replay.Store.(storage.Stater)
	if err != nil || len(keys) == 0 || !canStat {
		if err != nil {
			log.Debug("manifest not readable; waiting a grace period for the last uploads", "error", err)
		}
		clock.Sleep(ctx, time.Until(ended.Add(min(f.cfg.Wait/10, 30*time.Second))))
		return
	}
	deadline := ended.Add(f.cfg.Wait)
	for {
		missing := 0
		for _, k := range keys {
			if _, err := st.Stat(ctx, k); err != nil {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			log.Warn("segments still missing after the wait; replaying what is stored", "missing", missing, "of", len(keys))
			return
		}
		if !clock.Sleep(ctx, f.cfg.Poll) {
			return
		}
	}
}

// manifestSegments reads the segment keys a session manifest lists.
func (f *Final) manifestSegments(ctx context.Context, key string) ([]string, error) {
	if key == "" {
		return nil, errors.New("no manifest")
	}
	rc, _, err := f.cfg.Replay.Store.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var m struct {
		Tracks []struct {
			Segments []struct {
				Key string `json:"key"`
			} `json:"segments"`
		} `json:"tracks"`
	}
	if err := json.NewDecoder(io.LimitReader(rc, 64<<20)).Decode(&m); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", key, err)
	}
	var keys []string
	for _, t := range m.Tracks {
		for _, s := range t.Segments {
			keys = append(keys, s.Key)
		}
	}
	return keys, nil
}
