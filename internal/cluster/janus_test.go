package cluster

import (
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/earshot/earshot/internal/e2e"
	"github.com/earshot/earshot/internal/testbed"
)

// TestClusterJanusRestart: a third into the load the test bed's Janus is
// stopped and started again (testbed/janus.sh, as the single-process
// restart test does; it restarts the SHARED Janus, so run it only while
// holding the real-time lock, which every cluster run holds anyway). The
// speaker bots die with it and their rooms are gone (they are not
// permanent): the test creates the rooms again and puts a second load of
// new speakers into them. Must hold: the ingest bots rejoin and record
// the second load (every line transcribed once and in stored audio); every
// line the first load finished before the stop is transcribed once too;
// each room's manifests name the outage (a stay left with its cause, and
// a stay joined after Janus came back).
func TestClusterJanusRestart(t *testing.T) {
	h := Start(t, Config{})
	first := h.StartLoad()
	started := time.Now()
	time.Sleep(first.Duration / 3)

	script := filepath.Join(testbed.RepoRoot(), "testbed", "janus.sh")
	t.Cleanup(func() {
		// Leave the test bed as found, whatever happened.
		if out, err := exec.Command(script, "start").CombinedOutput(); err != nil {
			t.Logf("janus.sh start: %v\n%s", err, out)
		}
	})
	stopped := time.Now()
	if out, err := exec.Command(script, "stop").CombinedOutput(); err != nil {
		t.Fatalf("janus.sh stop: %v\n%s", err, out)
	}
	t.Logf("Janus stopped %v into the load (clips of %v)", stopped.Sub(started).Round(100*time.Millisecond), first.Duration)
	for _, tk := range first.Speakers {
		// Their room server went away: a bot ends with an error.
		t.Logf("speaker %s: %v", tk.Name, tk.Stop())
	}
	if out, err := exec.Command(script, "start").CombinedOutput(); err != nil {
		t.Fatalf("janus.sh start: %v\n%s", err, out)
	}
	back := time.Now()
	t.Logf("Janus back after %v", back.Sub(stopped).Round(100*time.Millisecond))
	h.Janus = testbed.JanusServer(t)
	for _, room := range h.Rooms {
		e2e.CreateRoom(t, h.Janus, room)
	}
	e2e.WaitFor(t, "every room has an ingest bot again", 2*time.Minute, func() bool {
		return sumProcs(t, h, "ingest", "earshot_ingest_rooms") == float64(len(h.Rooms))
	})
	t.Logf("every room recorded again %v after Janus came back", time.Since(back).Round(100*time.Millisecond))

	second := h.StartLoad()
	second.Wait()
	r := &faultRun{h: h, load: second}
	// The first load's lines are those its bots finished sending before
	// the stop (a line cut by the stop is not in its publish log).
	r.lines = append(first.Lines(), second.Lines()...)
	// A line that ended in the last second before the stop may not have
	// reached the ingest bot before Janus went.
	excused := func(r *faultRun, ln Line) bool {
		return ln.End.After(stopped.Add(-time.Second)) && ln.End.Before(back)
	}
	r.settle(excused)
	r.check(t, excused)

	// The manifests name the outage.
	for _, room := range h.Rooms {
		pr := h.Pseud.Room(strconv.FormatUint(room, 10))
		var left, joined bool
		for _, m := range roomManifests(t, h, pr) {
			t.Logf("room %s session %s: stays %s; ended %v %q", pr, m.Session, stays(m.Stays), m.Ended, m.EndedReason)
			for _, s := range m.Stays {
				if s.Left != nil && s.Reason != "" && !s.Left.Before(stopped.Add(-5*time.Second)) && s.Left.Before(back.Add(2*time.Minute)) {
					left = true
				}
				if s.Joined.After(stopped) {
					joined = true
				}
			}
		}
		if !left {
			t.Errorf("room %s: no stay closed with its cause around the Janus restart (%s–%s)", pr, stopped.Format("15:04:05.000"), back.Format("15:04:05.000"))
		}
		if !joined {
			t.Errorf("room %s: no stay joined after the Janus restart", pr)
		}
	}
	checkStored(t, r, excused, nil)
}
