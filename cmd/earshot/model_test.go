package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestModelConvertCommand(t *testing.T) {
	empty := t.TempDir()
	junk := t.TempDir()
	if err := os.WriteFile(filepath.Join(junk, "model.bin"), []byte("not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "ggml.bin")
	for _, tc := range []struct {
		name string
		args []string
		code int
		says string
	}{
		{"no verb", []string{"model"}, 2, "usage: earshot model convert"},
		{"other verb", []string{"model", "quantize"}, 2, "usage: earshot model convert"},
		{"no -out", []string{"model", "convert", "-in", empty}, 2, "usage: earshot model convert"},
		{"missing model.bin", []string{"model", "convert", "-in", empty, "-out", out}, 1, "model.bin"},
		{"not a model", []string{"model", "convert", "-in", junk, "-out", out}, 1, "not a CTranslate2 model file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := Main(context.Background(), tc.args, &stdout, &stderr); code != tc.code || !strings.Contains(stderr.String(), tc.says) {
				t.Errorf("exit %d, stderr %q; want %d saying %q", code, stderr.String(), tc.code, tc.says)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("output exists after a failure: %v", err)
			}
		})
	}
}
