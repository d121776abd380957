package crypt

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestLoadLocalKEK(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "secrets", "kek.key")

	if _, err := LoadLocalKEK(path, false); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "create_kek") {
		t.Fatalf("missing file without create: %v; want an error naming the file and crypto.create_kek", err)
	}
	// Several processes starting at once agree on one key.
	var wg sync.WaitGroup
	keks := make([]*LocalKEK, 4)
	errs := make([]error, len(keks))
	for i := range keks {
		wg.Go(func() { keks[i], errs[i] = LoadLocalKEK(path, true) })
	}
	wg.Wait()
	for i := range keks {
		if errs[i] != nil {
			t.Fatalf("create: %v", errs[i])
		}
		if keks[i].ID() != keks[0].ID() {
			t.Errorf("concurrent creators got different keys: %s, %s", keks[i].ID(), keks[0].ID())
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("created with mode %04o, want 0600", fi.Mode().Perm())
	}
	again, err := LoadLocalKEK(path, false)
	if err != nil || again.ID() != keks[0].ID() || !strings.HasPrefix(again.ID(), "local:") {
		t.Fatalf("reload: %v, id %s vs %s", err, again.ID(), keks[0].ID())
	}
	if b, _ := os.ReadFile(path); bytes.Contains([]byte(again.ID()), bytes.TrimSpace(b)[:16]) {
		t.Error("the KEK ID reveals key material")
	}

	for _, tc := range []struct {
		name    string
		content []byte
		mode    os.FileMode
		want    string // in the error; "" = loads
	}{
		{"raw bytes", bytes.Repeat([]byte{7}, 32), 0o600, ""},
		{"hex with newline", []byte(strings.Repeat("ab", 32) + "\n"), 0o400, ""},
		{"group readable", []byte(strings.Repeat("ab", 32)), 0o640, ""},
		{"world readable", []byte(strings.Repeat("ab", 32)), 0o644, "chmod 600"},
		{"group writable", []byte(strings.Repeat("ab", 32)), 0o620, "chmod 600"},
		{"short", []byte("abcd"), 0o600, "64 hex digits"},
		{"bad hex", []byte(strings.Repeat("zz", 32)), 0o600, "64 hex digits"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "kek")
			if err := os.WriteFile(p, tc.content, tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, tc.mode); err != nil {
				t.Fatal(err)
			}
			_, err := LoadLocalKEK(p, true)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("load: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("load: %v; want an error saying %q", err, tc.want)
			}
		})
	}
}

func TestLocalKEKWrap(t *testing.T) {
	ctx := testCtx(t)
	a, b := newKEK(t), newKEK(t)
	dek := randBytes(t, 32)
	w, err := a.Wrap(ctx, dek, []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(w, dek) {
		t.Fatal("wrapped key contains the key")
	}
	if got, err := a.Unwrap(ctx, w, []byte("aad")); err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("unwrap: %v", err)
	}
	for name, fn := range map[string]func() ([]byte, error){
		"other KEK": func() ([]byte, error) { return b.Unwrap(ctx, w, []byte("aad")) },
		"other aad": func() ([]byte, error) { return a.Unwrap(ctx, w, []byte("dda")) },
		"flipped bit": func() ([]byte, error) {
			x := bytes.Clone(w)
			x[len(x)/2] ^= 1
			return a.Unwrap(ctx, x, []byte("aad"))
		},
		"short": func() ([]byte, error) { return a.Unwrap(ctx, w[:10], []byte("aad")) },
	} {
		if _, err := fn(); !errors.Is(err, ErrDecrypt) {
			t.Errorf("%s: %v, want ErrDecrypt", name, err)
		}
	}
	if _, err := NewLocalKEK(make([]byte, 16)); err == nil {
		t.Error("a 16-byte KEK was accepted")
	}
}
