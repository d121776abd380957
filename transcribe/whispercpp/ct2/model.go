// Package ct2 reads CTranslate2 model files (the model.bin of a
// faster-whisper model folder) and converts CTranslate2 Whisper models into
// whisper.cpp's ggml model format (Convert), so that teams running
// faster-whisper can use the same weights in process.
//
// model.bin layout (little-endian; CTranslate2's python/ctranslate2/specs/
// model_spec.py writes it, src/models/model.cc reads it), binary version 6:
//
//	uint32 version
//	string spec name ("WhisperSpec"); uint32 spec revision
//	uint32 n_variables; n_variables × (
//	    string name; uint8 rank; uint32 dims[rank]; uint8 dtype;
//	    uint32 n_bytes; n_bytes data)
//	uint32 n_aliases; n_aliases × (string alias; string variable)
//
// A string is uint16 n (length + 1), then n bytes ending in NUL. The dtype
// ids are those of CTranslate2's DataType: float32 0, int8 1, int16 2,
// int32 3, float16 4, bfloat16 5.
package ct2

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
)

// Version is the model.bin format version Read accepts (CTranslate2 3.x
// and 4.x write it).
const Version = 6

// Bounds far above any real model, so a corrupt header cannot make Read
// allocate more than the input holds.
const (
	maxVariables = 1 << 16
	maxRank      = 8
)

// ErrFormat reports input that is not a CTranslate2 model file, or is cut
// short.
var ErrFormat = errors.New("ct2: not a CTranslate2 model file")

// ErrUnsupported reports a well-formed model this package cannot convert:
// another format version, another spec, a quantised data type.
var ErrUnsupported = errors.New("ct2: unsupported model")

// DType is a variable's element type.
type DType uint8

// CTranslate2's data types.
const (
	Float32  DType = 0
	Int8     DType = 1
	Int16    DType = 2
	Int32    DType = 3
	Float16  DType = 4
	BFloat16 DType = 5
)

// Size is the size of one element in bytes, 0 for an unknown type.
func (d DType) Size() int {
	switch d {
	case Int8:
		return 1
	case Int16, Float16, BFloat16:
		return 2
	case Float32, Int32:
		return 4
	}
	return 0
}

func (d DType) String() string {
	switch d {
	case Float32:
		return "float32"
	case Int8:
		return "int8"
	case Int16:
		return "int16"
	case Int32:
		return "int32"
	case Float16:
		return "float16"
	case BFloat16:
		return "bfloat16"
	}
	return fmt.Sprintf("dtype(%d)", uint8(d))
}

// Variable is one named array of a model.
type Variable struct {
	Name  string
	Shape []int // empty for a scalar
	DType DType
	// Data is the elements, little-endian, row-major.
	Data []byte
}

// Elements is the product of v.Shape (1 for a scalar).
func (v *Variable) Elements() int64 {
	n := int64(1)
	for _, d := range v.Shape {
		n *= int64(d)
	}
	return n
}

// Model is a parsed model.bin.
type Model struct {
	Version  uint32
	Spec     string
	Revision uint32
	// Variables in file order.
	Variables []*Variable
	// Aliases maps an alias to the variable it names (CTranslate2 stores a
	// shared array once: Whisper's output projection is the token
	// embedding).
	Aliases map[string]string
}

// Variable returns the variable called name, following aliases.
func (m *Model) Variable(name string) *Variable {
	if target, ok := m.Aliases[name]; ok {
		name = target
	}
	for _, v := range m.Variables {
		if v.Name == name {
			return v
		}
	}
	return nil
}

// ReadFile reads a model.bin.
func ReadFile(path string) (*Model, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("ct2: %w", err)
	}
	defer f.Close()
	m, err := Read(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// Read parses a model.bin: the whole file, which must end after the
// aliases. It checks that every variable's byte count matches its shape and
// data type; it does not judge what the variables mean (see Convert).
func Read(r io.Reader) (*Model, error) {
	rd := &reader{r: bufio.NewReader(r)}
	m := &Model{Aliases: map[string]string{}}
	m.Version = rd.u32("format version")
	// A file has no magic number: a version far from any CTranslate2 has
	// written means another kind of file.
	if rd.err == nil && (m.Version == 0 || m.Version > 64) {
		return nil, fmt.Errorf("%w: it starts with %#x, not a format version", ErrFormat, m.Version)
	}
	if rd.err == nil && m.Version != Version {
		return nil, fmt.Errorf("%w: model.bin format version %d (this reader knows version %d, written by CTranslate2 3 and 4)", ErrUnsupported, m.Version, Version)
	}
	m.Spec = rd.str("spec name")
	m.Revision = rd.u32("spec revision")
	n := rd.u32("variable count")
	if rd.err == nil && n > maxVariables {
		return nil, fmt.Errorf("%w: %d variables", ErrFormat, n)
	}
	seen := map[string]bool{}
	for i := 0; rd.err == nil && i < int(n); i++ {
		v := rd.variable(i)
		if rd.err != nil {
			break
		}
		if seen[v.Name] {
			return nil, fmt.Errorf("%w: variable %q appears twice", ErrFormat, v.Name)
		}
		seen[v.Name] = true
		m.Variables = append(m.Variables, v)
	}
	na := rd.u32("alias count")
	if rd.err == nil && na > maxVariables {
		return nil, fmt.Errorf("%w: %d aliases", ErrFormat, na)
	}
	for i := 0; rd.err == nil && i < int(na); i++ {
		alias, target := rd.str("alias"), rd.str("alias target")
		if rd.err != nil {
			break
		}
		if !seen[target] {
			return nil, fmt.Errorf("%w: alias %q names %q, which is not a variable", ErrFormat, alias, target)
		}
		if seen[alias] || m.Aliases[alias] != "" {
			return nil, fmt.Errorf("%w: alias %q is also a variable or another alias", ErrFormat, alias)
		}
		m.Aliases[alias] = target
	}
	if rd.err != nil {
		return nil, rd.err
	}
	if _, err := rd.r.ReadByte(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the aliases", ErrFormat)
	}
	return m, nil
}

// reader keeps the first error: after it every read returns zero values.
type reader struct {
	r   *bufio.Reader
	err error
}

func (rd *reader) fail(what string, err error) {
	if rd.err != nil {
		return
	}
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	rd.err = fmt.Errorf("%w: %s: %w (file truncated?)", ErrFormat, what, err)
}

func (rd *reader) full(what string, n int) []byte {
	if rd.err != nil {
		return nil
	}
	b, err := readN(rd.r, int64(n))
	if err != nil {
		rd.fail(what, err)
		return nil
	}
	return b
}

func (rd *reader) u8(what string) uint8 {
	b := rd.full(what, 1)
	if b == nil {
		return 0
	}
	return b[0]
}

func (rd *reader) u16(what string) uint16 {
	b := rd.full(what, 2)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint16(b)
}

func (rd *reader) u32(what string) uint32 {
	b := rd.full(what, 4)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint32(b)
}

func (rd *reader) str(what string) string {
	n := rd.u16(what + " length")
	if rd.err != nil {
		return ""
	}
	if n == 0 {
		rd.err = fmt.Errorf("%w: %s: zero-length string (no NUL)", ErrFormat, what)
		return ""
	}
	b := rd.full(what, int(n))
	if rd.err != nil {
		return ""
	}
	if b[n-1] != 0 || bytes.IndexByte(b[:n-1], 0) >= 0 {
		rd.err = fmt.Errorf("%w: %s %q is not a NUL-terminated string", ErrFormat, what, b)
		return ""
	}
	return string(b[:n-1])
}

func (rd *reader) variable(i int) *Variable {
	v := &Variable{Name: rd.str(fmt.Sprintf("variable %d name", i))}
	rank := rd.u8("rank of " + v.Name)
	if rd.err == nil && rank > maxRank {
		rd.err = fmt.Errorf("%w: variable %s has rank %d", ErrFormat, v.Name, rank)
	}
	elems := int64(1)
	for k := 0; rd.err == nil && k < int(rank); k++ {
		d := rd.u32("shape of " + v.Name)
		v.Shape = append(v.Shape, int(d))
		elems *= int64(d)
		if elems > 1<<40 {
			rd.err = fmt.Errorf("%w: variable %s: shape too large", ErrFormat, v.Name)
		}
	}
	v.DType = DType(rd.u8("dtype of " + v.Name))
	if rd.err == nil && v.DType.Size() == 0 {
		rd.err = fmt.Errorf("%w: variable %s has unknown dtype id %d", ErrFormat, v.Name, uint8(v.DType))
	}
	size := rd.u32("size of " + v.Name)
	if rd.err == nil && int64(size) != elems*int64(v.DType.Size()) {
		rd.err = fmt.Errorf("%w: variable %s: %d bytes for shape %v of %s", ErrFormat, v.Name, size, v.Shape, v.DType)
	}
	v.Data = rd.full("data of "+v.Name, int(size))
	return v
}

// readN reads exactly n bytes, growing its buffer as data arrives: a
// corrupt size cannot allocate more than the input holds.
func readN(r io.Reader, n int64) ([]byte, error) {
	const chunk = 1 << 20
	if n <= chunk {
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, err
		}
		return b, nil
	}
	var buf bytes.Buffer
	got, err := io.CopyN(&buf, r, n)
	if err != nil {
		return nil, fmt.Errorf("%d of %d bytes: %w", got, n, err)
	}
	return buf.Bytes(), nil
}

// WriteTo writes m in the model.bin format (for tests and tools that
// build models; Read(WriteTo(m)) is m).
func (m *Model) WriteTo(w io.Writer) (int64, error) {
	var b bytes.Buffer
	le := binary.LittleEndian
	str := func(s string) {
		b.Write(le.AppendUint16(nil, uint16(len(s)+1)))
		b.WriteString(s)
		b.WriteByte(0)
	}
	b.Write(le.AppendUint32(nil, m.Version))
	str(m.Spec)
	b.Write(le.AppendUint32(nil, m.Revision))
	b.Write(le.AppendUint32(nil, uint32(len(m.Variables))))
	for _, v := range m.Variables {
		str(v.Name)
		b.WriteByte(uint8(len(v.Shape)))
		for _, d := range v.Shape {
			b.Write(le.AppendUint32(nil, uint32(d)))
		}
		b.WriteByte(uint8(v.DType))
		b.Write(le.AppendUint32(nil, uint32(len(v.Data))))
		b.Write(v.Data)
	}
	aliases := make([]string, 0, len(m.Aliases))
	for a := range m.Aliases {
		aliases = append(aliases, a)
	}
	slices.Sort(aliases)
	b.Write(le.AppendUint32(nil, uint32(len(aliases))))
	for _, a := range aliases {
		str(a)
		str(m.Aliases[a])
	}
	n, err := w.Write(b.Bytes())
	if err != nil {
		return int64(n), fmt.Errorf("ct2: write: %w", err)
	}
	return int64(n), nil
}
