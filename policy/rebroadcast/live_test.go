package rebroadcast

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/speech/speechtest"
	"github.com/earshot/earshot/policy/fingerprint"
)

// TestLiveStageOnKafka runs two instances of the stage on the test bed's
// Kafka. Room A's speech is replayed into room B (gain -12 dB, B's
// speaker at Opus 12 kbit/s) between B's own speech; A and B land on
// different instances. Rooms C and D carry different speech of the same
// synthetic voice. Exactly one alert names A as the original and B as the
// copy, critical because room A's session_started calls it private; a
// redelivery of B's chunks raises no second one; malformed chunks are
// dead-lettered and the stage goes on.
func TestLiveStageOnKafka(t *testing.T) {
	s := speechtest.New(t)
	b := newBed(t, 2)
	s1, s2 := b.stage(), b.stage()
	origin := time.Now().Add(-2 * time.Minute).UTC().Truncate(time.Millisecond)
	mk := func(name string, partition int, after time.Duration) room {
		return room{name: "room_" + name, session: "ses_" + name, speaker: "spk_" + name, track: b.trackOn(name, partition), origin: origin.Add(after)}
	}
	ra, rb, rc, rd := mk("a", 0, 0), mk("b", 1, 30*time.Second), mk("c", 0, 0), mk("d", 1, 5*time.Second)

	// Both instances own a partition before the rooms' audio comes: silent
	// warm-up tracks on each partition until their records name two
	// instances.
	for round := 0; ; round++ {
		if round == 60 {
			t.Fatal("the two instances never owned a partition each")
		}
		w0, w1 := mk(fmt.Sprintf("w0-%d", round), 0, 0), mk(fmt.Sprintf("w1-%d", round), 1, 0)
		b.produce(append(chunks(t, b.keys, w0, make([]float32, 48000), 32), chunks(t, b.keys, w1, make([]float32, 48000), 32)...)...)
		var og map[string]map[string]bool
		waitFor(t, time.Minute, "warm-up records", func() bool { og = b.origins(); return len(og[w0.track]) > 0 && len(og[w1.track]) > 0 })
		if one(og[w0.track]) != one(og[w1.track]) {
			break
		}
		time.Sleep(time.Second)
	}

	texts := map[string]string{"x": s.Text(101, 55), "b": s.Text(202, 12), "b2": s.Text(203, 12), "c": s.Text(303, 110), "d": s.Text(404, 110)}
	disjoint(t, texts)
	x := say(s, "x", texts["x"])
	xCopy := say(s, "x-copy", texts["x"], "gain", "-12")
	bOwn, bOwn2 := say(s, "b", texts["b"]), say(s, "b2", texts["b2"])
	bPCM := append(append(append([]float32{}, bOwn...), xCopy...), bOwn2...)
	replayFrom := float64(len(bOwn)) / 48000
	replayTo := replayFrom + float64(len(xCopy))/48000

	// Malformed input first: a record that is not an event, and a chunk
	// whose packets and offsets disagree.
	bad := chunks(t, b.keys, mk("e", 0, 0), make([]float32, 48000), 32)[0]
	e, err := event.Decode(bad.Value)
	if err != nil {
		t.Fatal(err)
	}
	var data event.AudioChunkData
	if err := e.Open(t.Context(), b.keys, &data); err != nil {
		t.Fatal(err)
	}
	data.Offsets = data.Offsets[:3]
	if err := e.Seal(t.Context(), b.keys, data); err != nil {
		t.Fatal(err)
	}
	if bad.Value, err = e.Marshal(); err != nil {
		t.Fatal(err)
	}
	b.produce(bus.Message{Key: []byte(ra.track), Value: []byte("not an event")}, bad)

	// Room A is private: its audio elsewhere is critical.
	b.sessionStarted(ra, true)
	b.sessionStarted(rb, false)

	// The originals, then (once both indexes hold them) the copy.
	b.produce(append(chunks(t, b.keys, ra, x, 32), chunks(t, b.keys, rc, say(s, "c", texts["c"]), 32)...)...)
	settled(t, s1, s2)
	bChunks := chunks(t, b.keys, rb, bPCM, 12)
	b.produce(append(bChunks, chunks(t, b.keys, rd, say(s, "d", texts["d"]), 32)...)...)
	waitFor(t, 3*time.Minute, "a rebroadcast alert", func() bool { es, _ := b.alertPayloads(); return len(es) > 0 })
	settled(t, s1, s2)
	time.Sleep(3 * time.Second) // the last queries' delay

	check := func(when string) {
		t.Helper()
		es, ps := b.alertPayloads()
		if len(es) != 1 {
			for _, p := range ps {
				t.Logf("alert: %s original %s %v copy %s %v", p.Category, p.Original.Room, p.Original.Start, p.Copy.Room, p.Copy.Start)
			}
			t.Fatalf("%s: %d alerts, want exactly 1", when, len(es))
		}
		e, p := es[0], ps[0]
		if p.Category != fingerprint.CategoryRebroadcast || p.Severity != "critical" || !p.Original.Private || e.Type != event.TypeAlert {
			t.Errorf("%s: %s %s/%s (original private %v), want leak.rebroadcast/critical from a private room", when, e.Type, p.Category, p.Severity, p.Original.Private)
		}
		if p.Original.Room != ra.name || p.Original.Track != ra.track || p.Copy.Room != rb.name || p.Copy.Track != rb.track || e.Room != rb.name {
			t.Errorf("%s: original %s copy %s (alert room %s), want %s then %s", when, p.Original.Room, p.Copy.Room, e.Room, ra.name, rb.name)
		}
		if e.EventID != AlertID(ra.track, rb.track) {
			t.Errorf("%s: alert ID %s is not the pair's", when, e.EventID)
		}
		// The copy's span lies in the replayed part of B (1.5 s slack), the
		// original's in A. The alert is raised once five seconds of the
		// copy hold consistent hits (the matcher's MinSeconds), so its span
		// is what matched by then: at least 3 s (five one-second cells
		// with hits span four seconds and a bit).
		cs, ce := float64(p.Copy.FirstSample)/48000, float64(p.Copy.LastSample)/48000
		os, oe := float64(p.Original.FirstSample)/48000, float64(p.Original.LastSample)/48000
		if cs < replayFrom-1.5 || ce > replayTo+1.5 || ce-cs < 3 {
			t.Errorf("%s: copy span %.1f–%.1f s, replay at %.1f–%.1f s", when, cs, ce, replayFrom, replayTo)
		}
		if os < -1.5 || oe > float64(len(x))/48000+1.5 || oe-os < 3 {
			t.Errorf("%s: original span %.1f–%.1f s of %.1f s", when, os, oe, float64(len(x))/48000)
		}
		if !p.Copy.Start.After(p.Original.Start) {
			t.Errorf("%s: copy starts %v, not after the original's %v", when, p.Copy.Start, p.Original.Start)
		}
		t.Logf("%s: matched %.1f s, %d s, %d hits, confidence %.3f, speed %.2f", when, p.MatchedS, p.Seconds, p.Hits, p.Confidence, p.Speed)
	}
	check("after the replay")

	og := b.origins()
	if len(og[ra.track]) != 1 || len(og[rb.track]) != 1 || one(og[ra.track]) == one(og[rb.track]) {
		t.Errorf("rooms A and B were not fingerprinted by different instances: %v / %v", og[ra.track], og[rb.track])
	}

	dead := b.read(b.dead)
	if len(dead) != 2 {
		t.Errorf("%d dead letters, want 2", len(dead))
	}
	for _, m := range dead {
		reason, _ := m.Header(bus.HeaderDLQReason)
		if !strings.Contains(string(reason), "malformed") && !strings.Contains(string(reason), "event") {
			t.Errorf("dead letter reason %q", reason)
		}
	}

	// Redelivery: B's chunks again. They are fingerprinted and matched
	// afresh (the track ended), and raise the same alert ID, which is not
	// produced again.
	before := countRecords(b, rb.track)
	b.produce(bChunks...)
	waitFor(t, 2*time.Minute, "the redelivered chunks' records", func() bool { return countRecords(b, rb.track) >= 2*before })
	settled(t, s1, s2)
	time.Sleep(3 * time.Second)
	check("after a redelivery")
}

// one returns a set's member (the sets here have one).
func one(m map[string]bool) string {
	for k := range m {
		return k
	}
	return ""
}

func countRecords(b *bed, track string) int {
	n := 0
	for _, m := range b.read(b.fps) {
		if string(m.Key) == track {
			n++
		}
	}
	return n
}

// settled waits until both instances' indexes hold the same landmarks
// (each has indexed the other's records) and stopped growing.
func settled(t *testing.T, s1, s2 *Stage) {
	t.Helper()
	last, same := -1, 0
	var t1, t2, n1, n2 int
	defer func() {
		if t.Failed() {
			t.Logf("index 1: %d tracks, %d landmarks; index 2: %d tracks, %d landmarks", t1, n1, t2, n2)
			for _, st := range []*Stage{s1, s2} {
				st.mu.Lock()
				for name := range st.idents {
					t.Logf("instance %s: %s holds %d landmarks", st.cfg.Instance, name, st.idx.Count(name))
				}
				st.mu.Unlock()
			}
		}
	}()
	waitFor(t, 3*time.Minute, "both indexes to hold the same audio", func() bool {
		t1, n1, _ = s1.IndexStats()
		t2, n2, _ = s2.IndexStats()
		if n1 == n2 && n1 > 0 && n1 == last {
			same++
		} else {
			same = 0
		}
		last = n1
		return same >= 8
	})
}
