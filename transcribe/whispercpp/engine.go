//go:build whisper

package whispercpp

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	whisper "github.com/ggerganov/whisper.cpp/bindings/go"

	"github.com/earshot/earshot/transcribe"
	"github.com/earshot/earshot/transcribe/whispercpp/internal/ggmlmodel"
)

// Engine is whisper.cpp in process with one model. It is safe for
// concurrent use; calls take turns (see the package doc).
type Engine struct {
	cfg Config
	// wctx is the model and its decoding state; nil once closed. Read and
	// written only while holding slot.
	wctx         *whisper.Context
	multilingual bool
	// dtw: whisper.cpp computes DTW token times (the model's shape has
	// alignment heads), which word times then come from.
	dtw bool
	// fullCtx is the model's whole encoder window in positions (1500 for
	// Whisper's 30 s); margin is fitMargin (tests vary it).
	fullCtx, margin int
}

var _ transcribe.Engine = (*Engine)(nil)

// slot serialises every whisper.cpp call of the process: the bindings'
// callback maps are package-global and unsynchronised, and a model's state
// serves one call at a time.
var slot = make(chan struct{}, 1)

func acquire(ctx context.Context) error {
	select {
	case slot <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func release() { <-slot }

// testHookEncode, when set (by tests), runs just before whisper.cpp
// encodes each 30 s window.
var testHookEncode func()

// minSamples is the shortest audio handed to whisper.cpp: shorter audio is
// padded with silence, because whisper.cpp skips input under 100 ms and
// Whisper does poorly on fragments anyway (its window is 30 s of which the
// rest is silence too). 1.02 s leaves whole 10 ms mel frames past 1 s.
const minSamples = transcribe.AudioRate + transcribe.AudioRate/50

// New loads the model at cfg.ModelPath. Loading a tiny model takes a fraction
// of a second, a large one seconds and gigabytes of memory.
func New(cfg Config) (*Engine, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	hp, err := readHParams(cfg.ModelPath)
	if err != nil {
		return nil, err
	}
	initLibrary()
	heads := alignmentHeads(hp)
	wctx := loadModel(cfg.ModelPath, heads)
	if wctx == nil {
		return nil, fmt.Errorf("whispercpp: whisper.cpp could not load the model %s (its log says why)", cfg.ModelPath)
	}
	return &Engine{
		cfg: cfg, wctx: wctx, multilingual: wctx.Whisper_is_multilingual() != 0, dtw: heads != 0,
		fullCtx: wctx.Whisper_n_audio_ctx(), margin: fitMargin,
	}, nil
}

// readHParams reads a model file's hyperparameters, so that a file that is
// no ggml Whisper model fails with a clear error before whisper.cpp sees it.
func readHParams(path string) (ggmlmodel.HParams, error) {
	f, err := os.Open(path)
	if err != nil {
		return ggmlmodel.HParams{}, fmt.Errorf("whispercpp: model: %w", err)
	}
	defer f.Close()
	head, _, err := ggmlmodel.Read(f)
	if err != nil {
		return ggmlmodel.HParams{}, fmt.Errorf("whispercpp: model %s: %w (convert a CTranslate2 model with earshot model convert, or use a whisper.cpp ggml-*.bin)", path, err)
	}
	return head.HParams, nil
}

// Name returns "whisper-cpp".
func (e *Engine) Name() string { return Name }

// Model returns the model's name (Config.Model).
func (e *Engine) Model() string { return e.cfg.Model }

// Close waits for a call in progress and frees the model. It is idempotent;
// Transcribe after Close returns ErrClosed.
func (e *Engine) Close() error {
	_ = acquire(context.Background())
	defer release()
	if e.wctx != nil {
		e.wctx.Whisper_free()
		e.wctx = nil
	}
	return nil
}

// Transcribe runs whisper_full on a.Samples. The language is always set
// explicitly (whisper.cpp's default is English): a.Language, or, for "" and
// "auto" on a multilingual model, the language whisper.cpp detects, with its
// probability. An English-only model accepts only "en" and auto.
// Cancelling ctx stops a waiting call at once and a running one at its next
// compute step.
func (e *Engine) Transcribe(ctx context.Context, a transcribe.Audio) (transcribe.Result, error) {
	if err := acquire(ctx); err != nil {
		return transcribe.Result{}, fmt.Errorf("whispercpp: transcribe: %w", err)
	}
	defer release()
	if e.wctx == nil {
		return transcribe.Result{}, ErrClosed
	}
	res, err := e.transcribe(ctx, a)
	if err != nil {
		return transcribe.Result{}, fmt.Errorf("whispercpp: transcribe: %w", err)
	}
	return res, nil
}

// transcribe runs with slot held.
func (e *Engine) transcribe(ctx context.Context, a transcribe.Audio) (transcribe.Result, error) {
	if err := ctx.Err(); err != nil {
		return transcribe.Result{}, err
	}
	samples := a.Samples
	if len(samples) < minSamples {
		samples = make([]float32, minSamples)
		copy(samples, a.Samples)
	}
	threads := e.cfg.Threads
	params := e.wctx.Whisper_full_default_params(whisper.SAMPLING_GREEDY)
	params.SetThreads(threads)
	params.SetTranslate(false)
	params.SetPrintProgress(false)
	params.SetPrintRealtime(false)
	params.SetPrintTimestamps(false)
	params.SetPrintSpecial(false)
	// Each utterance stands alone; Audio.Prompt carries what should carry.
	params.SetNoContext(true)
	// Token times make word times.
	params.SetTokenTimestamps(true)
	params.SetAudioCtx(e.audioCtx(len(samples)))

	var res transcribe.Result
	switch {
	case !e.multilingual:
		if !transcribe.AutoLanguage(a.Language) && langID(a.Language) != langID("en") {
			return res, fmt.Errorf("%w: %q with the English-only model %s", ErrUnsupportedLanguage, a.Language, e.cfg.Model)
		}
		if err := params.SetLanguage(langID("en")); err != nil {
			return res, fmt.Errorf("set language en: %w", err)
		}
		res.Language = "en"
	case transcribe.AutoLanguage(a.Language):
		id, p, err := e.detect(samples, threads)
		if err != nil {
			return res, err
		}
		if err := params.SetLanguage(id); err != nil {
			return res, fmt.Errorf("set detected language %d: %w", id, err)
		}
		res.Language, res.LanguageProb = whisper.Whisper_lang_str(id), p
	default:
		id := langID(a.Language)
		if id < 0 {
			return res, fmt.Errorf("%w: %q", ErrUnsupportedLanguage, a.Language)
		}
		if err := params.SetLanguage(id); err != nil {
			return res, fmt.Errorf("set language %q: %w", a.Language, err)
		}
		// Normalised: whisper.cpp also takes names ("arabic").
		res.Language = whisper.Whisper_lang_str(id)
	}

	abort := newAbortFlag()
	defer abort.free()
	prompt := newCString(a.Prompt)
	defer prompt.free()
	setParams(&params, abort, prompt)
	// The flag must not be freed while the AfterFunc may still set it.
	aborted := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		abort.set()
		close(aborted)
	})
	defer func() {
		if !stop() {
			<-aborted
		}
	}()

	var encoderBegin func() bool
	if hook := testHookEncode; hook != nil {
		encoderBegin = func() bool { hook(); return true }
	}
	err := e.wctx.Whisper_full(params, samples, encoderBegin, nil, nil)
	if ctxErr := ctx.Err(); ctxErr != nil {
		return transcribe.Result{}, ctxErr
	}
	if err != nil {
		return transcribe.Result{}, fmt.Errorf("whisper_full: %w", err)
	}
	e.collect(&res, samples)
	return res, nil
}

// audioCtx is the call's audio_ctx for n samples (Config.Window); 0 is the
// whole window.
func (e *Engine) audioCtx(n int) int {
	if e.cfg.Window == WindowFull {
		return 0
	}
	return audioCtx(n, e.margin, e.fullCtx)
}

// detect runs whisper.cpp's language detection (one encoder pass, as
// whisper_full's own auto mode does) and returns the likeliest language
// and its probability. whisper.cpp sets audio_ctx only in whisper_full, so
// with a fitted window detection encodes as much of the audio as the
// previous call's window held (2 s at least; all 30 s before the first).
func (e *Engine) detect(samples []float32, threads int) (int, float64, error) {
	if err := e.wctx.Whisper_pcm_to_mel(samples, threads); err != nil {
		return 0, 0, fmt.Errorf("language detection: mel: %w", err)
	}
	probs, err := e.wctx.Whisper_lang_auto_detect(0, threads)
	if err != nil {
		return 0, 0, fmt.Errorf("language detection: %w", err)
	}
	best := -1
	for id, p := range probs {
		if best < 0 || p > probs[best] {
			best = id
		}
	}
	if best < 0 {
		return 0, 0, errors.New("language detection: no languages")
	}
	return best, clamp01(float64(probs[best])), nil
}

// collect maps whisper.cpp's segments and text tokens to res; samples is
// the audio whisper.cpp was given (for the last word's end, lastword.go).
func (e *Engine) collect(res *transcribe.Result, samples []float32) {
	ctx := e.wctx
	eot := ctx.Whisper_token_eot()
	n := ctx.Whisper_full_n_segments()
	type seg struct {
		t0, t1   int64
		text     string
		noSpeech float64
		toks     []token
	}
	segs := make([]seg, 0, n)
	// prev is the previous text token's DTW time, -1 before the first.
	prev := int64(-1)
	for i := range n {
		s := seg{
			t0: ctx.Whisper_full_get_segment_t0(i), t1: ctx.Whisper_full_get_segment_t1(i),
			text: ctx.Whisper_full_get_segment_text(i), noSpeech: noSpeechProb(ctx, i),
		}
		nt := ctx.Whisper_full_n_tokens(i)
		for j := range nt {
			// Ids from <|endoftext|> up are special and timestamp tokens.
			if ctx.Whisper_full_get_token_id(i, j) >= eot {
				continue
			}
			data := ctx.Whisper_full_get_token_data(i, j)
			t := token{
				text: ctx.Whisper_full_get_token_text(i, j),
				p:    float64(ctx.Whisper_full_get_token_p(i, j)),
				t0:   data.T0(),
				t1:   data.T1(),
			}
			if e.dtw {
				t.t0, t.t1, prev = dtwSpan(prev, tokenDTW(ctx, i, j), t.t0, t.t1)
			}
			s.toks = append(s.toks, t)
		}
		segs = append(segs, s)
	}
	if e.dtw && n > 0 {
		// The call's last text token; the alignment was cut at the last
		// segment's closing timestamp or the audio's end.
		cut := min(segs[n-1].t1, audioFrames(len(samples)))
		for i := n - 1; i >= 0; i-- {
			if k := len(segs[i].toks) - 1; k >= 0 {
				toks := segs[i].toks
				// The last word starts at its first token (one that begins
				// with a space): its end is the last token's ("." included).
				w := k
				for w > 0 && !strings.HasPrefix(toks[w].text, " ") {
					w--
				}
				last := &toks[k]
				last.t1 = lastWordEnd(toks[w].t0, last.t1, cut, voicedEnd(samples))
				// A word ending past its segment's closing timestamp
				// extends the segment, as faster-whisper ends a segment
				// with its last word.
				segs[i].t1 = max(segs[i].t1, last.t1)
				break
			}
		}
	}
	for _, s := range segs {
		res.Segments = append(res.Segments, segment(s.t0, s.t1, s.text, s.noSpeech, s.toks))
	}
}
