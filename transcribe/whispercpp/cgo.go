//go:build whisper

package whispercpp

// What the bindings do not expose, or expose with a leak: loading ggml's
// backends, whisper.cpp's log, an abort flag for whisper_full, the initial
// prompt, language ids and segments' no-speech probability. The bindings
// link -lwhisper -lggml -lggml-base -lggml-cpu already.

/*
#cgo LDFLAGS: -lwhisper -lggml -lggml-base
#include <stdbool.h>
#include <stdlib.h>
#include <ggml-backend.h>
#include <whisper.h>

extern void earshotWhisperLog(int level, char *text);

static void earshot_log(enum ggml_log_level level, const char *text, void *user_data) {
	(void)user_data;
	earshotWhisperLog((int)level, (char *)text);
}

// whisper_log_set also sets ggml's log.
static void earshot_init(void) {
	whisper_log_set(earshot_log, NULL);
	ggml_backend_load_all();
}

// The abort flag lives in C memory: ggml reads it from its worker threads.
static bool earshot_should_abort(void *flag) {
	return __atomic_load_n((int *)flag, __ATOMIC_ACQUIRE) != 0;
}

static void earshot_abort(int *flag) {
	__atomic_store_n(flag, 1, __ATOMIC_RELEASE);
}

// earshot_load loads a model; a preset other than WHISPER_AHEADS_NONE turns
// on DTW token timestamps (cross-attention alignment, as faster-whisper's
// word timestamps) with that preset's alignment heads.
static struct whisper_context *earshot_load(const char *path, int preset) {
	struct whisper_context_params cp = whisper_context_default_params();
	if (preset != WHISPER_AHEADS_NONE) {
		// whisper.cpp computes DTW from attention weights that flash
		// attention never materialises: it turns DTW off when both are on.
		cp.flash_attn = false;
		cp.dtw_token_timestamps = true;
		cp.dtw_aheads_preset = (enum whisper_alignment_heads_preset)preset;
	}
	return whisper_init_from_file_with_params(path, cp);
}

static int64_t earshot_token_dtw(struct whisper_context *ctx, int i, int j) {
	return whisper_full_get_token_data(ctx, i, j).t_dtw;
}

// The decoding settings of faster-whisper as Earshot's HTTP engine uses it
// (greedy, one candidate per temperature of the fallback ladder 0, 0.2,
// ... 1.0; non-speech symbols suppressed, as its suppress_tokens=[-1]).
// whisper.cpp's other defaults already match: blank suppression,
// log-probability threshold -1, no-speech threshold 0.6, first timestamp
// at most 1 s. whisper.cpp judges a repetitive decode by its token entropy
// (below 2.4) where faster-whisper uses the compression ratio (above 2.4).
static void earshot_params(struct whisper_full_params *p, int *abort_flag, const char *prompt) {
	p->abort_callback = earshot_should_abort;
	p->abort_callback_user_data = abort_flag;
	p->initial_prompt = prompt;
	p->greedy.best_of = 1;
	p->suppress_nst = true;
	p->suppress_blank = true;
	p->temperature = 0.0f;
	p->temperature_inc = 0.2f;
}
*/
import "C"

import (
	"sync"
	"unsafe"

	whisper "github.com/ggerganov/whisper.cpp/bindings/go"

	"github.com/earshot/earshot/transcribe/whispercpp/internal/ggmlmodel"
)

var initOnce sync.Once

// initLibrary routes whisper.cpp's and ggml's log to slog and loads ggml's
// backends (Debian's CPU backend is a run-time-loaded variant): without
// them whisper.cpp finds no device and aborts the process when loading a
// model.
func initLibrary() { initOnce.Do(func() { C.earshot_init() }) }

// abortFlag is a C int that makes whisper_full stop at its next graph node
// once set.
type abortFlag struct {
	p *C.int
}

func newAbortFlag() abortFlag { return abortFlag{(*C.int)(C.calloc(1, C.size_t(C.sizeof_int)))} }

func (f abortFlag) set()  { C.earshot_abort(f.p) }
func (f abortFlag) free() { C.free(unsafe.Pointer(f.p)) }

// cString is a C copy of a Go string (nil for ""), freed by free.
type cString struct{ p *C.char }

func newCString(s string) cString {
	if s == "" {
		return cString{}
	}
	return cString{C.CString(s)}
}

func (s cString) free() {
	if s.p != nil {
		C.free(unsafe.Pointer(s.p))
	}
}

// setParams installs the abort flag and the initial prompt (the bindings'
// SetInitialPrompt leaks its copy on every call). Both must outlive the
// whisper_full call.
func setParams(p *whisper.Params, abort abortFlag, prompt cString) {
	C.earshot_params((*C.struct_whisper_full_params)(unsafe.Pointer(p)), abort.p, prompt.p)
}

// langID returns whisper.cpp's id for a language code or name, -1 when it
// knows none (the bindings' Whisper_lang_id leaks its copy of the string).
func langID(lang string) int {
	s := newCString(lang)
	defer s.free()
	if s.p == nil {
		return -1
	}
	return int(C.whisper_lang_id(s.p))
}

// loadModel loads the model at path with DTW token timestamps when preset
// is not WHISPER_AHEADS_NONE; nil when whisper.cpp cannot.
func loadModel(path string, preset C.int) *whisper.Context {
	p := C.CString(path)
	defer C.free(unsafe.Pointer(p))
	return (*whisper.Context)(unsafe.Pointer(C.earshot_load(p, preset)))
}

// alignmentHeads is whisper.cpp's preset of DTW alignment heads for a
// model of Whisper's shape hp (the heads OpenAI published per model),
// WHISPER_AHEADS_NONE for a shape it has none for.
func alignmentHeads(hp ggmlmodel.HParams) C.int {
	en := hp.NVocab < 51865
	pick := func(english, multi C.int) C.int {
		if en {
			return english
		}
		return multi
	}
	switch {
	case hp.NTextLayer == 4 && hp.NTextState == 384:
		return pick(C.WHISPER_AHEADS_TINY_EN, C.WHISPER_AHEADS_TINY)
	case hp.NTextLayer == 6 && hp.NTextState == 512:
		return pick(C.WHISPER_AHEADS_BASE_EN, C.WHISPER_AHEADS_BASE)
	case hp.NTextLayer == 12 && hp.NTextState == 768:
		return pick(C.WHISPER_AHEADS_SMALL_EN, C.WHISPER_AHEADS_SMALL)
	case hp.NTextLayer == 24 && hp.NTextState == 1024:
		return pick(C.WHISPER_AHEADS_MEDIUM_EN, C.WHISPER_AHEADS_MEDIUM)
	case hp.NTextLayer == 4 && hp.NTextState == 1280:
		return C.WHISPER_AHEADS_LARGE_V3_TURBO
	case hp.NTextLayer == 32 && hp.NTextState == 1280 && hp.NMels == 128:
		return C.WHISPER_AHEADS_LARGE_V3
	case hp.NTextLayer == 32 && hp.NTextState == 1280:
		// large-v1 and v2 share a shape; v2's heads are the likelier.
		return C.WHISPER_AHEADS_LARGE_V2
	}
	return C.WHISPER_AHEADS_NONE
}

// tokenDTW is token j of segment i's DTW time (10 ms units), -1 without.
func tokenDTW(ctx *whisper.Context, i, j int) int64 {
	return int64(C.earshot_token_dtw((*C.struct_whisper_context)(unsafe.Pointer(ctx)), C.int(i), C.int(j)))
}

// noSpeechProb is segment i's probability of the <|nospeech|> token.
func noSpeechProb(ctx *whisper.Context, i int) float64 {
	return float64(C.whisper_full_get_segment_no_speech_prob((*C.struct_whisper_context)(unsafe.Pointer(ctx)), C.int(i)))
}
