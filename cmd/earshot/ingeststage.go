package main

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/ingest"
	"github.com/earshot/earshot/ingest/lease"
	"github.com/earshot/earshot/ingest/pseudonym"
	"github.com/earshot/earshot/record/spool"
)

// runPseudonym prints, for each identity argument, the pseudonym the
// ingest stage gives it with this deployment's secret, so operators can
// list participants who must not be recorded without the identity itself
// appearing in the configuration.
func runPseudonym(_ context.Context, e *env) error {
	cfg, fs, err := e.loadConfig("pseudonym", nil)
	if err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usageError{errors.New("pseudonym: give one or more participant identities (feed IDs or display names, as ingest.janus.identity_field says)")}
	}
	secret, err := pseudonym.LoadSecret(cfg.Identity.SecretFile)
	if err != nil {
		return err
	}
	p, err := pseudonym.New(secret, cfg.Identity.KeyVersion)
	if err != nil {
		return err
	}
	for _, id := range fs.Args() {
		fmt.Fprintln(e.stdout, p.Person(id))
	}
	return nil
}

// ingestStage runs the bots, the spool and its uploader together, and
// shuts them down in order: bots first (tracks flush their final segments
// into the spool), then the uploader drains the spool, bounded by
// shutdownGrace; whatever is left stays spooled for the next start.
type ingestStage struct {
	bots     *ingest.Stage
	spool    *spool.Spool
	uploader *spool.Uploader
	cleanup  *cleanup // everything above, and the lease when enabled
}

func newIngestStage(ctx context.Context, rt *Runtime) (_ Stage, err error) {
	c := rt.Config
	if c.Ingest.Janus.URL == "" {
		return nil, fmt.Errorf("ingest.janus.url is empty: point it at the Janus HTTP API: %w", errNotConfigured)
	}
	var connectors []string
	if c.Ingest.Janus.VideoRoom {
		connectors = append(connectors, ingest.ConnectorVideoRoom)
	}
	if c.Ingest.Janus.AudioBridge {
		connectors = append(connectors, ingest.ConnectorAudioBridge)
	}
	if len(connectors) == 0 {
		return nil, fmt.Errorf("ingest.janus.videoroom and ingest.janus.audiobridge are both false: enable at least one: %w", errNotConfigured)
	}
	var pattern, skipDisplay *regexp.Regexp
	if c.Ingest.Rooms.Mode == "pattern" {
		pattern = regexp.MustCompile(c.Ingest.Rooms.Pattern) // validated at start-up
	}
	if c.Ingest.Participants.SkipDisplay != "" {
		skipDisplay = regexp.MustCompile(c.Ingest.Participants.SkipDisplay) // validated at start-up
	}
	var cl cleanup
	defer cl.onError(&err)
	st := &ingestStage{cleanup: &cl}
	// Segments wait in the spool sealed under their speaker's key.
	if st.spool, err = spool.Open(spool.Config{Dir: c.Ingest.SpoolDir, Producer: rt.Self, Logger: rt.Log, Sealer: rt.Keyring}); err != nil {
		return nil, err
	}
	cl.push(st.spool.Close)
	if st.uploader, err = spool.NewUploader(spool.UploaderConfig{Spool: st.spool, Store: rt.Store, Sender: rt.Producer, Topic: event.TopicSegments, Logger: rt.Log}); err != nil {
		return nil, err
	}
	cl.push(st.uploader.Close)
	var coord ingest.Coordinator
	// The stage names itself (manifest stays, lifecycle events) as its
	// leases do: instances on one host share the host name.
	self := rt.Self
	if l := c.Ingest.Lease; l.Enabled {
		inst := l.Instance
		if inst == "" {
			inst = rt.Self.Instance
		}
		self.Instance = inst
		leases, err := lease.NewKafka(ctx, lease.KafkaConfig{
			Config:  lease.Config{Instance: inst, TTL: l.TTL, Renew: l.Renew, Logger: rt.Log},
			Cluster: rt.Cluster, Topic: event.TopicState,
		})
		if err != nil {
			return nil, fmt.Errorf("ingest lease: %w", err)
		}
		coord = closer(&cl, leases)
	}
	st.bots, err = ingest.New(ingest.Config{
		JanusURL:      c.Ingest.Janus.URL,
		Interface:     c.Ingest.Janus.Interface,
		IdentityField: c.Ingest.Janus.IdentityField,
		BotDisplay:    c.Ingest.BotDisplayName,
		Rooms:         ingest.Selection{Mode: c.Ingest.Rooms.Mode, List: c.Ingest.Rooms.List, Pattern: pattern, Skip: c.Ingest.Rooms.Skip},
		ChunkDuration: c.Ingest.ChunkDuration, SegmentDuration: c.Ingest.SegmentLength,
		Connectors:       connectors,
		Coordinator:      coord,
		SessionGap:       c.Ingest.Lease.SessionGap,
		SkipParticipants: ingest.ParticipantSkip{Pseudonyms: c.Ingest.Participants.Skip, Display: skipDisplay},
		RoomDescription:  c.Ingest.Participants.RoomDescription,
		Manifests:        rt.Store,
		Pseudonym:        rt.Pseudonym, Sender: rt.Producer, Spool: st.spool, Producer: self, Keys: rt.Keys,
		Logger: rt.Log, Metrics: rt.Metrics,
	})
	if err != nil {
		return nil, err
	}
	// Bots close first: their tracks flush final segments into the spool.
	cl.push(st.bots.Close)
	if err := rt.Metrics.Register(st.uploader); err != nil {
		rt.Log.Warn("spool metrics not registered", "error", err)
	}
	return st, nil
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

// Close releases the bots, the lease, the uploader and the spool, in that
// order.
func (s *ingestStage) Close() error { return s.cleanup.release() }
