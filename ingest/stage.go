// Package ingest runs Earshot's listener bots: it finds rooms on the room
// server, joins each selected room as a visible, never-publishing
// participant whose name says the room is recorded, subscribes to every
// speaker's audio (VideoRoom) or records the room's mix (AudioBridge) and
// hands each track to the recorder. Identities become pseudonyms here: raw
// participant IDs, display names and room IDs never leave this package —
// not in events, logs, object keys or the spool.
//
// With a Coordinator (package lease) several instances share the rooms, at
// most one bot per room, and a room's session survives bot restarts and
// takeovers; each session's manifest goes to object storage. See
// docs/ingest.md.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/ingest/janus"
	"github.com/earshot/earshot/ingest/lease"
	"github.com/earshot/earshot/ingest/pseudonym"
	"github.com/earshot/earshot/internal/clock"
	"github.com/earshot/earshot/record/spool"
	"github.com/earshot/earshot/storage"
)

// SegmentSpool is where finished segments go: the local spool that the
// uploader drains into object storage, sealed under the speaker's key.
type SegmentSpool interface {
	Create(ref event.KeyRef) (*spool.Writer, error)
}

var _ SegmentSpool = (*spool.Spool)(nil)

// Coordinator is what the stage needs from the other Earshot instances:
// a lease per room (at most one bot per room) and the room's open session,
// so that a bot replacing another continues it. Package lease implements
// it over Kafka (and in memory).
type Coordinator interface {
	Acquire(ctx context.Context, room string) (*lease.Lease, error)
	Session(room string) (lease.Session, bool)
	PutSession(ctx context.Context, room string, s lease.Session) error
}

var _ Coordinator = (*lease.Manager)(nil)

// Selection says which rooms the bots join. Rooms are named by their Janus
// room ID for VideoRoom rooms and "audiobridge:<ID>" for AudioBridge rooms
// (the two plugins number their rooms independently); List, Pattern and
// Skip apply to these names.
type Selection struct {
	Mode    string         // "all", "list" or "pattern"
	List    []string       // room names, for "list"
	Pattern *regexp.Regexp // on the room name, for "pattern"
	Skip    []string       // rooms never recorded, whatever the mode
}

// Connector names, for Config.Connectors.
const (
	ConnectorVideoRoom   = "videoroom"
	ConnectorAudioBridge = "audiobridge"
)

// DefaultSessionGap is Config.SessionGap's default.
const DefaultSessionGap = time.Minute

// Config configures the ingest stage.
type Config struct {
	// JanusURL is the Janus HTTP API base (http://host:8088/janus).
	JanusURL string
	// Interface limits ICE and API requests to one network interface
	// (empty: any). On the test bed it is the host side of Janus's veth.
	Interface string
	// IdentityField picks what identifies a participant: "feed_id" or
	// "display".
	IdentityField string
	// BotDisplay is the name participants see for the bot.
	BotDisplay string
	Rooms      Selection
	// PollInterval is how often rooms are listed (default 5 s).
	PollInterval time.Duration
	// ChunkDuration and SegmentDuration: see record.TrackConfig.
	ChunkDuration, SegmentDuration time.Duration
	// Connectors lists the Janus plugins whose rooms are recorded
	// (ConnectorVideoRoom, ConnectorAudioBridge); empty means VideoRoom
	// only.
	Connectors []string

	// Coordinator, when set, keeps at most one bot per room across
	// instances and carries sessions over bot restarts; nil means this
	// instance is the only one (every bot stay is a session of its own).
	Coordinator Coordinator
	// SessionGap: with a Coordinator, a bot that joins a room whose session
	// is still open continues it, unless the room had no bot for longer
	// than this (default DefaultSessionGap).
	SessionGap time.Duration
	// SpoolRetry: after a segment failed on a full spool disk (the
	// instance then leaves its rooms, see CategorySpoolFull), rooms are
	// joined again this long after (default DefaultSpoolRetry).
	SpoolRetry time.Duration
	// SkipParticipants are never recorded.
	SkipParticipants ParticipantSkip
	// RoomDescription puts the room's description into the session's
	// metadata (lifecycle.session_started). Off by default: operators may
	// write personal data into descriptions.
	RoomDescription bool
	// Manifests, when set, receives each session's manifest
	// (event.ManifestKey), rewritten at every track end and at session end.
	// If it also implements storage.Getter, a bot that continues another's
	// session extends that session's manifest.
	Manifests storage.Putter

	Pseudonym *pseudonym.Pseudonymizer
	Sender    bus.Sender // earshot.audio and earshot.lifecycle
	Spool     SegmentSpool
	Producer  event.Producer
	// Keys seals the audio of live chunks (package crypt).
	Keys   event.Keys
	Logger *slog.Logger
	// Metrics, when set, receives the stage's collectors.
	Metrics prometheus.Registerer
}

// Stage is the ingest stage: one supervisor, one goroutine per recorded
// room, one per track.
type Stage struct {
	cfg    Config
	log    *slog.Logger
	client *janus.Client
	api    *webrtc.API
	out    *outbox
	m      *metrics
	ticks  TrackTicker // the tracks' 20 ms ticks (see RunTrackLoop)
	rejoin *reconnector
	disk   *spoolGuard

	manMu      sync.Mutex
	manPending map[string]*manifest // manifests whose last write failed, by key

	mu      sync.Mutex
	rooms   map[string]*roomRun // by raw room name; never logged
	skipped map[string]bool     // rooms whose skip was reported

	closeOnce sync.Once
}

// New builds the stage. It does not contact Janus; Run does.
func New(cfg Config) (*Stage, error) {
	var errs []error
	if cfg.JanusURL == "" {
		errs = append(errs, errors.New("ingest.janus.url is empty: point it at the Janus HTTP API"))
	}
	if cfg.Pseudonym == nil || cfg.Sender == nil || cfg.Spool == nil {
		errs = append(errs, errors.New("ingest: Pseudonym, Sender and Spool are required"))
	}
	if cfg.IdentityField != "feed_id" && cfg.IdentityField != "display" {
		errs = append(errs, fmt.Errorf("ingest: identity field %q is not feed_id or display", cfg.IdentityField))
	}
	for _, c := range cfg.Connectors {
		if c != ConnectorVideoRoom && c != ConnectorAudioBridge {
			errs = append(errs, fmt.Errorf("ingest: connector %q is not %s or %s", c, ConnectorVideoRoom, ConnectorAudioBridge))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 5 * time.Second
	}
	if len(cfg.Connectors) == 0 {
		cfg.Connectors = []string{ConnectorVideoRoom}
	}
	if cfg.SessionGap <= 0 {
		cfg.SessionGap = DefaultSessionGap
	}
	if cfg.SpoolRetry <= 0 {
		cfg.SpoolRetry = DefaultSpoolRetry
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	log := cfg.Logger.With("stage", "ingest")
	jc := janus.Config{URL: cfg.JanusURL, Logger: log}
	if cfg.Interface != "" {
		addr, err := interfaceAddr(cfg.Interface)
		if err != nil {
			return nil, err
		}
		jc.LocalAddr = addr
	}
	client, err := janus.New(jc)
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	api, err := janus.NewAPI(janus.WebRTCConfig{Interface: cfg.Interface, AnyInterface: cfg.Interface == ""})
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	s := &Stage{
		cfg: cfg, log: log, client: client, api: api,
		out:   newOutbox(cfg.Sender, 4096, log),
		m:     newMetrics(),
		rooms: map[string]*roomRun{}, skipped: map[string]bool{},
		disk: newSpoolGuard(), manPending: map[string]*manifest{},
	}
	s.rejoin = newReconnector(func(ctx context.Context) error {
		_, err := client.Info(ctx)
		return err
	})
	if cfg.Metrics != nil {
		if err := cfg.Metrics.Register(s.m); err != nil {
			return nil, fmt.Errorf("ingest: metrics: %w", err)
		}
	}
	return s, nil
}

// interfaceAddr returns the first IPv4 address of a network interface, so
// API requests leave through it too.
func interfaceAddr(name string) (string, error) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return "", fmt.Errorf("ingest: interface %q: %w", name, err)
	}
	addrs, err := ifc.Addrs()
	if err != nil {
		return "", fmt.Errorf("ingest: interface %q: %w", name, err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			return n.IP.String(), nil
		}
	}
	return "", fmt.Errorf("ingest: interface %q has no IPv4 address", name)
}

// Run supervises the bots until ctx ends, then shuts down in two phases:
// rooms stop taking media and flush their tracks (final chunks and
// segments), then queued events are produced.
func (s *Stage) Run(ctx context.Context) error {
	flushCtx, cancelFlush := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelFlush()
	outDone := make(chan struct{})
	go func() { s.out.run(flushCtx); close(outDone) }()

	retryDone := make(chan struct{})
	go func() { s.retryManifests(ctx); close(retryDone) }()

	var wg sync.WaitGroup
	s.supervise(ctx, &wg)

	// Phase two: every room goroutine has seen ctx end; wait for their
	// tracks to flush, give manifests that failed a last try, then wait
	// for the outbox to drain (bounded).
	wg.Wait()
	<-retryDone
	lastTry, cancelLast := context.WithTimeout(flushCtx, 10*time.Second)
	s.flushManifests(lastTry)
	cancelLast()
	s.out.close()
	timer := time.AfterFunc(20*time.Second, cancelFlush)
	defer timer.Stop()
	<-outDone
	s.log.Info("ingest stopped", "events_sent", s.out.sent.Load(), "live_chunks_dropped", s.out.dropped.Load())
	return nil
}

// supervise lists rooms every PollInterval and starts a bot for each
// selected room that has none, until ctx ends.
func (s *Stage) supervise(ctx context.Context, wg *sync.WaitGroup) {
	failures := 0
	var ctl *control
	defer func() {
		if ctl != nil {
			ctl.close()
		}
	}()
	for {
		if ctl == nil {
			c, err := s.newControl(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				failures++
				s.log.Warn("janus unreachable; retrying when it answers", "error", safeErr(err), "failures", failures, "retry_in", retryDelay(failures))
				outage, ok := s.rejoin.wait(ctx, failures)
				if !ok {
					return
				}
				if outage {
					failures = 0
				}
				continue
			}
			ctl, failures = c, 0
		}
		rooms, err := ctl.list(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("listing rooms failed; reconnecting", "error", safeErr(err))
			ctl.close()
			ctl = nil
			continue
		}
		full, cleared := s.disk.isFull(time.Now(), s.cfg.SpoolRetry)
		if cleared {
			s.m.spoolFull.Set(0)
			s.log.Info("trying the spool again after a full disk: joining rooms")
		}
		for _, r := range rooms {
			if !full {
				s.maybeStart(ctx, wg, r)
			}
		}
		if !clock.Sleep(ctx, s.cfg.PollInterval) {
			return
		}
	}
}

// control is the supervisor's own Janus session, used for listing.
type control struct {
	s  *janus.Session
	vr *janus.VideoRoom   // nil unless VideoRoom rooms are recorded
	ab *janus.AudioBridge // nil unless AudioBridge rooms are recorded
}

func (s *Stage) newControl(ctx context.Context) (*control, error) {
	sess, err := s.client.CreateSession(ctx)
	if err != nil {
		return nil, err
	}
	c := &control{s: sess}
	if slices.Contains(s.cfg.Connectors, ConnectorVideoRoom) {
		if c.vr, err = janus.AttachVideoRoom(ctx, sess); err != nil {
			sess.Close()
			return nil, err
		}
	}
	if slices.Contains(s.cfg.Connectors, ConnectorAudioBridge) {
		if c.ab, err = janus.AttachAudioBridge(ctx, sess); err != nil {
			sess.Close()
			return nil, err
		}
	}
	return c, nil
}

func (c *control) close() { _ = c.s.Close() }

// list returns the rooms of every recorded plugin.
func (c *control) list(ctx context.Context) ([]roomRef, error) {
	var out []roomRef
	if c.vr != nil {
		rooms, err := c.vr.List(ctx, "")
		if err != nil {
			return nil, err
		}
		for _, r := range rooms {
			out = append(out, videoRoomRef(r))
		}
	}
	if c.ab != nil {
		rooms, err := c.ab.List(ctx)
		if err != nil {
			return nil, err
		}
		for _, r := range rooms {
			out = append(out, audioBridgeRef(r))
		}
	}
	return out, nil
}

// selected applies the room selection to a raw room name.
func (s *Stage) selected(id string) (ok bool, skipped bool) {
	if slices.Contains(s.cfg.Rooms.Skip, id) {
		return false, true
	}
	switch s.cfg.Rooms.Mode {
	case "list":
		return slices.Contains(s.cfg.Rooms.List, id), false
	case "pattern":
		return s.cfg.Rooms.Pattern != nil && s.cfg.Rooms.Pattern.MatchString(id), false
	default:
		return true, false
	}
}

func (s *Stage) maybeStart(ctx context.Context, wg *sync.WaitGroup, r roomRef) {
	id := r.name()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, running := s.rooms[id]; running {
		return
	}
	ok, skipped := s.selected(id)
	roomP := s.cfg.Pseudonym.Room(id)
	if skipped {
		if !s.skipped[id] {
			s.skipped[id] = true // remember, so the skip is logged once
			s.log.Info("room must not be recorded; skipped", "room", roomP)
			s.lifecycle(ctx, roomP, "", event.TypeRecordingSkipped, event.RecordingSkipped{Scope: "room", Reason: "configured skip"}, "room-skip")
		}
		return
	}
	if !ok {
		return
	}
	run := newRoomRun(s, r, roomP)
	s.rooms[id] = run
	wg.Add(1)
	go func() {
		defer wg.Done()
		run.loop(ctx)
		s.mu.Lock()
		delete(s.rooms, id)
		s.mu.Unlock()
	}()
}

// lifecycle queues a lifecycle event on earshot.lifecycle (key = room),
// waiting for queue room: these events must not be dropped.
func (s *Stage) lifecycle(ctx context.Context, room, session string, typ event.Type, payload any, extra ...string) {
	s.lifecycleEvent(ctx, room, session, "", nil, typ, payload, extra...)
}

func (s *Stage) lifecycleEvent(ctx context.Context, room, session, speaker string, tl *event.Timeline, typ event.Type, payload any, extra ...string) {
	e, err := event.New(typ, s.cfg.Producer, nil, room, session, speaker, tl, payload, extra...)
	if err == nil {
		var b []byte
		if b, err = e.Marshal(); err == nil {
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			err = s.out.SendWait(wctx, bus.Message{Topic: event.TopicLifecycle, Key: []byte(room), Value: b})
			cancel()
		}
	}
	if err != nil {
		s.log.Error("lifecycle event lost", "type", typ, "room", room, "error", err)
	}
}

// Close releases the stage. It is idempotent; Run must have returned.
func (s *Stage) Close() error {
	s.closeOnce.Do(func() { s.out.close() })
	return nil
}

// safeErr keeps Janus's own error text out of logs: Janus puts participant
// and room IDs in its reasons ("User ID ... already exists"), and raw IDs
// must not leave this package. The code is enough to act on.
func safeErr(err error) error {
	var pe *janus.PluginError
	if errors.As(err, &pe) {
		return fmt.Errorf("janus plugin error %d", pe.Code)
	}
	var je *janus.Error
	if errors.As(err, &je) {
		return fmt.Errorf("janus error %d", je.Code)
	}
	return err
}
