package crypt

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"testing"
	"time"

	"github.com/earshot/earshot/storage"
)

func testCtx(t testing.TB) context.Context {
	// Generous: a deadline guards against hangs, not against slowness.
	c, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

func randBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func hexSHA(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func newKEK(t testing.TB) *LocalKEK {
	k, err := NewLocalKEK(randBytes(t, KEKSize))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func openLocal(t testing.TB) *storage.Local {
	l, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func newKeyring(t testing.TB, kek KEK, store KeyStore, ttl time.Duration) *Keyring {
	k, err := NewKeyring(KeyringConfig{KEK: kek, Store: store, CacheTTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

// segMeta is the metadata the spool gives a segment of speaker in a
// session (plus whatever else it carries).
func segMeta(room, session, speaker string) map[string]string {
	md := map[string]string{"room": room, "session": session, "track": "trk_x"}
	if speaker != "" {
		md["speaker"] = speaker
	}
	return md
}

// oggLike is plaintext that looks like an Ogg/Opus segment: "OggS" pages
// with readable text, so a leak of either shows up in raw bytes.
func oggLike(t testing.TB, n int) []byte {
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString("OggS\x00\x02 the quick brown fox said something private ")
		b.Write(randBytes(t, 200))
	}
	return b.Bytes()[:n]
}

func readAll(t testing.TB, s storage.Getter, key string) ([]byte, storage.ObjectInfo, error) {
	t.Helper()
	rc, info, err := s.Get(testCtx(t), key)
	if err != nil {
		return nil, info, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return b, info, err
}

// rawPut overwrites key in a plain store with raw bytes and metadata (what
// someone with access to the object store could do).
func rawPut(t testing.TB, s storage.Putter, key string, raw []byte, md map[string]string) {
	t.Helper()
	if _, err := s.Put(testCtx(t), key, bytes.NewReader(raw), int64(len(raw)), storage.PutOptions{Metadata: md}); err != nil {
		t.Fatal(err)
	}
}

func rawGet(t testing.TB, s storage.Getter, key string) ([]byte, storage.ObjectInfo) {
	t.Helper()
	b, info, err := readAll(t, s, key)
	if err != nil {
		t.Fatalf("raw get %s: %v", key, err)
	}
	return b, info
}
