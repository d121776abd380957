package storage_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/earshot/earshot/storage"
	"github.com/earshot/earshot/storage/storagetest"
)

func newLocal(t *testing.T) *storage.Local {
	t.Helper()
	l, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestLocalConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store { return newLocal(t) })
}

func listKeys(t *testing.T, s storage.Lister, prefix string) []string {
	t.Helper()
	var out []string
	for info, err := range s.List(t.Context(), prefix) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, info.Key)
	}
	return out
}

// readObject gets key (which must exist) and reads it to the end, returning
// the error of the read, where integrity checks report.
func readObject(t *testing.T, g storage.Getter, key string) ([]byte, storage.ObjectInfo, error) {
	t.Helper()
	rc, info, err := g.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return b, info, err
}

// S3 lets "a" and "a/b" coexist; so must the local store.
func TestLocalKeyIsAlsoPrefix(t *testing.T) {
	l := newLocal(t)
	ctx := t.Context()
	for _, k := range []string{"a/b/c", "a", "a/b", "a%obj", "a%obj/x"} {
		if _, err := l.Put(ctx, k, strings.NewReader(k), int64(len(k)), storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"a", "a%obj", "a%obj/x", "a/b", "a/b/c"}
	if got := listKeys(t, l, ""); !slices.Equal(got, want) {
		t.Errorf("List = %q, want %q", got, want)
	}
	for _, k := range want {
		if b, _, err := readObject(t, l, k); err != nil || string(b) != k {
			t.Errorf("Get(%q) = %q, %v", k, b, err)
		}
	}
	if err := l.Delete(ctx, "a/b"); err != nil {
		t.Fatal(err)
	}
	if got := listKeys(t, l, "a/"); !slices.Equal(got, []string{"a/b/c"}) {
		t.Errorf("after delete: List(a/) = %q", got)
	}
}

// The content file holds exactly the bytes put, so tools can open it.
func TestLocalDataPath(t *testing.T) {
	l := newLocal(t)
	data := []byte("OggS...")
	if _, err := l.Put(t.Context(), "rooms/r1/seg.ogg", bytes.NewReader(data), int64(len(data)), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	p, err := l.DataPath("rooms/r1/seg.ogg")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(p, l.Dir()) {
		t.Errorf("DataPath %q outside %q", p, l.Dir())
	}
	b, err := os.ReadFile(p)
	if err != nil || !bytes.Equal(b, data) {
		t.Errorf("ReadFile(DataPath) = %q, %v", b, err)
	}
}

func TestLocalDetectsCorruption(t *testing.T) {
	l := newLocal(t)
	ctx := t.Context()
	data := bytes.Repeat([]byte("opus"), 10000)
	if _, err := l.Put(ctx, "seg", bytes.NewReader(data), int64(len(data)), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	p, _ := l.DataPath("seg")

	flipped := bytes.Clone(data)
	flipped[20000] ^= 1
	if err := os.WriteFile(p, flipped, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, _, err := readObject(t, l, "seg"); !errors.Is(err, storage.ErrChecksum) {
		t.Errorf("reading a flipped bit: %v, want ErrChecksum", err)
	}

	if err := os.WriteFile(p, data[:100], 0o640); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.Get(ctx, "seg"); !errors.Is(err, storage.ErrChecksum) {
		t.Errorf("Get of a truncated object: %v, want ErrChecksum", err)
	}
}

// Files and directories that are not objects (an interrupted put, a stray
// file) are not listed, and stale temporaries go at the next open.
func TestLocalIgnoresLeftovers(t *testing.T) {
	dir := t.TempDir()
	l, err := storage.OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Put(t.Context(), "x/real", strings.NewReader("r"), 1, storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, "tmp", "put-crashed")
	fresh := filepath.Join(dir, "tmp", "put-inprogress")
	for _, d := range []string{stale, fresh} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "data"), []byte("partial"), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "objects", "x", "stray.txt"), []byte("?"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "objects", "x", "bad%escape%obj"), 0o750); err != nil {
		t.Fatal(err)
	}
	l, err = storage.OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := listKeys(t, l, ""); !slices.Equal(got, []string{"x/real"}) {
		t.Errorf("List = %q", got)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale temporary survived OpenLocal: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("recent temporary (maybe another process's put) was removed: %v", err)
	}
}

// Deleting the last object under a prefix removes the directories it
// leaves empty; puts racing with those deletes still land.
func TestLocalPutDeleteRace(t *testing.T) {
	l := newLocal(t)
	ctx := t.Context()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 50 {
				key := "deep/a/b/c/" + string(rune('k'+w))
				if _, err := l.Put(ctx, key, strings.NewReader("v"), 1, storage.PutOptions{}); err != nil {
					t.Errorf("put %d: %v", i, err)
					return
				}
				if err := l.Delete(ctx, key); err != nil {
					t.Errorf("delete %d: %v", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if got := listKeys(t, l, ""); len(got) != 0 {
		t.Errorf("List = %q", got)
	}
	if _, err := os.Stat(filepath.Join(l.Dir(), "objects", "deep")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("empty prefix directories left behind: %v", err)
	}
}

// Overwrites swap whole objects: a reader never sees one put's metadata
// with another's content.
func TestLocalOverwriteIsAtomic(t *testing.T) {
	l := newLocal(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	contents := [][]byte{bytes.Repeat([]byte("a"), 4096), bytes.Repeat([]byte("b"), 8192)}
	if _, err := l.Put(ctx, "k", bytes.NewReader(contents[0]), 4096, storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 100 {
			c := contents[i%2]
			if _, err := l.Put(ctx, "k", bytes.NewReader(c), int64(len(c)), storage.PutOptions{}); err != nil {
				t.Errorf("put: %v", err)
				return
			}
		}
		cancel()
	})
	for ctx.Err() == nil {
		rc, _, err := l.Get(ctx, "k")
		if err != nil {
			if ctx.Err() == nil {
				t.Errorf("get during overwrites: %v", err)
			}
			break
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil && ctx.Err() == nil {
			t.Errorf("read during overwrites: %v", err)
			break
		}
		if err == nil && !bytes.Equal(b, contents[0]) && !bytes.Equal(b, contents[1]) {
			t.Error("read a mix of two puts")
			break
		}
	}
	wg.Wait()
}

func TestOpenLocalErrors(t *testing.T) {
	if _, err := storage.OpenLocal(""); err == nil {
		t.Error("OpenLocal(\"\") succeeded")
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := storage.OpenLocal(file); err == nil || !strings.Contains(err.Error(), file) {
		t.Errorf("OpenLocal(a file) = %v; want an error naming it", err)
	}
}
