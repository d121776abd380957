package rebroadcast

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/compliance/audit"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/bustest"
	"github.com/earshot/earshot/internal/speech/speechtest"
	"github.com/earshot/earshot/storage"
	"github.com/earshot/earshot/storage/crypt"
)

func TestAllowList(t *testing.T) {
	now := time.Date(2027, 1, 10, 12, 0, 0, 0, time.UTC)
	later, earlier := now.Add(time.Hour), now.Add(-time.Hour)
	l := newAllowList([]AllowedPair{
		{Rooms: [2]string{"a", "b"}},
		{Rooms: [2]string{"c", "a"}, Until: later},
		{Rooms: [2]string{"a", "d"}, Until: earlier},
		// Listed twice: the later end counts, whichever comes first.
		{Rooms: [2]string{"e", "f"}, Until: earlier},
		{Rooms: [2]string{"f", "e"}, Until: later},
		{Rooms: [2]string{"g", "h"}},
		{Rooms: [2]string{"h", "g"}, Until: earlier},
	}, func() time.Time { return now })
	for _, c := range []struct {
		x, y string
		want bool
	}{
		{"a", "b", true}, {"b", "a", true}, // symmetric
		{"a", "c", true}, {"c", "a", true}, // until later
		{"a", "d", false}, {"d", "a", false}, // ended
		{"e", "f", true}, {"g", "h", true},
		{"b", "c", false}, // pairs do not chain
		{"a", "a", false}, {"a", "x", false}, {"", "", false},
	} {
		if got := l.allowed(c.x, c.y); got != c.want {
			t.Errorf("allowed(%q, %q) = %v, want %v", c.x, c.y, got, c.want)
		}
	}
}

func TestNewRefusesBadPairs(t *testing.T) {
	for _, p := range [][2]string{{"a", ""}, {"", "b"}, {"a", "a"}} {
		_, err := New(Config{Consumer: bustest.NewFeed(), Log: noLog{}, Sender: &bustest.Capture{}, Keys: crypt.NewMemory(),
			Secret: make([]byte, 32), Allow: []AllowedPair{{Rooms: p, Reason: "r"}}})
		if err == nil || !strings.Contains(err.Error(), "allowed pair 0") {
			t.Errorf("%q: %v", p, err)
		}
	}
}

// TestAllowListedPairRaisesNothing: room A's speech is heard in room B,
// allow-listed with A (a consented simulcast), in room C, not listed,
// and in room D, whose allowance with A has ended: B raises nothing, C
// and D raise one alert each.
func TestAllowListedPairRaisesNothing(t *testing.T) {
	s := speechtest.New(t)
	keys := crypt.NewMemory()
	feed, out := bustest.NewFeed(), &bustest.Capture{}
	st, err := New(Config{Consumer: feed, Log: noLog{}, Sender: out, Keys: keys, Secret: make([]byte, 32), QueryDelay: time.Millisecond, Producer: event.Producer{Name: "test"},
		Allow: []AllowedPair{
			{Rooms: [2]string{"room_b", "room_a"}, Until: time.Now().Add(time.Hour), Reason: "host consented"},
			{Rooms: [2]string{"room_a", "room_d"}, Until: time.Now().Add(-time.Minute), Reason: "ended"},
		}})
	if err != nil {
		t.Fatal(err)
	}
	stop := bustest.Start(t, st.Run)
	defer stop()
	origin := time.Now().Add(-2 * time.Minute)
	mk := func(n string, after time.Duration) room {
		return room{name: "room_" + n, session: "ses_" + n, speaker: "spk_" + n, track: "trk_" + n, origin: origin.Add(after)}
	}
	ra, rb, rc, rd := mk("a", 0), mk("b", time.Minute), mk("c", time.Minute), mk("d", time.Minute)
	texts := []string{s.Text(11, 30), s.Text(12, 30), s.Text(13, 30)}
	disjoint(t, map[string]string{"x": texts[0], "y": texts[1], "z": texts[2]})
	x, y, z := say(s, "x", texts[0]), say(s, "y", texts[1]), say(s, "z", texts[2])
	feed.WaitAcked(t, feed.Push(chunks(t, keys, ra, append(append(append([]float32{}, x...), y...), z...), 32)...)...)
	feed.WaitAcked(t, feed.Push(chunks(t, keys, rb, say(s, "xb", texts[0], "gain", "-6"), 32)...)...)
	feed.WaitAcked(t, feed.Push(chunks(t, keys, rc, say(s, "yc", texts[1], "gain", "-6"), 32)...)...)
	feed.WaitAcked(t, feed.Push(chunks(t, keys, rd, say(s, "zd", texts[2], "gain", "-6"), 32)...)...)
	var copies []string
	for _, p := range payloads(t, out.Topic(event.TopicAlerts)) {
		if p.Original.Room != ra.name {
			t.Errorf("alert names %s as the original", p.Original.Room)
		}
		copies = append(copies, p.Copy.Room)
	}
	if strings.Join(copies, ",") != "room_c,room_d" {
		t.Fatalf("alerts for copies in %v, want room_c then room_d (room_b is allow-listed with room_a)", copies)
	}
}

func TestFingerprintsLag(t *testing.T) {
	st, err := New(Config{Consumer: bustest.NewFeed(), Log: noLog{}, Sender: &bustest.Capture{}, Keys: crypt.NewMemory(), Secret: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	st.fpNext[0], st.fpNext[1] = 100, 50
	got := st.fpLag(map[int]bus.PartitionRange{
		0: {First: 0, End: 120}, // 20 behind
		1: {First: 0, End: 50},  // caught up
		2: {First: 10, End: 15}, // not read yet: all 5
	})
	if got != 25 {
		t.Fatalf("lag %d, want 25", got)
	}
}

// TestErasureReachesIndex runs on the embedded broker (kfake): rooms A
// and A2 (one speaker, two texts) and C and C2 (another speaker) are
// fingerprinted by instance 1; the first speaker is erased through the
// audit log, as `earshot erase` records it. Instance 1 drops their
// tracks at once: A's speech replayed in room B raises nothing while C's
// replayed in D still alerts. Instance 2, started afterwards over the
// same topics, rebuilds its index without them: A2's speech replayed in
// B2 raises nothing, C2's in D2 alerts.
func TestErasureReachesIndex(t *testing.T) {
	s := speechtest.New(t)
	emb, err := bus.NewEmbedded(t.Context(), bus.EmbeddedConfig{Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emb.Close() })
	cl := emb.Cluster()
	tp := Topics{Fingerprints: "t.fp", Alerts: "t.alerts", DeadLetter: "t.dead", Lifecycle: "t.life", Audit: "t.audit"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var specs []bus.TopicSpec
	for _, n := range []string{tp.Fingerprints, tp.Alerts, tp.DeadLetter, tp.Lifecycle, tp.Audit} {
		specs = append(specs, bus.TopicSpec{Name: n, Partitions: 1})
	}
	if err := bus.EnsureTopics(ctx, cl, specs...); err != nil {
		t.Fatal(err)
	}
	prod, err := bus.NewProducer(bus.ProducerConfig{Cluster: cl})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = prod.Close() })
	keys := crypt.NewMemory()
	start := func() (*Stage, *bustest.Feed, func()) {
		feed := bustest.NewFeed()
		st, err := New(Config{Consumer: feed, Log: bus.LogReader{Cluster: cl}, Sender: prod, Keys: keys, Secret: make([]byte, 32), Producer: event.Producer{Name: "test"},
			QueryDelay: time.Millisecond, Topics: tp})
		if err != nil {
			t.Fatal(err)
		}
		return st, feed, bustest.Start(t, st.Run)
	}
	alerts := func() []AlertPayload {
		ms, err := bus.LogReader{Cluster: cl}.ReadTopic(ctx, tp.Alerts, nil)
		if err != nil {
			t.Fatal(err)
		}
		return payloads(t, ms)
	}
	origin := time.Now().Add(-2 * time.Minute)
	mk := func(n, speaker string, after time.Duration) room {
		return room{name: "room_" + n, session: "ses_" + n, speaker: speaker, track: "trk_" + n, origin: origin.Add(after)}
	}
	const erased = "p1_erasedperson"
	ra, ra2, rc, rc2 := mk("a", erased, 0), mk("a2", erased, 0), mk("c", "p1_other", 0), mk("c2", "p1_other", 0)
	rb, rd, rb2, rd2 := mk("b", "p1_b", 40*time.Second), mk("d", "p1_d", 40*time.Second), mk("b2", "p1_b2", 60*time.Second), mk("d2", "p1_d2", 60*time.Second)
	texts := map[string]string{"a": s.Text(21, 30), "a2": s.Text(22, 30), "c": s.Text(23, 30), "c2": s.Text(24, 30)}
	disjoint(t, texts)

	st1, feed1, stop1 := start()
	for _, r := range []room{ra, ra2, rc, rc2} {
		feed1.WaitAcked(t, feed1.Push(chunks(t, keys, r, say(s, r.name, texts[strings.TrimPrefix(r.name, "room_")]), 32)...)...)
	}
	st1.mu.Lock()
	held := st1.idx.Known("trk_a@0") && st1.idx.Known("trk_a2@0") && st1.idx.Known("trk_c@0")
	st1.mu.Unlock()
	if !held {
		t.Fatal("instance 1 does not hold the rooms' tracks")
	}

	// The erasure as the compliance stage records it: an audit entry on
	// the audit topic naming every pseudonym of the person.
	store, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	log, err := audit.New(ctx, audit.Config{Store: store, Sender: prod, Topic: tp.Audit})
	if err != nil {
		t.Fatal(err)
	}
	if err := log.Record(ctx, event.AuditEntry{Operator: "dpo", Action: audit.ActionErase, Subject: erased + ",p2_olderkeyversion",
		Reason: "request", Outcome: audit.OutcomeOK}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "instance 1 to drop the erased person's tracks", func() bool {
		st1.mu.Lock()
		defer st1.mu.Unlock()
		return !st1.idx.Known("trk_a@0") && !st1.idx.Known("trk_a2@0")
	})
	st1.mu.Lock()
	if !st1.idx.Known("trk_c@0") || !st1.idx.Known("trk_c2@0") {
		t.Error("instance 1 dropped another speaker's tracks")
	}
	st1.mu.Unlock()

	feed1.WaitAcked(t, feed1.Push(chunks(t, keys, rb, say(s, "b", texts["a"], "gain", "-6"), 32)...)...)
	feed1.WaitAcked(t, feed1.Push(chunks(t, keys, rd, say(s, "d", texts["c"], "gain", "-6"), 32)...)...)
	got := alerts()
	if len(got) != 1 || got[0].Original.Room != rc.name || got[0].Copy.Room != rd.name {
		t.Fatalf("after the erasure, live: %d alerts (%+v); want one, room C heard in room D", len(got), got)
	}
	stop1()

	st2, feed2, stop2 := start()
	defer stop2()
	feed2.WaitAcked(t, feed2.Push(chunks(t, keys, rb2, say(s, "b2", texts["a2"], "gain", "-6"), 32)...)...)
	feed2.WaitAcked(t, feed2.Push(chunks(t, keys, rd2, say(s, "d2", texts["c2"], "gain", "-6"), 32)...)...)
	st2.mu.Lock()
	for name, r := range st2.idents {
		if r.Speaker == erased {
			t.Errorf("instance 2 indexed %s of the erased person", name)
		}
	}
	st2.mu.Unlock()
	got = alerts()
	if len(got) != 2 || got[1].Original.Room != rc2.name || got[1].Copy.Room != rd2.name {
		t.Fatalf("after a restart: %d alerts in all (%+v); want a second one, room C2 heard in room D2", len(got), got)
	}
}

// payloads decodes alert records.
func payloads(t *testing.T, ms []bus.Message) []AlertPayload {
	t.Helper()
	var out []AlertPayload
	for _, m := range ms {
		e, err := event.Decode(m.Value)
		if err != nil {
			t.Fatal(err)
		}
		var p AlertPayload
		if err := e.DecodePayload(&p); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}
