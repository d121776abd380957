package storage_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/earshot/earshot/internal/testbed"
	"github.com/earshot/earshot/storage"
)

// A full disk fails the put with a clear error and leaves nothing behind.
func TestLocalDiskFull(t *testing.T) {
	dir := testbed.SmallTmpfs(t, "1m")
	l, err := storage.OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	big := bytes.Repeat([]byte("x"), 2<<20)
	_, err = l.Put(ctx, "audio/seg-1", bytes.NewReader(big), int64(len(big)), storage.PutOptions{})
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "disk full") || !strings.Contains(err.Error(), "audio/seg-1") {
		t.Fatalf("Put on a full disk: %v; want ENOSPC, saying disk full and naming the key", err)
	}
	t.Logf("error on a full disk: %v", err)
	if _, err := l.Stat(ctx, "audio/seg-1"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("partial object visible: %v", err)
	}
	if got := listKeys(t, l, ""); len(got) != 0 {
		t.Errorf("List = %q", got)
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(entries) != 0 {
		t.Errorf("temporaries left: %v", entries)
	}
	// The space came back: a small put works.
	if _, err := l.Put(ctx, "audio/seg-2", strings.NewReader("ok"), 2, storage.PutOptions{}); err != nil {
		t.Errorf("small put after ENOSPC: %v", err)
	}
}
