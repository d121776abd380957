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

// noSpeechProb is segment i's probability of the <|nospeech|> token.
func noSpeechProb(ctx *whisper.Context, i int) float64 {
	return float64(C.whisper_full_get_segment_no_speech_prob((*C.struct_whisper_context)(unsafe.Pointer(ctx)), C.int(i)))
}
