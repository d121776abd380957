// Package storagetest is the conformance suite for storage.Store
// implementations: every store runs the same behaviour checks, so code
// written against the local store behaves the same on S3.
package storagetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/earshot/earshot/storage"
)

// Run runs the conformance suite. newStore must return an empty store that
// belongs to the test (a fresh directory or bucket), so listings are exact.
func Run(t *testing.T, newStore func(t *testing.T) storage.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s storage.Store)
	}{
		{"RoundTrip", testRoundTrip},
		{"EmptyObject", testEmptyObject},
		{"UnknownSizeStream", testUnknownSize},
		{"KnownSHA256", testKnownSHA256},
		{"SizeMismatch", testSizeMismatch},
		{"IfAbsent", testIfAbsent},
		{"Overwrite", testOverwrite},
		{"NotFound", testNotFound},
		{"ListOrderAndPrefix", testList},
		{"ListStopsEarly", testListStopsEarly},
		{"DeleteIdempotent", testDelete},
		{"InvalidKeys", testInvalidKeys},
		{"InvalidMetadata", testInvalidMetadata},
		{"LargeObjectStreaming", testLarge},
		{"ConcurrentIfAbsent", testConcurrentIfAbsent},
		{"ContextCancelled", testContextCancelled},
		{"Versions", testVersions},
		{"StatVersion", testStatVersion},
		{"ErrorsNameKeyNotMetadata", testErrorMessages},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

func ctx(t *testing.T) context.Context {
	// Generous: a deadline guards against hangs, not against slowness.
	c, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

func hexSHA(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func randBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// onlyReader hides every interface but io.Reader (no Seek, no ReadAt, no
// WriteTo), like a network stream.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func put(t *testing.T, s storage.Store, key string, data []byte, opts storage.PutOptions) storage.ObjectInfo {
	t.Helper()
	info, err := s.Put(ctx(t), key, bytes.NewReader(data), int64(len(data)), opts)
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	return info
}

func get(t *testing.T, s storage.Store, key string) ([]byte, storage.ObjectInfo) {
	t.Helper()
	rc, info, err := s.Get(ctx(t), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get(%q): read: %v", key, err)
	}
	return b, info
}

func keys(t *testing.T, s storage.Store, prefix string) []string {
	t.Helper()
	var out []string
	for info, err := range s.List(ctx(t), prefix) {
		if err != nil {
			t.Fatalf("List(%q): %v", prefix, err)
		}
		out = append(out, info.Key)
	}
	return out
}

func wantAbsent(t *testing.T, s storage.Store, key string) {
	t.Helper()
	if info, err := s.Stat(ctx(t), key); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Stat(%q) = %+v, %v; want ErrNotFound", key, info, err)
	}
}

func checkInfo(t *testing.T, what string, got storage.ObjectInfo, key string, data []byte, ct string, md map[string]string) {
	t.Helper()
	if got.Key != key || got.Size != int64(len(data)) || got.SHA256 != hexSHA(data) || got.ContentType != ct || !maps.Equal(got.Metadata, md) {
		t.Errorf("%s = {Key:%q Size:%d SHA256:%s ContentType:%q Metadata:%v}\nwant {Key:%q Size:%d SHA256:%s ContentType:%q Metadata:%v}",
			what, got.Key, got.Size, got.SHA256, got.ContentType, got.Metadata, key, len(data), hexSHA(data), ct, md)
	}
	if got.ModTime.IsZero() || time.Since(got.ModTime) > time.Hour || time.Until(got.ModTime) > time.Hour {
		t.Errorf("%s: ModTime %v is not about now", what, got.ModTime)
	}
}

func testRoundTrip(t *testing.T, s storage.Store) {
	data := []byte("OggS\x00 not really opus, but bytes all the same \xff\xfe")
	md := map[string]string{"room": "r-1f3a", "first-sample": "0", "last-sample": "1439999"}
	key := "audio/r-1f3a/s-9/track-2/000000000000-000001439999.ogg"
	info := put(t, s, key, data, storage.PutOptions{ContentType: "audio/ogg", Metadata: md})
	checkInfo(t, "Put", info, key, data, "audio/ogg", md)

	st, err := s.Stat(ctx(t), key)
	if err != nil {
		t.Fatal(err)
	}
	checkInfo(t, "Stat", st, key, data, "audio/ogg", md)

	got, ginfo := get(t, s, key)
	if !bytes.Equal(got, data) {
		t.Errorf("Get returned %q, want %q", got, data)
	}
	checkInfo(t, "Get", ginfo, key, data, "audio/ogg", md)

	// Default content type, no metadata.
	info = put(t, s, "plain", data, storage.PutOptions{})
	checkInfo(t, "Put(default type)", info, "plain", data, "application/octet-stream", nil)
	st, err = s.Stat(ctx(t), "plain")
	if err != nil {
		t.Fatal(err)
	}
	checkInfo(t, "Stat(default type)", st, "plain", data, "application/octet-stream", nil)
}

func testEmptyObject(t *testing.T, s storage.Store) {
	info := put(t, s, "empty", nil, storage.PutOptions{})
	checkInfo(t, "Put", info, "empty", nil, "application/octet-stream", nil)
	got, ginfo := get(t, s, "empty")
	if len(got) != 0 {
		t.Errorf("Get returned %d bytes", len(got))
	}
	checkInfo(t, "Get", ginfo, "empty", nil, "application/octet-stream", nil)
	if k := keys(t, s, ""); !slices.Equal(k, []string{"empty"}) {
		t.Errorf("List = %q", k)
	}
}

func testUnknownSize(t *testing.T, s storage.Store) {
	data := randBytes(t, 300<<10)
	info, err := s.Put(ctx(t), "stream", onlyReader{bytes.NewReader(data)}, -1, storage.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkInfo(t, "Put", info, "stream", data, "application/octet-stream", nil)
	got, _ := get(t, s, "stream")
	if !bytes.Equal(got, data) {
		t.Error("content differs")
	}
}

func testKnownSHA256(t *testing.T, s storage.Store) {
	data := randBytes(t, 64<<10)
	info, err := s.Put(ctx(t), "known", onlyReader{bytes.NewReader(data)}, int64(len(data)), storage.PutOptions{SHA256: hexSHA(data)})
	if err != nil {
		t.Fatal(err)
	}
	checkInfo(t, "Put", info, "known", data, "application/octet-stream", nil)

	wrong := hexSHA([]byte("something else"))
	for _, r := range []io.Reader{bytes.NewReader(data), onlyReader{bytes.NewReader(data)}} {
		_, err = s.Put(ctx(t), "wrong", r, int64(len(data)), storage.PutOptions{SHA256: wrong})
		if !errors.Is(err, storage.ErrChecksum) {
			t.Fatalf("Put with a wrong SHA256 (%T): %v, want ErrChecksum", r, err)
		}
		wantAbsent(t, s, "wrong")
	}
	if _, err = s.Put(ctx(t), "bad", bytes.NewReader(data), int64(len(data)), storage.PutOptions{SHA256: "xyz"}); err == nil {
		t.Fatal("Put with a malformed SHA256 succeeded")
	}
	wantAbsent(t, s, "bad")
}

func testSizeMismatch(t *testing.T, s storage.Store) {
	data := randBytes(t, 10<<10)
	for _, tc := range []struct {
		name string
		size int64
	}{{"short", int64(len(data)) + 1}, {"long", int64(len(data)) - 1}} {
		for _, r := range []io.Reader{bytes.NewReader(data), onlyReader{bytes.NewReader(data)}} {
			key := "mismatch-" + tc.name
			_, err := s.Put(ctx(t), key, r, tc.size, storage.PutOptions{})
			if !errors.Is(err, storage.ErrChecksum) {
				t.Errorf("%s reader (%T): Put = %v, want ErrChecksum", tc.name, r, err)
			}
			wantAbsent(t, s, key)
		}
	}
}

func testIfAbsent(t *testing.T, s storage.Store) {
	first := []byte("first upload")
	md := map[string]string{"attempt": "1"}
	put(t, s, "seg", first, storage.PutOptions{IfAbsent: true, Metadata: md})
	info, err := s.Put(ctx(t), "seg", bytes.NewReader([]byte("second")), 6, storage.PutOptions{IfAbsent: true, Metadata: map[string]string{"attempt": "2"}})
	if !errors.Is(err, storage.ErrExists) {
		t.Fatalf("second create-only Put: %v, want ErrExists", err)
	}
	if info.SHA256 != hexSHA(first) {
		t.Errorf("ErrExists came with SHA256 %q, want the stored object's %s", info.SHA256, hexSHA(first))
	}
	got, ginfo := get(t, s, "seg")
	if !bytes.Equal(got, first) || !maps.Equal(ginfo.Metadata, md) {
		t.Errorf("after refused put: content %q metadata %v; want the first upload", got, ginfo.Metadata)
	}
	// After DeleteAll the key is free again. (After a plain Delete in a
	// versioned S3 bucket, the delete marker may still count as present.)
	if err := s.DeleteAll(ctx(t), "seg"); err != nil {
		t.Fatal(err)
	}
	put(t, s, "seg", []byte("third"), storage.PutOptions{IfAbsent: true})
}

func testOverwrite(t *testing.T, s storage.Store) {
	put(t, s, "k", []byte("one"), storage.PutOptions{Metadata: map[string]string{"n": "1"}})
	put(t, s, "k", []byte("two!"), storage.PutOptions{ContentType: "text/plain"})
	got, info := get(t, s, "k")
	if string(got) != "two!" {
		t.Errorf("content %q after overwrite", got)
	}
	checkInfo(t, "Get after overwrite", info, "k", []byte("two!"), "text/plain", nil)
	if k := keys(t, s, ""); !slices.Equal(k, []string{"k"}) {
		t.Errorf("List = %q", k)
	}
}

func testNotFound(t *testing.T, s storage.Store) {
	if _, _, err := s.Get(ctx(t), "missing/key"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Get: %v, want ErrNotFound", err)
	}
	wantAbsent(t, s, "missing/key")
	put(t, s, "present", []byte("x"), storage.PutOptions{})
	// A prefix of an existing key, and a key below it, are not objects.
	wantAbsent(t, s, "pres")
	wantAbsent(t, s, "present/child")
	if k := keys(t, s, "missing/"); len(k) != 0 {
		t.Errorf("List(missing/) = %q", k)
	}
}

func testList(t *testing.T, s storage.Store) {
	// Chosen so that lexical order differs from a naive directory walk:
	// '-' (0x2d) and '.' (0x2e) sort before '/' (0x2f), '0' after it. No key
	// is also a prefix directory of another ("x" and "x/y"): S3 allows it,
	// but file-system-backed servers such as versitygw's posix backend do not.
	all := []string{
		"a-c", "a.b", "a/b", "a/b0", "a/c/d", "a0", "b/x/y/z", "ba", "é", "日本/語",
	}
	if !slices.IsSorted(all) {
		t.Fatal("test keys not sorted")
	}
	for i, k := range slices.Backward(all) {
		put(t, s, k, bytes.Repeat([]byte{'x'}, i), storage.PutOptions{})
	}
	for info, err := range s.List(ctx(t), "") {
		if err != nil {
			t.Fatal(err)
		}
		i := slices.Index(all, info.Key)
		if i < 0 || info.Size != int64(i) || info.ModTime.IsZero() {
			t.Errorf("List entry %+v: unknown key or wrong size/time", info)
		}
	}
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"", all},
		{"a", []string{"a-c", "a.b", "a/b", "a/b0", "a/c/d", "a0"}},
		{"a/", []string{"a/b", "a/b0", "a/c/d"}},
		{"a/b", []string{"a/b", "a/b0"}},
		{"a/b0", []string{"a/b0"}},
		{"a/c", []string{"a/c/d"}},
		{"b/x/", []string{"b/x/y/z"}},
		{"日本", []string{"日本/語"}},
		{"zzz", nil},
		{"a/../a", nil},
	} {
		if got := keys(t, s, tc.prefix); !slices.Equal(got, tc.want) {
			t.Errorf("List(%q) = %q, want %q", tc.prefix, got, tc.want)
		}
	}
}

func testListStopsEarly(t *testing.T, s storage.Store) {
	for i := range 5 {
		put(t, s, fmt.Sprintf("p/%d", i), []byte("x"), storage.PutOptions{})
	}
	var got []string
	for info, err := range s.List(ctx(t), "p/") {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, info.Key)
		if len(got) == 2 {
			break
		}
	}
	if !slices.Equal(got, []string{"p/0", "p/1"}) {
		t.Errorf("first two = %q", got)
	}
}

func testDelete(t *testing.T, s storage.Store) {
	put(t, s, "d/one", []byte("1"), storage.PutOptions{})
	put(t, s, "d/two", []byte("2"), storage.PutOptions{})
	for range 2 {
		if err := s.Delete(ctx(t), "d/one"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
	}
	if err := s.Delete(ctx(t), "never/there"); err != nil {
		t.Fatalf("Delete of a missing key: %v", err)
	}
	wantAbsent(t, s, "d/one")
	if k := keys(t, s, ""); !slices.Equal(k, []string{"d/two"}) {
		t.Errorf("List after delete = %q", k)
	}
	if err := s.Delete(ctx(t), "d/two"); err != nil {
		t.Fatal(err)
	}
	if k := keys(t, s, ""); len(k) != 0 {
		t.Errorf("List after deleting all = %q", k)
	}
}

// InvalidKeys are keys every store must refuse.
var InvalidKeys = []string{
	"", "/abs", "a//b", "trailing/", "a/../b", "..", "./a", "a/.", `back\slash`, "nul\x00", "tab\tkey", "nl\n",
	"\xff\xfe", strings.Repeat("k", storage.MaxKeyBytes+1), strings.Repeat("s", storage.MaxSegmentBytes+1),
}

func testInvalidKeys(t *testing.T, s storage.Store) {
	for _, key := range InvalidKeys {
		if _, err := s.Put(ctx(t), key, bytes.NewReader([]byte("x")), 1, storage.PutOptions{}); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("Put(%q): %v, want ErrInvalidKey", key, err)
		}
		if _, _, err := s.Get(ctx(t), key); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("Get(%q): %v, want ErrInvalidKey", key, err)
		}
		if _, err := s.Stat(ctx(t), key); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("Stat(%q): %v, want ErrInvalidKey", key, err)
		}
		if err := s.Delete(ctx(t), key); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("Delete(%q): %v, want ErrInvalidKey", key, err)
		}
		if err := s.DeleteAll(ctx(t), key); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("DeleteAll(%q): %v, want ErrInvalidKey", key, err)
		}
	}
	// Valid edge cases.
	for _, key := range []string{"k", strings.Repeat("s/", 400) + "x", strings.Repeat("s", storage.MaxSegmentBytes), "with space/and%percent/é.ogg", ".hidden/..x/x.."} {
		put(t, s, key, []byte("v"), storage.PutOptions{})
		if got, _ := get(t, s, key); string(got) != "v" {
			t.Errorf("Get(%q) = %q", key, got)
		}
	}
	if k := keys(t, s, ""); len(k) != 5 {
		t.Errorf("List = %d keys, want 5", len(k))
	}
	if _, err := s.Put(ctx(t), "ok", bytes.NewReader(nil), -2, storage.PutOptions{}); err == nil {
		t.Error("Put with size -2 succeeded")
	}
	for _, err := range s.List(ctx(t), "bad\x00prefix") {
		if !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("List(bad prefix): %v, want ErrInvalidKey", err)
		}
		break
	}
}

func testInvalidMetadata(t *testing.T, s storage.Store) {
	for _, md := range []map[string]string{
		{"Upper": "v"},
		{"under_score": "v"},
		{"": "v"},
		{"sha256": "0000"},
		{"k": "non-ascii é"},
		{"k": "line\nbreak"},
		{"k": " padded"},
		{"k": strings.Repeat("v", storage.MaxMetadataBytes)},
	} {
		if _, err := s.Put(ctx(t), "md", bytes.NewReader([]byte("x")), 1, storage.PutOptions{Metadata: md}); !errors.Is(err, storage.ErrInvalidMetadata) {
			t.Errorf("Put with metadata %q: %v, want ErrInvalidMetadata", md, err)
		}
	}
	wantAbsent(t, s, "md")
}

func testLarge(t *testing.T, s storage.Store) {
	const size = 6<<20 + 12345
	data := randBytes(t, size)
	// Streamed from a reader that cannot seek, read back in small pieces.
	info, err := s.Put(ctx(t), "big/object.bin", onlyReader{bytes.NewReader(data)}, size, storage.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkInfo(t, "Put", info, "big/object.bin", data, "application/octet-stream", nil)
	rc, ginfo, err := s.Get(ctx(t), "big/object.bin")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	h := sha256.New()
	buf := make([]byte, 4096)
	n, err := io.CopyBuffer(h, onlyReader{rc}, buf)
	if err != nil {
		t.Fatal(err)
	}
	if n != size || hex.EncodeToString(h.Sum(nil)) != hexSHA(data) || ginfo.Size != size {
		t.Errorf("read %d bytes (info %d), sha %x; want %d, %s", n, ginfo.Size, h.Sum(nil), size, hexSHA(data))
	}
}

func testConcurrentIfAbsent(t *testing.T, s storage.Store) {
	const writers = 8
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		wg.Go(func() {
			data := bytes.Repeat([]byte{byte('a' + i)}, 64<<10)
			_, errs[i] = s.Put(ctx(t), "race/seg", bytes.NewReader(data), int64(len(data)), storage.PutOptions{IfAbsent: true})
		})
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner < 0:
			winner = i
		case err == nil:
			t.Errorf("writers %d and %d both succeeded", winner, i)
		case !errors.Is(err, storage.ErrExists):
			t.Errorf("writer %d: %v, want ErrExists", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no writer succeeded")
	}
	got, _ := get(t, s, "race/seg")
	if !bytes.Equal(got, bytes.Repeat([]byte{byte('a' + winner)}, 64<<10)) {
		t.Errorf("stored content is not the winner's")
	}
}

// cancelReader cancels a context after handing out its first bytes.
type cancelReader struct {
	r      io.Reader
	cancel context.CancelFunc
	done   bool
}

func (c *cancelReader) Read(p []byte) (int, error) {
	if c.done {
		time.Sleep(10 * time.Millisecond) // let the cancellation land
	}
	n, err := c.r.Read(p[:min(len(p), 1024)])
	if !c.done {
		c.done = true
		c.cancel()
	}
	return n, err
}

func testContextCancelled(t *testing.T, s storage.Store) {
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Put(cancelled, "c", bytes.NewReader([]byte("x")), 1, storage.PutOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a cancelled context: %v, want context.Canceled", err)
	}
	wantAbsent(t, s, "c")

	// Cancelled in the middle of the upload.
	data := randBytes(t, 1<<20)
	mid, cancelMid := context.WithCancel(t.Context())
	defer cancelMid()
	_, err := s.Put(mid, "c", onlyReader{&cancelReader{r: bytes.NewReader(data), cancel: cancelMid}}, int64(len(data)), storage.PutOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Put cancelled mid-stream: %v, want context.Canceled", err)
	}
	wantAbsent(t, s, "c")

	put(t, s, "c", data, storage.PutOptions{})
	if _, _, err := s.Get(cancelled, "c"); !errors.Is(err, context.Canceled) {
		t.Errorf("Get with a cancelled context: %v, want context.Canceled", err)
	}
	if _, err := s.Stat(cancelled, "c"); !errors.Is(err, context.Canceled) {
		t.Errorf("Stat with a cancelled context: %v, want context.Canceled", err)
	}
	var listErr error
	for info, err := range s.List(cancelled, "") {
		if err == nil {
			t.Errorf("List with a cancelled context yielded %q", info.Key)
		}
		listErr = err
	}
	if !errors.Is(listErr, context.Canceled) {
		t.Errorf("List with a cancelled context: %v, want context.Canceled", listErr)
	}
	// Cancelled while reading: the reader fails instead of returning data.
	rctx, rcancel := context.WithCancel(t.Context())
	rc, _, err := s.Get(rctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadFull(rc, make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	rcancel()
	if _, err := io.ReadAll(rc); err == nil {
		t.Error("reading on after cancellation succeeded")
	}
}

func testVersions(t *testing.T, s storage.Store) {
	put(t, s, "v/a", []byte("1"), storage.PutOptions{})
	put(t, s, "v/a", []byte("22"), storage.PutOptions{})
	put(t, s, "v/ab", []byte("keep"), storage.PutOptions{})
	latest := map[string]int{}
	for v, err := range s.ListVersions(ctx(t), "v/") {
		if err != nil {
			t.Fatal(err)
		}
		if v.VersionID == "" {
			t.Errorf("version of %q without a version ID", v.Key)
		}
		if v.IsLatest {
			latest[v.Key]++
		}
	}
	if latest["v/a"] != 1 || latest["v/ab"] != 1 {
		t.Errorf("latest versions per key = %v, want one each", latest)
	}
	if err := s.DeleteVersion(ctx(t), "v/a", ""); err == nil {
		t.Error("DeleteVersion with an empty version ID succeeded")
	}
	for range 2 { // idempotent
		if err := s.DeleteAll(ctx(t), "v/a"); err != nil {
			t.Fatalf("DeleteAll: %v", err)
		}
	}
	wantAbsent(t, s, "v/a")
	for v, err := range s.ListVersions(ctx(t), "v/") {
		if err != nil {
			t.Fatal(err)
		}
		if v.Key != "v/ab" {
			t.Errorf("after DeleteAll: version %+v remains", v)
		}
	}
	if got, _ := get(t, s, "v/ab"); string(got) != "keep" {
		t.Errorf("DeleteAll(v/a) touched v/ab: %q", got)
	}
	// DeleteVersion with the IDs listed removes the object for good.
	var ids []string
	for v, err := range s.ListVersions(ctx(t), "v/ab") {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, v.VersionID)
	}
	for _, id := range ids {
		for range 2 {
			if err := s.DeleteVersion(ctx(t), "v/ab", id); err != nil {
				t.Fatalf("DeleteVersion(%s): %v", id, err)
			}
		}
	}
	wantAbsent(t, s, "v/ab")
	for v, err := range s.ListVersions(ctx(t), "v/") {
		t.Errorf("after deleting every version: %+v, %v", v, err)
	}
}

// testStatVersion: every version a listing reports can be described with
// its own metadata, also after the key was deleted (a delete marker on top
// in a versioned store); a version that does not exist is ErrNotFound.
func testStatVersion(t *testing.T, s storage.Store) {
	put(t, s, "sv/a", []byte("first"), storage.PutOptions{Metadata: map[string]string{"speaker": "p1_one"}})
	put(t, s, "sv/a", []byte("second!"), storage.PutOptions{Metadata: map[string]string{"speaker": "p1_two"}})
	if err := s.Delete(ctx(t), "sv/a"); err != nil {
		t.Fatal(err)
	}
	put(t, s, "sv/b", []byte("bee"), storage.PutOptions{Metadata: map[string]string{"speaker": "p1_three"}})
	seen := map[string][]string{}
	for v, err := range s.ListVersions(ctx(t), "sv/") {
		if err != nil {
			t.Fatal(err)
		}
		if v.DeleteMarker {
			continue
		}
		info, err := s.StatVersion(ctx(t), v.Key, v.VersionID)
		if err != nil {
			t.Fatalf("StatVersion(%s, %s): %v", v.Key, v.VersionID, err)
		}
		if info.Key != v.Key || info.Size != v.Size {
			t.Errorf("StatVersion(%s, %s) = key %q size %d, listed size %d", v.Key, v.VersionID, info.Key, info.Size, v.Size)
		}
		seen[v.Key] = append(seen[v.Key], info.Metadata["speaker"])
	}
	if got := seen["sv/b"]; len(got) != 1 || got[0] != "p1_three" {
		t.Errorf("sv/b: metadata of its versions %v, want [p1_three]", got)
	}
	// A store without versions lost sv/a with its delete; a versioned one
	// keeps both versions, each with its own metadata.
	if got := seen["sv/a"]; len(got) > 0 && !slices.Equal(slices.Sorted(slices.Values(got)), []string{"p1_one", "p1_two"}) {
		t.Errorf("sv/a: metadata of its versions %v, want p1_one and p1_two", got)
	}
	var vb []string
	for v, err := range s.ListVersions(ctx(t), "sv/b") {
		if err != nil {
			t.Fatal(err)
		}
		vb = append(vb, v.VersionID)
	}
	for _, id := range vb {
		if err := s.DeleteVersion(ctx(t), "sv/b", id); err != nil {
			t.Fatal(err)
		}
		if _, err := s.StatVersion(ctx(t), "sv/b", id); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("StatVersion of a deleted version: %v, want ErrNotFound", err)
		}
	}
}

func testErrorMessages(t *testing.T, s storage.Store) {
	const canary = "canary-7b1e9f3c2d"
	md := map[string]string{"speaker": canary}
	put(t, s, "e/k", []byte("x"), storage.PutOptions{Metadata: md, IfAbsent: true})
	_, err := s.Put(ctx(t), "e/k", bytes.NewReader([]byte("y")), 1, storage.PutOptions{Metadata: md, IfAbsent: true})
	_, err2 := s.Put(ctx(t), "e/bad", bytes.NewReader([]byte("y")), 1, storage.PutOptions{Metadata: map[string]string{"k": canary + "\n"}})
	_, err3 := s.Stat(ctx(t), "e/missing")
	for _, tc := range []struct {
		err      error
		op, key  string
		sentinel error
	}{
		{err, "put", "e/k", storage.ErrExists},
		{err2, "put", "e/bad", storage.ErrInvalidMetadata},
		{err3, "stat", "e/missing", storage.ErrNotFound},
	} {
		var se *storage.Error
		if !errors.As(tc.err, &se) || se.Op != tc.op || se.Key != tc.key || !errors.Is(tc.err, tc.sentinel) {
			t.Errorf("error %v: want a *storage.Error{Op:%q Key:%q} wrapping %v", tc.err, tc.op, tc.key, tc.sentinel)
			continue
		}
		if msg := tc.err.Error(); !strings.Contains(msg, tc.key) || strings.Contains(msg, canary) {
			t.Errorf("error message %q: must name the key and never a metadata value", msg)
		}
	}
}
