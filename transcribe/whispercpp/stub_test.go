//go:build !whisper

package whispercpp

import (
	"errors"
	"testing"
)

func TestNewWithoutWhisperTag(t *testing.T) {
	if _, err := New(Config{ModelPath: "ggml-tiny.en.bin"}); !errors.Is(err, ErrNotBuilt) {
		t.Errorf("New = %v, want ErrNotBuilt", err)
	}
	if _, err := New(Config{}); err == nil || errors.Is(err, ErrNotBuilt) {
		t.Errorf("New(Config{}) = %v, want a config error", err)
	}
}
