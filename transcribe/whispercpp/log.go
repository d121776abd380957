//go:build whisper

package whispercpp

import "C"

import (
	"context"
	"log/slog"
	"strings"
)

// ggml's log levels (enum ggml_log_level).
const (
	ggmlLogWarn  = 3
	ggmlLogError = 4
)

// earshotWhisperLog receives whisper.cpp's and ggml's log lines: warnings
// and errors as such, the rest (model details, timings, continuation
// fragments) at debug level.
//
//export earshotWhisperLog
func earshotWhisperLog(level C.int, text *C.char) {
	msg := strings.TrimSpace(C.GoString(text))
	if msg == "" {
		return
	}
	lvl := slog.LevelDebug
	switch level {
	case ggmlLogWarn:
		lvl = slog.LevelWarn
	case ggmlLogError:
		lvl = slog.LevelError
	}
	slog.Default().Log(context.Background(), lvl, msg, "component", "whisper.cpp")
}
