// Command receiver is the bot side of the WebRTC recording benchmark
// (package webrtcbench): it listens for offers on a loopback HTTP port,
// prints {"url": ...} as its first line on stdout, and records every track
// it receives until SIGTERM or SIGINT.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"

	"github.com/earshot/earshot/ingest/janus"
	"github.com/earshot/earshot/ingest/webrtcbench"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "receiver:", err)
		os.Exit(1)
	}
}

func run() error {
	segment := flag.Duration("segment", 0, "segment duration (0: the recorder's default)")
	chunk := flag.Duration("chunk", 0, "chunk duration (0: the recorder's default)")
	verbose := flag.Bool("v", false, "log to stderr")
	profile := flag.Bool("pprof", false, "serve /debug/pprof/ on the API port too")
	interceptors := flag.String("interceptors", "", "interceptors: \"\" the bots' (janus.ListenerInterceptors), pion (pion's defaults), nack-rr (NACK and reports, without the bots' attribute reuse), none (experiment)")
	discard := flag.Bool("discard", false, "read every track through pion and drop the packets, recording nothing: pion's own cost (experiment)")
	readInterval := flag.Duration("read-interval", 0, "UDP read batching interval (0: the bots' default; negative: off; experiment)")
	procs := flag.Int("gomaxprocs", 0, "GOMAXPROCS (0: Go's default; experiment)")
	flag.Parse()
	if *procs > 0 {
		runtime.GOMAXPROCS(*procs)
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	wc := janus.WebRTCConfig{ReadInterval: *readInterval}
	switch *interceptors {
	case "":
	case "none":
		wc.ConfigureInterceptors = func(*webrtc.MediaEngine, *interceptor.Registry) error { return nil }
	case "pion":
		wc.ConfigureInterceptors = webrtc.RegisterDefaultInterceptors
	case "nack-rr":
		wc.ConfigureInterceptors = func(me *webrtc.MediaEngine, ir *interceptor.Registry) error {
			if err := webrtc.ConfigureNack(me, ir); err != nil {
				return err
			}
			return webrtc.ConfigureRTCPReports(ir)
		}
	default:
		return fmt.Errorf("-interceptors %q: want \"\", pion, nack-rr or none", *interceptors)
	}
	r, err := webrtcbench.NewReceiver(webrtcbench.ReceiverConfig{
		SegmentDuration: *segment, ChunkDuration: *chunk, WebRTC: wc, Discard: *discard, Logger: log,
	})
	if err != nil {
		return err
	}
	defer r.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	handler := r.Handler()
	if *profile {
		mux := http.NewServeMux()
		mux.Handle("/", handler)
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		handler = mux
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	if err := json.NewEncoder(os.Stdout).Encode(map[string]string{"url": "http://" + ln.Addr().String()}); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
