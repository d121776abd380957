package rebroadcast

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/speech/speechtest"
)

// TestRestartRaisesNoSecondAlert runs on the test bed's Kafka. Instance 1
// finds room A's speech replayed in room B and raises the alert; it is
// stopped half-way through the replay. Instance 2 starts over the same
// topics and consumer group: it rebuilds its index from the fingerprints
// topic (so it finds A's speech again in the rest of B's replay) and the
// alerts already raised from the alerts topic, so it raises no second
// alert for A and B. Room A's speech replayed in room C afterwards is a
// new match and alerts.
func TestRestartRaisesNoSecondAlert(t *testing.T) {
	s := speechtest.New(t)
	b := newBed(t, 1)
	_, stop1 := b.startStage(nil)
	origin := time.Now().Add(-3 * time.Minute).UTC().Truncate(time.Millisecond)
	mk := func(name string, after time.Duration) room {
		return room{name: "room_" + name, session: "ses_" + name, speaker: "spk_" + name,
			track: event.DeriveID(event.PrefixTrack, t.Name(), name), origin: origin.Add(after)}
	}
	ra, rb, rc := mk("a", 0), mk("b", time.Minute), mk("c", 2*time.Minute)
	text := s.Text(501, 80)
	x := say(s, "x", text)
	bPCM := append(say(s, "b-own", s.Text(502, 10)), say(s, "x-b", text, "gain", "-6")...)
	bChunks := chunks(t, b.keys, rb, bPCM, 24)
	half := len(bChunks) / 2
	if float64(len(x))/48000 < 25 || len(bChunks)-half < 12 {
		t.Fatalf("the replay is too short to be found twice: %.1f s, %d chunks after the restart", float64(len(x))/48000, len(bChunks)-half)
	}

	b.produce(chunks(t, b.keys, ra, x, 32)...)
	b.produce(bChunks[:half]...)
	waitFor(t, 3*time.Minute, "instance 1's alert", func() bool { es, _ := b.alertPayloads(); return len(es) > 0 })
	stop1()
	first, _ := b.alertPayloads()
	if len(first) != 1 || first[0].EventID != AlertID(ra.track, rb.track) {
		t.Fatalf("instance 1 raised %d alerts, want one for rooms A and B", len(first))
	}

	reg := prometheus.NewRegistry()
	b.startStage(reg)
	b.produce(bChunks[half:]...)
	// The rest of the replay matches A again: the alert is known and
	// counted as a duplicate, not raised.
	waitFor(t, 3*time.Minute, "instance 2 to find room A in room B again", func() bool {
		return gathered(t, reg)["earshot_rebroadcast_alerts_duplicate_total"] >= 1
	})
	b.produce(chunks(t, b.keys, rc, say(s, "x-c", text, "gain", "-6"), 24)...)
	waitFor(t, 3*time.Minute, "an alert for room C", func() bool {
		_, ps := b.alertPayloads()
		for _, p := range ps {
			if p.Copy.Room == rc.name {
				return true
			}
		}
		return false
	})
	time.Sleep(3 * time.Second) // the last queries' delay

	es, ps := b.alertPayloads()
	seen := map[string]int{}
	for i, e := range es {
		seen[e.EventID]++
		t.Logf("alert %s: original %s, copy %s, %.1f s", e.EventID, ps[i].Original.Room, ps[i].Copy.Room, ps[i].MatchedS)
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("alert %s raised %d times", id, n)
		}
	}
	if seen[AlertID(ra.track, rb.track)] != 1 || seen[AlertID(ra.track, rc.track)] != 1 {
		t.Errorf("alerts %v: want rooms A and B once (before the restart) and A and C once (after)", seen)
	}
	m := gathered(t, reg)
	if m["earshot_rebroadcast_landmarks_indexed_remote_total"] == 0 || m["earshot_rebroadcast_rebuild_seconds"] <= 0 {
		t.Errorf("instance 2 indexed %v landmarks of instance 1's records; rebuild took %v s", m["earshot_rebroadcast_landmarks_indexed_remote_total"], m["earshot_rebroadcast_rebuild_seconds"])
	}
}
