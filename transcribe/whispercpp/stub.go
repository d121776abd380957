//go:build !whisper

package whispercpp

import (
	"context"

	"github.com/earshot/earshot/transcribe"
)

// Engine is whisper.cpp in process; in this build (no `whisper` tag) it
// cannot be made: New returns ErrNotBuilt.
type Engine struct {
	cfg Config
}

var _ transcribe.Engine = (*Engine)(nil)

// New checks cfg and returns ErrNotBuilt: this build has no whisper.cpp.
func New(cfg Config) (*Engine, error) {
	if _, err := cfg.withDefaults(); err != nil {
		return nil, err
	}
	return nil, ErrNotBuilt
}

// Name returns "whisper-cpp".
func (e *Engine) Name() string { return Name }

// Model returns the model's name.
func (e *Engine) Model() string {
	if e == nil {
		return ""
	}
	return e.cfg.Model
}

// Transcribe returns ErrNotBuilt.
func (e *Engine) Transcribe(context.Context, transcribe.Audio) (transcribe.Result, error) {
	return transcribe.Result{}, ErrNotBuilt
}

// Close does nothing.
func (e *Engine) Close() error { return nil }
