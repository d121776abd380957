// Package speakerbot is a test-bed participant that joins a Janus VideoRoom
// as a publisher and plays an Ogg/Opus file into it in real time, writing a
// publish log (JSON lines) of when each part of the file was sent. The log
// is the ground truth for timing and latency checks.
//
// Pacing follows the file's sample counts against a monotonic clock: packet
// n is due at start + (samples before n)/48 kHz, so scheduling jitter never
// accumulates into drift. One RTP packet carries one Opus packet; its
// timestamp is the packet's sample position (plus any paused time).
package speakerbot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/earshot/earshot/ingest/janus"
)

// Window is a pause in the playback: it begins before the first packet at
// or after audio offset At (after pre-skip) and lasts For.
type Window struct {
	At  time.Duration
	For time.Duration
}

// Config configures a Bot.
type Config struct {
	// JanusURL is the HTTP API base, e.g. http://10.77.0.2:8088/janus.
	JanusURL string
	// LocalAddr is the source address of API requests (the test bed's
	// JANUS_HOST_ADDR), see janus.Config.LocalAddr. Optional.
	LocalAddr string
	// Interface is the only interface ICE may use (the test bed's esj0).
	Interface string
	// Room is the VideoRoom to publish in.
	Room janus.ID
	// Display is the display name in the room.
	Display string
	// FeedID is the participant ID to register; zero lets Janus pick one.
	// A rejoin reuses whichever ID the first join had.
	FeedID janus.ID
	// File is the Ogg/Opus file to play.
	File string
	// CuesFile is the cue sheet; empty means CuesPath(File) if it exists.
	CuesFile string
	// Log receives the publish log, one JSON object per line. Required.
	Log io.Writer
	// Mutes stop sending (and pause the file) for a while; the RTP
	// timestamps advance by the paused time, as a real sender's would.
	Mutes []Window
	// Rejoins leave the room, wait, and join again with the same feed ID.
	Rejoins []Window
	// LeadIn is a wait between being connected and the first packet, so
	// that listeners can subscribe before the audio starts.
	LeadIn time.Duration
	// Logger for operational messages; default slog.Default().
	Logger *slog.Logger
	// HTTPClient for the Janus API; default its own.
	HTTPClient *http.Client
}

// Bot plays one file into one room. Create it with New, run it with Run.
type Bot struct {
	cfg    Config
	file   *OpusFile
	cues   *CueSheet
	plog   *logWriter
	logger *slog.Logger

	stop      chan struct{}
	closeOnce sync.Once
}

// New loads the file and its cue sheet and checks cfg. It does not contact
// Janus.
func New(cfg Config) (*Bot, error) {
	switch {
	case cfg.JanusURL == "":
		return nil, errors.New("speakerbot: JanusURL is required")
	case cfg.Interface == "":
		return nil, errors.New("speakerbot: Interface is required (the host end of the Janus veth, e.g. esj0)")
	case cfg.Room.IsZero():
		return nil, errors.New("speakerbot: Room is required")
	case cfg.File == "":
		return nil, errors.New("speakerbot: File is required")
	case cfg.Log == nil:
		return nil, errors.New("speakerbot: Log is required")
	}
	for _, w := range append(append([]Window{}, cfg.Mutes...), cfg.Rejoins...) {
		if w.At < 0 || w.For <= 0 {
			return nil, fmt.Errorf("speakerbot: window %v+%v: At must be >= 0 and For > 0", w.At, w.For)
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	f, err := os.Open(cfg.File)
	if err != nil {
		return nil, fmt.Errorf("speakerbot: %w", err)
	}
	defer f.Close()
	file, err := ReadOpusFile(f)
	if err != nil {
		return nil, fmt.Errorf("speakerbot: %s: %w", cfg.File, err)
	}
	cuesPath, explicit := cfg.CuesFile, cfg.CuesFile != ""
	if !explicit {
		cuesPath = CuesPath(cfg.File)
	}
	cues, err := LoadCues(cuesPath)
	if err != nil && (explicit || !errors.Is(err, fs.ErrNotExist)) {
		return nil, fmt.Errorf("speakerbot: cue sheet: %w", err)
	}
	return &Bot{
		cfg:    cfg,
		file:   file,
		cues:   cues,
		plog:   &logWriter{w: cfg.Log},
		logger: cfg.Logger.With("component", "speakerbot", "room", cfg.Room.String()),
		stop:   make(chan struct{}),
	}, nil
}

// File returns the parsed Ogg/Opus file.
func (b *Bot) File() *OpusFile { return b.file }

// Cues returns the cue sheet, or nil when the file has none.
func (b *Bot) Cues() *CueSheet { return b.cues }

// Close stops a running Run (which then logs an "end" line and leaves the
// room). It is idempotent and does not wait.
func (b *Bot) Close() error {
	b.closeOnce.Do(func() { close(b.stop) })
	return nil
}

// Run joins the room, plays the file once and leaves. It returns nil when
// the whole file was sent, and ctx's error when stopped early.
func (b *Bot) Run(ctx context.Context) error {
	return b.runSession(ctx, func(ctx context.Context, sess *janus.Session, api *webrtc.API, feed janus.ID) (sink, error) {
		return janus.Publish(ctx, sess, janus.PublisherConfig{
			API: api, Room: b.cfg.Room, ID: feed, Display: b.cfg.Display,
		})
	})
}

// joinFunc joins the room (again) in sess as feed, zero meaning "any".
type joinFunc func(ctx context.Context, sess *janus.Session, api *webrtc.API, feed janus.ID) (sink, error)

// runSession opens a Janus session and plays the file through join's
// participant until done, Close or ctx.
func (b *Bot) runSession(ctx context.Context, join joinFunc) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-b.stop:
			cancel()
		case <-ctx.Done():
		}
	}()

	client, err := janus.New(janus.Config{URL: b.cfg.JanusURL, LocalAddr: b.cfg.LocalAddr, HTTPClient: b.cfg.HTTPClient, Logger: b.cfg.Logger})
	if err != nil {
		return fmt.Errorf("speakerbot: %w", err)
	}
	api, err := janus.NewAPI(janus.WebRTCConfig{Interface: b.cfg.Interface})
	if err != nil {
		return fmt.Errorf("speakerbot: %w", err)
	}
	sess, err := client.CreateSession(ctx)
	if err != nil {
		return fmt.Errorf("speakerbot: %w", err)
	}
	defer sess.Close()
	return b.run(ctx, func(ctx context.Context, feed janus.ID) (sink, error) {
		s, err := join(ctx, sess, api, feed)
		if err != nil {
			return nil, fmt.Errorf("speakerbot: %w", err)
		}
		return s, nil
	})
}

// sink receives the packets: a *janus.Publisher, or a fake in tests.
type sink interface {
	WriteRTP(*rtp.Packet) error
	FeedID() janus.ID
	Close() error
}

var _ sink = (*janus.Publisher)(nil)

// connectFunc joins the room (again) as feed, zero meaning "any".
type connectFunc func(ctx context.Context, feed janus.ID) (sink, error)

// run joins, waits the lead-in, plays the file and leaves.
func (b *Bot) run(ctx context.Context, connect connectFunc) error {
	p := &player{bot: b, connect: connect, feed: b.cfg.FeedID}
	if err := p.join(ctx); err != nil {
		return err
	}
	defer func() { _ = p.pub.Close() }()
	if err := sleepUntil(ctx, time.Now().Add(b.cfg.LeadIn)); err != nil {
		return p.end(0, err)
	}
	return p.play(ctx)
}

// player is the state of one Run.
type player struct {
	bot     *Bot
	connect connectFunc
	feed    janus.ID
	pub     sink
}

func (p *player) join(ctx context.Context) error {
	pub, err := p.connect(ctx, p.feed)
	if err != nil {
		return err
	}
	p.pub, p.feed = pub, pub.FeedID()
	return nil
}

type window struct {
	Window
	rejoin bool
}

// cueTiming locates a cue's first and last sample in the packet list.
type cueTiming struct {
	cue                Cue
	startIdx, endIdx   int
	startPos, endPos   int64 // stream samples (pre-skip included)
	startOver, endOver bool  // beyond the file: clamped
}

func (p *player) play(ctx context.Context) error {
	b := p.bot
	pkts := b.file.Packets
	preSkip := b.file.PreSkip()
	cues := p.timeCues()
	windows := make([]window, 0, len(b.cfg.Mutes)+len(b.cfg.Rejoins))
	for _, w := range b.cfg.Mutes {
		windows = append(windows, window{Window: w})
	}
	for _, w := range b.cfg.Rejoins {
		windows = append(windows, window{Window: w, rejoin: true})
	}
	sort.SliceStable(windows, func(i, j int) bool { return windows[i].At < windows[j].At })

	sent := make([]time.Time, len(pkts)) // when each packet was written
	due := make([]time.Time, len(pkts))  // when it was scheduled
	seq := uint16(rand.Uint32())
	ts0 := rand.Uint32()
	var (
		origin  time.Time
		shift   time.Duration // paused time so far
		tsShift int64         // the same, in samples
		marker  = true
		nextCue int
		wi      int
	)
	for i, pk := range pkts {
		if i == 0 {
			origin = time.Now()
		}
		due[i] = origin.Add(shift + samplesDur(pk.Start))
		if err := sleepUntil(ctx, due[i]); err != nil {
			return p.end(i, err)
		}
		offset := samplesDur(pk.Start - preSkip)
		for wi < len(windows) && windows[wi].At <= offset {
			w := windows[wi]
			wi++
			before := shift
			if err := p.pause(ctx, w, max(pk.Start-preSkip, 0)); err != nil {
				return p.end(i, err)
			}
			// Re-anchor: the next packet is due now (rejoining takes time).
			shift = max(before+w.For, time.Since(origin)-samplesDur(pk.Start))
			tsShift += durSamples(shift - before)
			due[i] = origin.Add(shift + samplesDur(pk.Start))
			marker = true
		}
		err := p.pub.WriteRTP(&rtp.Packet{
			Header: rtp.Header{
				Version:        2,
				Marker:         marker,
				SequenceNumber: seq,
				Timestamp:      ts0 + uint32(pk.Start+tsShift),
			},
			Payload: pk.Data,
		})
		sent[i] = time.Now()
		if err != nil {
			return p.end(i, fmt.Errorf("speakerbot: write RTP: %w", err))
		}
		seq++
		marker = false
		if i == 0 {
			if err := b.plog.write(LogEntry{
				Event: EventStart, UTC: utcPtr(sent[0]), Room: b.cfg.Room, FeedID: p.feed,
				Display: b.cfg.Display, File: filepath.Base(b.cfg.File),
				DurationMS: b.file.DurationSamples() * 1000 / SampleRate,
			}); err != nil {
				return err
			}
		}
		for nextCue < len(cues) && cues[nextCue].endIdx <= i {
			if err := p.logCue(cues[nextCue], sent, due); err != nil {
				return err
			}
			nextCue++
		}
	}
	return p.end(len(pkts), nil)
}

// pause carries out a mute or rejoin window at audio offset atSamples.
func (p *player) pause(ctx context.Context, w window, atSamples int64) error {
	b := p.bot
	at := i64Ptr(atSamples * 1000 / SampleRate)
	first, second := EventMute, EventUnmute
	if w.rejoin {
		first, second = EventLeave, EventJoin
	}
	if err := b.plog.write(LogEntry{Event: first, UTC: utcPtr(time.Now()), Room: b.cfg.Room, FeedID: p.feed, AtMS: at}); err != nil {
		return err
	}
	resume := time.Now().Add(w.For)
	if w.rejoin {
		if err := p.pub.Close(); err != nil {
			b.logger.Warn("speakerbot: leave failed", "err", err)
		}
	}
	if err := sleepUntil(ctx, resume); err != nil {
		return err
	}
	if w.rejoin {
		if err := p.join(ctx); err != nil {
			return err
		}
	}
	return b.plog.write(LogEntry{Event: second, UTC: utcPtr(time.Now()), Room: b.cfg.Room, FeedID: p.feed, AtMS: at})
}

func (p *player) end(sentPackets int, cause error) error {
	e := LogEntry{Event: EventEnd, UTC: utcPtr(time.Now()), Room: p.bot.cfg.Room, FeedID: p.feed, Packets: sentPackets}
	if cause != nil {
		e.Reason = cause.Error()
	}
	if err := p.bot.plog.write(e); err != nil && cause == nil {
		return err
	}
	return cause
}

// timeCues maps each cue to the packets holding its first and last
// samples, ordered by when the last one is sent.
func (p *player) timeCues() []cueTiming {
	if p.bot.cues == nil {
		return nil
	}
	f := p.bot.file
	out := make([]cueTiming, 0, len(p.bot.cues.Cues))
	for _, c := range p.bot.cues.Cues {
		t := cueTiming{cue: c}
		t.startPos = f.PreSkip() + msSamples(c.StartMS)
		t.endPos = f.PreSkip() + msSamples(c.EndMS)
		t.startIdx, t.startOver = f.packetAt(t.startPos)
		last := t.endPos - 1 // end is exclusive
		if c.EndMS == c.StartMS {
			last = t.endPos
		}
		t.endIdx, t.endOver = f.packetAt(last)
		if t.startOver || t.endOver {
			p.bot.logger.Warn("speakerbot: cue extends beyond the file; clamped", "start_ms", c.StartMS, "end_ms", c.EndMS)
		}
		out = append(out, t)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].endIdx < out[j].endIdx })
	return out
}

// packetAt returns the index of the packet holding stream sample pos; over
// reports that pos lies past the end (the last packet is returned).
func (f *OpusFile) packetAt(pos int64) (idx int, over bool) {
	i := sort.Search(len(f.Packets), func(i int) bool { return f.Packets[i].Start > pos }) - 1
	if i < 0 {
		return 0, false
	}
	last := f.Packets[len(f.Packets)-1]
	return i, pos >= last.Start+int64(last.Samples)
}

// logCue writes a cue line. A cue's time is the send time of the packet
// holding its sample plus that sample's position within the packet; its
// scheduled time is the same from the packet's due time.
func (p *player) logCue(t cueTiming, sent, due []time.Time) error {
	pk := p.bot.file.Packets
	at := func(times []time.Time, idx int, pos int64) *time.Time {
		off := min(max(pos-pk[idx].Start, 0), int64(pk[idx].Samples))
		return utcPtr(times[idx].Add(samplesDur(off)))
	}
	c := t.cue
	return p.bot.plog.write(LogEntry{
		Event: EventCue, Room: p.bot.cfg.Room, FeedID: p.feed,
		Kind: c.Kind, Text: c.Text, Voice: c.Voice, FreqHz: c.FreqHz,
		StartMS: i64Ptr(c.StartMS), EndMS: i64Ptr(c.EndMS),
		StartUTC: at(sent, t.startIdx, t.startPos), EndUTC: at(sent, t.endIdx, t.endPos),
		StartSchedUTC: at(due, t.startIdx, t.startPos), EndSchedUTC: at(due, t.endIdx, t.endPos),
	})
}

func samplesDur(n int64) time.Duration { return time.Duration(n) * time.Second / SampleRate }

func durSamples(d time.Duration) int64 { return int64(d * SampleRate / time.Second) }

func msSamples(ms int64) int64 { return ms * SampleRate / 1000 }

// sleepUntil waits for the monotonic deadline t or ctx.
func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
