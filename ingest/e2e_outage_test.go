package ingest_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/ingest/janus"
	kit "github.com/earshot/earshot/internal/e2e"
	"github.com/earshot/earshot/internal/speech"
)

// outageLength is how long BenchmarkE2EJanusOutage keeps Janus down: longer
// than Janus's session timeout, so every session of the bot is gone when
// Janus answers again.
const outageLength = 60 * time.Second

// BenchmarkE2EJanusOutage reports record_rejoin_after_outage_s: Janus is
// stopped for a minute (testbed/janus.sh stop, its namespace removed) with
// the stage in the room, then started again; a publisher joins the room
// the moment Janus answers and speaks at once, and the figure is the time
// from Janus answering its API again (polled every 50 ms) to the stage
// recording that publisher's first packet (its track_started event). It
// includes the publisher's own join (about a second on the test bed), which
// the stage cannot shorten; it leaves out rooms the stage has not seen
// before (those wait for the supervisor's next poll, PollInterval). Like
// BenchmarkE2EJanusRestart it runs only with EARSHOT_E2E_DISRUPTIVE=1, when
// no other test bed test runs: it breaks them. It fails when the stage does
// not record the publisher within two minutes of Janus answering.
func BenchmarkE2EJanusOutage(b *testing.B) {
	if os.Getenv("EARSHOT_E2E_DISRUPTIVE") != "1" {
		b.Skip("stops the test bed's Janus for a minute: set EARSHOT_E2E_DISRUPTIVE=1 (and run no other test bed test meanwhile)")
	}
	h := newE2E(b, e2eConfig{room: faultRoom, identity: "feed_id", segment: 2 * time.Second})
	tools := speechTools(b)
	clips := synthesize(b, tools, b.TempDir(), map[string][]speech.Item{
		"a": speakerScript("en-us", 0, 2),
		"b": speakerScript("en-gb", 5, 2),
	})
	before := &speaker{name: "a", display: "speaker-a-" + kit.RandHex(4), feed: randomFeedID(), clip: clips["a"], leadIn: time.Second}
	after := &speaker{name: "b", display: "speaker-b-" + kit.RandHex(4), feed: randomFeedID(), clip: clips["b"]}

	h.start()
	h.waitJoined()
	before.start(b, h.janus, faultRoom)
	waitFor(b, "the stage records the first speaker", time.Minute, func() bool { return h.trackStarts() >= 1 })

	script := filepath.Join(repoRoot(b), "testbed", "janus.sh")
	b.Cleanup(func() {
		// Leave the test bed as found, whatever happened.
		if out, err := exec.Command(script, "start").CombinedOutput(); err != nil {
			b.Logf("janus.sh start: %v\n%s", err, out)
		}
	})
	if out, err := exec.Command(script, "stop").CombinedOutput(); err != nil {
		b.Fatalf("janus.sh stop: %v\n%s", err, out)
	}
	_ = before.bot.Close() // its Janus went away
	time.Sleep(outageLength)
	start := exec.Command(script, "start")
	startOut := &bytes.Buffer{}
	start.Stdout, start.Stderr = startOut, startOut
	if err := start.Start(); err != nil {
		b.Fatalf("janus.sh start: %v", err)
	}
	back := waitJanusAnswers(b, h.janus.URL, h.janus.HostAddr, 2*time.Minute)
	after.start(b, h.janus, faultRoom)
	if err := start.Wait(); err != nil {
		b.Fatalf("janus.sh start: %v\n%s", err, startOut)
	}

	pb := h.pseud.Person(after.identity("feed_id"))
	var recorded time.Time
	waitFor(b, "the stage records the publisher who joined after the outage", 2*time.Minute, func() bool {
		recorded = h.trackStartedAt(pb)
		return !recorded.IsZero()
	})
	rejoin := recorded.Sub(back)
	b.Logf("Janus answered again %v after it was stopped; the stage recorded the new publisher %v later", outageLength, rejoin.Round(10*time.Millisecond))
	after.wait(b, 2*time.Minute)
	h.waitTracksEnded()
	h.stop(nil)
	b.ReportMetric(rejoin.Seconds(), "record_rejoin_after_outage_s")
}

// waitJanusAnswers polls Janus's info endpoint until it answers and returns
// when it first did.
func waitJanusAnswers(t testing.TB, url, localAddr string, within time.Duration) time.Time {
	t.Helper()
	c, err := janus.New(janus.Config{URL: url, LocalAddr: localAddr})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.Info(ctx)
		cancel()
		if err == nil {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("Janus did not answer within %v of its start: %v", within, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// trackStartedAt is when the stage wrote the first track_started event of
// speaker (a pseudonym) in this run; zero if none yet.
func (h *e2e) trackStartedAt(speaker string) time.Time {
	h.t.Helper()
	evs, _ := h.events(event.TopicLifecycle)
	var first time.Time
	for _, e := range evs {
		if e.Type == event.TypeTrackStarted && e.Speaker == speaker && (first.IsZero() || e.Time.Before(first)) {
			first = e.Time
		}
	}
	return first
}
