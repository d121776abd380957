//go:build !whisper

package engines

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/earshot/earshot/transcribe/whispercpp"
)

// TestWhisperWithoutTag: a binary built without the `whisper` tag says so
// rather than starting without an engine.
func TestWhisperWithoutTag(t *testing.T) {
	model := filepath.Join(t.TempDir(), "ggml.bin")
	if err := os.WriteFile(model, []byte("not a model"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := New(Config{Kind: Whisper, ModelPath: model, Model: "tiny.en"})
	if err == nil {
		t.Fatal("whisper engine built from a file that is no model")
	}
	if !errors.Is(err, whispercpp.ErrNotBuilt) {
		t.Fatalf("error %v: want whispercpp.ErrNotBuilt in a build without the whisper tag", err)
	}
}
