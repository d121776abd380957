package cluster

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSoak is `make soak`: the whole deployment (2 × ingest,
// 2 × transcribe, 2 × policy, serve, compliance as processes on the
// three-node cluster) under a moderate load for EARSHOT_SOAK (a duration;
// the Makefile's default is an hour): rounds of speaker bots joining the
// harness's rooms (2 rooms × 2 speakers, one threat and one phone number
// per room), talking about a third of the time and leaving, with a pause
// of half a round between rounds, and throughout, soakFeedTracks virtual
// tracks of the chunk feeder, each replaced by a new speaker every 14 to
// 38 s, so tracks, peer connections and transcription state come and go
// all the time. After a warm-up (a sixth of the run, at least 2 and at most
// 10 minutes) it samples every process's resident memory (VmRSS),
// goroutines (go_goroutines on its metrics endpoint) and open file
// descriptors (/proc/<pid>/fd), and the transcription consumer lag (the
// sum of both processes' earshot_transcribe_consumer_lag_records; the
// policy stage exports no lag), every 1/120 of the run (at least 10 s).
//
// Growth compares the median of the last third of the samples with the
// median of the first third, so that the rounds' ups and downs cancel.
// It fails when a process's RSS grows more than 5 %, its goroutines or
// descriptors grow by more than 10 plus 5 % (a round in flight holds a
// few more: "flat" up to that), the lag grows by more than 4 s of the
// load's chunks, or a process exits. It prints the figures as name=value:
// soak_rss_growth_pct, soak_goroutines_growth and soak_fds_growth (the
// largest over the processes) and soak_lag_growth (records).
func TestSoak(t *testing.T) {
	spec := os.Getenv("EARSHOT_SOAK")
	if spec == "" {
		t.Skip("the soak runs in `make soak` (EARSHOT_SOAK=<duration>, on the Kafka cluster)")
	}
	dur, err := time.ParseDuration(spec)
	if err != nil || dur < 5*time.Minute {
		t.Fatalf("EARSHOT_SOAK=%q: want a duration of at least 5m (warm-up, then samples)", spec)
	}
	tracks := soakFeedTracks
	if s := os.Getenv("EARSHOT_SOAK_TRACKS"); s != "" {
		if tracks, err = strconv.Atoi(s); err != nil || tracks < 0 {
			t.Fatalf("EARSHOT_SOAK_TRACKS=%q: want a number of feeder tracks", s)
		}
	}
	warm := min(max(dur/6, 2*time.Minute), 10*time.Minute)
	every := max(dur/120, 10*time.Second)
	h := Start(t, Config{Rooms: 2, Speakers: 2, Set: map[string][]string{"transcribe": {"transcribe.backlog.check_interval=5s"}}})
	f := h.NewFeeder()
	start := time.Now()
	end, sampleFrom := start.Add(dur), start.Add(warm)
	t.Logf("soak for %v: warm-up %v, a sample every %v, %d feeder tracks", dur, warm, every, tracks)

	samples := map[string]*procSamples{}
	var lags []float64
	next := sampleFrom
	rounds := 0
	var fd *Feed
	if tracks > 0 {
		fd = f.Start(tracks)
	}
	for time.Now().Before(end) {
		load := h.StartLoad()
		// The round, then a pause of half of it.
		roundEnd := time.Now().Add(load.Duration * 3 / 2)
		for time.Now().Before(roundEnd) {
			if now := time.Now(); !now.Before(next) && now.Before(end) {
				h.sample(samples)
				lags = append(lags, h.sum(h.Procs("transcribe"), "earshot_transcribe_consumer_lag_records"))
				next = next.Add(every)
			}
			for _, p := range h.All() {
				if !p.Running() {
					t.Fatalf("%s exited during the soak: %v", p.Name, p.Exited())
				}
			}
			if fd != nil && fd.Err() != nil {
				t.Fatalf("feeder: %v", fd.Err())
			}
			time.Sleep(time.Second)
		}
		load.Wait()
		rounds++
	}
	if fd != nil {
		if err := fd.Stop(); err != nil {
			t.Fatalf("feeder: %v", err)
		}
	}
	t.Logf("%d rounds, %d samples", rounds, len(lags))
	if len(lags) < 6 {
		t.Fatalf("only %d samples after the warm-up: too few to judge growth", len(lags))
	}

	var rssPct, gor, fds float64
	var bad []string
	names := make([]string, 0, len(samples))
	for n := range samples {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		s := samples[n]
		r0, r1 := thirds(s.rss)
		g0, g1 := thirds(s.goroutines)
		f0, f1 := thirds(s.fds)
		h0, h1 := thirds(s.heap)
		pct := 100 * (r1 - r0) / r0
		// The Go heap in use beside RSS tells a leak (both grow) from the
		// runtime keeping freed pages (RSS alone).
		t.Logf("%-13s RSS %.1f -> %.1f MB (%+.1f %%), heap in use %.1f -> %.1f MB, goroutines %.0f -> %.0f, fds %.0f -> %.0f",
			n, r0/1e6, r1/1e6, pct, h0/1e6, h1/1e6, g0, g1, f0, f1)
		rssPct, gor, fds = max(rssPct, pct), max(gor, g1-g0), max(fds, f1-f0)
		if pct > 5 {
			bad = append(bad, fmt.Sprintf("%s: RSS grew %.1f %% after the warm-up (limit 5 %%)", n, pct))
		}
		if g1-g0 > flatSlack(g0) {
			bad = append(bad, fmt.Sprintf("%s: goroutines grew from %.0f to %.0f", n, g0, g1))
		}
		if f1-f0 > flatSlack(f0) {
			bad = append(bad, fmt.Sprintf("%s: open file descriptors grew from %.0f to %.0f", n, f0, f1))
		}
	}
	l0, l1 := thirds(lags)
	lagSlack := 4 * float64(tracks+len(h.Rooms)*h.cfg.Speakers) / 0.24
	if l1-l0 > lagSlack {
		bad = append(bad, fmt.Sprintf("transcription lag grew from %.0f to %.0f records (limit %.0f)", l0, l1, lagSlack))
	}
	fmt.Printf("soak_rss_growth_pct=%.2f\nsoak_goroutines_growth=%.0f\nsoak_fds_growth=%.0f\nsoak_lag_growth=%.0f\nsoak_duration_s=%.0f\n",
		rssPct, gor, fds, l1-l0, dur.Seconds())
	if len(bad) > 0 {
		t.Errorf("the soak found growth:\n%s", strings.Join(bad, "\n"))
	}
}

// soakFeedTracks is the feeder's share of the soak's moderate load: with
// the bots (4 speakers a third of the time, two thirds of the time) about
// 1.2 s of speech per second, each transcribed twice (live and settled).
const soakFeedTracks = 1

// procSamples are one process's samples.
type procSamples struct{ rss, goroutines, fds, heap []float64 }

// sample reads every process's RSS, goroutines and open descriptors.
func (h *Harness) sample(into map[string]*procSamples) {
	t := h.t
	for _, p := range h.All() {
		s := into[p.Name]
		if s == nil {
			s = &procSamples{}
			into[p.Name] = s
		}
		rss, err := procRSS(p.PID())
		if err != nil {
			t.Fatalf("%s: %v", p.Name, err)
		}
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.PID()))
		if err != nil {
			t.Fatalf("%s: open descriptors: %v", p.Name, err)
		}
		g, err := p.Metric("go_goroutines")
		if err != nil {
			t.Fatalf("%s: %v", p.Name, err)
		}
		heap, err := p.Metric("go_memstats_heap_inuse_bytes")
		if err != nil {
			t.Fatalf("%s: %v", p.Name, err)
		}
		s.heap = append(s.heap, heap)
		s.rss = append(s.rss, rss)
		s.fds = append(s.fds, float64(len(ents)))
		s.goroutines = append(s.goroutines, g)
	}
}

// procRSS is a process's resident set in bytes (VmRSS of
// /proc/<pid>/status).
func procRSS(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseVmRSS(string(b))
}

func parseVmRSS(status string) (float64, error) {
	for line := range strings.SplitSeq(status, "\n") {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("VmRSS line %q: want <n> kB", line)
		}
		kb, err := strconv.ParseFloat(f[0], 64)
		if err != nil || kb < 0 {
			return 0, fmt.Errorf("VmRSS line %q: %v", line, err)
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("no VmRSS line")
}

// thirds returns the medians of the first and the last third of xs.
func thirds(xs []float64) (first, last float64) {
	k := max(1, len(xs)/3)
	return median(xs[:k]), median(xs[len(xs)-k:])
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// flatSlack is how far a count of goroutines or descriptors may move and
// still be flat: a round in flight holds a few more.
func flatSlack(base float64) float64 { return 10 + 0.05*base }
