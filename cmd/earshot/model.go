package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/earshot/earshot/transcribe/whispercpp/ct2"
)

// runModel is `earshot model convert`. It needs no configuration and no
// whisper build tag: the converter is plain Go.
func runModel(_ context.Context, e *env) error {
	const usage = "usage: earshot model convert -in CT2_MODEL_DIR -out ggml-MODEL.bin"
	if len(e.args) == 0 || e.args[0] != "convert" {
		return usageError{errors.New(usage)}
	}
	fs := flag.NewFlagSet("model convert", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	in := fs.String("in", "", "CTranslate2 Whisper model folder (model.bin and vocabulary.txt or vocabulary.json), e.g. a faster-whisper model")
	out := fs.String("out", "", "ggml model file to write (replaced atomically)")
	f32 := fs.Bool("f32", false, "write float32 weights instead of float16 (twice the size; whisper.cpp then computes in float32)")
	if err := fs.Parse(e.args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if *in == "" || *out == "" || fs.NArg() > 0 {
		return usageError{errors.New(usage)}
	}
	res, err := ct2.Convert(*in, *out, ct2.Options{Float32: *f32})
	if err != nil {
		return fmt.Errorf("convert %s: %w", *in, err)
	}
	kind := "English-only"
	if res.Multilingual() {
		kind = "multilingual"
	}
	fmt.Fprintf(e.stdout, "wrote %s: %s Whisper, %d+%d layers of width %d, %d mel bands, vocabulary %d, %d tensors (%s weights), %d bytes\n",
		*out, kind, res.AudioLayers, res.TextLayers, res.AudioState, res.Mels, res.Vocab, len(res.Tensors), map[bool]string{false: "float16", true: "float32"}[*f32], res.Size)
	fmt.Fprintf(e.stdout, "sha256 %s\n", res.SHA256)
	if len(res.Ignored) > 0 {
		fmt.Fprintf(e.stdout, "left out (no counterpart in whisper.cpp): %s\n", strings.Join(res.Ignored, ", "))
	}
	return nil
}
