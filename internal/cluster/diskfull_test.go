package cluster

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/earshot/earshot/ingest"
	"github.com/earshot/earshot/internal/e2e"
	"github.com/earshot/earshot/internal/testbed"
)

// TestClusterIngestDiskFull: each ingest process spools onto a small
// tmpfs of its own; a third into the load the spool disk of the process
// holding rooms is filled. It must leave its rooms (stays closed as
// "spool disk full" in the manifests), the other process takes them over
// and the sessions go on, operators get one ops.spool_full alert at the
// webhook, and every segment spooled before (it uploads with the disk
// still full) is stored. Lines around the hand-over in the victim's rooms
// are excused: the segment being written when the disk filled (5 s
// segments here, so that this is a few lines, not half the load) and the
// hand-over gap.
func TestClusterIngestDiskFull(t *testing.T) {
	const segment = 5 * time.Second
	spools := map[int]string{}
	h := Start(t, Config{IngestArgs: func(t testing.TB, i int) []string {
		spools[i] = testbed.SmallTmpfs(t, "32m")
		return []string{"-set", "ingest.spool_dir=" + spools[i], "-set", "ingest.segment_duration=" + segment.String()}
	}})
	r := &faultRun{h: h}
	r.load = h.StartLoad()
	time.Sleep(r.load.Duration / 3)
	var survivor *Proc
	victimDir := ""
	for i, p := range h.Procs("ingest") {
		if n, err := p.Metric("earshot_ingest_rooms"); err == nil && n > 0 && r.victim == nil {
			t.Logf("%s holds %v rooms", p.Name, n)
			r.victim, victimDir = p, spools[i]
		} else {
			survivor = p
		}
	}
	if r.victim == nil {
		t.Fatal("no ingest process holds a room")
	}
	filled := fillDisk(t, victimDir)
	r.killed = time.Now()
	t.Logf("filled %s's spool disk (%d MiB written)", r.victim.Name, filled>>20)
	e2e.WaitFor(t, "the other ingest process takes every room", 2*time.Minute, func() bool {
		n, err := survivor.Metric("earshot_ingest_rooms")
		return err == nil && int(n) == len(h.Rooms)
	})
	took := time.Now()
	t.Logf("%s took every room %v after the disk filled", survivor.Name, took.Sub(r.killed).Round(100*time.Millisecond))
	if v, err := r.victim.Metric("earshot_ingest_spool_full"); err != nil || v != 1 {
		t.Errorf("%s: earshot_ingest_spool_full = %v (%v), want 1", r.victim.Name, v, err)
	}
	r.load.Wait()
	r.lines = r.load.Lines()

	// The manifests: the victim's stays are closed as a full spool, and
	// another instance's stay follows each.
	r.victimRooms = map[string]bool{}
	for _, room := range h.Rooms {
		pr := h.Pseud.Room(strconv.FormatUint(room, 10))
		for _, m := range roomManifests(t, h, pr) {
			t.Logf("room %s: stays %s", pr, stays(m.Stays))
			for _, s := range m.Stays {
				if s.Instance != r.victim.Name || s.Left == nil || s.Left.Before(r.killed.Add(-time.Second)) {
					continue
				}
				r.victimRooms[pr] = true
				if s.Reason != "spool disk full" {
					t.Errorf("room %s: %s's stay closed at %s as %q, want \"spool disk full\"", pr, s.Instance, s.Left.Format("15:04:05.000"), s.Reason)
				}
				after := false
				for _, o := range m.Stays {
					after = after || (o.Instance != s.Instance && !o.Joined.Before(*s.Left))
				}
				if !after {
					t.Errorf("room %s: no stay of another instance after %s's", pr, s.Instance)
				}
			}
		}
	}
	if len(r.victimRooms) == 0 {
		t.Fatalf("no manifest has a stay of %s closed after its disk filled", r.victim.Name)
	}

	excused := func(r *faultRun, ln Line) bool {
		return r.victimRooms[ln.Room] && ln.End.After(r.killed.Add(-4*time.Second)) && ln.Start.Before(took.Add(3*time.Second))
	}
	r.settle(excused)
	r.check(t, excused)
	if !r.victim.Running() {
		t.Errorf("%s exited (%v) on a full disk", r.victim.Name, r.victim.Exited())
	}

	// One operational alert, delivered to the webhook once.
	var opsAlerts int
	for _, d := range r.matched.Unmatched {
		if d.Category == ingest.CategorySpoolFull {
			opsAlerts++
		}
	}
	if opsAlerts != 1 {
		t.Errorf("%d %s alerts reached the webhook, want 1", opsAlerts, ingest.CategorySpoolFull)
	}

	// Stored audio: the segment open when the disk filled is lost, and so
	// are the lines of the hand-over gap.
	storedExcused := func(r *faultRun, ln Line) bool {
		return r.victimRooms[ln.Room] && ln.End.After(r.killed.Add(-segment-time.Second)) && ln.Start.Before(took.Add(3*time.Second))
	}
	faulted := func(room string, tr ingest.ManifestTrack) bool {
		return r.victimRooms[room] && tr.Started.Before(r.killed) && (tr.Ended == nil || tr.Ended.After(r.killed.Add(-segment)))
	}
	checkStored(t, r, storedExcused, faulted)
}

// fillDisk writes a file into dir until the file system is full and
// returns how much it wrote.
func fillDisk(t *testing.T, dir string) int64 {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	var n int64
	for {
		k, err := f.Write(buf)
		n += int64(k)
		if errors.Is(err, syscall.ENOSPC) {
			return n
		}
		if err != nil {
			t.Fatalf("fill %s: %v", dir, err)
		}
	}
}
