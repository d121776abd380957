package erasure_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/compliance/archive"
	"github.com/earshot/earshot/compliance/audit"
	"github.com/earshot/earshot/compliance/erasure"
	"github.com/earshot/earshot/compliance/retention"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/bustest"
	"github.com/earshot/earshot/internal/compliancetest"
	"github.com/earshot/earshot/storage"
	"github.com/earshot/earshot/storage/crypt"
)

// noEvents drops puts under events/: the archive consumer writes those
// from Kafka in the test bed test.
type noEvents struct{ storage.Putter }

func (n noEvents) Put(ctx context.Context, key string, r io.Reader, size int64, o storage.PutOptions) (storage.ObjectInfo, error) {
	if strings.HasPrefix(key, archive.Prefix) {
		return storage.ObjectInfo{}, nil
	}
	return n.Putter.Put(ctx, key, r, size, o)
}

// TestErasePersonOnTestbed records two speakers into versitygw (versioned
// bucket, audio encrypted by the durable keyring) and Kafka (their events,
// archived by the archive consumer, and live audio chunks), erases one of
// them under a legal hold (deferred), lifts the hold (completed), then scans
// every object version in the bucket and every record in the topics: no
// object or version of theirs is left, and none of their protected fields
// opens; the other speaker's still do.
func TestErasePersonOnTestbed(t *testing.T) {
	brokers := bustest.Kafka(t)
	s3 := compliancetest.NewS3(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	keys, store := compliancetest.NewCrypt(t, s3.Store, filepath.Join(t.TempDir(), "kek.key"))
	const (
		alice = "p1_alice"
		bob   = "p1_bob"
	)
	t0 := time.Now().UTC().Add(-time.Hour)
	var envs []*event.Envelope
	var audioKeys []string
	for _, s := range []compliancetest.Session{
		{Room: "r1_one", ID: "ses_one", Speakers: []string{alice, bob}, Start: t0, Ended: t0.Add(time.Minute), Alert: true, Confirm: true},
		{Room: "r1_two", ID: "ses_two", Speakers: []string{bob, alice}, Start: t0, Ended: t0.Add(time.Minute), Alert: true},
	} {
		b := compliancetest.Build(t, noEvents{store}, keys, s)
		envs = append(envs, b.Envelopes...)
		audioKeys = append(audioKeys, b.Audio...)
	}
	// Old versions: every audio object is written twice, one is deleted
	// (a delete marker over two versions).
	for i, k := range audioKeys {
		rc, info, err := store.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(rc)
		rc.Close()
		if _, err := store.Put(ctx, k, bytes.NewReader(data), int64(len(data)), storage.PutOptions{Metadata: userMeta(info.Metadata)}); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if err := store.Delete(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Session manifests (one object mixing both speakers, sealed whole
	// under the session key), each written in two versions: the first
	// with one speaker, the second with both.
	for _, ses := range [][2]string{{"r1_one", "ses_one"}, {"r1_two", "ses_two"}} {
		putManifest(t, store, ses[0], ses[1], alice)
		putManifest(t, store, ses[0], ses[1], alice, bob)
	}
	// Live audio chunks of both speakers on Kafka, sealed like ingest's.
	topics := map[event.Type]string{}
	for _, typ := range []event.Type{event.TypeTranscript, event.TypeAlert, event.TypeAlertAction, event.TypeSessionStarted, event.TypeAudioChunk} {
		topics[typ] = compliancetest.Unique("compliance-helper-" + strings.ReplaceAll(string(typ), ".", "-") + "-")
	}
	byTopic := map[string][]*event.Envelope{}
	for _, e := range envs {
		typ := e.Type
		if strings.HasPrefix(string(typ), "lifecycle.") {
			typ = event.TypeSessionStarted
		}
		byTopic[topics[typ]] = append(byTopic[topics[typ]], e)
	}
	for _, sp := range []string{alice, bob} {
		tl := event.Timeline{Track: event.TrackID("ses_one", sp, 0), FirstSample: 0, LastSample: event.SampleRate - 1, Origin: t0, Anchor: event.AnchorArrival}
		c, _ := event.New(event.TypeAudioChunk, compliancetest.Prod, nil, "r1_one", "ses_one", sp, &tl, event.AudioChunk{Codec: "opus", Channels: 1})
		if err := c.Seal(ctx, keys, event.AudioChunkData{Packets: [][]byte{[]byte("opus packet of " + sp)}, Offsets: []int64{0}}); err != nil {
			t.Fatal(err)
		}
		byTopic[topics[event.TypeAudioChunk]] = append(byTopic[topics[event.TypeAudioChunk]], c)
	}
	for topic, es := range byTopic {
		compliancetest.Produce(t, brokers, topic, es...)
	}

	// The archive consumer writes the events from Kafka to storage.
	cons, err := bus.NewConsumer(bus.ConsumerConfig{Cluster: brokers, GroupID: compliancetest.Unique("compliance-helper-archive-"),
		Topics: []string{topics[event.TypeTranscript], topics[event.TypeAlert], topics[event.TypeAlertAction], topics[event.TypeSessionStarted]}})
	if err != nil {
		t.Fatal(err)
	}
	arc, err := archive.New(archive.Config{Consumer: cons, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	actx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- arc.Run(actx) }()
	waitFor(t, "the archive to hold every event", func() bool { return count(t, store, archive.Prefix) == len(envs) })
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	arc.Close()

	log, err := audit.New(ctx, audit.Config{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	holds := &retention.Holds{Store: store}
	er, err := erasure.New(erasure.Config{Store: store, Keys: retention.CryptKeys(keys), Holds: holds, Audit: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := holds.Set(ctx, retention.Hold{Scope: retention.Scope{Room: "r1_two"}, Reason: "litigation", Operator: "legal"}); err != nil {
		t.Fatal(err)
	}
	req := erasure.Request{Kind: erasure.KindPerson, Subjects: []string{alice}, Operator: "dpo", Reason: "art. 17 request"}
	rc, err := er.Erase(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if rc.Status != erasure.StatusDeferred || len(rc.Deferred) != 1 || rc.Deferred[0].Room != "r1_two" || len(rc.KeysDestroyed) != 1 ||
		rc.ManifestsRewritten != 1 {
		t.Fatalf("erase under hold: %+v", rc)
	}
	// Held: room two's manifest still lists alice.
	if ms := manifestVersions(t, ctx, s3, store, event.ManifestKey("r1_two", "ses_two")); len(ms) != 2 || !bytes.Contains(ms[0], []byte(alice)) {
		t.Fatalf("held manifest: %d versions, newest %s", len(ms), ms[0])
	}
	// Held: alice's data in room two still opens.
	for _, e := range envs {
		if e.Speaker == alice && e.Room == "r1_two" && e.Protected != nil {
			var v map[string]any
			if err := e.Open(ctx, keys, &v); err != nil {
				t.Fatalf("held %s no longer opens: %v", e.Type, err)
			}
		}
	}
	if _, err := holds.Lift(ctx, retention.Scope{Room: "r1_two"}); err != nil {
		t.Fatal(err)
	}
	if n, err := er.CompletePending(ctx); err != nil || n != 1 {
		t.Fatalf("CompletePending = %d, %v", n, err)
	}
	if rc, err := er.Erase(ctx, req); err != nil || rc.Status != erasure.StatusNothing {
		t.Fatalf("erase again: %+v %v", rc, err)
	}

	// Scan the bucket: every version of every object, as the server has it.
	aliceKeys := map[string]bool{event.KeyID("ses_one", alice): true, event.KeyID("ses_two", alice): true}
	var audioVersions, eventVersions int
	for _, v := range s3.Versions(t, "") {
		switch {
		case strings.HasPrefix(v.Key, "audio/"):
			a, _ := retention.ParseAudioKey(v.Key)
			if compliancetest.Tracks(a.Session, alice)[a.Track] {
				t.Errorf("audio version of the erased speaker left: %s %s", v.Key, v.VersionID)
			}
			if bytes.Contains(v.Data, []byte("OggS")) {
				t.Errorf("raw audio in the bucket: %s", v.Key)
			}
			audioVersions++
		case strings.HasPrefix(v.Key, archive.Prefix) && !v.DeleteMarker:
			eventVersions++
			e, err := event.Decode(v.Data)
			if err != nil {
				t.Fatalf("%s: %v", v.Key, err)
			}
			if e.Speaker == alice {
				t.Errorf("archived event of the erased speaker left: %s", v.Key)
			}
			if e.Protected != nil && aliceKeys[e.Protected.KeyID] {
				var x map[string]any
				if err := e.Open(ctx, keys, &x); !errors.Is(err, crypt.ErrKeyDestroyed) {
					t.Errorf("%s opens: %v", v.Key, err)
				}
			}
		case strings.Contains(v.Key, alice) && !strings.HasPrefix(v.Key, "audit/") && !strings.HasPrefix(v.Key, retention.HoldPrefix):
			t.Errorf("object of the erased speaker left: %s %s", v.Key, v.VersionID)
		}
	}
	// Manifests: no version of any names the erased speaker (decrypted
	// through the store, old versions included); the other speaker's
	// track is still listed.
	for _, ses := range [][2]string{{"r1_one", "ses_one"}, {"r1_two", "ses_two"}} {
		k := event.ManifestKey(ses[0], ses[1])
		ms := manifestVersions(t, ctx, s3, store, k)
		if len(ms) != 1 {
			t.Errorf("%s: %d versions left, want the rewritten one", k, len(ms))
		}
		for _, m := range ms {
			if bytes.Contains(m, []byte(alice)) || bytes.Contains(m, []byte(event.TrackID(ses[1], alice, 0))) {
				t.Errorf("%s still names the erased speaker: %s", k, m)
			}
			var doc struct {
				Tracks []struct{ Speaker string } `json:"tracks"`
			}
			if err := json.Unmarshal(m, &doc); err != nil {
				t.Fatalf("%s: %v", k, err)
			}
			if len(doc.Tracks) != 1 || doc.Tracks[0].Speaker != bob {
				t.Errorf("%s: tracks %+v, want bob's only", k, doc.Tracks)
			}
		}
	}
	if audioVersions == 0 || eventVersions == 0 {
		t.Fatalf("scan found %d audio and %d event versions: the other speaker's data is gone too", audioVersions, eventVersions)
	}
	// Scan Kafka: the erased speaker's protected fields fail to open, the
	// other speaker's still open.
	var opened, refused int
	for _, topic := range topics {
		for _, m := range compliancetest.ReadTopic(t, brokers, topic) {
			e, err := event.Decode(m.Value)
			if err != nil {
				t.Fatal(err)
			}
			if e.Protected == nil {
				continue
			}
			var x map[string]any
			err = e.Open(ctx, keys, &x)
			switch {
			case e.Speaker == alice && !errors.Is(err, crypt.ErrKeyDestroyed):
				t.Errorf("%s %s of the erased speaker on %s opens (err %v)", e.Type, e.EventID, topic, err)
			case e.Speaker == alice:
				refused++
			case err != nil:
				t.Errorf("%s %s of %s on %s does not open: %v", e.Type, e.EventID, e.Speaker, topic, err)
			default:
				opened++
			}
		}
	}
	if refused == 0 || opened == 0 {
		t.Fatalf("kafka scan: %d refused, %d opened", refused, opened)
	}
	// The audit log recorded the deferral and the completion.
	var outcomes []string
	for e, err := range audit.Entries(ctx, store) {
		if err != nil {
			t.Fatal(err)
		}
		outcomes = append(outcomes, e.Action+":"+e.Outcome)
	}
	if got := strings.Join(outcomes, " "); got != "erase:deferred erase:ok erase:ok" {
		t.Fatalf("audit: %s", got)
	}
}

// putManifest writes a session manifest naming speakers as ingest does:
// through the encrypting store, under the session key.
func putManifest(t *testing.T, store storage.Putter, room, session string, speakers ...string) {
	t.Helper()
	m := map[string]any{"manifest_version": 1, "room": room, "session": session, "connector": "videoroom",
		"stays": []any{map[string]any{"instance": "bot-1"}}}
	var tracks []any
	for _, sp := range speakers {
		tr := event.TrackID(session, sp, 0)
		tracks = append(tracks, map[string]any{"track": tr, "speaker": sp, "ordinal": 0, "first_sample": 0, "last_sample": 47999,
			"segments": []any{map[string]any{"seq": 0, "key": "audio/" + room + "/" + session + "/" + tr + "/0-47999.ogg", "sha256": strings.Repeat("ab", 32)}}})
	}
	m["tracks"] = tracks
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Put(context.Background(), event.ManifestKey(room, session), bytes.NewReader(b), int64(len(b)), storage.PutOptions{
		ContentType: "application/json", Metadata: map[string]string{"room": room, "session": session, "manifest-version": "1"}}); err != nil {
		t.Fatal(err)
	}
}

// manifestVersions reads every version of a manifest straight from the
// server and decrypts it through the store, newest first.
func manifestVersions(t *testing.T, ctx context.Context, s3 *compliancetest.S3, store *crypt.Store, key string) [][]byte {
	t.Helper()
	var out [][]byte
	for _, v := range s3.Versions(t, key) {
		if v.Key != key || v.DeleteMarker {
			continue
		}
		oi, err := s3.Raw.StatObject(ctx, s3.Bucket, key, minio.StatObjectOptions{VersionID: v.VersionID})
		if err != nil {
			t.Fatal(err)
		}
		md := map[string]string{}
		for k, val := range oi.UserMetadata {
			md[strings.ToLower(k)] = val
		}
		rc, err := store.Decrypt(ctx, key, md, io.NopCloser(bytes.NewReader(v.Data)))
		if err != nil {
			t.Fatalf("decrypt %s version %s: %v", key, v.VersionID, err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("decrypt %s version %s: %v", key, v.VersionID, err)
		}
		out = append(out, b)
	}
	return out
}

func userMeta(md map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range md {
		if !strings.HasPrefix(k, "crypt-") && k != "sha256" {
			out[k] = v
		}
	}
	return out
}

func count(t *testing.T, s storage.Lister, prefix string) int {
	t.Helper()
	n := 0
	for _, err := range s.List(context.Background(), prefix) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
