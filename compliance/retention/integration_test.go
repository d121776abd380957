package retention_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/compliance/audit"
	"github.com/earshot/earshot/compliance/retention"
	"github.com/earshot/earshot/internal/bustest"
	"github.com/earshot/earshot/internal/compliancetest"
	"github.com/earshot/earshot/internal/config"
	"github.com/earshot/earshot/storage"
	"github.com/earshot/earshot/storage/crypt"
)

// TestEphemeralSweepOnTestbed: in a versioned versitygw bucket, an
// ephemeral room's session without alerts has no audio object or version
// left once its end plus the (2 s) grace period has passed; a session with
// an alert keeps its audio. The sweep is audited.
func TestEphemeralSweepOnTestbed(t *testing.T) {
	s3 := compliancetest.NewS3(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	keys, store := compliancetest.NewCrypt(t, s3.Store, filepath.Join(t.TempDir(), "kek.key"))
	cfg := config.Default().Retention
	cfg.Classes["ephemeral"] = config.RetentionClass{Mode: config.RetentionEphemeral, Grace: 2 * time.Second, Days: 30, ConfirmedDays: 90}
	pol, err := retention.NewPolicy(cfg.Rules(), nil)
	if err != nil {
		t.Fatal(err)
	}
	end := time.Now().UTC()
	quiet := compliancetest.Build(t, store, keys, compliancetest.Session{Room: "r1_lobby", ID: "ses_quiet", Speakers: []string{"p1_a", "p1_b"}, Start: end.Add(-time.Minute), Ended: end, Class: "ephemeral"})
	loud := compliancetest.Build(t, store, keys, compliancetest.Session{Room: "r1_lobby", ID: "ses_loud", Speakers: []string{"p1_a"}, Start: end.Add(-time.Minute), Ended: end, Class: "ephemeral", Alert: true})
	// A second version of each of the quiet session's segments.
	for _, k := range quiet.Audio {
		rc, info, err := store.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		md := map[string]string{}
		for k, v := range info.Metadata {
			if !strings.HasPrefix(k, "crypt-") {
				md[k] = v
			}
		}
		if _, err := store.Put(ctx, k, bytes.NewReader(b), int64(len(b)), storage.PutOptions{Metadata: md}); err != nil {
			t.Fatal(err)
		}
	}
	log, err := audit.New(ctx, audit.Config{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	sw, err := retention.NewSweeper(retention.SweeperConfig{Store: store, Holds: &retention.Holds{Store: store}, Policy: pol, Audit: log, Keys: retention.CryptKeys(keys)})
	if err != nil {
		t.Fatal(err)
	}
	versions := func(prefix string) int { return len(s3.Versions(t, prefix)) }
	if rep, err := sw.Sweep(ctx); err != nil || rep.Expired != 0 {
		t.Fatalf("sweep within grace: %+v %v", rep, err)
	}
	if n := versions("audio/r1_lobby/ses_quiet/"); n != 2*len(quiet.Audio) {
		t.Fatalf("quiet session has %d audio versions within grace, want %d", n, 2*len(quiet.Audio))
	}
	time.Sleep(time.Until(end.Add(2*time.Second + 100*time.Millisecond)))
	rep, err := sw.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Expired != 1 {
		t.Fatalf("sweep after grace: %+v", rep)
	}
	if n := versions("audio/r1_lobby/ses_quiet/"); n != 0 {
		t.Fatalf("quiet ephemeral session: %d audio versions left after end+grace", n)
	}
	if n := versions("events/r1_lobby/ses_quiet/"); n != 0 {
		t.Fatalf("quiet ephemeral session: %d event versions left", n)
	}
	if n := versions("audio/r1_lobby/ses_loud/"); n != len(loud.Audio) {
		t.Fatalf("alerted ephemeral session: %d audio versions, want %d", n, len(loud.Audio))
	}
	// The expired session's keys are shredded: its copies elsewhere (Kafka)
	// no longer open; the kept session's still do.
	for _, e := range append(quiet.Envelopes, loud.Envelopes...) {
		if e.Protected == nil {
			continue
		}
		var v map[string]any
		err := e.Open(ctx, keys, &v)
		if e.Session == "ses_quiet" && !errors.Is(err, crypt.ErrKeyDestroyed) {
			t.Fatalf("expired %s still opens: %v", e.Type, err)
		}
		if e.Session == "ses_loud" && err != nil {
			t.Fatalf("kept %s does not open: %v", e.Type, err)
		}
	}
	if rep.Keys != 2 {
		t.Fatalf("shredded %d keys, want 2 (one per speaker of the quiet session)", rep.Keys)
	}
	var last string
	for e, err := range audit.Entries(ctx, store) {
		if err != nil {
			t.Fatal(err)
		}
		last = e.Action + " " + e.Subject + " " + e.Outcome
	}
	if last != retention.ActionExpire+" ses_quiet ok" {
		t.Fatalf("audit: %q", last)
	}
}

// TestKafkaTopicRetentionOnTestbed: the sweeper sets retention.ms of
// topics to the configured values (forever too), leaves them when they
// already match, and passes over a topic that does not exist.
func TestKafkaTopicRetentionOnTestbed(t *testing.T) {
	topicRetentionScenario(t, bustest.Kafka(t))
}

// TestKafkaTopicRetentionEmbedded: the same on the in-process broker.
func TestKafkaTopicRetentionEmbedded(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e, err := bus.NewEmbedded(ctx, bus.EmbeddedConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	topicRetentionScenario(t, e.Cluster())
}

func topicRetentionScenario(t *testing.T, brokers bus.Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	hours, forever, missing := compliancetest.Unique("compliance-helper-retention-"), compliancetest.Unique("compliance-helper-retention-"), compliancetest.Unique("compliance-helper-retention-")
	if err := bus.EnsureTopics(ctx, brokers, bus.TopicSpec{Name: hours, Partitions: 1, Retention: time.Hour}, bus.TopicSpec{Name: forever, Partitions: 1, Retention: time.Hour}); err != nil {
		t.Fatal(err)
	}
	compliancetest.DeleteTopicAtEnd(t, brokers, hours)
	compliancetest.DeleteTopicAtEnd(t, brokers, forever)
	var logs bytes.Buffer
	kt := &retention.KafkaTopics{
		Cluster:   brokers,
		Retention: map[string]time.Duration{hours: 3 * time.Hour, forever: -1, missing: 2 * time.Hour},
		Logger:    slog.New(slog.NewTextHandler(&logs, nil)),
	}
	// The first Apply changes both topics, the second finds them as
	// configured; both pass over the missing one with a warning.
	for i, want := range []int{2, 0} {
		logs.Reset()
		if err := kt.Apply(ctx); err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(logs.String(), "kafka topic retention set"); n != want {
			t.Fatalf("apply %d set retention %d times, want %d; log:\n%s", i+1, n, want, logs.String())
		}
		if !strings.Contains(logs.String(), "topic does not exist") || !strings.Contains(logs.String(), missing) {
			t.Fatalf("apply %d: no warning about the missing topic; log:\n%s", i+1, logs.String())
		}
	}
	cfgs, err := bus.TopicConfigs(ctx, brokers, hours, forever)
	if err != nil {
		t.Fatal(err)
	}
	for topic, want := range map[string]string{hours: "10800000", forever: "-1"} {
		if err := cfgs[topic].Err; err != nil {
			t.Fatal(err)
		}
		if got := cfgs[topic].Configs["retention.ms"]; got != want {
			t.Fatalf("retention.ms of %s = %q, want %s", topic, got, want)
		}
	}
}

// TestObjectLockHoldOnTestbed: with object lock on the bucket, a hold puts
// an S3 legal hold on every version in its scope, so the bucket itself
// refuses to delete them (storage.ErrLocked); lifting the hold releases
// them.
func TestObjectLockHoldOnTestbed(t *testing.T) {
	s3 := compliancetest.NewLockedS3(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	keys, store := compliancetest.NewCrypt(t, s3.Store, filepath.Join(t.TempDir(), "kek.key"))
	b := compliancetest.Build(t, store, keys, compliancetest.Session{Room: "r1_held", ID: "ses_h", Speakers: []string{"p1_a"}, Start: time.Now(), Ended: time.Now()})
	free := compliancetest.Build(t, store, keys, compliancetest.Session{Room: "r1_free", ID: "ses_f", Speakers: []string{"p1_a"}, Start: time.Now(), Ended: time.Now()})
	holds := &retention.Holds{Store: store, Lock: s3.Store}
	scope := retention.Scope{Room: "r1_held"}
	if err := holds.Set(ctx, retention.Hold{Scope: scope, Reason: "case", Operator: "legal"}); err != nil {
		t.Fatal(err)
	}
	if err := store.DeleteAll(ctx, b.Audio[0]); !errors.Is(err, storage.ErrLocked) {
		t.Fatalf("deleting held audio: %v, want ErrLocked", err)
	}
	// The sweeper, were the marker gone, would still be stopped by the bucket.
	c, err := retention.Purge(ctx, store, "audio/r1_held/", nil)
	if err != nil || c.Locked != len(b.Audio) || c.Objects != 0 {
		t.Fatalf("purge of held audio: %+v %v", c, err)
	}
	if c, err := retention.Purge(ctx, store, "audio/r1_free/", nil); err != nil || c.Objects != len(free.Audio) {
		t.Fatalf("purge of free audio: %+v %v", c, err)
	}
	if _, err := holds.Lift(ctx, scope); err != nil {
		t.Fatal(err)
	}
	if c, err := retention.Purge(ctx, store, "audio/r1_held/", nil); err != nil || c.Objects != len(b.Audio) || c.Locked != 0 {
		t.Fatalf("purge after lift: %+v %v", c, err)
	}
}

// TestObjectLockSpeakerHoldOnTestbed: a hold on one person puts the S3
// legal hold on every version of every track of theirs, the tracks of a
// rejoin and of the bot's stay after a restart (ordinal 100,000) too, and
// on nobody else's.
func TestObjectLockSpeakerHoldOnTestbed(t *testing.T) {
	s3 := compliancetest.NewLockedS3(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	keys, store := compliancetest.NewCrypt(t, s3.Store, filepath.Join(t.TempDir(), "kek.key"))
	b := compliancetest.Build(t, store, keys, compliancetest.Session{Room: "r1_room", ID: "ses_s", Speakers: []string{"p1_a", "p1_b"}, Start: time.Now(), Ended: time.Now()})
	holds := &retention.Holds{Store: store, Lock: s3.Store}
	if err := holds.Set(ctx, retention.Hold{Scope: retention.Scope{Speaker: "p1_b"}, Reason: "case", Operator: "legal"}); err != nil {
		t.Fatal(err)
	}
	held := compliancetest.Tracks("ses_s", "p1_b")
	var locked, freed int
	for _, k := range b.Audio {
		a, _ := retention.ParseAudioKey(k)
		err := store.DeleteAll(ctx, k)
		switch {
		case held[a.Track] && !errors.Is(err, storage.ErrLocked):
			t.Errorf("held speaker's %s: delete gave %v, want ErrLocked", k, err)
		case !held[a.Track] && err != nil:
			t.Errorf("free speaker's %s: %v", k, err)
		case held[a.Track]:
			locked++
		default:
			freed++
		}
	}
	if locked != freed || locked != len(b.Audio)/2 {
		t.Fatalf("%d objects locked, %d deleted, of %d", locked, freed, len(b.Audio))
	}
	if _, err := holds.Lift(ctx, retention.Scope{Speaker: "p1_b"}); err != nil {
		t.Fatal(err)
	}
}
