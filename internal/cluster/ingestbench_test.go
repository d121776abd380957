package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/ingest"
	"github.com/earshot/earshot/ingest/janus"
	"github.com/earshot/earshot/ingest/webrtcbench"
	"github.com/earshot/earshot/internal/e2e"
	"github.com/earshot/earshot/internal/testbed"
)

// ingestRoomSize is the room shape of the ingest capacity figures.
const ingestRoomSize = 5

// ingestSearchSteps and ingestSearchBudget bound the search: at most this
// many loads, and none started after the budget. A load takes about a
// minute (publishers join, the bots subscribe, warm-up, a 30 s window,
// the rooms end, the spool drains, manifests are read), so the search
// ends within about 6 minutes and the benchmark within about 9.
const (
	ingestSearchSteps  = 6
	ingestSearchBudget = 4 * time.Minute
)

// ingestWindow is the CPU window of a load: one segment length (the
// shipped 30 s), so that every track closes, spools and uploads exactly
// one segment inside it, as it does every 30 s in steady state.
const ingestWindow = 30 * time.Second

// The ingest counters a load reads, summed over the ingest processes.
var ingestCounters = []string{
	"earshot_ingest_tracks", "earshot_ingest_rooms",
	"earshot_ingest_chunks_total", "earshot_ingest_chunks_dropped_total",
	"earshot_ingest_segments_total", "earshot_ingest_segment_errors_total", "earshot_ingest_manifest_errors_total",
	"earshot_ingest_packets_total", "earshot_ingest_packets_lost_total", "earshot_ingest_packets_late_total",
	"earshot_ingest_packets_malformed_total", "earshot_ingest_gap_samples_total",
	"earshot_spool_uploaded_total", "earshot_spool_already_stored_total", "earshot_spool_rejected_total", "earshot_spool_pending_entries",
}

// ingestBench is one benchmark run: the harness with its ingest processes
// recording every room whose number starts with prefix.
type ingestBench struct {
	b        *testing.B
	h        *Harness
	prefix   string // the rooms the bots record: prefix + 4 digits
	other    string // rooms they leave alone (Janus-only phases)
	next     int
	packets  [][]byte
	janusPID int
	vr       *janus.VideoRoom // creates and destroys the run's rooms
	live     map[uint64]bool  // rooms created and not destroyed yet
	window   time.Duration
}

// loadResult is what one load measured.
type loadResult struct {
	tracks              int
	ingestCPU, janusCPU time.Duration
	wall                time.Duration
	window0             time.Time     // the CPU window's start
	lag                 time.Duration // the load's worst lag behind its schedule
	gaps                error         // why it was not gap-free (nil: it was)
	counters            map[string]float64
}

func (r loadResult) ingestCores() float64 { return r.ingestCPU.Seconds() / r.wall.Seconds() }
func (r loadResult) janusCores() float64  { return r.janusCPU.Seconds() / r.wall.Seconds() }

// newRooms creates n VideoRooms, recorded by the bots when bots is set
// (their numbers match the ingest processes' pattern), with extra fields
// of Janus's create request. They are created on the run's one VideoRoom
// handle: a session per room (e2e.CreateRoom's) would keep a thousand
// long polls open through the run, on Janus's CPU.
func (ib *ingestBench) newRooms(n int, bots bool, extra map[string]any) []uint64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out []uint64
	for range n {
		p := ib.other
		if bots {
			p = ib.prefix
		}
		room, err := strconv.ParseUint(fmt.Sprintf("%s%04d", p, ib.next), 10, 64)
		if err != nil {
			ib.b.Fatal(err)
		}
		ib.next++
		req := map[string]any{"request": "create", "room": room, "publishers": 10, "audiocodec": "opus", "description": "earshot ingest bench", "permanent": false}
		maps.Copy(req, extra)
		if _, err := ib.vr.Message(ctx, req, nil); err != nil {
			ib.b.Fatalf("janus create room %d: %v", room, err)
		}
		ib.live[room] = true
		out = append(out, room)
	}
	return out
}

// endRooms destroys rooms: whoever records them sees them end.
func (ib *ingestBench) endRooms(rooms []uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, room := range rooms {
		if _, err := ib.vr.Message(ctx, map[string]any{"request": "destroy", "room": room}, nil); err != nil {
			ib.b.Fatalf("janus destroy room %d: %v", room, err)
		}
		delete(ib.live, room)
	}
}

// openJanus opens the run's VideoRoom handle; the rooms still live when
// the benchmark ends are destroyed then.
func (ib *ingestBench) openJanus() {
	b := ib.b
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := janus.New(janus.Config{URL: ib.h.Janus.URL, LocalAddr: ib.h.Janus.HostAddr})
	if err != nil {
		b.Fatal(err)
	}
	s, err := c.CreateSession(ctx)
	if err != nil {
		b.Fatalf("janus session: %v", err)
	}
	if ib.vr, err = janus.AttachVideoRoom(ctx, s); err != nil {
		_ = s.Close()
		b.Fatalf("janus attach: %v", err)
	}
	ib.live = map[uint64]bool{}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		for room := range ib.live {
			_, _ = ib.vr.Message(ctx, map[string]any{"request": "destroy", "room": room}, nil)
		}
		_ = s.Close()
	})
}

// counters reads ingestCounters from every ingest process.
func (ib *ingestBench) counters() map[string]float64 {
	sum := map[string]float64{}
	for _, p := range ib.h.Procs("ingest") {
		body, err := scrapeMetrics(p)
		if err != nil {
			ib.b.Fatalf("%s: %v", p.Name, err)
		}
		for _, name := range ingestCounters {
			v, err := sumMetric(bytes.NewReader(body), name)
			if err != nil {
				ib.b.Fatalf("%s: %v", p.Name, err)
			}
			sum[name] += v
		}
	}
	return sum
}

func scrapeMetrics(p *Proc) ([]byte, error) {
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + p.Metrics + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/metrics: %s", resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// ingestCPU is the user + system CPU time of every ingest process so far;
// a process that exited fails the benchmark (a fault at any load).
func (ib *ingestBench) ingestCPU() time.Duration {
	var sum time.Duration
	for _, p := range ib.h.Procs("ingest") {
		if !p.Running() {
			ib.b.Fatalf("%s exited (%v):\n%s", p.Name, p.Exited(), e2e.Tail(p.Log(), 30))
		}
		sum += webrtcbench.ProcCPU(ib.b, p.cmd.Process.Pid)
	}
	return sum
}

// audioRecords is how many records the audio topic holds (end offsets
// summed over its partitions).
func (ib *ingestBench) audioRecords() int64 {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ends, err := e2e.EndOffsets(ctx, ib.h.Admin, event.TopicAudio)
	if err != nil {
		ib.b.Fatalf("end offsets of %s: %v", event.TopicAudio, err)
	}
	var n int64
	for _, o := range ends {
		n += o
	}
	return n
}

// startLoad publishes ingestRoomSize speakers into each room.
func (ib *ingestBench) startLoad(rooms []uint64) *PacketLoad {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	l, err := StartPacketLoad(ctx, PacketLoadConfig{Janus: ib.h.Janus, Rooms: rooms, Speakers: ingestRoomSize, Packets: ib.packets})
	if err != nil {
		ib.b.Fatalf("%d speakers into %d rooms: %v", len(rooms)*ingestRoomSize, len(rooms), err)
	}
	ib.b.Cleanup(func() { _ = l.Close() })
	return l
}

// measure records the ingest processes' and Janus's CPU over the window.
func (ib *ingestBench) measure(res *loadResult, window time.Duration) {
	c0, j0, t0 := ib.ingestCPU(), webrtcbench.ProcCPU(ib.b, ib.janusPID), time.Now()
	time.Sleep(window)
	c1, j1, t1 := ib.ingestCPU(), webrtcbench.ProcCPU(ib.b, ib.janusPID), time.Now()
	res.ingestCPU, res.janusCPU, res.wall, res.window0 = c1-c0, j1-j0, t1.Sub(t0), t0
}

// load runs one load of tracks speakers (tracks/ingestRoomSize rooms)
// recorded by the bots and checks it: gap-free is no packet lost, late or
// malformed, no gap filled, every chunk made and produced (none dropped,
// the audio topic grew by at least as many records), every segment
// spooled and uploaded (none rejected, the spool empty after), a manifest
// for every room's session, ended, with every track, its segments, no gap
// and the packets of the whole window.
func (ib *ingestBench) load(tracks int) loadResult {
	b := ib.b
	res := loadResult{tracks: tracks}
	rooms := ib.newRooms(tracks/ingestRoomSize, true, nil)
	m0, a0 := ib.counters(), ib.audioRecords()
	l := ib.startLoad(rooms)
	var problems []error
	deadline := time.Now().Add(2 * time.Minute)
	for {
		n := ib.counters()["earshot_ingest_tracks"]
		if int(n) >= tracks {
			break
		}
		if time.Now().After(deadline) {
			problems = append(problems, fmt.Errorf("%d of %d tracks recording 2 minutes after every speaker joined", int(n), tracks))
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	up := time.Now()
	l.ResetLag()
	time.Sleep(3 * time.Second) // warm-up
	ib.measure(&res, ib.window)
	res.lag = l.MaxLag()
	if err := l.Err(); err != nil {
		b.Fatalf("%d tracks: %v", tracks, err)
	}
	if err := l.Close(); err != nil {
		ingestLogf("%d tracks: leaving the rooms: %v", tracks, err)
	}
	stopped := time.Now()
	ib.endRooms(rooms)
	var m1 map[string]float64
	// Drained: the bots have left, the spool is empty and its counters
	// have caught up (a segment is counted after it leaves the spool).
	stored := func(m map[string]float64) float64 {
		return m["earshot_spool_uploaded_total"] + m["earshot_spool_already_stored_total"]
	}
	for deadline := time.Now().Add(3 * time.Minute); ; {
		m1 = ib.counters()
		if m1["earshot_ingest_tracks"] == 0 && m1["earshot_ingest_rooms"] == 0 && m1["earshot_spool_pending_entries"] == 0 &&
			stored(m1)-stored(m0) >= m1["earshot_ingest_segments_total"]-m0["earshot_ingest_segments_total"] {
			break
		}
		if time.Now().After(deadline) {
			problems = append(problems, fmt.Errorf("3 minutes after the rooms ended: %.0f tracks, %.0f rooms, %.0f spool entries pending",
				m1["earshot_ingest_tracks"], m1["earshot_ingest_rooms"], m1["earshot_spool_pending_entries"]))
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	a1 := ib.audioRecords()
	d := func(name string) float64 { return m1[name] - m0[name] }
	res.counters = map[string]float64{}
	for _, name := range ingestCounters {
		res.counters[name] = d(name)
	}
	for _, name := range []string{"earshot_ingest_chunks_dropped_total", "earshot_ingest_segment_errors_total", "earshot_ingest_manifest_errors_total",
		"earshot_ingest_packets_lost_total", "earshot_ingest_packets_late_total", "earshot_ingest_packets_malformed_total",
		"earshot_ingest_gap_samples_total", "earshot_spool_rejected_total"} {
		if v := d(name); v != 0 {
			problems = append(problems, fmt.Errorf("%s grew by %.0f", name, v))
		}
	}
	// A chunk is 240 ms: 12 packets (the last of a track may be shorter).
	if chunks, pkts := d("earshot_ingest_chunks_total"), d("earshot_ingest_packets_total"); chunks < pkts/12 {
		problems = append(problems, fmt.Errorf("%.0f chunks made of %.0f packets, want at least %.0f", chunks, pkts, pkts/12))
	}
	if produced, chunks := float64(a1-a0), d("earshot_ingest_chunks_total"); produced < chunks {
		problems = append(problems, fmt.Errorf("the audio topic grew by %.0f records for %.0f chunks", produced, chunks))
	}
	if segs, up := d("earshot_ingest_segments_total"), stored(m1)-stored(m0); segs < float64(tracks) || up < segs {
		problems = append(problems, fmt.Errorf("%.0f segments spooled, %.0f stored, for %d tracks", segs, up, tracks))
	}
	minPackets := int64(stopped.Sub(up).Seconds() * 50 * 0.95)
	problems = append(problems, ib.checkManifests(rooms, minPackets, res.window0)...)
	if len(problems) > 10 {
		problems = append(problems[:10], errors.New("(more not shown)"))
	}
	res.gaps = errors.Join(problems...)
	return res
}

// checkManifests reads every room's session manifest and checks it.
func (ib *ingestBench) checkManifests(rooms []uint64, minPackets int64, window0 time.Time) []error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var problems []error
	for _, room := range rooms {
		pr := ib.h.Pseud.Room(strconv.FormatUint(room, 10))
		var ms []ingest.Manifest
		deadline := time.Now().Add(time.Minute)
		for {
			ms = ms[:0]
			ended := true
			for info, err := range ib.h.Store.List(ctx, "manifests/"+pr+"/") {
				if err != nil {
					ib.b.Fatalf("list manifests: %v", err)
				}
				m, err := getManifest(ctx, ib.h, info.Key)
				if err != nil {
					ib.b.Fatalf("%v", err)
				}
				ms = append(ms, m)
				ended = ended && m.Ended != nil
			}
			if len(ms) > 0 && ended || time.Now().After(deadline) {
				break
			}
			time.Sleep(time.Second)
		}
		if len(ms) != 1 || ms[0].Ended == nil {
			problems = append(problems, fmt.Errorf("room %s: %d session manifests (want one, ended)", pr, len(ms)))
			continue
		}
		m := ms[0]
		if len(m.Tracks) != ingestRoomSize {
			problems = append(problems, fmt.Errorf("room %s: %d tracks in the manifest, want %d", pr, len(m.Tracks), ingestRoomSize))
		}
		for _, tr := range m.Tracks {
			var why []string
			if len(tr.Segments) == 0 {
				why = append(why, "no segment")
			}
			if g := tr.GapSamples.Total(); g != 0 || len(tr.Gaps) != 0 {
				why = append(why, fmt.Sprintf("gaps %+v%s", tr.GapSamples, gapTimes(tr, window0)))
			}
			if p := tr.Packets; p.Lost != 0 || p.Late != 0 || p.Malformed != 0 || p.Received < minPackets {
				why = append(why, fmt.Sprintf("packets %+v, want at least %d received", p, minPackets))
			}
			if len(why) > 0 {
				problems = append(problems, fmt.Errorf("room %s track %s: %s", pr, tr.Track, strings.Join(why, "; ")))
			}
		}
	}
	return problems
}

// gapTimes says where a track's gaps fell, from the CPU window's start
// (negative: before it, while speakers were still joining).
func gapTimes(tr ingest.ManifestTrack, window0 time.Time) string {
	var out []string
	for _, g := range tr.Gaps {
		at := tr.Origin.Add(time.Duration(g.FirstSample) * time.Second / 48000)
		out = append(out, fmt.Sprintf("%s %v at %+.1fs", g.Cause, time.Duration(g.LastSample-g.FirstSample+1)*time.Second/48000, at.Sub(window0).Seconds()))
	}
	if len(out) == 0 {
		return ""
	}
	return " (" + strings.Join(out, ", ") + " from the window's start)"
}

func getManifest(ctx context.Context, h *Harness, key string) (ingest.Manifest, error) {
	var m ingest.Manifest
	rc, _, err := h.Store.Get(ctx, key)
	if err != nil {
		return m, fmt.Errorf("manifest %s: %w", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return m, fmt.Errorf("manifest %s: %w", key, err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("manifest %s: %w", key, err)
	}
	return m, nil
}

// janusOnly measures Janus's CPU with tracks speakers publishing into
// rooms no bot records, created with extra (Janus's own recording).
func (ib *ingestBench) janusOnly(tracks int, extra map[string]any) loadResult {
	rooms := ib.newRooms(tracks/ingestRoomSize, false, extra)
	l := ib.startLoad(rooms)
	l.ResetLag()
	time.Sleep(3 * time.Second)
	res := loadResult{tracks: tracks}
	ib.measure(&res, 10*time.Second)
	res.lag = l.MaxLag()
	if err := l.Close(); err != nil {
		ingestLogf("%d tracks without a bot: leaving the rooms: %v", tracks, err)
	}
	ib.endRooms(rooms)
	if res.ingestCPU > res.wall/10 {
		ingestLogf("the ingest processes used %.3f cores while no room of theirs was live", res.ingestCores())
	}
	return res
}

// janusPID is Janus's process (the test bed's janus.pid, checked to be
// janus: /proc/<pid>/stat is readable across network namespaces).
func janusPID(tb testing.TB) int {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(testbed.Dir(), "janus.pid"))
	if err != nil {
		tb.Fatalf("Janus's process: %v", err)
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		tb.Fatalf("Janus's process: empty janus.pid")
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil {
		tb.Fatalf("Janus's process: janus.pid %q", b)
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil || strings.TrimSpace(string(comm)) != "janus" {
		tb.Fatalf("Janus's process: pid %d is not janus (%q, %v)", pid, comm, err)
	}
	return pid
}

// ingestLogf writes a benchmark's details to stderr: the testing package keeps
// only the first ten lines of a benchmark's log.
func ingestLogf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "cluster ingest bench: "+format+"\n", args...)
}

func ingestLoadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.Join(strings.Fields(string(b))[:min(3, len(strings.Fields(string(b))))], " ")
}

// BenchmarkClusterIngest finds the highest load of rooms of 5 speakers
// the two `earshot ingest` processes record gap-free, with the shipped
// configuration on the whole path: the bots in Janus, encrypted 240 ms
// chunks produced with acks=all to the three-broker SASL_SSL cluster,
// segments spooled encrypted and uploaded to versitygw, session
// manifests written. Transcribe and policy are stopped (serve and
// compliance run) so that the two cores carry the load, Janus and the
// brokers. The load is PacketLoad: every speaker its own Janus publisher
// and peer connection, all in the benchmark's process, sending
// pre-encoded Opus (50 packets a second, no DTX). The search is the
// WebRTC benchmarks' (webrtcbench.SearchCapacity: doubling from 100
// tracks, then bisecting to an eighth; at most 6 loads, none started
// after 4 minutes), a load gap-free as ingestBench.load checks it against
// the ingest counters, the audio topic and every manifest. It reports:
//   - ingest_tracks_per_core: the highest gap-free load over the ingest
//     processes' CPU (user + system, /proc/<pid>/stat, all threads of
//     both) over a 30 s window at that load, one segment length, so that
//     every track's segment is spooled and uploaded inside it once;
//   - ingest_vs_pion_floor_ratio: that over pion's floor at the same load
//     and room shape (webrtcbench.MeasureFloor, 5 tracks per peer
//     connection, read and dropped), measured after the search;
//   - janus_cpu_per_bot_track_pct: Janus's CPU forwarding to the bots,
//     per track, in percent of a core: Janus's CPU in the found load's
//     window less its CPU with the same publishers in rooms no bot is in;
//   - janus_record_cpu_per_track_pct: the same difference with Janus
//     recording those rooms itself (record: true) instead of a bot.
//
// It leaves out: joining and leaving (the window is steady state; a
// session's start and end, its manifest writes, are not in it), the
// speech's silences (the load never stops talking, so it sends more
// packets than speakers do), transcription and policy (stopped), and it
// runs on whatever else the machine runs (Janus, the brokers, the load
// itself share its cores; the figures are from a loaded machine). A
// process that exits fails the benchmark; gaps lower the figures only.
// EARSHOT_CLUSTERBENCH_FIRST_TRACKS, _MAX_TRACKS, _STEPS and _WINDOW_S
// change the search (shorter runs while developing).
func BenchmarkClusterIngest(b *testing.B) {
	began := time.Now()
	run := 1000 + randN(9000)
	ib := &ingestBench{
		b: b, prefix: fmt.Sprintf("87%d", run), other: fmt.Sprintf("86%d", run),
		window: time.Duration(webrtcbench.EnvInt(b, "EARSHOT_CLUSTERBENCH_WINDOW_S", int(ingestWindow/time.Second))) * time.Second,
	}
	var err error
	if ib.packets, err = OpusPackets(""); err != nil {
		b.Fatal(err)
	}
	ib.h = Start(b, Config{Rooms: 1, Speakers: 1, Set: map[string][]string{"ingest": {
		"ingest.rooms.mode=pattern", "ingest.rooms.pattern=^" + ib.prefix + "[0-9]{4}$",
	}}})
	for _, p := range append(ib.h.Procs("transcribe"), ib.h.Procs("policy")...) {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		<-p.done
	}
	ib.janusPID = janusPID(b)
	ib.openJanus()
	ingestLogf("started in %v; load average %s", time.Since(began).Round(time.Second), ingestLoadavg())

	first := webrtcbench.EnvInt(b, "EARSHOT_CLUSTERBENCH_FIRST_TRACKS", 100) / ingestRoomSize * ingestRoomSize
	maxTracks := webrtcbench.EnvInt(b, "EARSHOT_CLUSTERBENCH_MAX_TRACKS", 5000)
	steps := webrtcbench.EnvInt(b, "EARSHOT_CLUSTERBENCH_STEPS", ingestSearchSteps)
	searchFrom := time.Now()
	results := map[int]loadResult{}
	found, tried := webrtcbench.SearchCapacity(first, ingestRoomSize, maxTracks, steps, func(tracks int) bool {
		res := ib.load(tracks)
		results[tracks] = res
		verdict := "gap-free"
		if res.gaps != nil {
			verdict = "not gap-free:\n" + res.gaps.Error()
		}
		ingestLogf("%d tracks: ingest %.3f cores (%.0f tracks per core), Janus %.3f cores, load lag at worst %v, load average %s; %s",
			tracks, res.ingestCores(), float64(tracks)/res.ingestCores(), res.janusCores(), res.lag.Round(time.Millisecond), ingestLoadavg(), verdict)
		return res.gaps == nil
	}, func() bool { return time.Since(searchFrom) < ingestSearchBudget })

	at := found
	if at == 0 {
		at = tried[len(tried)-1].Tracks
	}
	bare := ib.janusOnly(at, nil)
	recDir := b.TempDir()
	// Janus (root, in its own network namespace only) writes here.
	if err := os.Chmod(recDir, 0o777); err != nil {
		b.Fatal(err)
	}
	rec := ib.janusOnly(at, map[string]any{"record": true, "rec_dir": recDir})
	var recorded int64
	_ = filepath.WalkDir(recDir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				recorded += fi.Size()
			}
		}
		return nil
	})
	if recorded == 0 {
		b.Fatalf("Janus recorded nothing into %s: its recording CPU would be measured on nothing", recDir)
	}
	floor := webrtcbench.MeasureFloor(b, at, ingestRoomSize, 5*time.Second)

	b.Logf("load average %s; %v in all", ingestLoadavg(), time.Since(began).Round(time.Second))
	for _, s := range tried {
		r := results[s.Tracks]
		verdict := "gap-free"
		if !s.OK {
			verdict = "gaps: " + strings.SplitN(r.gaps.Error(), "\n", 2)[0]
		}
		b.Logf("%d tracks: ingest %.3f cores, Janus %.3f cores, load lag %v; %s", s.Tracks, r.ingestCores(), r.janusCores(), r.lag.Round(time.Millisecond), verdict)
	}
	b.Logf("%d tracks without a bot: Janus %.3f cores; recording them itself: %.3f cores (%d bytes written); pion's floor %.3f cores (%.0f tracks per core, its receiver waited %v for a CPU)",
		at, bare.janusCores(), rec.janusCores(), recorded, floor.Cores, floor.TracksPerCore, floor.Waited.Round(time.Millisecond))
	if found == 0 {
		b.Logf("no load from %d tracks down was recorded gap-free: no figures", tried[0].Tracks)
		return
	}
	best := results[found]
	perCore := float64(found) / best.ingestCores()
	b.ReportMetric(float64(found), "gap-free-tracks")
	b.ReportMetric(best.ingestCores(), "ingest-cores")
	b.ReportMetric(perCore, "ingest_tracks_per_core")
	b.ReportMetric(perCore/floor.TracksPerCore, "ingest_vs_pion_floor_ratio")
	b.ReportMetric(100*(best.janusCores()-bare.janusCores())/float64(found), "janus_cpu_per_bot_track_pct")
	b.ReportMetric(100*(rec.janusCores()-bare.janusCores())/float64(found), "janus_record_cpu_per_track_pct")
}
