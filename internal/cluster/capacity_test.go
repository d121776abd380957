package cluster

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/earshot/earshot/internal/speech"
)

// BenchmarkClusterTranscribe measures, in one run of the whole deployment
// (2 × ingest, 2 × transcribe, 2 × policy, serve, compliance as processes
// on the three-node cluster):
//
//   - transcribe_capacity_speech_s_per_core: seconds of speech per second
//     the transcription stage sustains without growing consumer lag, per
//     core it burns doing so. The load is the chunk feeder (feed_test.go):
//     virtual tracks producing sealed 240 ms chunks of pre-rendered speech
//     (about 27 % of it speech) to earshot.audio in real time, as ingest
//     would, each track replaced by a new speaker every 14 to 38 s so
//     that the settled pass (which transcribes a track's speech again
//     when it ends, or per 25 s of speech) works inside the window as it
//     does in steady state; the track count is searched (doubling from 8, then
//     bisecting to an eighth, within 6 minutes), each step held 40 s
//     after 20 s of warm-up, and a step is sustained when the transcribe
//     group's lag (sampled every 2 s from both processes'
//     earshot_transcribe_consumer_lag_records) grows by less than 4 s of
//     the step's chunks over its window (least-squares slope) and no
//     engine error is counted. The cores are the CPU time
//     (user + system) of the two `earshot transcribe` processes and of the
//     test bed's Whisper fixture (faster-whisper tiny.en, int8, 2 threads,
//     one request at a time: the stage's engine) over the window, per
//     second. It leaves out ingest (WebRTC, Janus; the feeder stands in
//     for it) and counts any other client's use of the shared fixture
//     during the window as the stage's (a conservative error).
//   - speech_to_webhook_loaded_p50_s / _p95_s: with the feeder at half
//     the sustained speech rate found above (less what the bots say),
//     two rounds of speaker bots (3 rooms × 2, one threat and one phone
//     number per room) talk through Janus, ingest, transcription, policy
//     and the notifier; from each alert line's end in the publish log to
//     the webhook receiver's first POST of an alert of its category in
//     its room and time (any revision). A line without one is a miss and
//     counts as the time from its end to the end of the round's wait, a
//     lower bound, as speech_to_webhook_live_* counts them.
//
// Real time, about 10 minutes; run it under the real-time lock with the
// cluster started:
//
//	EARSHOT_TESTBED=1 EARSHOT_KAFKA_CLUSTER=1 flock /tmp/earshot-realtime.lock \
//	  go test -run '^$' -bench BenchmarkClusterTranscribe -benchtime 1x ./internal/cluster/
func BenchmarkClusterTranscribe(b *testing.B) {
	h := Start(b, Config{Set: map[string][]string{"transcribe": {"transcribe.backlog.check_interval=2s"}}})
	f := h.NewFeeder()
	wpid := whisperPID(b)
	b.Logf("feeder clips: %.0f %% speech", 100*f.SpeechShare)
	// The group may have other runs' chunks to get through (ingest runs
	// without transcription leave them): start from an empty backlog.
	h.drain(3 * time.Minute)

	budget := time.Now().Add(6 * time.Minute)
	var best *stepResult
	lo, hi, n := 0, 0, 8
	for {
		r := h.transcribeStep(f, n, wpid)
		b.Logf("%d tracks: %s", n, r)
		if r.sustained {
			lo, best = n, r
		} else {
			hi = n
			h.drain(2 * time.Minute)
		}
		if hi == 0 {
			n *= 2
		} else {
			n = (lo + hi) / 2
		}
		if (hi > 0 && hi-lo <= max(1, lo/8)) || n == 0 || time.Now().After(budget) {
			break
		}
	}
	if best == nil {
		b.Fatalf("no load sustained, down to %d tracks", hi)
	}
	capacity := best.speechRate / best.cores
	b.Logf("capacity: %d tracks sustained (%s); first not sustained: %d tracks", lo, best, hi)
	b.ReportMetric(capacity, "transcribe_capacity_speech_s_per_core")

	// The loaded latency, at half the sustained speech rate.
	var lat []float64
	misses := 0
	for round := range 2 {
		load := h.StartLoad()
		botRate := 0.0
		for _, tk := range load.Speakers {
			var sp int64
			for _, c := range tk.Clip.Cues {
				if c.Kind == speech.KindSpeech {
					sp += c.EndMS - c.StartMS
				}
			}
			botRate += float64(sp) / float64(load.Duration.Milliseconds())
		}
		tracks := int(math.Round((best.speechRate/2 - botRate) / f.SpeechShare))
		var fd *Feed
		if tracks > 0 {
			fd = f.Start(tracks)
		}
		b.Logf("round %d: bots say %.2f s of speech per second, feeder %d tracks (%.2f); target %.2f", round, botRate, tracks,
			float64(tracks)*f.SpeechShare, best.speechRate/2)
		load.Wait()
		lines := load.Lines()
		// Alerts of the last lines come within seconds; a later revision
		// (settled, final) within a minute of the speech.
		end := time.Now().Add(75 * time.Second)
		owed := 0
		for _, ln := range lines {
			if ln.Alert != "" {
				owed++
			}
		}
		for time.Now().Before(end) {
			if len(firstPosts(h, lines)) == owed {
				break
			}
			time.Sleep(time.Second)
		}
		if fd != nil {
			if err := fd.Stop(); err != nil {
				b.Fatalf("feeder: %v", err)
			}
		}
		stop := time.Now()
		posts := firstPosts(h, lines)
		alerts, _ := h.Alerts()
		rev := map[string]string{}
		for _, a := range alerts {
			rev[a.E.EventID] = a.E.Revision
		}
		for i, ln := range lines {
			if ln.Alert == "" {
				continue
			}
			p, ok := posts[i]
			if !ok {
				misses++
				b.Logf("round %d: no webhook POST for %s (%s)", round, ln.Describe(), ln.Alert)
				p.at = stop
			}
			lat = append(lat, p.at.Sub(ln.End).Seconds())
			b.Logf("round %d: %s (%s): %.2f s, revision %q", round, ln.Describe(), ln.Alert, p.at.Sub(ln.End).Seconds(), rev[p.id])
		}
		h.drain(2 * time.Minute)
	}
	if len(lat) == 0 {
		b.Fatal("the load had no alert line")
	}
	slices.Sort(lat)
	q := func(p float64) float64 { return lat[max(0, int(math.Ceil(p*float64(len(lat))))-1)] } // nearest rank
	b.Logf("speech to webhook under load: %d alert lines, %d missed; seconds %.2f", len(lat), misses, lat)
	b.ReportMetric(q(0.50), "speech_to_webhook_loaded_p50_s")
	b.ReportMetric(q(0.95), "speech_to_webhook_loaded_p95_s")
}

// stepResult is one load step of the capacity search.
type stepResult struct {
	tracks     int
	speechRate float64 // seconds of speech produced per second
	cores      float64 // CPU seconds per second of the transcribe processes and the engine
	lagGrowth  float64 // records over the window (fitted)
	tolerance  float64
	engineErrs float64
	// settleDropped counts settled-pass batches the workers shed in the
	// window (they do when behind on live audio; the final pass covers
	// them): logged, not judged.
	settleDropped float64
	sustained     bool
	feedErr       error
}

func (r *stepResult) String() string {
	return fmt.Sprintf("speech %.2f s/s on %.2f cores, lag growth %.0f records (tolerance %.0f), engine errors %.0f, settled batches shed %.0f, sustained %v",
		r.speechRate, r.cores, r.lagGrowth, r.tolerance, r.engineErrs, r.settleDropped, r.sustained)
}

const (
	stepWarmup = 20 * time.Second
	stepWindow = 40 * time.Second
)

// transcribeStep feeds n tracks for the warm-up and the window and
// judges the window.
func (h *Harness) transcribeStep(f *Feeder, n, wpid int) *stepResult {
	t := h.t
	r := &stepResult{tracks: n}
	procs := h.Procs("transcribe")
	fd := f.Start(n)
	time.Sleep(stepWarmup)
	cpu := func() time.Duration {
		var sum time.Duration
		for _, p := range append(procs, nil) {
			pid := wpid
			if p != nil {
				pid = p.PID()
			}
			c, err := procCPU(pid)
			if err != nil {
				t.Fatalf("CPU time of pid %d: %v", pid, err)
			}
			sum += c
		}
		return sum
	}
	errs0 := h.sum(procs, "earshot_transcribe_engine_errors_total")
	drop0 := h.sum(procs, "earshot_transcribe_settle_dropped_total")
	cpu0, speech0, t0 := cpu(), fd.SpeechSeconds(), time.Now()
	var xs, ys []float64
	for time.Since(t0) < stepWindow {
		xs = append(xs, time.Since(t0).Seconds())
		ys = append(ys, h.sum(procs, "earshot_transcribe_consumer_lag_records"))
		time.Sleep(2 * time.Second)
	}
	wall := time.Since(t0).Seconds()
	r.cores = (cpu() - cpu0).Seconds() / wall
	r.speechRate = (fd.SpeechSeconds() - speech0) / wall
	r.engineErrs = h.sum(procs, "earshot_transcribe_engine_errors_total") - errs0
	r.settleDropped = h.sum(procs, "earshot_transcribe_settle_dropped_total") - drop0
	r.feedErr = fd.Stop()
	if r.feedErr != nil {
		t.Fatalf("feeder at %d tracks: %v", n, r.feedErr)
	}
	r.lagGrowth = slope(xs, ys) * wall
	r.tolerance = 4 * float64(n) / 0.24
	r.sustained = r.lagGrowth <= r.tolerance && r.engineErrs == 0
	return r
}

// sum adds a metric over processes; a process that does not answer fails
// the run.
func (h *Harness) sum(procs []*Proc, metric string) float64 {
	var s float64
	for _, p := range procs {
		v, err := p.Metric(metric)
		if err != nil {
			h.t.Fatalf("%s: %v", p.Name, err)
		}
		s += v
	}
	return s
}

// drain waits until the transcribe group has next to no lag.
func (h *Harness) drain(within time.Duration) {
	procs := h.Procs("transcribe")
	deadline := time.Now().Add(within)
	for {
		// Each process measures its lag every check interval: two
		// readings in a row under the bar.
		if h.sum(procs, "earshot_transcribe_consumer_lag_records") <= 20 {
			time.Sleep(2500 * time.Millisecond)
			if h.sum(procs, "earshot_transcribe_consumer_lag_records") <= 20 {
				return
			}
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("transcription lag still %.0f records after %v", h.sum(procs, "earshot_transcribe_consumer_lag_records"), within)
		}
		time.Sleep(2 * time.Second)
	}
}

// slope is the least-squares slope of ys over xs (0 for fewer than two
// points).
func slope(xs, ys []float64) float64 {
	n := float64(len(xs))
	if len(xs) < 2 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for i := range xs {
		sx += xs[i]
		sy += ys[i]
		sxx += xs[i] * xs[i]
		sxy += xs[i] * ys[i]
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}

// post is when the webhook receiver first got an alert.
type post struct {
	id string
	at time.Time
}

// firstPosts returns, per alert line (by index), the first POST of an
// alert of its category in its room and time.
func firstPosts(h *Harness, lines []Line) map[int]post {
	deliv, _ := h.Deliveries()
	at := map[string]time.Time{}
	for _, p := range h.Hook.Posts() {
		var body struct {
			Data *struct {
				ID string `json:"id"`
			} `json:"data"`
		}
		if json.Unmarshal(p.Body, &body) != nil || body.Data == nil {
			continue
		}
		if old, ok := at[body.Data.ID]; !ok || p.At.Before(old) {
			at[body.Data.ID] = p.At
		}
	}
	out := map[int]post{}
	for i, ds := range MatchAlerts(lines, nil, deliv).Delivered {
		for _, d := range ds {
			if a, ok := at[d.ID]; ok && (out[i].at.IsZero() || a.Before(out[i].at)) {
				out[i] = post{d.ID, a}
			}
		}
	}
	return out
}
