package crypt

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/ingest/pseudonym"
	"github.com/earshot/earshot/internal/bustest"
	"github.com/earshot/earshot/record/spool"
	"github.com/earshot/earshot/storage"
	"github.com/earshot/earshot/storage/storagetest"
)

// Tests on the real test bed (versitygw, Kafka); skipped without it unless
// EARSHOT_TESTBED=1. Buckets are named earshot-crypt-*, topics
// earshot.*.crypt-*: this helper's own.

func uniq(t testing.TB) string {
	var b [5]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

// s3Bucket returns a configuration for a fresh bucket of this helper's
// (removed with all its versions when the test ends).
func s3Bucket(t *testing.T, versioned bool) storage.S3Config {
	t.Helper()
	cfg := storagetest.S3Bucket(t, "earshot-crypt")
	cfg.Versioning = versioned
	return cfg
}

// The conformance suite over versitygw, every object encrypted; data and
// keyring under two prefixes of one bucket.
func TestS3StoreConformance(t *testing.T) {
	for _, versioned := range []bool{false, true} {
		name := "Unversioned"
		if versioned {
			name = "Versioned"
		}
		t.Run(name, func(t *testing.T) {
			storagetest.Run(t, func(t *testing.T) storage.Store {
				cfg := s3Bucket(t, versioned)
				data, keys := cfg, cfg
				data.Prefix, keys.Prefix = "data/", "keyring/"
				return newEncryptingStore(t, storagetest.NewS3(t, data), storagetest.NewS3(t, keys))
			})
		})
	}
}

var foxOpus = func() []byte {
	b, err := os.ReadFile("testdata/fox.opus")
	if err != nil {
		panic(err)
	}
	return b
}()

// The must-show path: a real Ogg/Opus segment goes through the spool and
// its uploader into versitygw, announced on Kafka. Read straight from S3
// (minio-go, no wrapper) it holds no "OggS"; one flipped bit, a wrong KEK
// and a shredded key (also for an old object version) each make it
// unreadable.
func TestSegmentEncryptedThroughSpool(t *testing.T) {
	ctx := testCtx(t)
	cfg := s3Bucket(t, true)
	inner := storagetest.NewS3(t, cfg)
	kek := newKEK(t)
	keys := newKeyring(t, kek, inner, 0)
	store := NewStore(inner, keys)
	raw := storagetest.RawS3(t, cfg)
	brokers := bustest.Kafka(t)

	ps, err := pseudonym.New(randBytes(t, pseudonym.MinSecretBytes), 1)
	if err != nil {
		t.Fatal(err)
	}
	room := ps.Room("crypt-room-" + uniq(t))
	session := event.SessionID(room, time.Now().Unix())
	speaker := ps.Person("alice@example.com")
	tl := event.Timeline{Track: event.TrackID(session, speaker, 0), FirstSample: 0, LastSample: 48000*3 - 1, Origin: time.Now().UTC(), Anchor: event.AnchorRTCP}
	seg := spool.Segment{Room: room, Session: session, Speaker: speaker, Timeline: tl, KeyID: event.KeyID(session, speaker)}

	sp, err := spool.Open(spool.Config{Dir: t.TempDir(), Producer: event.Producer{Name: "crypt-test", Version: "test"}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	if _, err := sp.Put(seg, bytes.NewReader(foxOpus)); err != nil {
		t.Fatal(err)
	}
	prod, err := bus.NewProducer(bus.ProducerConfig{Cluster: brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	topic := "earshot.segments.crypt-" + uniq(t)
	if err := bus.EnsureTopics(ctx, brokers, bus.TopicSpec{Name: topic, Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	up, err := spool.NewUploader(spool.UploaderConfig{Spool: sp, Store: store, Sender: prod, Topic: topic, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- up.Run(runCtx) }()
	for deadline := time.Now().Add(time.Minute); up.Stats().Uploaded < 1; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("segment not uploaded: %+v", up.Stats())
		}
	}
	stop()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	up.Close()
	key := event.SegmentKey(room, session, tl)

	// Straight from S3: ciphertext only.
	obj, err := raw.GetObject(ctx, cfg.Bucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stored, err := io.ReadAll(obj)
	if err != nil {
		t.Fatal(err)
	}
	oi, err := obj.Stat()
	if err != nil {
		t.Fatal(err)
	}
	obj.Close()
	if bytes.Contains(stored, []byte("OggS")) || bytes.Contains(stored, foxOpus[100:132]) {
		t.Fatal("the object in S3 contains Ogg data")
	}
	t.Logf("stored %d bytes for a %d-byte segment; header %q; S3 metadata %v", len(stored), len(foxOpus), stored[:8], oi.UserMetadata)
	// Through the wrapper: the segment, byte for byte.
	got, info, err := readAll(t, store, key)
	if err != nil || !bytes.Equal(got, foxOpus) || info.SHA256 != hexSHA(foxOpus) {
		t.Fatalf("Get through the Store: %v (equal %v, sha %s)", err, bytes.Equal(got, foxOpus), info.SHA256)
	}
	firstVersion := oi.VersionID

	// A wrong KEK (another deployment's key file) over the same wrapped key.
	other := NewStore(inner, newKeyring(t, newKEK(t), inner, 0))
	if _, _, err := readAll(t, other, key); !errors.Is(err, ErrDecrypt) {
		t.Errorf("Get with a wrong KEK: %v, want ErrDecrypt", err)
	}

	// One flipped bit, stored by someone who fixes up the store's own
	// SHA-256 too: decryption fails, no garbage comes out.
	tampered := bytes.Clone(stored)
	tampered[len(tampered)/2] ^= 0x04
	md := map[string]string{}
	for k, v := range oi.UserMetadata {
		md[strings.ToLower(k)] = v
	}
	md["sha256"] = hexSHA(tampered)
	if _, err := raw.PutObject(ctx, cfg.Bucket, key, bytes.NewReader(tampered), int64(len(tampered)), minio.PutObjectOptions{UserMetadata: md}); err != nil {
		t.Fatal(err)
	}
	if got, _, err := readAll(t, store, key); !errors.Is(err, ErrDecrypt) || bytes.Equal(got, foxOpus) {
		t.Errorf("Get after one flipped bit: %v, want ErrDecrypt", err)
	}
	// The first version is now an old version: it still decrypts...
	old := func() ([]byte, error) {
		o, err := raw.GetObject(ctx, cfg.Bucket, key, minio.GetObjectOptions{VersionID: firstVersion})
		if err != nil {
			return nil, err
		}
		r, err := store.Decrypt(ctx, key, info2meta(t, o), o)
		if err != nil {
			return nil, err
		}
		defer r.Close()
		return io.ReadAll(r)
	}
	if b, err := old(); err != nil || !bytes.Equal(b, foxOpus) {
		t.Fatalf("old version before the shred: %v", err)
	}
	// ...until the speaker's keys are shredded.
	refs, err := keys.ShredSpeaker(ctx, speaker)
	if err != nil || len(refs) != 1 || refs[0].ID != event.KeyID(session, speaker) {
		t.Fatalf("ShredSpeaker = %v, %v", refs, err)
	}
	if _, err := old(); !errors.Is(err, ErrKeyDestroyed) {
		t.Errorf("old version after the shred: %v, want ErrKeyDestroyed", err)
	}
	rawPut(t, inner, "probe", nil, nil) // the bucket still works
	if _, _, err := readAll(t, store, key); !errors.Is(err, ErrKeyDestroyed) {
		t.Errorf("Get after the shred: %v, want ErrKeyDestroyed", err)
	}
	// Every version of every object in the bucket: no Ogg data, and no
	// version of the speaker's wrapped key or index marker.
	for o := range raw.ListObjectsIter(ctx, cfg.Bucket, minio.ListObjectsOptions{Recursive: true, WithVersions: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		if strings.Contains(o.Key, speaker) {
			t.Errorf("after the shred, %s (version %s) remains", o.Key, o.VersionID)
		}
		if o.IsDeleteMarker {
			continue
		}
		r, err := raw.GetObject(ctx, cfg.Bucket, o.Key, minio.GetObjectOptions{VersionID: o.VersionID})
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("OggS")) {
			t.Errorf("%s (version %s) contains OggS", o.Key, o.VersionID)
		}
	}
}

func info2meta(t *testing.T, o *minio.Object) map[string]string {
	t.Helper()
	oi, err := o.Stat()
	if err != nil {
		t.Fatal(err)
	}
	md := map[string]string{}
	for k, v := range oi.UserMetadata {
		md[strings.ToLower(k)] = v
	}
	return md
}

// audio.chunk and transcript.segment records sealed with the Keyring, read
// straight from Kafka, hold no readable speech; the keyring opens them, and
// after the speaker is shredded nobody can.
func TestKafkaRecordsHoldNoSpeech(t *testing.T) {
	ctx := testCtx(t)
	brokers := bustest.Kafka(t)
	cfg := s3Bucket(t, false)
	keys := newKeyring(t, newKEK(t), storagetest.NewS3(t, cfg), 0)
	id := uniq(t)
	audioTopic, transcriptTopic := "earshot.audio.crypt-"+id, "earshot.transcripts.crypt-"+id
	if err := bus.EnsureTopics(ctx, brokers, bus.TopicSpec{Name: audioTopic, Partitions: 1}, bus.TopicSpec{Name: transcriptTopic, Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = bus.DeleteTopics(ctx, brokers, audioTopic, transcriptTopic)
	})
	room, session, speaker := "room_"+id, event.SessionID("room_"+id, 1), "spk_"+id
	tl := event.Timeline{Track: event.TrackID(session, speaker, 0), FirstSample: 0, LastSample: 47999, Origin: time.Now().UTC(), Anchor: event.AnchorRTCP}
	prodName := event.Producer{Name: "crypt-test", Version: "test"}

	var packets [][]byte
	var offsets []int64
	for i := 0; i < len(foxOpus); i += 1000 {
		packets = append(packets, foxOpus[i:min(i+1000, len(foxOpus))])
		offsets = append(offsets, int64(i))
	}
	chunk, err := event.New(event.TypeAudioChunk, prodName, nil, room, session, speaker, &tl, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := chunk.Seal(ctx, keys, event.AudioChunkData{Packets: packets, Offsets: offsets}); err != nil {
		t.Fatal(err)
	}
	const text = "the quick brown fox jumps over the lazy dog"
	tr, err := event.New(event.TypeTranscript, prodName, &event.Processing{Engine: "test"}, room, session, speaker, &tl, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Seal(ctx, keys, event.TranscriptSegmentData{Text: text}); err != nil {
		t.Fatal(err)
	}
	prod, err := bus.NewProducer(bus.ProducerConfig{Cluster: brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	for topic, e := range map[string]*event.Envelope{audioTopic: chunk, transcriptTopic: tr} {
		b, err := e.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if err := prod.Produce(ctx, bus.Message{Topic: topic, Key: []byte(tl.Track), Value: b}); err != nil {
			t.Fatal(err)
		}
	}

	// Forbidden in any record: the Ogg magic, the words, and their base64
	// forms (JSON encodes bytes as base64).
	forbidden := [][]byte{[]byte("OggS"), []byte("quick brown"), []byte(base64.StdEncoding.EncodeToString([]byte(text))[:16])}
	for _, p := range packets {
		forbidden = append(forbidden, []byte(base64.StdEncoding.EncodeToString(p)[:24]))
	}
	read := func(topic string) *event.Envelope {
		msgs, err := (bus.LogReader{Cluster: brokers}).ReadTopic(ctx, topic, nil)
		if err != nil || len(msgs) != 1 {
			t.Fatalf("read %s: %d records, %v; want the one written", topic, len(msgs), err)
		}
		m := msgs[0]
		e, err := event.Decode(m.Value)
		if err != nil {
			t.Fatal(err)
		}
		// The record's text outside the ciphertext, where no pattern can
		// turn up by chance: ciphertext is random, and its base64 holds
		// any short string now and then (a 10 KB chunk holds "OggS" about
		// once in a thousand runs).
		var ct []byte
		if e.Protected != nil {
			ct = e.Protected.Ciphertext
		}
		bare := *e
		if e.Protected != nil {
			p := *e.Protected
			p.Ciphertext = nil
			bare.Protected = &p
		}
		text, err := bare.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range forbidden {
			if bytes.Contains(text, f) || bytes.Contains(m.Key, f) {
				t.Errorf("%s record contains %q", topic, f)
			}
		}
		// The ciphertext holds none of the plaintext's bytes.
		for _, f := range append([][]byte{[]byte("quick brown fox")}, packets...) {
			if len(f) >= 12 && bytes.Contains(ct, f[:12]) {
				t.Errorf("%s record's ciphertext holds plaintext bytes %x", topic, f[:12])
			}
		}
		if e.Protected == nil || e.Protected.Alg != event.AlgAES256GCM || len(e.Protected.Data) != 0 {
			t.Errorf("%s record: protected %+v, want AES-256-GCM ciphertext only", topic, e.Protected)
		}
		return e
	}
	gotChunk, gotTr := read(audioTopic), read(transcriptTopic)
	var cd event.AudioChunkData
	var td event.TranscriptSegmentData
	if err := gotChunk.Open(ctx, keys, &cd); err != nil || !bytes.Equal(bytes.Join(cd.Packets, nil), foxOpus) {
		t.Fatalf("open the chunk read from Kafka: %v", err)
	}
	if err := gotTr.Open(ctx, keys, &td); err != nil || td.Text != text {
		t.Fatalf("open the transcript read from Kafka: %v", err)
	}
	// Crypto-shredding reaches retained records.
	if _, err := keys.ShredSpeaker(ctx, speaker); err != nil {
		t.Fatal(err)
	}
	if err := gotChunk.Open(ctx, keys, &cd); !errors.Is(err, ErrKeyDestroyed) {
		t.Errorf("open the chunk after the shred: %v, want ErrKeyDestroyed", err)
	}
	fresh := newKeyring(t, keys.kek, keys.store, 0) // another process
	if err := gotTr.Open(ctx, fresh, &td); !errors.Is(err, ErrKeyDestroyed) {
		t.Errorf("open the transcript after the shred, another process: %v, want ErrKeyDestroyed", err)
	}
}

// TestKeyringRotateKEKOnVersionedS3: the rotation on versitygw with
// versioning, where the old wrapped copies survive as versions unless
// Rewrap deletes them.
func TestKeyringRotateKEKOnVersionedS3(t *testing.T) {
	checkRotation(t, storagetest.NewS3(t, s3Bucket(t, true)), true)
}
