package ggmlmodel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

func TestReadVocabulary(t *testing.T) {
	got, err := ReadVocabularyFile("testdata/vocabulary.txt")
	if err != nil {
		t.Fatal(err)
	}
	// Byte-level text decodes to raw bytes ("Ġ" is a space, "Ċ" a newline,
	// "âĢĶ" the three bytes of an em dash); the tokens after <|endoftext|>
	// are left for whisper.cpp to name.
	want := []string{"!", "the", " the", "\n", " -", "—", "<|endoftext|>"}
	if len(got) != len(want) {
		t.Fatalf("got %d tokens %q, want %q", len(got), got, want)
	}
	for i := range want {
		if string(got[i]) != want[i] {
			t.Errorf("token %d = %q, want %q", i, got[i], want[i])
		}
	}
}

func TestReadVocabularyErrors(t *testing.T) {
	for name, in := range map[string]string{
		"empty line":        "a\n\nb\n<|endoftext|>\n",
		"not byte-level":    "a\nb c\n<|endoftext|>\n", // a raw space is never in byte-level text
		"no end of text":    "a\nb\n",
		"nothing":           "",
		"rune out of range": "a\nĀń\n<|endoftext|>\n", // U+0144 is past the 68 substitutes
	} {
		if _, err := ReadVocabulary(strings.NewReader(in)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestByteDecoder(t *testing.T) {
	dec := byteDecoder()
	if len(dec) != 256 {
		t.Fatalf("%d runes, want 256", len(dec))
	}
	seen := map[byte]bool{}
	for _, b := range dec {
		seen[b] = true
	}
	if len(seen) != 256 {
		t.Errorf("the decoder covers %d bytes, want all 256", len(seen))
	}
	for r, b := range map[rune]byte{'Ġ': ' ', 'Ċ': '\n', 'ĉ': '\t', 'Ā': 0, 'a': 'a', 'ÿ': 0xff, 'Ń': 0xad} {
		if dec[r] != b {
			t.Errorf("%q decodes to %#x, want %#x", r, dec[r], b)
		}
	}
}

// TestMelFilters pins values of whisper's mel_filters.npz (mel_80), as
// whisper.cpp's converter writes them into every model.
func TestMelFilters(t *testing.T) {
	f := MelFilters(80)
	if len(f) != 80*NFFT {
		t.Fatalf("%d values, want %d", len(f), 80*NFFT)
	}
	var sum, maxv float64
	for _, v := range f {
		if v < 0 {
			t.Fatalf("negative weight %v", v)
		}
		sum += float64(v)
		maxv = max(maxv, float64(v))
	}
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"sum", sum, 1.999024092387117},
		{"max", maxv, 0.025880683213472366},
		{"[0][1]", float64(f[1]), 0.02486259490251541},
	} {
		if math.Abs(c.got-c.want) > 1e-6 {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	// Each band is one triangle: rising, then falling.
	for i := range 80 {
		row := f[i*NFFT : (i+1)*NFFT]
		peak := slices.Index(row, slices.Max(row))
		if !slices.IsSorted(row[:peak+1]) {
			t.Errorf("band %d does not rise to its peak at bin %d", i, peak)
		}
		if !slices.IsSortedFunc(row[peak:], func(a, b float32) int { return -cmpFloat(a, b) }) {
			t.Errorf("band %d does not fall after its peak at bin %d", i, peak)
		}
	}
	if MelFilters(0) != nil {
		t.Error("MelFilters(0) is not nil")
	}
}

func cmpFloat(a, b float32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestRoundTrip(t *testing.T) {
	tokens, err := ReadVocabularyFile("testdata/vocabulary.txt")
	if err != nil {
		t.Fatal(err)
	}
	for _, hp := range []HParams{TinyEn, Tiny} {
		var buf bytes.Buffer
		n, err := New(hp, tokens).WriteTo(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if want := int64(4*14 + 4*80*NFFT + 4 + 7*4 + len(bytes.Join(tokens, nil))); n != want || int64(buf.Len()) != want {
			t.Errorf("wrote %d bytes (buffer %d), want %d", n, buf.Len(), want)
		}
		if binary.LittleEndian.Uint32(buf.Bytes()) != 0x67676d6c || string(buf.Bytes()[:4]) != "lmgg" {
			t.Errorf("magic % x", buf.Bytes()[:4])
		}
		f, used, err := Read(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		if used != n || f.HParams != hp || f.NMel != 80 || f.NFFT != NFFT ||
			!slices.Equal(f.Filters, MelFilters(80)) || !slices.EqualFunc(f.Tokens, tokens, bytes.Equal) {
			t.Errorf("read back %+v (%d bytes), differs from what was written", f.HParams, used)
		}
	}
}

func TestReadErrors(t *testing.T) {
	var good bytes.Buffer
	if _, err := New(TinyEn, [][]byte{[]byte("a")}).WriteTo(&good); err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	patch := func(off int, v uint32) []byte {
		b := bytes.Clone(good.Bytes())
		le.PutUint32(b[off:], v)
		return b
	}
	vocabOff := 4*14 + 4*80*NFFT
	for name, in := range map[string][]byte{
		"empty":           nil,
		"bad magic":       patch(0, 0x46554747),
		"huge filters":    patch(4*12, 1<<30),
		"negative n_mel":  patch(4*12, math.MaxUint32),
		"truncated":       good.Bytes()[:good.Len()-1],
		"huge vocabulary": patch(vocabOff, 1<<30),
		"huge token":      patch(vocabOff+4, 1<<30),
	} {
		if _, _, err := Read(bytes.NewReader(in)); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: err = %v, want ErrFormat", name, err)
		}
	}
}

func TestWriteToChecksShape(t *testing.T) {
	f := New(TinyEn, nil)
	f.Filters = f.Filters[1:]
	if _, err := f.WriteTo(&bytes.Buffer{}); err == nil {
		t.Error("no error for filters that do not fill NMel×NFFT")
	}
}

// FuzzRead: Read never panics, and what it accepts writes back byte for
// byte.
func FuzzRead(f *testing.F) {
	var seed bytes.Buffer
	if _, err := New(HParams{NVocab: 3, NMels: 2}, [][]byte{[]byte("a"), {}, []byte("<|endoftext|>")}).WriteTo(&seed); err != nil {
		f.Fatal(err)
	}
	f.Add(seed.Bytes())
	f.Add([]byte("lmgg"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, n, err := Read(bytes.NewReader(data))
		if err != nil {
			return
		}
		var out bytes.Buffer
		if _, err := file.WriteTo(&out); err != nil {
			t.Fatal(err)
		}
		if n > int64(len(data)) || !bytes.Equal(out.Bytes(), data[:n]) {
			t.Fatalf("round trip differs: read %d of %d bytes, wrote %d", n, len(data), out.Len())
		}
	})
}

// FuzzReadVocabulary: no panics; an accepted vocabulary ends with
// <|endoftext|> and holds no empty token.
func FuzzReadVocabulary(f *testing.F) {
	f.Add("!\nĠthe\n<|endoftext|>\n")
	f.Add("a\n\n")
	f.Add("ĀĠĊ\n<|endoftext|>")
	f.Fuzz(func(t *testing.T, in string) {
		tokens, err := ReadVocabulary(strings.NewReader(in))
		if err != nil {
			return
		}
		if len(tokens) == 0 || string(tokens[len(tokens)-1]) != "<|endoftext|>" {
			t.Fatalf("accepted %q without ending at <|endoftext|>", in)
		}
		for i, tok := range tokens {
			if len(tok) == 0 {
				t.Fatalf("token %d is empty", i)
			}
		}
	})
}
