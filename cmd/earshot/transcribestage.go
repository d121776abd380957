package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/ingest/pseudonym"
	"github.com/earshot/earshot/internal/config"
	"github.com/earshot/earshot/transcribe"
	"github.com/earshot/earshot/transcribe/engines"
)

func newTranscribeStage(_ context.Context, rt *Runtime) (_ Stage, err error) {
	c := rt.Config.Transcribe
	var cl cleanup
	defer cl.onError(&err)
	st := &transcribeStage{cleanup: &cl}
	eng, closeEngine, err := newEngine(rt)
	if err != nil {
		return nil, err
	}
	cl.push(func() error { closeEngine(); return nil })
	cons, err := rt.consumer("earshot-transcribe", event.TopicAudio)
	if err != nil {
		return nil, err
	}
	cl.push(cons.Close)
	backlog := transcribe.Backlog{LagAlert: int64(c.Backlog.LagAlert), CheckInterval: c.Backlog.CheckInterval, CapacityMode: c.Backlog.CapacityMode}
	if c.Backlog.CapacityMode {
		var fixed []string
		for _, r := range c.Backlog.FlaggedRooms {
			fixed = append(fixed, roomPseudonym(rt.Pseudonym, r))
		}
		st.flagSet = transcribe.NewRoomSet(c.Backlog.FlagTTL, fixed...)
		backlog.Flagged = st.flagSet
		// Every worker needs every flag, so each reads the alert topics in
		// a group of its own, from the start of their retention.
		if st.flags, err = rt.consumer("earshot-transcribe-flags-"+rt.Self.Instance, event.TopicAlerts, event.TopicAlertActions); err != nil {
			return nil, err
		}
		cl.push(st.flags.Close)
	}
	var settle transcribe.SettleConfig
	if c.Settle.Enabled {
		settle = transcribe.SettleConfig{Batch: c.Settle.Batch, Quiet: c.Settle.Quiet, Queue: c.Settle.Queue}
	}
	st.Worker, err = transcribe.NewWorker(transcribe.WorkerConfig{
		Consumer: cons, Sender: rt.Producer, Engine: eng, Language: c.Language,
		RoomLanguage: roomLanguages(c.Rooms, rt.Pseudonym), Backlog: backlog, Settle: settle,
		Producer: rt.Self, Keys: rt.Keys, Logger: rt.Log, Metrics: rt.Metrics, LogText: rt.Config.Log.Transcripts,
	})
	if err != nil {
		return nil, err
	}
	cl.push(st.Worker.Close)
	if c.Final.Enabled {
		fcons, err := rt.consumer("earshot-transcribe-final", event.TopicLifecycle)
		if err != nil {
			return nil, err
		}
		cl.push(fcons.Close)
		st.final, err = transcribe.NewFinal(transcribe.FinalConfig{Consumer: fcons, Wait: c.Final.Wait, Logger: rt.Log,
			Replay: transcribe.ReplayConfig{Store: rt.Store, Engine: eng, Sender: rt.Producer, Producer: rt.Self, Keys: rt.Keys,
				Language: c.Language, RoomLanguage: roomLanguages(c.Rooms, rt.Pseudonym), Batch: c.Final.Batch}})
		if err != nil {
			return nil, err
		}
		cl.push(st.final.Close)
	}
	return st, nil
}

// transcribeStage is the worker plus the engine it owns and, in capacity
// mode, the consumer that keeps the set of flagged rooms.
type transcribeStage struct {
	*transcribe.Worker
	final   *transcribe.Final // nil when transcribe.final is off
	flags   *bus.Consumer
	flagSet *transcribe.RoomSet
	cleanup *cleanup // the parts above and the engine, released newest first
}

func (s *transcribeStage) Run(ctx context.Context) error {
	parts := []func(context.Context) error{s.Worker.Run}
	if s.flags != nil {
		parts = append(parts, func(ctx context.Context) error { return s.flags.Run(ctx, s.flagSet.Handle) })
	}
	if s.final != nil {
		parts = append(parts, s.final.Run)
	}
	return runTogether(ctx, parts...)
}

// Close stops the final pass and the worker, then closes their consumers
// and the engine.
func (s *transcribeStage) Close() error { return s.cleanup.release() }

// roomPseudonym takes a room pseudonym as it is and pseudonymises a raw
// room ID, with the same secret the ingest stage uses.
func roomPseudonym(p *pseudonym.Pseudonymizer, room string) string {
	room = strings.TrimSpace(room)
	if pseudonym.IsPseudonym(pseudonym.KindRoom, room) {
		return room
	}
	return p.Room(room)
}

// roomLanguages turns transcribe.rooms.languages into the worker's
// per-room lookup (nil when no room is listed).
func roomLanguages(c config.RoomLanguages, p *pseudonym.Pseudonymizer) func(string) string {
	rooms, langs := c.Parse()
	if len(rooms) == 0 {
		return nil
	}
	byRoom := map[string]string{}
	def := ""
	for i, r := range rooms {
		if r == "*" {
			def = langs[i]
			continue
		}
		byRoom[roomPseudonym(p, r)] = langs[i]
	}
	return func(room string) string {
		if l, ok := byRoom[room]; ok {
			return l
		}
		return def
	}
}

// newEngine builds the configured engine and a function that releases it.
func newEngine(rt *Runtime) (transcribe.Engine, func(), error) {
	c := rt.Config.Transcribe
	eng, release, err := engines.New(engines.Config{Kind: c.Engine, URL: c.URL.Reveal(), APIKeyFile: c.APIKeyFile, Model: c.Model,
		ModelPath: c.ModelPath, Threads: c.Threads, Window: c.Window, Timeout: c.Timeout, Concurrency: c.Concurrency, Logger: rt.Log})
	if errors.Is(err, engines.ErrNotConfigured) {
		err = fmt.Errorf("%w: %w", err, errNotConfigured)
	}
	if err == nil && c.CoverTail {
		eng = transcribe.CoverTail(eng, transcribe.TailConfig{})
	}
	return eng, release, err
}

// replayTimeout bounds one replay.
const replayTimeout = 6 * time.Hour
