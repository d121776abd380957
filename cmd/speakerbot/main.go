// Command speakerbot publishes an Ogg/Opus file into a Janus VideoRoom in
// real time and writes a publish log (JSON lines) of when each part of it
// was sent. It is a test-bed tool: see internal/speakerbot.
//
//	go run ./cmd/speakerbot -room 1234 -display "Speaker A" \
//	    -file hello.ogg -log hello.publog.jsonl
//
// The Janus endpoint defaults to $JANUS_URL, $JANUS_HOST_IFACE and
// $JANUS_HOST_ADDR (the keys of out/testbed/janus.env, so
// `set -a; . out/testbed/janus.env; set +a` works).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/earshot/earshot/ingest/janus"
	"github.com/earshot/earshot/internal/speakerbot"
)

// windows is a repeatable AT:FOR flag, e.g. -mute 10s:5s.
type windows []speakerbot.Window

// String implements flag.Value.
func (w *windows) String() string {
	parts := make([]string, len(*w))
	for i, x := range *w {
		parts[i] = x.At.String() + ":" + x.For.String()
	}
	return strings.Join(parts, ",")
}

// Set implements flag.Value: each use adds a window.
func (w *windows) Set(s string) error {
	at, dur, ok := strings.Cut(s, ":")
	if !ok {
		return fmt.Errorf("want AT:FOR, e.g. 10s:5s, got %q", s)
	}
	a, err := time.ParseDuration(at)
	if err != nil {
		return fmt.Errorf("AT: %w", err)
	}
	d, err := time.ParseDuration(dur)
	if err != nil {
		return fmt.Errorf("FOR: %w", err)
	}
	*w = append(*w, speakerbot.Window{At: a, For: d})
	return nil
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "speakerbot:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		url     = flag.String("janus", os.Getenv("JANUS_URL"), "Janus HTTP API URL (default $JANUS_URL)")
		iface   = flag.String("iface", os.Getenv("JANUS_HOST_IFACE"), "the only interface ICE may use (default $JANUS_HOST_IFACE)")
		local   = flag.String("local-addr", os.Getenv("JANUS_HOST_ADDR"), "source address of API requests (default $JANUS_HOST_ADDR)")
		room    = flag.String("room", "1234", "VideoRoom to publish in")
		display = flag.String("display", "Speaker", "display name in the room")
		feed    = flag.String("feed-id", "", "participant ID to register (default: Janus picks)")
		file    = flag.String("file", "", "Ogg/Opus file to play (required)")
		cues    = flag.String("cues", "", "cue sheet (default <file>.cues.json when it exists)")
		logPath = flag.String("log", "-", "publish log (JSON lines); - for stdout")
		leadIn  = flag.Duration("lead-in", 0, "wait this long after connecting before playing")
		mutes   windows
		rejoins windows
	)
	flag.Var(&mutes, "mute", "AT:FOR: stop sending at audio offset AT for FOR (repeatable)")
	flag.Var(&rejoins, "rejoin", "AT:FOR: leave at audio offset AT, rejoin after FOR with the same feed ID (repeatable)")
	flag.Parse()
	if *file == "" {
		flag.Usage()
		return errors.New("-file is required")
	}

	var out io.Writer = os.Stdout
	if *logPath != "-" {
		f, err := os.OpenFile(*logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		out = f
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	var feedID janus.ID
	if *feed != "" {
		feedID = janus.ParseID(*feed)
	}
	bot, err := speakerbot.New(speakerbot.Config{
		JanusURL: *url, LocalAddr: *local, Interface: *iface, Room: janus.ParseID(*room), Display: *display, FeedID: feedID,
		File: *file, CuesFile: *cues, Log: out, Mutes: mutes, Rejoins: rejoins, LeadIn: *leadIn, Logger: logger,
	})
	if err != nil {
		return err
	}
	defer bot.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return bot.Run(ctx)
}
