// Package whispercpp is a transcribe.Engine that runs whisper.cpp in
// process through its official Go bindings
// (github.com/ggerganov/whisper.cpp/bindings/go).
//
// The engine is compiled only with the `whisper` build tag, because it needs
// libwhisper and ggml at build time (Debian: libwhisper-dev, in sid only);
// without the tag New returns ErrNotBuilt, so callers need no tags of their
// own. testbed/whisper-sid.sh builds and smoke-tests the tagged package in a
// Debian sid root.
//
// One Engine holds one model. whisper.cpp keeps a single decoding state per
// model and the bindings keep package-global callback maps, so every
// whisper_full call in the process is serialised: Transcribe may be called
// from many goroutines, and they take turns. Run one engine (one model) per
// worker process and scale with processes.
//
// The engine decodes as Earshot's HTTP engine has faster-whisper decode
// (greedy, one candidate per step of the temperature fallback 0 to 1.0,
// blank and non-speech tokens suppressed, thresholds -1 log-probability
// and 0.6 no-speech), and takes word times from whisper.cpp's DTW
// alignment when the model has the shape of a Whisper release (its
// published alignment heads), as faster-whisper does from cross-attention.
// The segments' no-speech probability and mean log-probability feed the
// same no-speech filter as the HTTP engine's (transcribe.Filter). Models
// come from whisper.cpp's downloads or from a CTranslate2 (faster-whisper)
// model folder through `earshot model convert` (package ct2).
//
// Two facts about Debian's whisper.cpp shape the build: ggml's CPU backend
// ships only as variants loaded at run time, so the bindings' -lggml-cpu
// needs an empty stub library on the link path (CGO_LDFLAGS=-L<dir>), and
// the backends must be loaded (ggml_backend_load_all) before a model is, or
// whisper.cpp aborts with GGML_ASSERT(device). New does the latter once per
// process.
package whispercpp

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
)

// Name is the engine's name in a transcript's processing block.
const Name = "whisper-cpp"

// Config configures an Engine. Zero fields take the defaults given.
type Config struct {
	// ModelPath is the ggml model file, e.g. ggml-tiny.en.bin (required).
	ModelPath string
	// Model names the model in transcripts' revisions; default: the file's
	// name without "ggml-" and ".bin" (ggml-tiny.en.bin: "tiny.en").
	Model string
	// Threads is how many threads whisper.cpp computes with per call
	// (min(4, CPUs)).
	Threads int
	// Window is how much of Whisper's 30 s input window the encoder
	// computes per call: WindowFull (the default) all of it, as
	// faster-whisper and OpenAI's Whisper do; WindowFit only the part the
	// audio fills and a second of the silence after it, about a tenth of
	// the time for a live utterance, but tiny.en then hears other words on
	// a few utterances in ten (see window.go).
	Window string
}

// ErrNotBuilt is New's error in a build without the `whisper` tag.
var ErrNotBuilt = errors.New("whispercpp: this binary was built without the `whisper` build tag; build with -tags whisper against libwhisper (Debian sid: libwhisper-dev)")

// ErrUnsupportedLanguage is Transcribe's error for a language the model
// cannot transcribe (any but English on an English-only model, or a code
// whisper.cpp does not know).
var ErrUnsupportedLanguage = errors.New("whispercpp: unsupported language")

// ErrClosed is Transcribe's error after Close.
var ErrClosed = errors.New("whispercpp: engine closed")

// withDefaults fills cfg's zero fields and checks it.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.ModelPath == "" {
		return cfg, errors.New("whispercpp: config: ModelPath is empty; set it to a ggml model file, e.g. ggml-tiny.en.bin")
	}
	if cfg.Model == "" {
		cfg.Model = modelName(cfg.ModelPath)
	}
	if cfg.Threads == 0 {
		cfg.Threads = min(4, runtime.NumCPU())
	}
	switch cfg.Window {
	case "":
		cfg.Window = WindowFull
	case WindowFit, WindowFull:
	default:
		return cfg, fmt.Errorf("whispercpp: config: Window %q must be %q or %q", cfg.Window, WindowFit, WindowFull)
	}
	if cfg.Threads < 0 {
		return cfg, fmt.Errorf("whispercpp: config: Threads %d must not be negative", cfg.Threads)
	}
	return cfg, nil
}

// modelName derives a model's name from its file name the way whisper.cpp
// names its downloads (ggml-<model>.bin).
func modelName(path string) string {
	n := filepath.Base(path)
	n = strings.TrimSuffix(n, ".bin")
	n = strings.TrimPrefix(n, "ggml-")
	return n
}
