//go:build whisper

package whispercpp

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/earshot/earshot/transcribe"
	"github.com/earshot/earshot/transcribe/whispercpp/internal/ggmlmodel"
)

// The smoke test runs in the Debian sid root (testbed/whisper-sid.sh smoke)
// against weightless models generated from the tiny.en tokenizer named by
// EARSHOT_WHISPER_VOCAB: linking, backend loading, model loading, context
// creation, language handling and whisper_full, but no real recognition
// (the weights are missing, so there is no text to check).

// weightlessModels writes a tiny.en-shaped and a multilingual tiny-shaped
// model without weights into dir.
func weightlessModels(t *testing.T) (en, multi string) {
	t.Helper()
	vocab := os.Getenv("EARSHOT_WHISPER_VOCAB")
	if vocab == "" {
		t.Skip("EARSHOT_WHISPER_VOCAB is not set: it names the tiny.en tokenizer's vocabulary.txt the weightless test models are made from (testbed/whisper-sid.sh smoke sets it)")
	}
	tokens, err := ggmlmodel.ReadVocabularyFile(vocab)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	en = filepath.Join(dir, "ggml-tiny.en.bin")
	multi = filepath.Join(dir, "ggml-tiny.bin")
	if err := ggmlmodel.New(ggmlmodel.TinyEn, tokens).WriteFile(en); err != nil {
		t.Fatal(err)
	}
	// Multilingual shape with the English token strings: enough for a model
	// without weights, whose output means nothing anyway.
	if err := ggmlmodel.New(ggmlmodel.Tiny, tokens).WriteFile(multi); err != nil {
		t.Fatal(err)
	}
	return en, multi
}

func silence(sec float64) []float32 { return make([]float32, int(sec*transcribe.AudioRate)) }

func tone(sec, hz float64) []float32 {
	s := make([]float32, int(sec*transcribe.AudioRate))
	for i := range s {
		s[i] = float32(0.3 * math.Sin(2*math.Pi*hz*float64(i)/transcribe.AudioRate))
	}
	return s
}

// checkResult asserts what holds for any model: segments inside the
// (padded) audio, probabilities in range, words inside their segment.
func checkResult(t *testing.T, res transcribe.Result, sec float64) {
	t.Helper()
	limit := max(sec, float64(minSamples)/transcribe.AudioRate) + 0.01
	if res.LanguageProb < 0 || res.LanguageProb > 1 {
		t.Errorf("LanguageProb %v outside [0, 1]", res.LanguageProb)
	}
	for _, s := range res.Segments {
		if s.Start < 0 || s.End < s.Start || s.End > limit {
			t.Errorf("segment %+v outside [0, %v]", s, limit)
		}
		if s.NoSpeechProb < 0 || s.NoSpeechProb > 1 || s.AvgLogProb > 0 || math.IsNaN(s.AvgLogProb) {
			t.Errorf("segment %+v: probabilities out of range", s)
		}
		for _, w := range s.Words {
			if w.Start < s.Start || w.End > s.End || w.End < w.Start || w.Prob < 0 || w.Prob > 1 {
				t.Errorf("word %+v outside segment %+v", w, s)
			}
		}
	}
	t.Logf("language %q (p=%.2f), %d segments", res.Language, res.LanguageProb, len(res.Segments))
}

func TestSmoke(t *testing.T) {
	en, multi := weightlessModels(t)
	ctx := context.Background()

	t.Run("tiny.en", func(t *testing.T) {
		e, err := New(Config{ModelPath: en, Threads: 2})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		if e.Name() != "whisper-cpp" || e.Model() != "tiny.en" {
			t.Errorf("Name, Model = %q, %q; want whisper-cpp, tiny.en", e.Name(), e.Model())
		}
		for _, tc := range []struct {
			name  string
			audio transcribe.Audio
			sec   float64
		}{
			{"silence en", transcribe.Audio{Samples: silence(1), Language: "en"}, 1},
			{"tone auto", transcribe.Audio{Samples: tone(1, 440), Language: "auto"}, 1},
			{"prompt", transcribe.Audio{Samples: tone(1.5, 220), Language: "", Prompt: "Earshot moderators."}, 1.5},
			{"short, padded", transcribe.Audio{Samples: tone(0.05, 440), Language: "en"}, 0.05},
			{"empty", transcribe.Audio{Language: "en"}, 0},
		} {
			t.Run(tc.name, func(t *testing.T) {
				res, err := e.Transcribe(ctx, tc.audio)
				if err != nil {
					t.Fatal(err)
				}
				if res.Language != "en" {
					t.Errorf("Language = %q, want en (English-only model)", res.Language)
				}
				checkResult(t, res, tc.sec)
			})
		}
		if _, err := e.Transcribe(ctx, transcribe.Audio{Samples: silence(1), Language: "ar"}); !errors.Is(err, ErrUnsupportedLanguage) {
			t.Errorf("ar on tiny.en: err = %v, want ErrUnsupportedLanguage", err)
		}
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := e.Transcribe(cancelled, transcribe.Audio{Samples: silence(1), Language: "en"}); !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled: err = %v, want context.Canceled", err)
		}
		// Cancelling while whisper.cpp computes stops it through the abort
		// flag: it logs that the encoder failed, and Transcribe says why.
		mark := testLogs.len()
		running, cancelRunning := context.WithCancel(ctx)
		testHookEncode = cancelRunning
		_, err = e.Transcribe(running, transcribe.Audio{Samples: tone(1, 440), Language: "en"})
		testHookEncode = nil
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled while encoding: err = %v, want context.Canceled", err)
		}
		if logged := testLogs.since(mark); !slices.ContainsFunc(logged, func(m string) bool { return strings.Contains(m, "failed to encode") }) {
			t.Errorf("cancelled while encoding: whisper.cpp did not log an aborted encoder; its log: %q", logged)
		}
		// Concurrent callers take turns (under -race, a data race on the
		// bindings' global maps would fail the test).
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for range 4 {
			wg.Go(func() {
				_, err := e.Transcribe(ctx, transcribe.Audio{Samples: tone(1, 330), Language: "en"})
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("concurrent Transcribe: %v", err)
			}
		}
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
		if err := e.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if _, err := e.Transcribe(ctx, transcribe.Audio{Samples: silence(1)}); !errors.Is(err, ErrClosed) {
			t.Errorf("after Close: err = %v, want ErrClosed", err)
		}
	})

	t.Run("tiny multilingual", func(t *testing.T) {
		e, err := New(Config{ModelPath: multi, Model: "tiny-weightless"})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		if e.Model() != "tiny-weightless" {
			t.Errorf("Model = %q", e.Model())
		}
		res, err := e.Transcribe(ctx, transcribe.Audio{Samples: tone(1, 440), Language: "auto"})
		if err != nil {
			t.Fatal(err)
		}
		if langID(res.Language) < 0 {
			t.Errorf("detected language %q is not one whisper.cpp knows", res.Language)
		}
		checkResult(t, res, 1)
		for _, lang := range []string{"ar", "arabic"} {
			res, err := e.Transcribe(ctx, transcribe.Audio{Samples: silence(1), Language: lang})
			if err != nil {
				t.Fatalf("%s: %v", lang, err)
			}
			if res.Language != "ar" || res.LanguageProb != 0 {
				t.Errorf("%s: Language, LanguageProb = %q, %v; want ar, 0", lang, res.Language, res.LanguageProb)
			}
		}
		if _, err := e.Transcribe(ctx, transcribe.Audio{Samples: silence(1), Language: "xx"}); !errors.Is(err, ErrUnsupportedLanguage) {
			t.Errorf("xx: err = %v, want ErrUnsupportedLanguage", err)
		}
	})

	t.Run("bad model files", func(t *testing.T) {
		dir := t.TempDir()
		junk := filepath.Join(dir, "ggml-junk.bin")
		if err := os.WriteFile(junk, []byte("not a model"), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, path := range []string{junk, filepath.Join(dir, "missing.bin")} {
			if e, err := New(Config{ModelPath: path}); err == nil {
				e.Close()
				t.Errorf("New(%s) succeeded", path)
			}
		}
	})
}

// TestModel loads a real ggml model named by EARSHOT_WHISPER_MODEL (none is
// in the test bed: the fixture's tiny.en is in CTranslate2 format) and runs
// it on a tone, where a real model must not fail either.
func TestModel(t *testing.T) {
	path := os.Getenv("EARSHOT_WHISPER_MODEL")
	if path == "" {
		t.Skip("EARSHOT_WHISPER_MODEL is not set: it names a ggml Whisper model file (e.g. ggml-tiny.en.bin) to load and run")
	}
	e, err := New(Config{ModelPath: path})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	res, err := e.Transcribe(context.Background(), transcribe.Audio{Samples: tone(2, 440), Language: "auto"})
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, res, 2)
}

// logRecorder keeps the messages logged through slog's default logger,
// where whisper.cpp's log goes.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

// testLogs records every message of the test binary; TestMain installs it
// once (putting the original default logger back later would silence slog).
var testLogs = &logRecorder{}

func TestMain(m *testing.M) {
	slog.SetDefault(slog.New(recordHandler{testLogs, slog.NewTextHandler(os.Stderr, nil)}))
	os.Exit(m.Run())
}

// since returns the messages logged after the first n.
func (r *logRecorder) since(n int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.msgs[min(n, len(r.msgs)):]...)
}

func (r *logRecorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

// recordHandler records messages and passes them on.
type recordHandler struct {
	r    *logRecorder
	next slog.Handler
}

func (h recordHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h recordHandler) Handle(ctx context.Context, rec slog.Record) error {
	h.r.mu.Lock()
	h.r.msgs = append(h.r.msgs, rec.Message)
	h.r.mu.Unlock()
	if h.next.Enabled(ctx, rec.Level) {
		return h.next.Handle(ctx, rec)
	}
	return nil
}

func (h recordHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return recordHandler{h.r, h.next.WithAttrs(as)}
}

func (h recordHandler) WithGroup(g string) slog.Handler {
	return recordHandler{h.r, h.next.WithGroup(g)}
}
