// Command publisher is the sending side of the WebRTC recording benchmark
// (package webrtcbench): it plays an Ogg/Opus file's packets in a loop on
// -tracks Opus tracks over -pcs peer connections to a receiver on
// loopback, prints "connected" once every peer connection is up, sends
// until SIGTERM or SIGINT, and then prints {"max_lag_ms": ...}: how far
// behind its schedule it fell at worst.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/earshot/earshot/ingest/webrtcbench"
	"github.com/earshot/earshot/internal/speakerbot"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "publisher:", err)
		os.Exit(1)
	}
}

func run() error {
	url := flag.String("url", "", "the receiver's HTTP API (http://127.0.0.1:port)")
	tracks := flag.Int("tracks", 100, "Opus tracks to send")
	pcs := flag.Int("pcs", 1, "peer connections to spread them over")
	opus := flag.String("opus", "", "Ogg/Opus file of 20 ms packets to play in a loop")
	verbose := flag.Bool("v", false, "log to stderr")
	flag.Parse()
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	f, err := os.Open(*opus)
	if err != nil {
		return err
	}
	file, err := speakerbot.ReadOpusFile(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", *opus, err)
	}
	var pkts [][]byte
	for _, p := range file.Packets {
		if p.Samples != 960 {
			return fmt.Errorf("%s: a packet of %d samples: want 20 ms packets only", *opus, p.Samples)
		}
		pkts = append(pkts, p.Data)
	}
	p, err := webrtcbench.NewPublisher(webrtcbench.PublisherConfig{URL: *url, Tracks: *tracks, PeerConnections: *pcs, Packets: pkts, Logger: log})
	if err != nil {
		return err
	}
	defer p.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	// Connections are negotiated one after another: a searched load of
	// many small rooms has hundreds.
	cctx, cancel := context.WithTimeout(ctx, time.Minute+time.Duration(*pcs)*200*time.Millisecond)
	defer cancel()
	if err := p.Connect(cctx); err != nil {
		return err
	}
	fmt.Println("connected")
	if err := p.Run(ctx); err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]float64{"max_lag_ms": float64(p.MaxLag()) / float64(time.Millisecond)})
}
