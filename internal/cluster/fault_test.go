package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/ingest"
	"github.com/earshot/earshot/internal/e2e"
	"github.com/earshot/earshot/policy"
)

// The fault rows: each starts the whole deployment (2 × ingest,
// 2 × transcribe, 2 × policy, serve, compliance as processes on the
// three-node cluster), puts the load on it (3 rooms × 2 speakers talking
// about a third of the time, one threat and one phone number per room),
// kills one process with SIGKILL about a third into the load, and checks
// the outcome against the publish logs once the pipeline has drained.
// Deadlines are generous; nothing here is timed.

// faultRun is one row's outcome.
type faultRun struct {
	h       *Harness
	load    *Load
	victim  *Proc
	killed  time.Time
	lines   []Line
	shown   []*event.Envelope
	tdups   int
	alerts  []Alert
	adups   int
	deliv   []Delivery
	repeats int // webhook POSTs repeating a webhook-id
	cover   Coverage
	matched AlertReport
	policy  *policy.Policy
	// victimRooms are the rooms (pseudonyms) the killed ingest process
	// recorded.
	victimRooms map[string]bool
}

// runFault starts everything, kills pick's process mid-load and waits
// until every line excused returns false for has a shown transcript and
// every alert line a delivery (or 6 minutes pass), then 20 s more for late
// duplicates.
func runFault(t *testing.T, pick func(h *Harness) *Proc, excused func(r *faultRun, ln Line) bool) *faultRun {
	h := Start(t, Config{})
	r := &faultRun{h: h}
	r.load = h.StartLoad()
	started := time.Now()
	// About a third into the clips: rooms are live, lines before and
	// after the kill.
	time.Sleep(r.load.Duration / 3)
	r.victim = pick(h)
	if err := r.victim.Kill(); err != nil {
		t.Fatal(err)
	}
	r.killed = time.Now()
	t.Logf("killed %s (SIGKILL) %v into the load (clips of %v)", r.victim.Name, r.killed.Sub(started).Round(100*time.Millisecond), r.load.Duration)
	r.load.Wait()
	r.lines = r.load.Lines()

	r.settle(excused)
	return r
}

func (r *faultRun) collect() {
	var all []*event.Envelope
	r.shown, all, r.tdups = r.h.Shown()
	r.alerts, r.adups = r.h.Alerts()
	r.deliv, r.repeats = r.h.Deliveries()
	r.cover = Cover(r.lines, r.shown, all)
	r.matched = MatchAlerts(r.lines, r.alerts, r.deliv)
}

// settle waits until complete says every line is in (or 6 minutes pass),
// then 20 s more for late duplicates, and collects the outcome.
func (r *faultRun) settle(excused func(*faultRun, Line) bool) {
	deadline := time.Now().Add(6 * time.Minute)
	for {
		r.collect()
		if r.complete(excused) || time.Now().After(deadline) {
			break
		}
		time.Sleep(2 * time.Second)
	}
	time.Sleep(20 * time.Second)
	r.collect()
}

func (r *faultRun) complete(excused func(*faultRun, Line) bool) bool {
	for i, ln := range r.lines {
		if excused != nil && excused(r, ln) {
			continue
		}
		if len(r.cover.PerLine[i]) == 0 {
			return false
		}
		if ln.Alert != "" && len(r.matched.Delivered[i]) == 0 && r.owed(i) {
			return false
		}
	}
	return true
}

// check asserts the rows' common outcome: every process but the victim
// still runs; every line not excused is in the shown transcript, and no
// audio is transcribed twice in a revision; every scripted alert line not
// excused is raised once and delivered once (after the receiver drops
// repeats of a webhook-id, as Standard Webhooks receivers do: delivery is
// at least once across a notifier's crash).
func (r *faultRun) check(t *testing.T, excused func(*faultRun, Line) bool) {
	t.Helper()
	for _, p := range r.h.All() {
		if p != r.victim && !p.Running() {
			t.Errorf("%s exited (%v) during the fault:\n%s", p.Name, p.Exited(), e2e.Tail(p.Log(), 20))
		}
	}
	nAlert, nExcused := 0, 0
	for i, ln := range r.lines {
		if excused != nil && excused(r, ln) {
			nExcused++
			continue
		}
		if len(r.cover.PerLine[i]) == 0 {
			t.Errorf("%s: not in the shown transcript", ln.Describe())
		}
		if ln.Alert == "" {
			continue
		}
		if !r.owed(i) {
			// What a small model hears is not the pipeline's to
			// guarantee: without the category in the line's heard text
			// no alert is owed, but none may come twice.
			t.Logf("%s (%s): not owed: the default policy finds no %s in what the engine heard, %q", ln.Describe(), ln.Alert, ln.Alert, r.heard(i))
			if n := len(r.matched.Raised[i]); n > 1 {
				t.Errorf("%s (%s): raised %d times, want at most once", ln.Describe(), ln.Alert, n)
			}
			continue
		}
		nAlert++
		if n := len(r.matched.Raised[i]); n != 1 {
			t.Errorf("%s (%s): raised %d times, want once", ln.Describe(), ln.Alert, n)
		}
		if n := len(r.matched.Delivered[i]); n != 1 {
			t.Errorf("%s (%s): delivered to the webhook %d times, want once", ln.Describe(), ln.Alert, n)
		}
	}
	for _, pair := range r.cover.Twice {
		t.Errorf("audio transcribed twice in revision %s: %s %s–%s (by %s) and %s–%s (by %s)", pair[0].Revision, pair[0].Speaker,
			pair[0].Timeline.Start().Format("15:04:05.000"), pair[0].Timeline.End().Format("15:04:05.000"), instances(pair[:1]),
			pair[1].Timeline.Start().Format("15:04:05.000"), pair[1].Timeline.End().Format("15:04:05.000"), instances(pair[1:]))
	}
	for _, d := range r.matched.Unmatched {
		t.Logf("delivery of no scripted line: %s %s at %s", d.Category, d.ID, d.Time.Format("15:04:05.000"))
	}
	r.checkPauses(t)
	t.Logf("%d lines (%d scripted alerts, %d excused by the fault), %d shown transcripts (%d stray), %d transcript and %d alert duplicates dropped by event ID, %d alerts, %d webhook deliveries (%d repeated POSTs dropped by webhook-id)",
		len(r.lines), nAlert, nExcused, len(r.shown), len(r.cover.Strays), r.tdups, r.adups, len(r.alerts), len(r.deliv), r.repeats)
	if nAlert == 0 {
		t.Error("no scripted alert line was checked")
	}
}

// checkPauses checks the load's pauses against the publish logs and the
// manifests: every scripted window happened (a mute in each room, the one
// rejoin); no shown transcript of a speaker lies inside its pause (nothing
// was sent then); and the rejoin is a new stay: the speaker's track from
// before the leave ended by the join, and a new track started after the
// leave. In a room whose ingest process was killed only the new track is
// asserted: the dead bot ended nothing.
func (r *faultRun) checkPauses(t *testing.T) {
	t.Helper()
	h := r.h
	var mutes, rejoins int
	for _, p := range r.load.Pauses() {
		speaker := h.Pseud.Person(strconv.FormatUint(p.Talker.Feed, 10))
		room := h.Pseud.Room(strconv.FormatUint(p.Talker.Room, 10))
		what := "muted"
		if p.Rejoin {
			what = "out of the room"
			rejoins++
		} else {
			mutes++
		}
		t.Logf("speaker %s %s %s–%s", p.Talker.Name, what, p.From.Format("15:04:05.000"), p.To.Format("15:04:05.000"))
		for _, e := range r.shown {
			if e.Speaker == speaker && e.Timeline != nil && e.Timeline.Start().After(p.From.Add(timeTolerance)) && e.Timeline.End().Before(p.To.Add(-timeTolerance)) {
				t.Errorf("speaker %s: a shown transcript %s–%s lies inside its pause %s–%s, when it sent nothing", p.Talker.Name,
					e.Timeline.Start().Format("15:04:05.000"), e.Timeline.End().Format("15:04:05.000"), p.From.Format("15:04:05.000"), p.To.Format("15:04:05.000"))
			}
		}
		if !p.Rejoin {
			continue
		}
		killed := r.victimRooms[room]
		var before, after bool
		var tracks []ingest.ManifestTrack
		// The manifest is rewritten as tracks end: wait for it.
		for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(2 * time.Second) {
			tracks = tracks[:0]
			for _, m := range roomManifests(t, h, room) {
				for _, tr := range m.Tracks {
					if tr.Speaker == speaker {
						tracks = append(tracks, tr)
					}
				}
			}
			before, after = false, false
			for _, tr := range tracks {
				if tr.Started.Before(p.From) && tr.Ended != nil && tr.Ended.Before(p.To) {
					before = true
				}
				if tr.Started.After(p.From) {
					after = true
				}
			}
			if (after && (before || killed)) || time.Now().After(deadline) {
				break
			}
		}
		var desc []string
		for _, tr := range tracks {
			end := "open"
			if tr.Ended != nil {
				end = tr.Ended.Format("15:04:05.000") + " " + tr.EndReason
			}
			desc = append(desc, fmt.Sprintf("[%s–%s]", tr.Started.Format("15:04:05.000"), end))
		}
		t.Logf("speaker %s: tracks %s", p.Talker.Name, strings.Join(desc, " "))
		if !before && !killed {
			t.Errorf("speaker %s: no track of it started before its leave at %s and ended by its rejoin at %s", p.Talker.Name, p.From.Format("15:04:05.000"), p.To.Format("15:04:05.000"))
		}
		if !after {
			t.Errorf("speaker %s: no track of it started after its leave at %s: the rejoin was not recorded as a new stay", p.Talker.Name, p.From.Format("15:04:05.000"))
		}
	}
	if want := len(r.h.Rooms); r.h.cfg.Speakers >= 2 && mutes != want {
		t.Errorf("the publish logs have %d mutes, want %d (one per room)", mutes, want)
	}
	if rejoins != 1 {
		t.Errorf("the publish logs have %d rejoins, want 1", rejoins)
	}
}

// roomManifests reads every manifest of room (a pseudonym) stored so far.
func roomManifests(t *testing.T, h *Harness, room string) []ingest.Manifest {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out []ingest.Manifest
	for info, err := range h.Store.List(ctx, "manifests/"+room+"/") {
		if err != nil {
			t.Fatalf("list manifests of room %s: %v", room, err)
		}
		if strings.HasSuffix(info.Key, ".json") {
			out = append(out, readManifest(t, h, info.Key))
		}
	}
	return out
}

// owed tells whether line i's scripted alert is owed: the default policy
// finds its category in the line's shown transcripts (what the engine
// heard, words and their probabilities included, as one segment). A
// transcript that cannot be opened is an error, and the alert is owed.
func (r *faultRun) owed(i int) bool {
	seg, err := r.heardSegment(i)
	if err != nil {
		r.h.t.Errorf("%s: %v", r.lines[i].Describe(), err)
		return true
	}
	if r.policy == nil {
		if r.policy, err = policy.Default(); err != nil {
			r.h.t.Fatal(err)
		}
	}
	for _, f := range r.policy.Evaluate(&seg) {
		if f.Category == r.lines[i].Alert {
			return true
		}
	}
	return false
}

// heard is line i's shown text.
func (r *faultRun) heard(i int) string {
	seg, err := r.heardSegment(i)
	if err != nil {
		return err.Error()
	}
	return seg.Text
}

// heardSegment joins line i's shown transcripts into one segment.
func (r *faultRun) heardSegment(i int) (policy.Segment, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out policy.Segment
	var texts []string
	for j, e := range r.cover.PerLine[i] {
		s, err := policy.SegmentFromEvent(ctx, r.h.Keys, e)
		if err != nil {
			return policy.Segment{}, fmt.Errorf("open shown transcript %s: %w", e.EventID, err)
		}
		if j == 0 {
			out = s
			out.Words = nil
		}
		texts = append(texts, strings.TrimSpace(s.Text))
		out.Words = append(out.Words, s.Words...)
	}
	out.Text = strings.Join(texts, " ")
	return out, nil
}

// busiest picks the process of stage with the highest value of metric,
// which must be positive: the one doing the run's work (with six
// partitions and three rooms, a process may hold none of the run's).
func busiest(t *testing.T, stage, metric string) func(h *Harness) *Proc {
	return func(h *Harness) *Proc {
		var best *Proc
		var bv float64
		for _, p := range h.Procs(stage) {
			v, err := p.Metric(metric)
			if err != nil {
				t.Fatalf("%s: %v", p.Name, err)
			}
			t.Logf("%s: %s %v", p.Name, metric, v)
			if v > bv {
				best, bv = p, v
			}
		}
		if best == nil {
			t.Fatalf("no %s process has %s > 0: none is doing the run's work", stage, metric)
		}
		return best
	}
}

// TestClusterKillTranscribe: kill -9 the transcription process with the
// most live tracks mid-load: the other takes its partitions over, and
// every line is in the shown transcript, none transcribed twice in a
// revision; the alerts are unaffected.
func TestClusterKillTranscribe(t *testing.T) {
	r := runFault(t, busiest(t, "transcribe", "earshot_transcribe_tracks"), nil)
	r.check(t, nil)
}

// TestClusterKillPolicy: once the first alert reached the webhook, kill -9
// the policy process (which runs the notifier too) that raised alerts: the
// other takes its rooms over, rebuilds their ledgers from the alerts
// topic (so the later revisions of lines already alerted raise nothing
// new), and every scripted alert is raised once and delivered to the
// webhook once.
func TestClusterKillPolicy(t *testing.T) {
	pick := busiest(t, "policy", "earshot_policy_alerts_total")
	r := runFault(t, func(h *Harness) *Proc {
		e2e.WaitFor(t, "a first alert reaches the webhook", 3*time.Minute, func() bool { return len(h.Hook.Posts()) > 0 })
		return pick(h)
	}, nil)
	r.check(t, nil)
}

// TestClusterKillIngest: kill -9 the ingest process that holds a room
// mid-load: the other takes its rooms over within the lease TTL; the
// manifest names the gap (the dead bot's stay closed with its cause, the
// taker's stay after it); every line outside the gap is recorded and
// transcribed once, and the alert lines outside it are raised and
// delivered once.
func TestClusterKillIngest(t *testing.T) {
	var took time.Time
	pick := func(h *Harness) *Proc {
		for _, p := range h.Procs("ingest") {
			if n, err := p.Metric("earshot_ingest_rooms"); err == nil && n > 0 {
				t.Logf("%s holds %v rooms", p.Name, n)
				return p
			}
		}
		t.Fatal("no ingest process holds a room")
		return nil
	}
	// The gap: from the kill back to the victim's last renewal (3 s) and
	// on until the other instance recorded again; a line touching it may
	// be cut or lost.
	excused := func(r *faultRun, ln Line) bool {
		if !r.victimRoom(ln) {
			return false
		}
		end := took
		if end.IsZero() {
			end = time.Now()
		}
		return ln.End.After(r.killed.Add(-4*time.Second)) && ln.Start.Before(end.Add(3*time.Second))
	}
	h := Start(t, Config{})
	r := &faultRun{h: h}
	r.load = h.StartLoad()
	time.Sleep(r.load.Duration / 3)
	r.victim = pick(h)
	var survivor *Proc
	for _, p := range h.Procs("ingest") {
		if p != r.victim {
			survivor = p
		}
	}
	if err := r.victim.Kill(); err != nil {
		t.Fatal(err)
	}
	r.killed = time.Now()
	e2e.WaitFor(t, "the other ingest process takes every room", 2*time.Minute, func() bool {
		n, err := survivor.Metric("earshot_ingest_rooms")
		return err == nil && int(n) == len(h.Rooms)
	})
	took = time.Now()
	t.Logf("%s took every room %v after the kill (lease TTL 10 s)", survivor.Name, took.Sub(r.killed).Round(100*time.Millisecond))
	r.load.Wait()
	r.lines = r.load.Lines()
	r.victimRooms = map[string]bool{}

	// The manifests: the rooms the victim recorded are those with its
	// stay; each such stay is closed with the cause, and the survivor's
	// stay follows it.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, room := range h.Rooms {
		pr := h.Pseud.Room(strconv.FormatUint(room, 10))
		var found bool
		e2e.WaitFor(t, "room "+pr+"'s manifest", time.Minute, func() bool {
			for info, err := range h.Store.List(ctx, "manifests/"+pr+"/") {
				if err == nil && strings.HasSuffix(info.Key, ".json") {
					found = true
				}
			}
			return found
		})
		for info, err := range h.Store.List(ctx, "manifests/"+pr+"/") {
			if err != nil {
				t.Fatal(err)
			}
			m := readManifest(t, h, info.Key)
			t.Logf("room %s: stays %s", pr, stays(m.Stays))
			// The killed instance's stay: named, or (when it died before
			// it wrote the manifest) added by its successor unnamed.
			var gone *ingest.ManifestStay
			for i, s := range m.Stays {
				if s.Instance == r.victim.Name || (s.Instance == "" && s.Reason == ingest.StayGone) {
					gone = &m.Stays[i]
				}
			}
			if gone == nil {
				continue
			}
			r.victimRooms[pr] = true
			if gone.Left == nil || gone.Reason != ingest.StayGone {
				t.Errorf("room %s: the killed instance's stay %s is not closed as %q", pr, stays([]ingest.ManifestStay{*gone}), ingest.StayGone)
				continue
			}
			var after *ingest.ManifestStay
			for i, s := range m.Stays {
				if s.Instance != gone.Instance && !s.Joined.Before(*gone.Left) {
					after = &m.Stays[i]
				}
			}
			if after == nil {
				t.Errorf("room %s: no stay of another instance after the killed one's: %+v", pr, m.Stays)
				continue
			}
			t.Logf("room %s: %s's stay closed at %s (%s), %s joined %s later", pr, gone.Instance, gone.Left.Format("15:04:05.000"), gone.Reason,
				after.Instance, after.Joined.Sub(*gone.Left).Round(100*time.Millisecond))
			if gone.Left.After(r.killed) {
				t.Errorf("room %s: the killed stay closed at %s, after the kill at %s", pr, gone.Left.Format("15:04:05.000"), r.killed.Format("15:04:05.000"))
			}
		}
	}
	if len(r.victimRooms) == 0 {
		t.Fatalf("no manifest has a stay of %s, which held a room", r.victim.Name)
	}

	r.settle(excused)
	r.check(t, excused)
}

func (r *faultRun) victimRoom(ln Line) bool { return r.victimRooms[ln.Room] }

func stays(ss []ingest.ManifestStay) string {
	var b strings.Builder
	for _, s := range ss {
		left := "open"
		if s.Left != nil {
			left = s.Left.Format("15:04:05.000")
		}
		fmt.Fprintf(&b, "[%q %s–%s %q] ", s.Instance, s.Joined.Format("15:04:05.000"), left, s.Reason)
	}
	return b.String()
}

func readManifest(t *testing.T, h *Harness, key string) ingest.Manifest {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rc, _, err := h.Store.Get(ctx, key)
	if err != nil {
		t.Fatalf("manifest %s: %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("manifest %s: %v", key, err)
	}
	var m ingest.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("manifest %s: %v", key, err)
	}
	return m
}
