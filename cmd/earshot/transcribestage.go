package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/transcribe"
	"github.com/earshot/earshot/transcribe/httpengine"
	"github.com/earshot/earshot/transcribe/whispercpp"
)

func init() { stageBuilders["transcribe"] = newTranscribeStage }

func newTranscribeStage(_ context.Context, rt *Runtime) (Stage, error) {
	c := rt.Config.Transcribe
	eng, closeEngine, err := newEngine(rt)
	if err != nil {
		return nil, err
	}
	cons, err := bus.NewConsumer(bus.ConsumerConfig{
		Brokers: rt.Brokers, GroupID: "earshot-transcribe", Topics: []string{event.TopicAudio},
		StartOffset: bus.FirstOffset, ClientID: rt.Config.Kafka.ClientID, Logger: rt.Log,
	})
	if err != nil {
		closeEngine()
		return nil, err
	}
	w, err := transcribe.NewWorker(transcribe.WorkerConfig{
		Consumer: cons, Sender: rt.Producer, Engine: eng, Language: c.Language,
		Producer: rt.Self, Keys: rt.Keys, Logger: rt.Log, Metrics: rt.Metrics, LogText: rt.Config.Log.Transcripts,
	})
	if err != nil {
		closeEngine()
		return nil, err
	}
	return &transcribeStage{Worker: w, closeEngine: closeEngine}, nil
}

// transcribeStage is the worker plus the engine it owns.
type transcribeStage struct {
	*transcribe.Worker
	closeEngine func()
}

func (s *transcribeStage) Close() error {
	err := s.Worker.Close()
	s.closeEngine()
	return err
}

// newEngine builds the configured engine and a function that releases it.
func newEngine(rt *Runtime) (transcribe.Engine, func(), error) {
	c := rt.Config.Transcribe
	if c.Engine == "whisper" {
		w, err := whispercpp.New(whispercpp.Config{ModelPath: c.ModelPath, Model: c.Model, Threads: c.Threads})
		if err != nil {
			return nil, nil, fmt.Errorf("transcribe: whisper engine: %w", err)
		}
		return w, func() { _ = w.Close() }, nil
	}
	if c.URL == "" {
		return nil, nil, fmt.Errorf("transcribe.url is empty: point it at an OpenAI-compatible /v1/audio/transcriptions server: %w", errNotConfigured)
	}
	var key string
	if c.APIKeyFile != "" {
		b, err := os.ReadFile(c.APIKeyFile)
		if err != nil {
			return nil, nil, fmt.Errorf("transcribe.api_key_file: %w", err)
		}
		key = strings.TrimSpace(string(b))
	}
	eng, err := httpengine.New(httpengine.Config{BaseURL: c.URL, Model: c.Model, APIKey: key, Timeout: c.Timeout, Concurrency: c.Concurrency})
	if err != nil {
		return nil, nil, err
	}
	if !eng.Local() {
		// Sending audio to a server outside this machine is a choice the
		// operator made; say so where it will be seen.
		rt.Log.Warn("transcription sends audio to a remote server", "endpoint", eng.Endpoint())
	}
	return eng, func() {}, nil
}
