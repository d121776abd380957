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
)

func init() { stageBuilders["transcribe"] = newTranscribeStage }

func newTranscribeStage(_ context.Context, rt *Runtime) (Stage, error) {
	c := rt.Config.Transcribe
	if c.Engine != "http" {
		return nil, fmt.Errorf("transcribe.engine %q needs a binary built with -tags whisper: %w", c.Engine, errNotConfigured)
	}
	if c.URL == "" {
		return nil, fmt.Errorf("transcribe.url is empty: point it at an OpenAI-compatible /v1/audio/transcriptions server: %w", errNotConfigured)
	}
	var key string
	if c.APIKeyFile != "" {
		b, err := os.ReadFile(c.APIKeyFile)
		if err != nil {
			return nil, fmt.Errorf("transcribe.api_key_file: %w", err)
		}
		key = strings.TrimSpace(string(b))
	}
	eng, err := httpengine.New(httpengine.Config{BaseURL: c.URL, Model: c.Model, APIKey: key, Timeout: c.Timeout, Concurrency: c.Concurrency})
	if err != nil {
		return nil, err
	}
	if !eng.Local() {
		// Sending audio to a server outside this machine is a choice the
		// operator made; say so where it will be seen.
		rt.Log.Warn("transcription sends audio to a remote server", "endpoint", eng.Endpoint())
	}
	cons, err := bus.NewConsumer(bus.ConsumerConfig{
		Brokers: rt.Brokers, GroupID: "earshot-transcribe", Topics: []string{event.TopicAudio},
		StartOffset: bus.FirstOffset, ClientID: rt.Config.Kafka.ClientID, Logger: rt.Log,
	})
	if err != nil {
		return nil, err
	}
	return transcribe.NewWorker(transcribe.WorkerConfig{
		Consumer: cons, Sender: rt.Producer, Engine: eng, Language: c.Language,
		Producer: rt.Self, Logger: rt.Log, Metrics: rt.Metrics, LogText: rt.Config.Log.Transcripts,
	})
}
