package storage_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/earshot/earshot/storage"
)

// segmentBytes is about one 30 s Ogg/Opus segment at 32 kbit/s.
const segmentBytes = 120 << 10

// BenchmarkLocalPut measures durable create-only puts of segment-sized
// objects (write, fsync file and directories, rename).
func BenchmarkLocalPut(b *testing.B) {
	l, err := storage.OpenLocal(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	data := bytes.Repeat([]byte("opus"), segmentBytes/4)
	ctx := context.Background()
	b.SetBytes(segmentBytes)
	i := 0
	for b.Loop() {
		key := fmt.Sprintf("bench/room/track/%08d.ogg", i)
		i++
		if _, err := l.Put(ctx, key, bytes.NewReader(data), segmentBytes, storage.PutOptions{IfAbsent: true}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLocalGet measures verified reads of segment-sized objects.
func BenchmarkLocalGet(b *testing.B) {
	l, err := storage.OpenLocal(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	data := bytes.Repeat([]byte("opus"), segmentBytes/4)
	ctx := context.Background()
	const objects = 64
	for i := range objects {
		if _, err := l.Put(ctx, fmt.Sprintf("bench/%02d", i), bytes.NewReader(data), segmentBytes, storage.PutOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	buf := make([]byte, 64<<10)
	b.SetBytes(segmentBytes)
	i := 0
	for b.Loop() {
		rc, _, err := l.Get(ctx, fmt.Sprintf("bench/%02d", i%objects))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyBuffer(io.Discard, rc, buf); err != nil {
			b.Fatal(err)
		}
		rc.Close()
		i++
	}
}
