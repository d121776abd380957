package rebroadcast

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/speech/speechtest"
	"github.com/earshot/earshot/internal/testbed"
)

// TestWatchOwnershipTakeover: two instances of the stage in one consumer
// group on the real broker, one watched stream carrying room A's speech
// (looped). Only the owner of the audio topic's partition 0 watches;
// the stream's match raises one alert. The owner is closed: the other
// instance takes partition 0 in the rebalance, starts watching, finds
// the same match again on its own connection, and raises nothing new
// (the alert ID derives from the room's track and the stream's name).
func TestWatchOwnershipTakeover(t *testing.T) {
	ice := testbed.IcecastServer(t)
	s := speechtest.New(t)
	b := newBed(t, 2)
	ops := b.opsTopic()

	origin := time.Now().Add(-2 * time.Minute).UTC().Truncate(time.Millisecond)
	ra := room{name: "room_a", session: "ses_a", speaker: "spk_a", track: b.trackOn("a", 0), origin: origin}
	x := say(s, "x", s.Text(111, 55))
	b.sessionStarted(ra, true)
	b.produce(chunks(t, b.keys, ra, x, 32)...)

	// Three times the speech, looped three times by the source: the
	// stream carries room A's audio for as long as the test needs.
	tag := strings.TrimPrefix(b.alerts, "t.rb.alerts.")
	mount := "/own-" + tag + ".ogg"
	source(t, ice, writeF32(t, s.Path("x3.f32"), slices.Concat(x, x, x)), mount, "-af", "volume=-6dB", "-c:a", "libopus", "-b:a", "24k", "-f", "ogg", "-content_type", "application/ogg")
	waitFor(t, time.Minute, "the Icecast mount", func() bool { return mountUp(ice.URL, mount) })

	type inst struct {
		st   *Stage
		stop func()
	}
	start := func() inst {
		cons, err := bus.NewConsumer(bus.ConsumerConfig{Cluster: b.brokers, GroupID: b.group, Topics: []string{b.audio},
			SessionTimeout: 6 * time.Second, HeartbeatInterval: time.Second, DrainTimeout: 3 * time.Second, RebalanceTimeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		st, err := New(Config{Consumer: cons, Log: bus.LogReader{Cluster: b.brokers}, Sender: b.prod, Keys: b.keys,
			Producer: event.Producer{Name: "test"}, Secret: b.secret, Logger: slog.New(slog.DiscardHandler),
			Topics:  Topics{Fingerprints: b.fps, Alerts: b.alerts, DeadLetter: b.dead, Lifecycle: b.life, Audio: b.audio, Ops: ops, Audit: b.audit},
			Watch:   []Watch{{Name: "leak", URL: ice.URL + mount}},
			Streams: FFmpeg{Path: ice.FFmpeg}})
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- st.Run(rctx) }()
		stopped := false
		stop := func() {
			if stopped {
				return
			}
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("stage: %v", err)
			}
			_ = st.Close()
		}
		t.Cleanup(stop)
		return inst{st, stop}
	}
	connected := func(st *Stage) bool { return st.Watching()[0].Connected }
	insts := []inst{start(), start()}

	waitFor(t, 3*time.Minute, "a rebroadcast alert", func() bool { es, _ := b.alertPayloads(); return len(es) > 0 })
	// Settled (during a rebalance both may watch for a few seconds, which
	// the shared alert ID makes harmless): one instance watches, the other
	// does not, checked over 10 s.
	waitFor(t, time.Minute, "one instance watching", func() bool { return connected(insts[0].st) != connected(insts[1].st) })
	var owner, other int
	for range 5 {
		var on []int
		for i, in := range insts {
			if connected(in.st) {
				on = append(on, i)
			}
		}
		if len(on) != 1 {
			t.Fatalf("%d instances watch the stream, want exactly 1", len(on))
		}
		owner, other = on[0], 1-on[0]
		time.Sleep(2 * time.Second)
	}
	if n := insts[other].st.Watching()[0].Connections; n != 0 {
		t.Errorf("the instance without partition 0 connected %d times", n)
	}
	t.Logf("instance %d watches; closing it", owner)
	insts[owner].stop()

	waitFor(t, 2*time.Minute, "the other instance watching", func() bool { return connected(insts[other].st) })
	// Its own connection's match: found again, not raised again.
	waitFor(t, 2*time.Minute, "the other instance matching the stream again", func() bool {
		var m dto.Metric
		if err := insts[other].st.m.duplicates.Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetCounter().GetValue() > 0
	})
	time.Sleep(3 * time.Second)
	es, _ := b.alertPayloads()
	if len(es) != 1 || es[0].EventID != ExternalAlertID(ra.track, "leak") {
		var ids []string
		for _, e := range es {
			ids = append(ids, e.EventID)
		}
		t.Fatalf("alerts %v, want exactly one: %s", ids, ExternalAlertID(ra.track, "leak"))
	}
	w := insts[other].st.Watching()[0]
	t.Logf("after the takeover: %d connection(s), %.1f s decoded, one alert", w.Connections, w.Seconds)
}

// opsTopic creates the bed's ops topic (removed when the test ends).
func (b *bed) opsTopic() string {
	b.t.Helper()
	ops := b.alerts + ".ops"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := bus.EnsureTopics(ctx, b.brokers, bus.TopicSpec{Name: ops, Partitions: 1}); err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = bus.DeleteTopics(ctx, b.brokers, ops)
	})
	return ops
}
