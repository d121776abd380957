package compliancetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/storage"
	"github.com/earshot/earshot/storage/storagetest"
)

// Unique returns prefix plus random hex, for buckets, topics and groups of
// this helper's tests on the shared test bed.
func Unique(prefix string) string {
	var b [5]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// S3 is a fresh versioned bucket on the test bed's versitygw, with a raw
// minio client to read every version directly.
type S3 struct {
	Store  *storage.S3
	Raw    *minio.Client
	Bucket string
}

// NewS3 creates a versioned bucket; it goes with every version when the
// test ends.
func NewS3(tb testing.TB) *S3 { return newS3(tb, "earshot-compliance", false) }

// NewLockedS3 is NewS3 with S3 object lock on the bucket.
func NewLockedS3(tb testing.TB) *S3 { return newS3(tb, "earshot-compliance-lock", true) }

func newS3(tb testing.TB, name string, lock bool) *S3 {
	tb.Helper()
	cfg := storagetest.S3Bucket(tb, name)
	cfg.Versioning, cfg.ObjectLock = true, lock
	return &S3{Store: storagetest.NewS3(tb, cfg), Raw: storagetest.RawS3(tb, cfg), Bucket: cfg.Bucket}
}

// RawVersion is one stored object version as the S3 server holds it.
type RawVersion struct {
	Key, VersionID string
	DeleteMarker   bool
	Data           []byte // nil for delete markers
}

// Versions reads every version of every object under prefix, straight
// from the server.
func (s *S3) Versions(tb testing.TB, prefix string) []RawVersion {
	tb.Helper()
	ctx := context.Background()
	var out []RawVersion
	for v := range s.Raw.ListObjects(ctx, s.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true, WithVersions: true}) {
		if v.Err != nil {
			tb.Fatal(v.Err)
		}
		rv := RawVersion{Key: v.Key, VersionID: v.VersionID, DeleteMarker: v.IsDeleteMarker}
		if !v.IsDeleteMarker {
			o, err := s.Raw.GetObject(ctx, s.Bucket, v.Key, minio.GetObjectOptions{VersionID: v.VersionID})
			if err != nil {
				tb.Fatal(err)
			}
			rv.Data, err = io.ReadAll(o)
			o.Close()
			if err != nil {
				tb.Fatalf("read %s version %s: %v", v.Key, v.VersionID, err)
			}
		}
		out = append(out, rv)
	}
	return out
}

// Produce sends envelopes to topic (key = room), creating the topic.
func Produce(tb testing.TB, brokers bus.Cluster, topic string, envs ...*event.Envelope) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := bus.EnsureTopics(ctx, brokers, bus.TopicSpec{Name: topic, Partitions: 1}); err != nil {
		tb.Fatal(err)
	}
	DeleteTopicAtEnd(tb, brokers, topic)
	p, err := bus.NewProducer(bus.ProducerConfig{Cluster: brokers})
	if err != nil {
		tb.Fatal(err)
	}
	defer p.Close()
	var msgs []bus.Message
	for _, e := range envs {
		b, err := e.Marshal()
		if err != nil {
			tb.Fatal(err)
		}
		msgs = append(msgs, bus.Message{Topic: topic, Key: []byte(e.Room), Value: b})
	}
	if err := p.Produce(ctx, msgs...); err != nil {
		tb.Fatal(err)
	}
}

// ReadTopic reads every record of partition 0 of topic, from the start.
func ReadTopic(tb testing.TB, brokers bus.Cluster, topic string) []bus.Message {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	lr := bus.LogReader{Cluster: brokers}
	ranges, err := lr.Offsets(ctx, topic)
	if err != nil {
		tb.Fatal(err)
	}
	var out []bus.Message
	if err := lr.ReadRange(ctx, topic, 0, ranges[0].First, ranges[0].End, func(m bus.Message) error {
		out = append(out, m)
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	return out
}

// DeleteTopicAtEnd deletes topic when the test ends (best effort).
func DeleteTopicAtEnd(tb testing.TB, brokers bus.Cluster, topic string) {
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = bus.DeleteTopics(ctx, brokers, topic)
	})
}
