package cluster

import (
	"context"
	"errors"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/ingest"
	"github.com/earshot/earshot/internal/e2e"
	"github.com/earshot/earshot/storage"
)

// TestClusterS3Unreachable: every stage reaches S3 (versitygw) through a
// loopback proxy the test controls, and the proxy is cut for 60 s from a
// quarter into the load (past its end: tracks end and manifests close
// while S3 is away). Segments wait in the ingest spools and drain after;
// every announced segment is stored, the manifests are complete and hold
// every line's audio, and the transcripts and alerts are as in a run
// without a fault. The shared versitygw is never stopped.
func TestClusterS3Unreachable(t *testing.T) {
	var proxy *e2e.TCPProxy
	h := Start(t, Config{StageS3: func(t testing.TB, endpoint string) string {
		proxy = e2e.NewTCPProxy(t, endpoint)
		return proxy.Addr
	}})
	r := &faultRun{h: h}
	r.load = h.StartLoad()
	started := time.Now()
	time.Sleep(r.load.Duration / 4)
	proxy.Down()
	cut := time.Now()
	t.Logf("S3 cut off %v into the load (clips of %v)", cut.Sub(started).Round(100*time.Millisecond), r.load.Duration)
	// While S3 is away the segments wait in the spools.
	e2e.WaitFor(t, "segments waiting in an ingest spool while S3 is cut off", 50*time.Second, func() bool {
		return sumProcs(t, h, "ingest", "earshot_spool_pending_entries") > 0
	})
	t.Logf("%v segments spooled, waiting for S3", sumProcs(t, h, "ingest", "earshot_spool_pending_entries"))
	time.Sleep(time.Until(cut.Add(60 * time.Second)))
	proxy.Up()
	t.Logf("S3 reachable again after %v", time.Since(cut).Round(100*time.Millisecond))
	r.load.Wait()
	r.lines = r.load.Lines()
	r.settle(nil)
	r.check(t, nil)
	checkStored(t, r, nil, nil)
}

// sumProcs sums metric over the running processes of stage.
func sumProcs(t *testing.T, h *Harness, stage, metric string) float64 {
	t.Helper()
	var sum float64
	for _, p := range h.Procs(stage) {
		if !p.Running() {
			continue
		}
		v, err := p.Metric(metric)
		if err != nil {
			t.Fatalf("%s: %v", p.Name, err)
		}
		sum += v
	}
	return sum
}

// checkStored checks what the run stored: the spools of the running ingest
// processes drain; every segment announced on the segments topic is in the
// bucket; every room's manifests end every track, list only stored
// segments with their sequence numbers unbroken, and name every announced
// segment; and every line not excused lies within its speaker's stored
// segments (on the recorded timeline, as the publish log's schedule has
// it). A track faulted says is allowed a missing segment number (a
// segment lost to the fault).
func checkStored(t *testing.T, r *faultRun, excused func(*faultRun, Line) bool, faulted func(room string, tr ingest.ManifestTrack) bool) {
	t.Helper()
	h := r.h
	e2e.WaitFor(t, "the ingest spools drain", 5*time.Minute, func() bool {
		return sumProcs(t, h, "ingest", "earshot_spool_pending_entries") == 0
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	segs, dups := h.Events(event.TopicSegments)
	announced := map[string]bool{}
	for _, e := range segs {
		if e.Type != event.TypeSegmentStored {
			continue
		}
		var p event.SegmentStored
		if err := e.DecodePayload(&p); err != nil {
			t.Errorf("segment event %s: %v", e.EventID, err)
			continue
		}
		announced[p.Key] = true
		if _, err := h.Store.Stat(ctx, p.Key); err != nil {
			t.Errorf("segment %s announced but not stored: %v", p.Key, err)
		}
	}
	if len(announced) == 0 {
		t.Fatal("no segment was announced")
	}

	// The manifests are rewritten as tracks end and uploads land: wait
	// until every track is ended and names only stored segments.
	type stored struct {
		speaker string
		tl      event.Timeline
	}
	var (
		spans    []stored
		problems []string
	)
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(3 * time.Second) {
		spans, problems = nil, nil
		listed := map[string]bool{}
		for _, room := range h.Rooms {
			pr := h.Pseud.Room(strconv.FormatUint(room, 10))
			ms := roomManifests(t, h, pr)
			if len(ms) == 0 {
				problems = append(problems, "room "+pr+": no manifest")
			}
			for _, m := range ms {
				for _, tr := range m.Tracks {
					problems = append(problems, trackProblems(ctx, h, pr, tr, faulted != nil && faulted(pr, tr))...)
					for _, s := range tr.Segments {
						listed[s.Key] = true
						spans = append(spans, stored{tr.Speaker, event.Timeline{FirstSample: s.FirstSample, LastSample: s.LastSample, Origin: tr.Origin}})
					}
				}
			}
		}
		for key := range announced {
			if !listed[key] {
				problems = append(problems, "segment "+key+" announced but in no manifest")
			}
		}
		if len(problems) == 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, p := range problems {
		t.Error(p)
	}

	// Every line's audio is in its speaker's stored segments: the
	// segments overlapping it leave no hole longer than the tolerance.
	uncovered, nExcused := 0, 0
	for _, ln := range r.lines {
		if excused != nil && excused(r, ln) {
			nExcused++
			continue
		}
		var tls []event.Timeline
		for _, s := range spans {
			if s.speaker == ln.Speaker && s.tl.Start().Before(ln.SchedEnd) && s.tl.End().After(ln.SchedStart) {
				tls = append(tls, s.tl)
			}
		}
		sort.Slice(tls, func(i, j int) bool { return tls[i].Start().Before(tls[j].Start()) })
		at := ln.SchedStart.Add(timeTolerance)
		for _, tl := range tls {
			if tl.Start().After(at) {
				break
			}
			if tl.End().After(at) {
				at = tl.End()
			}
		}
		if at.Before(ln.SchedEnd.Add(-timeTolerance)) {
			uncovered++
			t.Errorf("%s: stored segments cover it only up to %s", ln.Describe(), at.Format("15:04:05.000"))
		}
	}
	t.Logf("%d segments announced (%d duplicate events dropped), all stored and in the manifests; %d of %d lines in stored audio (%d excused by the fault)",
		len(announced), dups, len(r.lines)-uncovered-nExcused, len(r.lines), nExcused)
}

// trackProblems lists what is wrong with a manifest track: not ended, a
// segment not stored, a segment number missing (unless holeOK).
func trackProblems(ctx context.Context, h *Harness, room string, tr ingest.ManifestTrack, holeOK bool) []string {
	var out []string
	name := "room " + room + " track " + tr.Track
	if tr.Ended == nil {
		out = append(out, name+": not ended")
	}
	for i, s := range tr.Segments {
		if i > 0 && s.Seq != tr.Segments[i-1].Seq+1 && !holeOK {
			out = append(out, name+": segment "+strconv.FormatInt(s.Seq, 10)+" follows "+strconv.FormatInt(tr.Segments[i-1].Seq, 10))
		}
		if _, err := h.Store.Stat(ctx, s.Key); errors.Is(err, storage.ErrNotFound) {
			out = append(out, name+": segment "+s.Key+" in the manifest but not stored")
		} else if err != nil {
			out = append(out, name+": stat "+s.Key+": "+err.Error())
		}
	}
	return out
}
