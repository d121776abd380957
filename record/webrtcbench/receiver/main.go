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

	"github.com/earshot/earshot/record/webrtcbench"
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
	loop := flag.String("loop", webrtcbench.LoopIngest, "track loop: ingest (as the ingest stage) or direct (experiment)")
	lean := flag.Bool("lean", false, "NACK and RTCP reports only, no TWCC or stats interceptor (experiment)")
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
	r, err := webrtcbench.NewReceiver(webrtcbench.ReceiverConfig{
		SegmentDuration: *segment, ChunkDuration: *chunk, Loop: *loop, LeanInterceptors: *lean, Logger: log,
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
