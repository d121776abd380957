package ct2

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/x448/float16"

	"github.com/earshot/earshot/transcribe/whispercpp/internal/ggmlmodel"
)

// WhisperSpec is the spec name of CTranslate2 Whisper models.
const WhisperSpec = "WhisperSpec"

// ctGELU is CTranslate2's Activation.GELU, the one Whisper uses.
const ctGELU = 3

// Result describes a converted model.
type Result struct {
	// Hyperparameters, as whisper.cpp reads them.
	Vocab, AudioCtx, AudioState, AudioHeads, AudioLayers int
	TextCtx, TextState, TextHeads, TextLayers, Mels      int
	// Tokens is how many vocabulary strings the file holds (up to and
	// including <|endoftext|>; whisper.cpp names the special tokens after
	// it itself).
	Tokens int
	// Tensors are the tensor names written, in file order.
	Tensors []string
	// Size is the output file's size in bytes, SHA256 its hex digest.
	Size   int64
	SHA256 string
	// Ignored are CTranslate2 settings with no counterpart in whisper.cpp
	// (alignment heads and the like), left out.
	Ignored []string
}

// Multilingual reports whether whisper.cpp will treat the model as
// multilingual (its rule: a vocabulary of 51865 tokens or more).
func (r Result) Multilingual() bool { return r.Vocab >= 51865 }

// Convert reads the CTranslate2 Whisper model in dir (model.bin, and
// vocabulary.txt or vocabulary.json beside it) and writes it to out as a
// ggml model whisper.cpp loads: weight matrices float16, biases, norms and
// positional embeddings float32 (the types whisper.cpp's loader expects),
// CTranslate2's fused attention projections split into query, key and
// value, the key bias (zero in Whisper, and without effect on attention
// anyway) dropped, and Whisper's 80- or 128-band mel filters computed.
// out is written to a temporary file in its folder and renamed into place:
// on any error nothing is left at out (an older file there stays).
func Convert(dir, out string, opts Options) (Result, error) {
	m, err := ReadFile(filepath.Join(dir, "model.bin"))
	if err != nil {
		return Result{}, err
	}
	tokens, err := readVocabulary(dir)
	if err != nil {
		return Result{}, err
	}
	head, tensors, res, err := Whisper(m, tokens, opts)
	if err != nil {
		return Result{}, err
	}
	size, sum, err := writeAtomic(out, func(w io.Writer) error {
		if _, err := head.WriteTo(w); err != nil {
			return err
		}
		for _, t := range tensors {
			if err := ggmlmodel.WriteTensor(w, t); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return Result{}, err
	}
	res.Size, res.SHA256 = size, sum
	return res, nil
}

// readVocabulary reads the model folder's vocabulary: vocabulary.txt (one
// token per line) or vocabulary.json (a list), as CTranslate2 writes them.
func readVocabulary(dir string) ([][]byte, error) {
	txt := filepath.Join(dir, "vocabulary.txt")
	tokens, err := ggmlmodel.ReadVocabularyFile(txt)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return tokens, err
	}
	js := filepath.Join(dir, "vocabulary.json")
	b, err := os.ReadFile(js)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("ct2: %s has neither vocabulary.txt nor vocabulary.json: not a CTranslate2 model folder", dir)
	}
	if err != nil {
		return nil, fmt.Errorf("ct2: %w", err)
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("ct2: %s: %w", js, err)
	}
	// Byte-level tokens never hold a raw newline; ReadVocabulary rejects
	// one that does.
	return ggmlmodel.ReadVocabulary(strings.NewReader(strings.Join(list, "\n")))
}

// Options tune a conversion.
type Options struct {
	// Float32 writes the weight matrices as float32 (whisper.cpp's ftype 0)
	// instead of float16: twice the size and slower, but whisper.cpp then
	// computes in float32 as faster-whisper does on CPU.
	Float32 bool
}

// Whisper maps a CTranslate2 Whisper model and its vocabulary to a ggml
// model: the file's head and its tensors in the order whisper.cpp's own
// converter writes them. Every array of m must find its place: one that
// does not (a newer spec, a quantisation scale) is an error, not silently
// dropped.
func Whisper(m *Model, tokens [][]byte, opts Options) (*ggmlmodel.File, []ggmlmodel.Tensor, Result, error) {
	var res Result
	if m.Spec != WhisperSpec {
		return nil, nil, res, fmt.Errorf("%w: spec %q: only CTranslate2 Whisper models (%s) convert to whisper.cpp", ErrUnsupported, m.Spec, WhisperSpec)
	}
	c := &converter{m: m, used: map[string]bool{}, wtype: ggmlmodel.TypeF16}
	if opts.Float32 {
		c.wtype = ggmlmodel.TypeF32
	}
	c.hparams(&res)
	if c.err != nil {
		return nil, nil, res, c.err
	}
	if len(tokens) == 0 || len(tokens) > res.Vocab {
		return nil, nil, res, fmt.Errorf("%w: %d vocabulary tokens for %d embeddings", ErrUnsupported, len(tokens), res.Vocab)
	}
	res.Tokens = len(tokens)
	c.encoder(res)
	c.decoder(res)
	c.unused(&res)
	if c.err != nil {
		return nil, nil, res, c.err
	}
	for _, t := range c.out {
		res.Tensors = append(res.Tensors, t.Name)
	}
	hp := ggmlmodel.HParams{
		NVocab: int32(res.Vocab), NAudioCtx: int32(res.AudioCtx), NAudioState: int32(res.AudioState),
		NAudioHead: int32(res.AudioHeads), NAudioLayer: int32(res.AudioLayers),
		NTextCtx: int32(res.TextCtx), NTextState: int32(res.TextState),
		NTextHead: int32(res.TextHeads), NTextLayer: int32(res.TextLayers),
		NMels: int32(res.Mels), FType: c.wtype,
	}
	return ggmlmodel.New(hp, tokens), c.out, res, nil
}

// converter collects tensors; the first error stops it.
type converter struct {
	m    *Model
	used map[string]bool
	// wtype is the weight matrices' type (whisper.cpp's wtype; its conv
	// weights are float16 unless wtype is float32).
	wtype int32
	out   []ggmlmodel.Tensor
	err   error
}

func (c *converter) fail(format string, args ...any) {
	if c.err == nil {
		c.err = fmt.Errorf(format, args...)
	}
}

// get returns the variable called name with the given shape (-1: any),
// marking it used.
func (c *converter) get(name string, shape ...int) *Variable {
	if c.err != nil {
		return nil
	}
	v := c.m.Variable(name)
	if v == nil {
		c.fail("%w: no variable %s (not a complete Whisper model)", ErrUnsupported, name)
		return nil
	}
	c.used[v.Name] = true
	if len(v.Shape) != len(shape) {
		c.fail("%w: variable %s has shape %v, want rank %d", ErrUnsupported, name, v.Shape, len(shape))
		return nil
	}
	for i, d := range shape {
		if d >= 0 && v.Shape[i] != d {
			c.fail("%w: variable %s has shape %v, want %v", ErrUnsupported, name, v.Shape, shape)
			return nil
		}
	}
	switch v.DType {
	case Float32, Float16, BFloat16:
	default:
		if len(shape) > 0 {
			c.fail("%w: variable %s has dtype %s: quantised CTranslate2 models do not convert; convert the original model with --quantization float16 (or float32)", ErrUnsupported, name, v.DType)
			return nil
		}
	}
	return v
}

// scalar reads an integer scalar.
func (c *converter) scalar(name string) int {
	v := c.get(name)
	if v == nil {
		return 0
	}
	switch v.DType {
	case Int8:
		return int(int8(v.Data[0]))
	case Int16:
		return int(int16(binary.LittleEndian.Uint16(v.Data)))
	case Int32:
		return int(int32(binary.LittleEndian.Uint32(v.Data)))
	}
	c.fail("%w: %s has dtype %s, want an integer", ErrUnsupported, name, v.DType)
	return 0
}

func (c *converter) hparams(res *Result) {
	emb := c.get("decoder/embeddings/weight", -1, -1)
	conv1 := c.get("encoder/conv1/weight", -1, -1, 3)
	epe := c.get("encoder/position_encodings/encodings", -1, -1)
	dpe := c.get("decoder/position_encodings/encodings", -1, -1)
	if c.err != nil {
		return
	}
	res.Vocab, res.TextState = emb.Shape[0], emb.Shape[1]
	res.AudioState, res.Mels = conv1.Shape[0], conv1.Shape[1]
	res.AudioCtx, res.TextCtx = epe.Shape[0], dpe.Shape[0]
	res.AudioHeads = c.scalar("encoder/num_heads")
	res.TextHeads = c.scalar("decoder/num_heads")
	for c.m.Variable(fmt.Sprintf("encoder/layer_%d/ffn/linear_0/weight", res.AudioLayers)) != nil {
		res.AudioLayers++
	}
	for c.m.Variable(fmt.Sprintf("decoder/layer_%d/ffn/linear_0/weight", res.TextLayers)) != nil {
		res.TextLayers++
	}
	if c.err != nil {
		return
	}
	switch {
	case epe.Shape[1] != res.AudioState || dpe.Shape[1] != res.TextState:
		c.fail("%w: positional embeddings %v and %v do not match the widths %d and %d", ErrUnsupported, epe.Shape, dpe.Shape, res.AudioState, res.TextState)
	case res.AudioHeads <= 0 || res.TextHeads <= 0 || res.AudioState%res.AudioHeads != 0 || res.TextState%res.TextHeads != 0:
		c.fail("%w: %d encoder and %d decoder heads for widths %d and %d", ErrUnsupported, res.AudioHeads, res.TextHeads, res.AudioState, res.TextState)
	case res.AudioLayers == 0 || res.TextLayers == 0:
		c.fail("%w: %d encoder and %d decoder layers", ErrUnsupported, res.AudioLayers, res.TextLayers)
	case res.Mels != 80 && res.Mels != 128:
		c.fail("%w: %d mel bands (Whisper uses 80, large-v3 128)", ErrUnsupported, res.Mels)
	}
	// Settings whisper.cpp hard-codes: Whisper's pre-norm GELU decoder.
	for name, want := range map[string]int{
		"decoder/activation": ctGELU, "decoder/pre_norm": 1, "decoder/alibi": 0,
		"decoder/scale_embeddings": 0, "decoder/start_from_zero_embedding": 0,
	} {
		if c.m.Variable(name) == nil {
			continue
		}
		if got := c.scalar(name); got != want && c.err == nil {
			c.fail("%w: %s is %d; whisper.cpp's Whisper needs %d", ErrUnsupported, name, got, want)
		}
	}
}

// convert returns rows [r0, r1) of v (all of it for r1 == 0) as elements of
// typ.
func (c *converter) convert(v *Variable, r0, r1 int, typ int32) []byte {
	rowElems := 1
	for _, d := range v.Shape[1:] {
		rowElems *= d
	}
	if r1 == 0 {
		r1 = 1
		if len(v.Shape) > 0 {
			r1 = v.Shape[0]
		}
	}
	es := v.DType.Size()
	src := v.Data[r0*rowElems*es : r1*rowElems*es]
	n := len(src) / es
	if (v.DType == Float16 && typ == ggmlmodel.TypeF16) || (v.DType == Float32 && typ == ggmlmodel.TypeF32) {
		return bytes.Clone(src)
	}
	le := binary.LittleEndian
	f32 := func(i int) float32 {
		switch v.DType {
		case Float32:
			return math.Float32frombits(le.Uint32(src[4*i:]))
		case Float16:
			return float16.Frombits(le.Uint16(src[2*i:])).Float32()
		default: // BFloat16: the top half of a float32
			return math.Float32frombits(uint32(le.Uint16(src[2*i:])) << 16)
		}
	}
	if typ == ggmlmodel.TypeF32 {
		out := make([]byte, 4*n)
		for i := range n {
			le.PutUint32(out[4*i:], math.Float32bits(f32(i)))
		}
		return out
	}
	out := make([]byte, 2*n)
	for i := range n {
		le.PutUint16(out[2*i:], uint16(float16.Fromfloat32(f32(i))))
	}
	return out
}

// put adds rows [r0, r1) of v as tensor name with dims and type.
func (c *converter) put(name string, v *Variable, r0, r1 int, typ int32, dims ...int) {
	if c.err != nil || v == nil {
		return
	}
	c.out = append(c.out, ggmlmodel.Tensor{Name: name, Dims: dims, Type: typ, Data: c.convert(v, r0, r1, typ)})
}

// vector adds a 1-D float32 tensor (biases and norms).
func (c *converter) vector(name, from string, n int) {
	c.put(name, c.get(from, n), 0, 0, ggmlmodel.TypeF32, n)
}

// matrix adds a float16 weight matrix of rows × cols.
func (c *converter) matrix(name, from string, rows, cols int) {
	c.put(name, c.get(from, rows, cols), 0, 0, c.wtype, rows, cols)
}

// linear adds a projection's weight and bias.
func (c *converter) linear(name, from string, rows, cols int) {
	c.matrix(name+".weight", from+"/weight", rows, cols)
	c.vector(name+".bias", from+"/bias", rows)
}

// norm adds a layer norm's weight (gamma) and bias (beta).
func (c *converter) norm(name, from string, n int) {
	c.vector(name+".weight", from+"/gamma", n)
	c.vector(name+".bias", from+"/beta", n)
}

// fused splits CTranslate2's fused projections: from/weight stacks len(to)
// blocks of n rows ("" skips none: every block is written); from/bias the
// same blocks, of which the key's is dropped (whisper.cpp's keys have no
// bias: Whisper's is absent, and a key bias adds the same amount to every
// score of a query, which softmax ignores).
func (c *converter) fused(from string, n int, to ...string) {
	w := c.get(from+"/weight", len(to)*n, n)
	b := c.get(from+"/bias", len(to)*n)
	for i, name := range to {
		c.put(name+".weight", w, i*n, (i+1)*n, c.wtype, n, n)
		if !strings.HasSuffix(name, ".key") {
			c.put(name+".bias", b, i*n, (i+1)*n, ggmlmodel.TypeF32, n)
		}
	}
}

// ffn adds an MLP block (n → 4n → n).
func (c *converter) ffn(prefix, from string, n int) {
	c.norm(prefix+".mlp_ln", from+"/layer_norm", n)
	c.linear(prefix+".mlp.0", from+"/linear_0", 4*n, n)
	c.linear(prefix+".mlp.2", from+"/linear_1", n, 4*n)
}

func (c *converter) encoder(res Result) {
	n := res.AudioState
	c.put("encoder.positional_embedding", c.get("encoder/position_encodings/encodings", res.AudioCtx, n), 0, 0, ggmlmodel.TypeF32, res.AudioCtx, n)
	c.put("encoder.conv1.weight", c.get("encoder/conv1/weight", n, res.Mels, 3), 0, 0, c.wtype, n, res.Mels, 3)
	// whisper.cpp's conv biases are n×1 (broadcast over time).
	c.put("encoder.conv1.bias", c.get("encoder/conv1/bias", n), 0, 0, ggmlmodel.TypeF32, n, 1)
	c.put("encoder.conv2.weight", c.get("encoder/conv2/weight", n, n, 3), 0, 0, c.wtype, n, n, 3)
	c.put("encoder.conv2.bias", c.get("encoder/conv2/bias", n), 0, 0, ggmlmodel.TypeF32, n, 1)
	for i := range res.AudioLayers {
		p, from := fmt.Sprintf("encoder.blocks.%d", i), fmt.Sprintf("encoder/layer_%d", i)
		c.ffn(p, from+"/ffn", n)
		c.norm(p+".attn_ln", from+"/self_attention/layer_norm", n)
		c.fused(from+"/self_attention/linear_0", n, p+".attn.query", p+".attn.key", p+".attn.value")
		c.linear(p+".attn.out", from+"/self_attention/linear_1", n, n)
	}
	c.norm("encoder.ln_post", "encoder/layer_norm", n)
}

func (c *converter) decoder(res Result) {
	n := res.TextState
	c.put("decoder.positional_embedding", c.get("decoder/position_encodings/encodings", res.TextCtx, n), 0, 0, ggmlmodel.TypeF32, res.TextCtx, n)
	emb := c.get("decoder/embeddings/weight", res.Vocab, n)
	c.put("decoder.token_embedding.weight", emb, 0, 0, c.wtype, res.Vocab, n)
	for i := range res.TextLayers {
		p, from := fmt.Sprintf("decoder.blocks.%d", i), fmt.Sprintf("decoder/layer_%d", i)
		c.ffn(p, from+"/ffn", n)
		c.norm(p+".attn_ln", from+"/self_attention/layer_norm", n)
		c.fused(from+"/self_attention/linear_0", n, p+".attn.query", p+".attn.key", p+".attn.value")
		c.linear(p+".attn.out", from+"/self_attention/linear_1", n, n)
		c.norm(p+".cross_attn_ln", from+"/attention/layer_norm", n)
		c.linear(p+".cross_attn.query", from+"/attention/linear_0", n, n)
		c.fused(from+"/attention/linear_1", n, p+".cross_attn.key", p+".cross_attn.value")
		c.linear(p+".cross_attn.out", from+"/attention/linear_2", n, n)
	}
	c.norm("decoder.ln", "decoder/layer_norm", n)
	// whisper.cpp projects onto the token embedding: CTranslate2's
	// projection must be the same array (an alias, or equal bytes).
	if c.err != nil {
		return
	}
	proj := c.m.Variable("decoder/projection/weight")
	switch {
	case proj == nil:
	case proj == emb:
	case proj.DType == emb.DType && bytes.Equal(proj.Data, emb.Data):
		c.used[proj.Name] = true
	default:
		c.fail("%w: decoder/projection/weight differs from the token embedding; whisper.cpp ties them", ErrUnsupported)
	}
}

// unused fails on any array left over and lists the scalars left out.
func (c *converter) unused(res *Result) {
	if c.err != nil {
		return
	}
	var extra []string
	for _, v := range c.m.Variables {
		if c.used[v.Name] {
			continue
		}
		if len(v.Shape) == 0 || v.Name == "decoder/alignment_heads" {
			res.Ignored = append(res.Ignored, v.Name)
			continue
		}
		extra = append(extra, fmt.Sprintf("%s %v %s", v.Name, v.Shape, v.DType))
	}
	if len(extra) > 0 {
		c.fail("%w: %d arrays have no place in a whisper.cpp model: %s", ErrUnsupported, len(extra), strings.Join(extra, ", "))
	}
}

// writeAtomic writes path through write into a temporary file in the same
// folder, synced and renamed into place; on error the temporary file is
// removed and path is untouched. It returns the size and SHA-256.
func writeAtomic(path string, write func(io.Writer) error) (int64, string, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return 0, "", fmt.Errorf("ct2: write %s: %w", path, err)
	}
	fail := func(err error) (int64, string, error) {
		tmp.Close()
		os.Remove(tmp.Name())
		return 0, "", fmt.Errorf("ct2: write %s: %w", path, err)
	}
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(tmp, h), 1<<20)
	if err := write(bw); err != nil {
		return fail(err)
	}
	if err := bw.Flush(); err != nil {
		return fail(err)
	}
	st, err := tmp.Stat()
	if err != nil {
		return fail(err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return fail(err)
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return 0, "", fmt.Errorf("ct2: write %s: %w", path, err)
	}
	return st.Size(), hex.EncodeToString(h.Sum(nil)), nil
}
