package main

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/ingest"
	"github.com/earshot/earshot/storage/spool"
)

func init() { stageBuilders["ingest"] = newIngestStage }

// ingestStage runs the bots, the spool and its uploader together, and
// shuts them down in order: bots first (tracks flush their final segments
// into the spool), then the uploader drains the spool, bounded by
// shutdownGrace; whatever is left stays spooled for the next start.
type ingestStage struct {
	bots     *ingest.Stage
	spool    *spool.Spool
	uploader *spool.Uploader
}

func newIngestStage(_ context.Context, rt *Runtime) (Stage, error) {
	c := rt.Config
	if c.Ingest.Janus.URL == "" {
		return nil, fmt.Errorf("ingest.janus.url is empty: point it at the Janus HTTP API: %w", errNotConfigured)
	}
	sp, err := spool.Open(spool.Config{Dir: c.Ingest.SpoolDir, Producer: rt.Self, Logger: rt.Log})
	if err != nil {
		return nil, err
	}
	up, err := spool.NewUploader(spool.UploaderConfig{Spool: sp, Store: rt.Store, Sender: rt.Producer, Topic: event.TopicSegments, Logger: rt.Log})
	if err != nil {
		sp.Close()
		return nil, err
	}
	var pattern *regexp.Regexp
	if c.Ingest.Rooms.Mode == "pattern" {
		pattern = regexp.MustCompile(c.Ingest.Rooms.Pattern) // validated at start-up
	}
	bots, err := ingest.New(ingest.Config{
		JanusURL:      c.Ingest.Janus.URL,
		Interface:     c.Ingest.Janus.Interface,
		IdentityField: c.Ingest.Janus.IdentityField,
		BotDisplay:    c.Ingest.BotDisplayName,
		Rooms:         ingest.Selection{Mode: c.Ingest.Rooms.Mode, List: c.Ingest.Rooms.List, Pattern: pattern, Skip: c.Ingest.Rooms.Skip},
		ChunkDuration: c.Ingest.ChunkDuration, SegmentDuration: c.Ingest.SegmentLength,
		Pseudonym: rt.Pseudonym, Sender: rt.Producer, Spool: sp, Producer: rt.Self, Keys: rt.Keys,
		Logger: rt.Log, Metrics: rt.Metrics,
	})
	if err != nil {
		up.Close()
		sp.Close()
		return nil, err
	}
	if err := rt.Metrics.Register(up); err != nil {
		rt.Log.Warn("spool metrics not registered", "error", err)
	}
	return &ingestStage{bots: bots, spool: sp, uploader: up}, nil
}

func (s *ingestStage) Run(ctx context.Context) error {
	upCtx, stopUploads := context.WithCancel(context.WithoutCancel(ctx))
	defer stopUploads()
	upErr := make(chan error, 1)
	go func() { upErr <- s.uploader.Run(upCtx) }()

	botErr := s.bots.Run(ctx)

	// Phase two: let the uploader drain what the bots flushed.
	deadline := time.Now().Add(shutdownGrace)
	for s.spool.Usage().Entries > 0 && time.Now().Before(deadline) {
		select {
		case err := <-upErr:
			return errors.Join(botErr, fmt.Errorf("uploader: %w", err))
		case <-time.After(100 * time.Millisecond):
		}
	}
	stopUploads()
	return errors.Join(botErr, <-upErr)
}

func (s *ingestStage) Close() error {
	return errors.Join(s.bots.Close(), s.uploader.Close(), s.spool.Close())
}
