// Package engines builds the transcription engine a configuration names:
// the OpenAI-compatible HTTP client (transcribe/httpengine) or whisper.cpp
// in process (transcribe/whispercpp, in binaries built with the `whisper`
// tag). It sits beside the engines rather than in package transcribe
// because the engines import transcribe for its Audio and Result types.
package engines

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/earshot/earshot/transcribe"
	"github.com/earshot/earshot/transcribe/httpengine"
	"github.com/earshot/earshot/transcribe/whispercpp"
)

// Engine kinds.
const (
	HTTP    = "http"    // an OpenAI-compatible /v1/audio/transcriptions server
	Whisper = "whisper" // whisper.cpp in process
)

// ErrNotConfigured marks a configuration that names no usable engine.
var ErrNotConfigured = errors.New("transcription engine not configured")

// Config says which engine to build and how.
type Config struct {
	// Kind is HTTP (the default when empty) or Whisper.
	Kind string
	// URL is the HTTP server's root (HTTP only; required there).
	URL string
	// APIKeyFile holds the bearer token for the HTTP server, if any.
	APIKeyFile string
	// Model is the model name sent to the server, or the whisper.cpp
	// model's name in transcript revisions.
	Model string
	// ModelPath is the converted ggml model file (Whisper only).
	ModelPath string
	// Threads bounds whisper.cpp's threads per call (Whisper only).
	Threads int
	// Window is whisper.cpp's encoder window, full or fit (Whisper only;
	// whispercpp.Config.Window).
	Window string
	// Timeout and Concurrency bound the HTTP client's requests.
	Timeout     time.Duration
	Concurrency int
	// Logger hears that audio leaves the machine, when it does.
	Logger *slog.Logger
}

// New builds the engine c names and a function that releases it.
func New(c Config) (transcribe.Engine, func(), error) {
	switch c.Kind {
	case Whisper:
		w, err := whispercpp.New(whispercpp.Config{ModelPath: c.ModelPath, Model: c.Model, Threads: c.Threads, Window: c.Window})
		if err != nil {
			return nil, nil, fmt.Errorf("transcribe: whisper engine: %w", err)
		}
		return w, func() { _ = w.Close() }, nil
	case HTTP, "":
	default:
		return nil, nil, fmt.Errorf("transcribe: engine %q: want %q or %q: %w", c.Kind, HTTP, Whisper, ErrNotConfigured)
	}
	if c.URL == "" {
		return nil, nil, fmt.Errorf("transcribe.url is empty: point it at an OpenAI-compatible /v1/audio/transcriptions server: %w", ErrNotConfigured)
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
	if !eng.Local() && c.Logger != nil {
		// Sending audio to a server outside this machine is a choice the
		// operator made; say so where it will be seen.
		c.Logger.Warn("transcription sends audio to a remote server", "endpoint", eng.Endpoint())
	}
	return eng, func() {}, nil
}
