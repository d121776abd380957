package webrtcbench

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// searchSteps bounds a capacity search: at most this many loads are tried.
const searchSteps = 8

// searchBudget bounds a capacity search's time: no new load is tried
// after it. A step takes 10 to 30 s (start two processes, connect, 2 s of
// warm-up, a 5 s window, close), so a search ends within about 4 minutes.
const searchBudget = 3 * time.Minute

func TestSearchCapacity(t *testing.T) {
	for _, tt := range []struct {
		name                 string
		capacity, first, max int
		want                 int // the result, within an eighth below
	}{
		{"probe up then bisect", 2500, 400, 12800, 2500},
		{"halve first", 150, 400, 12800, 150},
		{"nothing passes", 5, 400, 12800, 0},
		{"capped", 100000, 400, 12800, 12800},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, steps := SearchCapacity(tt.first, 10, tt.max, searchSteps, func(n int) bool { return n <= tt.capacity }, func() bool { return true })
			if got > tt.want || got < tt.want-tt.want/8-10 {
				t.Errorf("found %d (steps %v), want within an eighth below %d", got, steps, tt.want)
			}
			if len(steps) > searchSteps {
				t.Errorf("%d steps, want at most %d", len(steps), searchSteps)
			}
			for _, s := range steps {
				if s.Tracks%10 != 0 || s.Tracks > tt.max || s.Tracks < 10 {
					t.Errorf("tried %d tracks: want a multiple of 10 in [10, %d]", s.Tracks, tt.max)
				}
			}
		})
	}
	// The budget ends the search, but never before the first step.
	_, steps := SearchCapacity(400, 10, 12800, searchSteps, func(int) bool { return true }, func() bool { return false })
	if len(steps) != 1 {
		t.Errorf("with no time left: %d steps, want 1", len(steps))
	}
}

// pubLagLimit: a publisher that fell this far behind its schedule may have
// caused the gaps itself (the recorder fills a pause of 500 ms or more as
// mute).
const pubLagLimit = 100 * time.Millisecond

// waitedLimit: a receiver whose threads waited this share of the time for
// a CPU shared its core with other programs.
const waitedLimit = 0.05

// machineExcuse says why a run's gaps may be the machine's doing rather
// than the recorder's ("": no reason): the publisher could not keep its
// schedule, or other programs took the receiver's CPU.
func machineExcuse(res pathResult) string {
	switch {
	case res.pubLag >= pubLagLimit:
		return fmt.Sprintf("the publisher fell %v behind its schedule", res.pubLag.Round(time.Millisecond))
	case res.waited.Seconds() >= waitedLimit*res.busy.Seconds():
		return fmt.Sprintf("the receiver waited %v of %v for a CPU", res.waited.Round(time.Millisecond), res.busy.Round(time.Millisecond))
	}
	return ""
}

// capacity is what benchCapacity measured for one room shape.
type capacity struct {
	tracks  int     // the highest gap-free load found
	perCore float64 // tracks / the receiver's cores at that load
	floor   float64 // pion's floor: tracks / its cores at that load
	ratio   float64 // perCore / floor
}

// benchCapacity searches the highest load the receiver, configured as the
// bots are, records gap-free with perPC tracks per peer connection, then
// measures pion's floor at that load (the same receiver reading every
// track through pion and dropping it). It fails b only when the product
// misbehaves: a process fails, tracks do not start, or the output has gaps
// at a load under a quarter of what pion's floor reads per core while the
// publisher kept its schedule and the receiver had its core to itself
// (machineExcuse), which no slow machine explains.
func benchCapacity(b *testing.B, perPC int) capacity {
	prog := buildPrograms(b)
	window := time.Duration(EnvInt(b, "EARSHOT_WEBRTCBENCH_WINDOW_S", 5)) * time.Second
	first := max(perPC, EnvInt(b, "EARSHOT_WEBRTCBENCH_FIRST_TRACKS", 400)/perPC*perPC)
	maxTracks := EnvInt(b, "EARSHOT_WEBRTCBENCH_MAX_TRACKS", 12800)
	load := func(tracks int) pathRun {
		return pathRun{tracks: tracks, pcs: tracks / perPC, warmup: 2 * time.Second, window: window}
	}
	if len(prog.receiverCPUs) == 0 {
		logf(b, "one CPU: the receiver shares it with the publisher, so the searched load is the machine's, not one core's")
	}
	began := time.Now()
	results := map[int]pathResult{}
	found, steps := SearchCapacity(first, perPC, maxTracks, searchSteps, func(tracks int) bool {
		res := runPath(b, prog, load(tracks))
		results[tracks] = res
		if res.gaps != nil {
			logf(b, "%d tracks: not gap-free:\n%v", tracks, res.gaps)
		}
		return res.gaps == nil
	}, func() bool { return time.Since(began) < searchBudget })

	at := found
	if at == 0 {
		at = steps[len(steps)-1].Tracks // the lightest load tried
	}
	fl := load(at)
	fl.discard = true
	floorRes := runPath(b, prog, fl)
	c := capacity{tracks: found, floor: floorRes.tracksPerCore(at)}
	for _, s := range steps {
		res := results[s.Tracks]
		if s.OK {
			continue
		}
		excuse := machineExcuse(res)
		switch {
		case excuse != "":
			logf(b, "%d tracks: %s: the machine, not only the recorder, limited this load", s.Tracks, excuse)
		case float64(s.Tracks) < c.floor/4:
			b.Fatalf("%d tracks (%d per peer connection) were not recorded gap-free, under a quarter of the %.0f tracks per core pion's floor reads here, with the publisher on schedule (lag at worst %v) and the receiver's core its own (waited %v for it): the recorder is at fault, not the machine:\n%v",
				s.Tracks, perPC, c.floor, res.pubLag.Round(time.Millisecond), res.waited.Round(time.Millisecond), res.gaps)
		}
	}
	// The benchmark's log keeps ten lines: one a load, the summary first.
	summary := func(format string, args ...any) {
		b.Logf(format, args...)
		for _, s := range steps {
			res := results[s.Tracks]
			verdict := "gap-free"
			if !s.OK {
				verdict = "gaps: " + strings.SplitN(res.gaps.Error(), "\n", 2)[0]
				if e := machineExcuse(res); e != "" {
					verdict += "; " + e
				}
			}
			b.Logf("%d tracks: receiver %.3f cores, publisher lag %v, receiver waited %v for its CPU; %s",
				s.Tracks, res.cores(), res.pubLag.Round(time.Millisecond), res.waited.Round(time.Millisecond), verdict)
		}
	}
	if found == 0 {
		// Every load failed, none far below pion's floor: a machine
		// too slow for the lightest load, not a fault of the recorder.
		summary("no load from %d tracks down was recorded gap-free; pion's floor reads %.0f tracks per core; %v in all", steps[0].Tracks, c.floor, time.Since(began).Round(time.Second))
		return c
	}
	best := results[found]
	c.perCore = best.tracksPerCore(found)
	c.ratio = c.perCore / c.floor
	summary("%d tracks per peer connection: highest gap-free load %d tracks at %.3f receiver cores (%.0f tracks per core); pion's floor there %.3f cores (%.0f tracks per core); ratio %.2f; %v in all",
		perPC, found, best.cores(), c.perCore, floorRes.cores(), c.floor, c.ratio, time.Since(began).Round(time.Second))
	b.ReportMetric(float64(found), "gap-free-tracks")
	b.ReportMetric(best.cores(), "receiver-cores")
	b.ReportMetric(float64(best.cpu.Nanoseconds())/(float64(found)*50*best.wall.Seconds()), "receiver-cpu-ns/packet")
	return c
}

// BenchmarkWebRTCTracksPerCore finds how many Opus tracks a receiver on one
// core records gap-free, with 100 tracks per peer connection (a bot in
// large rooms). A publisher process sends the tracks (50 packets/s each)
// over DTLS-SRTP on loopback to a receiver process that records each as a
// listener bot does (the bots' pion configuration, track loop, recorder,
// sealed chunk events, hashed segments). With two or more CPUs the
// receiver is pinned to one of them and the publisher to the others.
//
// The load is searched (searchCapacity: doubling from 400 tracks, then
// bisection to within an eighth; at most 8 loads with a 5 s window each,
// no new load after 3 minutes, so under about 4 minutes in all). A load
// is gap-free when every track's output is (Report.GapFree: no loss, late
// packet, resync or filled gap, every sample from a received packet,
// every chunk and segment written, no chunk event dropped). It reports:
//   - record_webrtc_max_tracks_per_core: the highest gap-free load divided
//     by the receiver's CPU use there (close to one core when the receiver
//     is what limits it);
//   - record_webrtc_pion_floor_tracks_per_core: pion's floor at the same
//     load, in the same run: the same receiver reading every track
//     through pion and dropping it, tracks / its CPU use;
//   - record_webrtc_vs_pion_floor_ratio: the first over the second, the
//     figure to compare between machines (absolute per-core figures move
//     by half between them).
//
// It leaves out Kafka and the spool's disk (chunk events are queued and
// dropped, segments hashed and not written), and Janus: pion on both
// sides. A slow machine lowers the figures and never fails the benchmark
// (see benchCapacity); when no load passes it reports none of them. The
// floor is measured at our highest load, not searched: the publisher
// costs about half what pion's receive path does, so on a small machine
// it could not generate pion's own highest load.
// EARSHOT_WEBRTCBENCH_WINDOW_S, _FIRST_TRACKS and _MAX_TRACKS change the
// search (shorter runs while developing).
func BenchmarkWebRTCTracksPerCore(b *testing.B) {
	if c := benchCapacity(b, 100); c.tracks > 0 {
		b.ReportMetric(c.perCore, "record_webrtc_max_tracks_per_core")
		b.ReportMetric(c.floor, "record_webrtc_pion_floor_tracks_per_core")
		b.ReportMetric(c.ratio, "record_webrtc_vs_pion_floor_ratio")
	}
}

// BenchmarkWebRTCSmallRooms is BenchmarkWebRTCTracksPerCore with 10 tracks
// per peer connection, as a bot in many small rooms receives them (one
// connection per room): per-connection costs (a socket, ICE, DTLS and SRTP
// state, goroutines, timers) are spread over fewer tracks. Its figures are
// measured as there.
func BenchmarkWebRTCSmallRooms(b *testing.B) {
	if c := benchCapacity(b, 10); c.tracks > 0 {
		b.ReportMetric(c.perCore, "record_webrtc_small_rooms_max_tracks_per_core")
		b.ReportMetric(c.floor, "record_webrtc_small_rooms_pion_floor_tracks_per_core")
		b.ReportMetric(c.ratio, "record_webrtc_small_rooms_vs_pion_floor_ratio")
	}
}
