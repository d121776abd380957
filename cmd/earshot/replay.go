package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/earshot/earshot/compliance/audit"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/transcribe"
)

// runTranscribe is `earshot transcribe`: the transcription stage, or with
// -replay <room>/<session> a one-off re-transcription of that session's
// stored segments as a new revision.
func runTranscribe(ctx context.Context, e *env) error {
	var replay, reason string
	var batch time.Duration
	var op *string
	cfg, _, err := e.loadConfig("transcribe", func(fs *flag.FlagSet) {
		fs.StringVar(&replay, "replay", "", "re-transcribe the stored segments of `room/session` (room ID or pseudonym, session ID) as a new revision, then exit")
		fs.StringVar(&reason, "reason", "", "with -replay: why (recorded in the audit log)")
		fs.DurationVar(&batch, "batch", 25*time.Second, "with -replay: send up to this much speech per engine call (fewer calls, transcripts close to a whole file's); 0: utterance by utterance, as live")
		op = operatorFlag(fs)
	})
	if err != nil || replay == "" {
		if err == nil {
			err = runStages("transcribe")(ctx, e)
		}
		return err
	}
	room, session, ok := strings.Cut(replay, "/")
	if !ok || room == "" || session == "" || strings.Contains(session, "/") {
		return usageError{fmt.Errorf("-replay %q: want <room>/<session>, e.g. r1_.../ses_...", replay)}
	}
	log := newLogger(cfg, e.stderr)
	rt, err := commandRuntime(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer rt.Close()
	eng, closeEngine, err := newEngine(rt)
	if errors.Is(err, errNotConfigured) {
		return usageError{err}
	}
	if err != nil {
		return err
	}
	defer closeEngine()
	room = roomPseudonym(rt.Pseudonym, room)
	if err := checkOperator(cfg.Compliance, *op); err != nil {
		return err
	}
	// A replay decrypts stored speech: audited before the first byte is
	// read, and refused when it cannot be audited.
	al, err := auditLog(ctx, rt)
	if err != nil {
		return err
	}
	if err := al.Record(ctx, event.AuditEntry{Operator: *op, Action: audit.ActionDecrypt, Subject: room + "/" + session,
		Reason: reason, Outcome: audit.OutcomeOK, Detail: "transcribe -replay: stored audio decrypted to re-transcribe it as a new revision"}); err != nil {
		return fmt.Errorf("replay refused: cannot record it in the audit log: %w", err)
	}
	rctx, cancel := context.WithTimeout(ctx, replayTimeout)
	defer cancel()
	st, err := transcribe.Replay(rctx, transcribe.ReplayConfig{
		Store: rt.Store, Engine: eng, Sender: rt.Producer, Producer: rt.Self, Keys: rt.Keys,
		Language: cfg.Transcribe.Language, RoomLanguage: roomLanguages(cfg.Transcribe.Rooms, rt.Pseudonym), Logger: log, Batch: batch,
	}, room, session)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "replayed %s/%s: %d tracks, %d segments, %.1f s of audio, %d utterances, %d transcripts (revision %s)\n",
		room, session, st.Tracks, st.Segments, st.AudioSeconds, st.Utterances, st.Transcripts, st.Revision)
	return nil
}
