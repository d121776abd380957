// Package ggmlmodel writes and reads the head of whisper.cpp's ggml model
// format: magic, hyperparameters, mel filters and vocabulary. A file with
// those and no tensors is what whisper.cpp's own tests use: it loads it
// "as an empty model for testing" (no weights, garbage output), which is
// enough to prove that a build links, loads a model, creates a context and
// runs whisper_full, without shipping tens of megabytes of weights.
//
// The token strings must be the real tokenizer's: whisper.cpp looks some
// tokens up by their text (" ", " -", " '", the non-speech symbols) and
// throws std::out_of_range when they are missing. ReadVocabulary takes them
// from a CTranslate2 vocabulary.txt (as in faster-whisper's model folders),
// which holds the same GPT-2 byte-level tokens as whisper's tokenizer.
//
// Layout (little-endian; see whisper.cpp's models/convert-pt-to-ggml.py and
// whisper_model_load in src/whisper.cpp):
//
//	uint32 magic 0x67676d6c ("ggml")
//	int32  n_vocab n_audio_ctx n_audio_state n_audio_head n_audio_layer
//	       n_text_ctx n_text_state n_text_head n_text_layer n_mels ftype
//	int32  n_mel, n_fft; float32 filters[n_mel*n_fft]
//	int32  n_tokens; n_tokens × (uint32 len, len bytes)
//	tensors (none here)
package ggmlmodel

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
)

// Magic starts every ggml Whisper model file.
const Magic = 0x67676d6c

// NFFT is the number of frequency bins of Whisper's mel filters: 1 + 400/2
// for its 400-sample (25 ms) FFT window.
const NFFT = 201

// SampleRate is the audio rate the mel filters are made for.
const SampleRate = 16000

// Bounds on what Read accepts, far above any real model, so a corrupt
// header cannot make it allocate gigabytes.
const (
	maxFilterValues = 1 << 20
	maxTokens       = 1 << 20
	maxTokenLen     = 1 << 16
)

// HParams are a model's hyperparameters, in file order.
type HParams struct {
	NVocab      int32
	NAudioCtx   int32
	NAudioState int32
	NAudioHead  int32
	NAudioLayer int32
	NTextCtx    int32
	NTextState  int32
	NTextHead   int32
	NTextLayer  int32
	NMels       int32
	// FType is the weights' type: 0 f32, 1 f16 (quantised types above).
	FType int32
}

// TinyEn are the hyperparameters of Whisper tiny.en.
var TinyEn = HParams{
	NVocab: 51864, NAudioCtx: 1500, NAudioState: 384, NAudioHead: 6, NAudioLayer: 4,
	NTextCtx: 448, NTextState: 384, NTextHead: 6, NTextLayer: 4, NMels: 80, FType: 1,
}

// Tiny are the hyperparameters of multilingual Whisper tiny: whisper.cpp
// treats a model with n_vocab >= 51865 as multilingual (language tokens,
// auto-detection).
var Tiny = func() HParams { h := TinyEn; h.NVocab = 51865; return h }()

// File is the head of a model file.
type File struct {
	HParams HParams
	// NMel and NFFT shape Filters (NMel rows of NFFT values).
	NMel, NFFT int32
	Filters    []float32
	// Tokens are the vocabulary's strings as raw bytes, in id order.
	Tokens [][]byte
}

// New returns the head of a weightless model: hp, Whisper's mel filters for
// hp.NMels, and tokens.
func New(hp HParams, tokens [][]byte) *File {
	return &File{HParams: hp, NMel: hp.NMels, NFFT: NFFT, Filters: MelFilters(int(hp.NMels)), Tokens: tokens}
}

// WriteTo writes f in the ggml model format.
func (f *File) WriteTo(w io.Writer) (int64, error) {
	if int(f.NMel)*int(f.NFFT) != len(f.Filters) {
		return 0, fmt.Errorf("ggmlmodel: write: %d filter values for %d×%d", len(f.Filters), f.NMel, f.NFFT)
	}
	var b bytes.Buffer
	le := binary.LittleEndian
	b.Write(le.AppendUint32(nil, Magic))
	for _, v := range []int32{
		f.HParams.NVocab, f.HParams.NAudioCtx, f.HParams.NAudioState, f.HParams.NAudioHead,
		f.HParams.NAudioLayer, f.HParams.NTextCtx, f.HParams.NTextState, f.HParams.NTextHead,
		f.HParams.NTextLayer, f.HParams.NMels, f.HParams.FType, f.NMel, f.NFFT,
	} {
		b.Write(le.AppendUint32(nil, uint32(v)))
	}
	for _, v := range f.Filters {
		b.Write(le.AppendUint32(nil, math.Float32bits(v)))
	}
	b.Write(le.AppendUint32(nil, uint32(len(f.Tokens))))
	for _, t := range f.Tokens {
		b.Write(le.AppendUint32(nil, uint32(len(t))))
		b.Write(t)
	}
	n, err := w.Write(b.Bytes())
	if err != nil {
		return int64(n), fmt.Errorf("ggmlmodel: write: %w", err)
	}
	return int64(n), nil
}

// WriteFile writes f to path (mode 0644).
func (f *File) WriteFile(path string) error {
	out, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("ggmlmodel: %w", err)
	}
	if _, err := f.WriteTo(out); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("ggmlmodel: %w", err)
	}
	return nil
}

// ErrFormat reports a file that is not a ggml Whisper model head.
var ErrFormat = errors.New("ggmlmodel: not a ggml Whisper model")

// Read parses the head of a model file (everything up to the tensors) and
// reports how many bytes it used.
func Read(r io.Reader) (*File, int64, error) {
	cr := &countingReader{r: bufio.NewReader(r)}
	f, err := read(cr)
	return f, cr.n, err
}

func read(r io.Reader) (*File, error) {
	var head [14]uint32
	if err := binary.Read(r, binary.LittleEndian, &head); err != nil {
		return nil, fmt.Errorf("%w: header: %w", ErrFormat, err)
	}
	if head[0] != Magic {
		return nil, fmt.Errorf("%w: magic %#x", ErrFormat, head[0])
	}
	i := func(k int) int32 { return int32(head[k]) }
	f := &File{
		HParams: HParams{i(1), i(2), i(3), i(4), i(5), i(6), i(7), i(8), i(9), i(10), i(11)},
		NMel:    i(12), NFFT: i(13),
	}
	if f.NMel < 0 || f.NFFT < 0 || int64(f.NMel)*int64(f.NFFT) > maxFilterValues {
		return nil, fmt.Errorf("%w: mel filters %d×%d", ErrFormat, f.NMel, f.NFFT)
	}
	f.Filters = make([]float32, int(f.NMel)*int(f.NFFT))
	if err := binary.Read(r, binary.LittleEndian, f.Filters); err != nil {
		return nil, fmt.Errorf("%w: mel filters: %w", ErrFormat, err)
	}
	var n int32
	if err := binary.Read(r, binary.LittleEndian, &n); err != nil {
		return nil, fmt.Errorf("%w: vocabulary size: %w", ErrFormat, err)
	}
	if n < 0 || n > maxTokens {
		return nil, fmt.Errorf("%w: vocabulary size %d", ErrFormat, n)
	}
	f.Tokens = make([][]byte, 0, min(n, 1<<16))
	for k := range n {
		var l uint32
		if err := binary.Read(r, binary.LittleEndian, &l); err != nil {
			return nil, fmt.Errorf("%w: token %d: %w", ErrFormat, k, err)
		}
		if l > maxTokenLen {
			return nil, fmt.Errorf("%w: token %d is %d bytes long", ErrFormat, k, l)
		}
		t := make([]byte, l)
		if _, err := io.ReadFull(r, t); err != nil {
			return nil, fmt.Errorf("%w: token %d: %w", ErrFormat, k, err)
		}
		f.Tokens = append(f.Tokens, t)
	}
	return f, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// endOfText is the first special token: the vocabulary whisper.cpp reads
// ends with it, and whisper.cpp names the tokens after it itself.
const endOfText = "<|endoftext|>"

// ReadVocabulary reads a CTranslate2 vocabulary.txt (one GPT-2 byte-level
// encoded token per line, in id order) and returns the tokens as raw bytes
// up to and including <|endoftext|>: what whisper.cpp's converter writes.
func ReadVocabulary(r io.Reader) ([][]byte, error) {
	dec := byteDecoder()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxTokenLen)
	var tokens [][]byte
	for line := 1; sc.Scan(); line++ {
		s := sc.Text()
		if s == "" {
			return nil, fmt.Errorf("ggmlmodel: vocabulary line %d is empty", line)
		}
		if len(tokens) >= maxTokens {
			return nil, fmt.Errorf("ggmlmodel: vocabulary has more than %d tokens", maxTokens)
		}
		t := make([]byte, 0, len(s))
		for _, r := range s {
			b, ok := dec[r]
			if !ok {
				return nil, fmt.Errorf("ggmlmodel: vocabulary line %d: %q is not GPT-2 byte-level text", line, r)
			}
			t = append(t, b)
		}
		tokens = append(tokens, t)
		if s == endOfText {
			return tokens, nil
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("ggmlmodel: vocabulary: %w", err)
	}
	return nil, fmt.Errorf("ggmlmodel: vocabulary has no %s token (%d tokens): not a Whisper vocabulary", endOfText, len(tokens))
}

// ReadVocabularyFile is ReadVocabulary on a file.
func ReadVocabularyFile(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("ggmlmodel: %w", err)
	}
	defer f.Close()
	return ReadVocabulary(f)
}

// byteDecoder inverts GPT-2's bytes_to_unicode: printable Latin-1 bytes
// stand for themselves, the other 68 bytes for the runes from U+0100 on.
func byteDecoder() map[rune]byte {
	dec := make(map[rune]byte, 256)
	next := rune(256)
	for b := range 256 {
		if ('!' <= b && b <= '~') || ('¡' <= b && b <= '¬') || ('®' <= b && b <= 'ÿ') {
			dec[rune(b)] = byte(b)
			continue
		}
		dec[next] = byte(b)
		next++
	}
	return dec
}

// MelFilters returns Whisper's mel filter bank for nMels bands over NFFT
// bins, row by row: librosa.filters.mel(sr=16000, n_fft=400, n_mels=nMels)
// (Slaney mel scale and area normalisation), which is what whisper's
// mel_filters.npz holds.
func MelFilters(nMels int) []float32 {
	if nMels <= 0 {
		return nil
	}
	fmax := float64(SampleRate) / 2
	lo, hi := hzToMel(0), hzToMel(fmax)
	pts := make([]float64, nMels+2)
	for i := range pts {
		pts[i] = melToHz(lo + (hi-lo)*float64(i)/float64(nMels+1))
	}
	out := make([]float32, nMels*NFFT)
	for i := range nMels {
		enorm := 2 / (pts[i+2] - pts[i])
		for j := range NFFT {
			f := fmax * float64(j) / float64(NFFT-1)
			lower := (f - pts[i]) / (pts[i+1] - pts[i])
			upper := (pts[i+2] - f) / (pts[i+2] - pts[i+1])
			out[i*NFFT+j] = float32(max(0, min(lower, upper)) * enorm)
		}
	}
	return out
}

// The Slaney mel scale: linear below 1 kHz, logarithmic above.
const (
	melFSp     = 200.0 / 3
	melMinLog  = 1000.0 / melFSp
	melMinLogF = 1000.0
)

var melLogStep = math.Log(6.4) / 27

func hzToMel(f float64) float64 {
	if f < melMinLogF {
		return f / melFSp
	}
	return melMinLog + math.Log(f/melMinLogF)/melLogStep
}

func melToHz(m float64) float64 {
	if m < melMinLog {
		return m * melFSp
	}
	return melMinLogF * math.Exp(melLogStep*(m-melMinLog))
}

// Tensor types whisper.cpp's ggml files use for Whisper weights.
const (
	TypeF32 int32 = 0
	TypeF16 int32 = 1
)

// maxTensorDims is ggml's GGML_MAX_DIMS; whisper.cpp reads at most 4.
const maxTensorDims = 4

// maxTensorName bounds a tensor's name on reading.
const maxTensorName = 1 << 10

// TypeSize is the size in bytes of one element of a tensor type (only F32
// and F16: what Whisper's converters write unquantised), 0 for others.
func TypeSize(typ int32) int {
	switch typ {
	case TypeF32:
		return 4
	case TypeF16:
		return 2
	}
	return 0
}

// Tensor is one tensor record of a model file.
type Tensor struct {
	Name string
	// Dims is the shape in PyTorch order (outermost first), as the
	// converters name it; the file stores it reversed (ggml's ne).
	Dims []int
	Type int32
	// Data is the elements, little-endian, in row-major order of Dims
	// (from ReadTensors only when asked for).
	Data []byte
	// Size is the data's length in bytes.
	Size int64
}

// Elements is the product of t.Dims.
func (t Tensor) Elements() int64 {
	n := int64(1)
	for _, d := range t.Dims {
		n *= int64(d)
	}
	return n
}

// WriteTensor writes one tensor record: int32 n_dims, name length and type,
// the dims innermost first (ggml's ne), the name, then the data.
func WriteTensor(w io.Writer, t Tensor) error {
	if len(t.Dims) == 0 || len(t.Dims) > maxTensorDims {
		return fmt.Errorf("ggmlmodel: tensor %s: %d dimensions", t.Name, len(t.Dims))
	}
	if size := TypeSize(t.Type); size == 0 || int64(len(t.Data)) != t.Elements()*int64(size) {
		return fmt.Errorf("ggmlmodel: tensor %s: %d bytes of type %d for shape %v", t.Name, len(t.Data), t.Type, t.Dims)
	}
	le := binary.LittleEndian
	b := make([]byte, 0, 12+4*len(t.Dims)+len(t.Name))
	b = le.AppendUint32(b, uint32(len(t.Dims)))
	b = le.AppendUint32(b, uint32(len(t.Name)))
	b = le.AppendUint32(b, uint32(t.Type))
	for i := len(t.Dims) - 1; i >= 0; i-- {
		b = le.AppendUint32(b, uint32(t.Dims[i]))
	}
	b = append(b, t.Name...)
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("ggmlmodel: tensor %s: %w", t.Name, err)
	}
	if _, err := w.Write(t.Data); err != nil {
		return fmt.Errorf("ggmlmodel: tensor %s: %w", t.Name, err)
	}
	return nil
}

// ReadTensors reads the tensor records that follow a model's head (see
// Read) up to the end of r: names, shapes, types and sizes, in file order,
// and the data too when withData is set. It checks each record the way
// whisper.cpp's loader does (known type, data present).
func ReadTensors(r io.Reader, withData bool) ([]Tensor, error) {
	br := bufio.NewReader(r)
	var out []Tensor
	for {
		var head [3]int32
		if err := binary.Read(br, binary.LittleEndian, &head); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("%w: tensor %d header: %w", ErrFormat, len(out), err)
		}
		nDims, nameLen, typ := head[0], head[1], head[2]
		if nDims < 1 || nDims > maxTensorDims || nameLen < 1 || nameLen > maxTensorName || TypeSize(typ) == 0 {
			return nil, fmt.Errorf("%w: tensor %d: %d dims, name of %d bytes, type %d", ErrFormat, len(out), nDims, nameLen, typ)
		}
		ne := make([]int32, nDims)
		if err := binary.Read(br, binary.LittleEndian, ne); err != nil {
			return nil, fmt.Errorf("%w: tensor %d shape: %w", ErrFormat, len(out), err)
		}
		name := make([]byte, nameLen)
		if _, err := io.ReadFull(br, name); err != nil {
			return nil, fmt.Errorf("%w: tensor %d name: %w", ErrFormat, len(out), err)
		}
		t := Tensor{Name: string(name), Type: typ, Dims: make([]int, nDims)}
		for i, d := range ne {
			if d < 1 {
				return nil, fmt.Errorf("%w: tensor %s: dimension %d", ErrFormat, t.Name, d)
			}
			t.Dims[int(nDims)-1-i] = int(d)
		}
		if t.Elements() > 1<<40 {
			return nil, fmt.Errorf("%w: tensor %s: shape %v", ErrFormat, t.Name, t.Dims)
		}
		t.Size = t.Elements() * int64(TypeSize(typ))
		dst := io.Discard
		var data bytes.Buffer
		if withData {
			dst = &data
		}
		if n, err := io.CopyN(dst, br, t.Size); err != nil {
			return nil, fmt.Errorf("%w: tensor %s: %d of %d data bytes: %w", ErrFormat, t.Name, n, t.Size, err)
		}
		if withData {
			t.Data = data.Bytes()
		}
		out = append(out, t)
	}
}
