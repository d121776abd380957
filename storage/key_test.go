package storage

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestValidateKey(t *testing.T) {
	for _, tc := range []struct {
		key string
		ok  bool
	}{
		{"a", true},
		{"audio/r-1/s-2/t-3/000000-047999.ogg", true},
		{"with space/é/日本.ogg", true},
		{".hidden/..x/x..", true},
		{"per%cent", true},
		{strings.Repeat("a", MaxSegmentBytes), true},
		{strings.Repeat("a/", MaxKeyBytes/2-1) + "bb", true},
		{"", false},
		{"/abs", false},
		{"trailing/", false},
		{"a//b", false},
		{".", false},
		{"..", false},
		{"a/./b", false},
		{"a/../b", false},
		{"../a", false},
		{`a\b`, false},
		{"a\x00b", false},
		{"a\x1fb", false},
		{"a\x7fb", false},
		{"a\u0085b", false}, // C1 control
		{"\xff", false},
		{"a\xc3", false}, // truncated UTF-8
		{strings.Repeat("a", MaxSegmentBytes+1), false},
		{strings.Repeat("a/", MaxKeyBytes/2) + "b", false},
	} {
		err := ValidateKey(tc.key)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateKey(%q) = %v, want ok=%v", tc.key, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidKey) {
			t.Errorf("ValidateKey(%q) = %v, not ErrInvalidKey", tc.key, err)
		}
	}
}

func TestValidatePrefix(t *testing.T) {
	for _, tc := range []struct {
		prefix         string
		matchable, bad bool
	}{
		{"", true, false},
		{"a", true, false},
		{"a/", true, false},
		{"a/b", true, false},
		{"a/../", false, false},
		{"a//", false, false},
		{"/a", false, false},
		{"a\x00", false, true},
		{`a\`, false, true},
	} {
		m, err := validatePrefix(tc.prefix)
		if m != tc.matchable || (err != nil) != tc.bad {
			t.Errorf("validatePrefix(%q) = %v, %v; want %v, bad=%v", tc.prefix, m, err, tc.matchable, tc.bad)
		}
	}
}

func TestValidateMetadata(t *testing.T) {
	for _, tc := range []struct {
		md map[string]string
		ok bool
	}{
		{nil, true},
		{map[string]string{"room": "r-1", "first-sample": "0", "k9": ""}, true},
		{map[string]string{"k": strings.Repeat("v", MaxMetadataBytes-1)}, true},
		{map[string]string{"k": strings.Repeat("v", MaxMetadataBytes)}, false},
		{map[string]string{"Room": "x"}, false},
		{map[string]string{"a_b": "x"}, false},
		{map[string]string{"a b": "x"}, false},
		{map[string]string{"": "x"}, false},
		{map[string]string{strings.Repeat("k", 129): "x"}, false},
		{map[string]string{"sha256": "x"}, false},
		{map[string]string{"k": "é"}, false},
		{map[string]string{"k": "a\tb"}, false},
		{map[string]string{"k": "v "}, false},
	} {
		err := validateMetadata(tc.md)
		if (err == nil) != tc.ok {
			t.Errorf("validateMetadata(%q) = %v, want ok=%v", tc.md, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidMetadata) {
			t.Errorf("validateMetadata(%q) = %v, not ErrInvalidMetadata", tc.md, err)
		}
	}
}

func TestSegmentEncoding(t *testing.T) {
	for _, seg := range []string{"a", "a%b", "%", "%25", "x%obj", "é"} {
		enc := encodeSegment(seg)
		if strings.Contains(enc, objSuffix) {
			t.Errorf("encodeSegment(%q) = %q contains %q", seg, enc, objSuffix)
		}
		if dec, ok := decodeSegment(enc); !ok || dec != seg {
			t.Errorf("decodeSegment(encodeSegment(%q)) = %q, %v", seg, dec, ok)
		}
	}
	for _, name := range []string{"", "a%", "a%2", "a%41", "%obj"} {
		if dec, ok := decodeSegment(name); ok {
			t.Errorf("decodeSegment(%q) = %q, ok; want rejected", name, dec)
		}
	}
}

// FuzzValidateKey checks that accepted keys obey every rule the stores rely
// on, and that the local store's file names round-trip.
func FuzzValidateKey(f *testing.F) {
	for _, s := range []string{"a", "a/b", "a/../b", "/a", "a//b", "a\\b", "a\x00", "é/日本", "%obj", "a%25/b", ".", "..."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		err := ValidateKey(key)
		if err != nil {
			if !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("ValidateKey(%q) = %v, not ErrInvalidKey", key, err)
			}
			return
		}
		if key == "" || len(key) > MaxKeyBytes || !utf8.ValidString(key) || key[0] == '/' ||
			strings.ContainsAny(key, "\\\x00") || strings.HasSuffix(key, "/") || strings.Contains(key, "//") {
			t.Fatalf("ValidateKey accepted %q", key)
		}
		for _, seg := range strings.Split(key, "/") {
			if seg == "." || seg == ".." || len(seg) > MaxSegmentBytes {
				t.Fatalf("ValidateKey accepted %q (segment %q)", key, seg)
			}
			enc := encodeSegment(seg)
			if strings.Contains(enc, "/") || strings.Contains(enc, objSuffix) {
				t.Fatalf("segment %q encodes to %q", seg, enc)
			}
			if dec, ok := decodeSegment(enc); !ok || dec != seg {
				t.Fatalf("segment %q: decode(encode) = %q, %v", seg, dec, ok)
			}
		}
		if m, err := validatePrefix(key); err != nil || !m {
			t.Fatalf("a valid key is not a valid prefix: %v %v", m, err)
		}
	})
}
