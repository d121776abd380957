package storagetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/earshot/earshot/internal/testbed"
	"github.com/earshot/earshot/storage"
)

// S3Bucket returns the configuration of a fresh bucket, name-<random>, on
// the test bed's versitygw (the test is skipped without it, or fails under
// EARSHOT_TESTBED=1). CreateBucket is set: the store creates it. When the
// test ends the bucket goes with every object version (legal holds lifted).
func S3Bucket(t testing.TB, name string) storage.S3Config {
	t.Helper()
	ep := testbed.S3Server(t)
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	cfg := storage.S3Config{
		Endpoint:     ep.Endpoint,
		Region:       ep.Region,
		Bucket:       name + "-" + hex.EncodeToString(b[:]),
		AccessKey:    ep.AccessKey,
		SecretKey:    ep.SecretKey,
		PathStyle:    true,
		CreateBucket: true,
	}
	t.Cleanup(func() { removeBucket(t, cfg) })
	return cfg
}

// RawS3 returns a minio-go client for cfg's server: what someone with
// access to the object store sees, bypassing every store wrapper.
func RawS3(t testing.TB, cfg storage.S3Config) *minio.Client {
	t.Helper()
	c, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Region:       cfg.Region,
		BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// NewS3 opens an S3 store, failing the test on error.
func NewS3(t testing.TB, cfg storage.S3Config) *storage.S3 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	s, err := storage.NewS3(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func removeBucket(t testing.TB, cfg storage.S3Config) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := RawS3(t, cfg)
	if ok, err := c.BucketExists(ctx, cfg.Bucket); err != nil || !ok {
		return
	}
	for o := range c.ListObjectsIter(ctx, cfg.Bucket, minio.ListObjectsOptions{Recursive: true, WithVersions: true}) {
		if o.Err != nil {
			t.Logf("cleanup: list %s: %v", cfg.Bucket, o.Err)
			return
		}
		off := minio.LegalHoldDisabled
		_ = c.PutObjectLegalHold(ctx, cfg.Bucket, o.Key, minio.PutObjectLegalHoldOptions{VersionID: o.VersionID, Status: &off})
		_ = c.RemoveObject(ctx, cfg.Bucket, o.Key, minio.RemoveObjectOptions{VersionID: o.VersionID, GovernanceBypass: true})
	}
	if err := c.RemoveBucket(ctx, cfg.Bucket); err != nil {
		t.Logf("cleanup: remove bucket %s: %v", cfg.Bucket, err)
	}
}
