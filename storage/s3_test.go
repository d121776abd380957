package storage_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/earshot/earshot/storage"
	"github.com/earshot/earshot/storage/storagetest"
)

// s3Config returns a configuration for a fresh bucket on the test bed's
// versitygw; the bucket and everything in it go when the test ends.
func s3Config(t *testing.T) storage.S3Config { return storagetest.S3Bucket(t, "earshot-test") }

func rawClient(t *testing.T, cfg storage.S3Config) *minio.Client { return storagetest.RawS3(t, cfg) }

func newS3(t *testing.T, cfg storage.S3Config) *storage.S3 { return storagetest.NewS3(t, cfg) }

func TestS3Conformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store { return newS3(t, s3Config(t)) })
}

// The same suite in a versioned bucket, with keys under a prefix.
func TestS3ConformanceVersionedWithPrefix(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store {
		cfg := s3Config(t)
		cfg.Versioning = true
		cfg.Prefix = "earshot/"
		return newS3(t, cfg)
	})
}

// The spine's check: minio-go puts, gets and lists on versitygw.
func TestMinioGoOnVersitygw(t *testing.T) {
	cfg := s3Config(t)
	ctx := t.Context()
	c := rawClient(t, cfg)
	if err := c.MakeBucket(ctx, cfg.Bucket, minio.MakeBucketOptions{Region: cfg.Region}); err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{"x/1": []byte("one"), "x/2": bytes.Repeat([]byte("two"), 1000), "y": nil}
	for k, v := range want {
		if _, err := c.PutObject(ctx, cfg.Bucket, k, bytes.NewReader(v), int64(len(v)), minio.PutObjectOptions{ContentType: "audio/ogg"}); err != nil {
			t.Fatalf("PutObject(%s): %v", k, err)
		}
	}
	for k, v := range want {
		obj, err := c.GetObject(ctx, cfg.Bucket, k, minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(obj)
		obj.Close()
		if err != nil || !bytes.Equal(got, v) {
			t.Errorf("GetObject(%s) = %d bytes, %v; want %d bytes", k, len(got), err, len(v))
		}
	}
	var keys []string
	for o := range c.ListObjectsIter(ctx, cfg.Bucket, minio.ListObjectsOptions{Prefix: "x/", Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		keys = append(keys, o.Key)
	}
	if !slices.Equal(keys, []string{"x/1", "x/2"}) {
		t.Errorf("ListObjects(x/) = %q", keys)
	}
}

// Pointing the client at a closed loopback port fails at start-up, on its
// own (well before the generous deadline), naming the endpoint.
func TestS3Unreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	_, err = storage.NewS3(ctx, storage.S3Config{Endpoint: addr, Bucket: "earshot", AccessKey: "a", SecretKey: "b", PathStyle: true})
	if !errors.Is(err, storage.ErrUnavailable) || !strings.Contains(err.Error(), addr) {
		t.Fatalf("NewS3 against a closed port: %v; want ErrUnavailable naming %s", err, addr)
	}
	if ctx.Err() != nil {
		t.Fatalf("NewS3 ran into the test's deadline instead of failing: %v", err)
	}
	t.Logf("error: %v", err)
}

func TestS3MissingBucket(t *testing.T) {
	cfg := s3Config(t)
	cfg.CreateBucket = false
	_, err := storage.NewS3(t.Context(), cfg)
	if err == nil || !strings.Contains(err.Error(), cfg.Bucket) || !strings.Contains(err.Error(), "create_bucket") {
		t.Fatalf("NewS3 without the bucket: %v; want an error naming the bucket and create_bucket", err)
	}
}

// Objects above PartSize go up in parts; integrity checks still hold.
func TestS3Multipart(t *testing.T) {
	cfg := s3Config(t)
	cfg.PartSize = 5 << 20
	s := newS3(t, cfg)
	c := rawClient(t, cfg)
	ctx := t.Context()
	data := make([]byte, 12<<20+7)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	hexSum := hex.EncodeToString(sum[:])
	for _, tc := range []struct {
		name string
		r    io.Reader
		opts storage.PutOptions
	}{
		{"spooled", struct{ io.Reader }{bytes.NewReader(data)}, storage.PutOptions{}},
		{"seekable", bytes.NewReader(data), storage.PutOptions{}},
		{"known-sha", struct{ io.Reader }{bytes.NewReader(data)}, storage.PutOptions{SHA256: hexSum}},
		{"create-only", struct{ io.Reader }{bytes.NewReader(data)}, storage.PutOptions{IfAbsent: true}},
	} {
		key := "mp/" + tc.name
		info, err := s.Put(ctx, key, tc.r, int64(len(data)), tc.opts)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if info.SHA256 != hexSum {
			t.Errorf("%s: SHA256 %s", tc.name, info.SHA256)
		}
		// Multipart ETags end in -<parts>; create-only puts go in one PUT.
		oi, err := c.StatObject(ctx, cfg.Bucket, key, minio.StatObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if multipart := strings.Contains(oi.ETag, "-"); multipart == tc.opts.IfAbsent {
			t.Errorf("%s: ETag %q: multipart=%v", tc.name, oi.ETag, multipart)
		}
		rc, ginfo, err := s.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		_, err = io.Copy(h, rc)
		rc.Close()
		if err != nil || hex.EncodeToString(h.Sum(nil)) != hexSum || ginfo.SHA256 != hexSum {
			t.Errorf("%s: read back: %v", tc.name, err)
		}
	}
	wrong := strings.Repeat("0", 64)
	if _, err := s.Put(ctx, "mp/wrong", struct{ io.Reader }{bytes.NewReader(data)}, int64(len(data)), storage.PutOptions{SHA256: wrong}); !errors.Is(err, storage.ErrChecksum) {
		t.Errorf("multipart put with a wrong SHA256: %v, want ErrChecksum", err)
	}
	if _, err := s.Stat(ctx, "mp/wrong"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("after a failed multipart put: %v", err)
	}
	for _, key := range []string{"mp/known-sha", "mp/create-only"} {
		if _, err := s.Put(ctx, key, bytes.NewReader(data), int64(len(data)), storage.PutOptions{IfAbsent: true}); !errors.Is(err, storage.ErrExists) {
			t.Errorf("create-only put of a large object over %s: %v, want ErrExists", key, err)
		}
	}
}

// An object whose recorded SHA-256 does not match its bytes fails the read.
func TestS3GetVerifiesSHA256(t *testing.T) {
	cfg := s3Config(t)
	s := newS3(t, cfg)
	c := rawClient(t, cfg)
	ctx := t.Context()
	data := []byte("tampered content")
	_, err := c.PutObject(ctx, cfg.Bucket, "t", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{
		UserMetadata: map[string]string{"sha256": strings.Repeat("ab", 32)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := readObject(t, s, "t"); !errors.Is(err, storage.ErrChecksum) {
		t.Errorf("read of a mismatching object: %v, want ErrChecksum", err)
	}
	// An object put by another writer without a recorded hash reads fine.
	if _, err := c.PutObject(ctx, cfg.Bucket, "foreign", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	got, info, err := readObject(t, s, "foreign")
	if err != nil || !bytes.Equal(got, data) || info.SHA256 != "" {
		t.Errorf("foreign object: %q, %v, SHA256 %q", got, err, info.SHA256)
	}
}

// In a versioned bucket, Delete leaves history that DeleteAll erases.
func TestS3VersionHistory(t *testing.T) {
	cfg := s3Config(t)
	cfg.Versioning = true
	s := newS3(t, cfg)
	ctx := t.Context()
	for _, v := range []string{"one", "two"} {
		if _, err := s.Put(ctx, "h/k", strings.NewReader(v), int64(len(v)), storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(ctx, "h/k"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(ctx, "h/k"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Stat after Delete: %v", err)
	}
	var versions, markers int
	for v, err := range s.ListVersions(ctx, "h/") {
		if err != nil {
			t.Fatal(err)
		}
		if v.DeleteMarker {
			markers++
			if !v.IsLatest {
				t.Error("delete marker is not the latest version")
			}
		} else {
			versions++
		}
	}
	if versions != 2 || markers != 1 {
		t.Errorf("%d versions and %d delete markers, want 2 and 1", versions, markers)
	}
	if err := s.DeleteAll(ctx, "h/k"); err != nil {
		t.Fatal(err)
	}
	for v, err := range s.ListVersions(ctx, "h/") {
		t.Errorf("after DeleteAll: %+v, %v", v, err)
	}
}

// Object lock is set at bucket creation; a legal hold blocks erasure with
// ErrLocked until it is lifted.
func TestS3ObjectLock(t *testing.T) {
	cfg := s3Config(t)
	cfg.ObjectLock = true
	s := newS3(t, cfg)
	ctx := t.Context()
	info, err := s.Put(ctx, "held", strings.NewReader("evidence"), 8, storage.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if info.VersionID == "" {
		t.Error("object lock bucket is not versioned")
	}
	c := rawClient(t, cfg)
	on, off := minio.LegalHoldEnabled, minio.LegalHoldDisabled
	if err := c.PutObjectLegalHold(ctx, cfg.Bucket, "held", minio.PutObjectLegalHoldOptions{VersionID: info.VersionID, Status: &on}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAll(ctx, "held"); !errors.Is(err, storage.ErrLocked) {
		t.Errorf("DeleteAll under legal hold: %v, want ErrLocked", err)
	}
	if _, err := s.Stat(ctx, "held"); err != nil {
		t.Errorf("held object gone: %v", err)
	}
	if err := c.PutObjectLegalHold(ctx, cfg.Bucket, "held", minio.PutObjectLegalHoldOptions{VersionID: info.VersionID, Status: &off}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAll(ctx, "held"); err != nil {
		t.Errorf("DeleteAll after the hold: %v", err)
	}

	// A bucket without lock cannot get it later: say so at start-up.
	plain := s3Config(t)
	newS3(t, plain)
	plain.ObjectLock = true
	if _, err := storage.NewS3(ctx, plain); err == nil || !strings.Contains(err.Error(), "object lock") {
		t.Errorf("NewS3 with object lock on a bucket without it: %v", err)
	}
}

func TestS3ServerSideEncryption(t *testing.T) {
	cfg := s3Config(t)
	cfg.SSE = "s3"
	s := newS3(t, cfg)
	ctx := t.Context()
	if _, err := s.Put(ctx, "enc", strings.NewReader("secret"), 6, storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	got, _, err := readObject(t, s, "enc")
	if err != nil || string(got) != "secret" {
		t.Errorf("Get = %q, %v", got, err)
	}
}

func TestS3ConfigValidate(t *testing.T) {
	ok := storage.S3Config{Endpoint: "127.0.0.1:7070", Bucket: "earshot", AccessKey: "a", SecretKey: "b"}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(*storage.S3Config)
		want string
	}{
		{"no endpoint", func(c *storage.S3Config) { c.Endpoint = "" }, "endpoint"},
		{"scheme", func(c *storage.S3Config) { c.Endpoint = "http://127.0.0.1:7070" }, "use_tls"},
		{"bucket", func(c *storage.S3Config) { c.Bucket = "Bad_Bucket" }, "bucket"},
		{"credentials", func(c *storage.S3Config) { c.SecretKey = "" }, "secret key"},
		{"sse", func(c *storage.S3Config) { c.SSE = "aes" }, "kms:<key id>"},
		{"sse kms without key", func(c *storage.S3Config) { c.SSE = "kms:" }, "kms:<key id>"},
		{"prefix without slash", func(c *storage.S3Config) { c.Prefix = "earshot" }, "prefix"},
		{"prefix with ..", func(c *storage.S3Config) { c.Prefix = "../x/" }, "prefix"},
		{"part size", func(c *storage.S3Config) { c.PartSize = 1 << 20 }, "part size"},
	} {
		cfg := ok
		tc.edit(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Validate() = %v; want an error mentioning %q", tc.name, err, tc.want)
		}
		if _, nerr := storage.NewS3(t.Context(), cfg); nerr == nil {
			t.Errorf("%s: NewS3 accepted the config", tc.name)
		}
	}
	for _, sse := range []string{"", "none", "s3", "kms:my-key"} {
		cfg := ok
		cfg.SSE = sse
		if err := cfg.Validate(); err != nil {
			t.Errorf("SSE %q: %v", sse, err)
		}
	}
}
