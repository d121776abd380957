package webrtcbench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/earshot/earshot/internal/testbed"
)

// fixture is the Opus file the publisher plays: 12 s of speech and tones
// in 20 ms packets (the recorder's own benchmark fixture).
var fixture = filepath.Join("..", "testdata", "speech_tones.opus")

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's CPU times (100 on
// every Linux architecture Go supports).
const clockTicks = 100

// pathRun is one measurement: how many tracks over how many peer
// connections, the warm-up after every track has started, and the window
// over which the receiver's CPU time is measured.
type pathRun struct {
	tracks, pcs    int
	warmup, window time.Duration
	receiverArgs   []string // extra receiver flags (experiments)
	// discard: the receiver records nothing (-discard), so there is no
	// output to check for gaps.
	discard bool
}

// pathResult is what a run measured.
type pathResult struct {
	cpu, wall time.Duration // the receiver's CPU time over the window
	report    *Report
}

// tracksPerCore: tracks / (CPU seconds per wall second).
func (r pathResult) tracksPerCore(tracks int) float64 {
	return float64(tracks) * r.wall.Seconds() / r.cpu.Seconds()
}

// buildPrograms builds the publisher and the receiver into a temporary
// folder.
func buildPrograms(tb testing.TB) (publisher, receiver string) {
	tb.Helper()
	dir := tb.TempDir()
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./publisher", "./receiver")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build ./publisher ./receiver: %v\n%s", err, out)
	}
	return filepath.Join(dir, "publisher"), filepath.Join(dir, "receiver")
}

// process is a child process whose stdout lines arrive on a channel.
type process struct {
	name   string
	cmd    *exec.Cmd
	lines  chan string
	stderr *testbed.SyncBuffer
	done   chan error
}

func start(tb testing.TB, name, bin string, args ...string) *process {
	tb.Helper()
	p := &process{name: name, cmd: exec.Command(bin, args...), lines: make(chan string, 16), stderr: &testbed.SyncBuffer{}, done: make(chan error, 1)}
	p.cmd.Stderr = p.stderr
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
		p.done <- p.cmd.Wait()
		close(p.done)
	}()
	tb.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if tb.Failed() && p.stderr.String() != "" {
			tb.Logf("%s stderr:\n%s", name, tail(p.stderr.String(), 30))
		}
	})
	return p
}

// line waits for the next line on the process's stdout.
func (p *process) line(tb testing.TB, within time.Duration) string {
	tb.Helper()
	select {
	case l := <-p.lines:
		return l
	case err := <-p.done:
		tb.Fatalf("%s exited (%v) before writing a line:\n%s", p.name, err, tail(p.stderr.String(), 30))
	case <-time.After(within):
		tb.Fatalf("%s wrote no line within %v:\n%s", p.name, within, tail(p.stderr.String(), 30))
	}
	return ""
}

// stop sends SIGTERM and waits for the process to exit.
func (p *process) stop(tb testing.TB) {
	tb.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			tb.Errorf("%s: %v\n%s", p.name, err, tail(p.stderr.String(), 30))
		}
	case <-time.After(30 * time.Second):
		tb.Errorf("%s did not exit within 30 s of SIGTERM", p.name)
	}
}

// procCPU returns a process's user+system CPU time, all threads, from
// /proc/<pid>/stat.
func procCPU(tb testing.TB, pid int) time.Duration {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatalf("CPU time of the receiver: %v", err)
	}
	// The command name may hold spaces: the fields after it start after
	// the last ')', with the state (field 3); utime and stime are 14, 15.
	rest := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(rest) < 13 {
		tb.Fatalf("/proc/%d/stat: %q", pid, b)
	}
	utime, err1 := strconv.ParseInt(rest[11], 10, 64)
	stime, err2 := strconv.ParseInt(rest[12], 10, 64)
	if err1 != nil || err2 != nil {
		tb.Fatalf("/proc/%d/stat: %q", pid, b)
	}
	return time.Duration(utime+stime) * time.Second / clockTicks
}

func getJSON(tb testing.TB, method, url string, v any) {
	tb.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		tb.Fatal(err)
	}
	client := &http.Client{Timeout: time.Minute}
	resp, err := client.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		tb.Fatalf("%s %s: %s: %s", method, url, resp.Status, msg)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		tb.Fatalf("%s %s: %v", method, url, err)
	}
}

// runPath starts the receiver and the publisher as separate processes,
// waits until every track records, measures the receiver's CPU time over
// the window, closes every track and checks that each was recorded
// without a gap.
func runPath(tb testing.TB, cfg pathRun) pathResult {
	tb.Helper()
	pubBin, recvBin := buildPrograms(tb)
	args := cfg.receiverArgs
	if cfg.discard {
		args = append([]string{"-discard"}, args...)
	}
	recv := start(tb, "receiver", recvBin, args...)
	var hello struct{ URL string }
	if err := json.Unmarshal([]byte(recv.line(tb, 30*time.Second)), &hello); err != nil || !strings.HasPrefix(hello.URL, "http://127.0.0.1:") {
		tb.Fatalf("receiver: first line is not {\"url\": \"http://127.0.0.1:...\"} (%v)", err)
	}
	pub := start(tb, "publisher", pubBin, "-url", hello.URL, "-tracks", strconv.Itoa(cfg.tracks), "-pcs", strconv.Itoa(cfg.pcs), "-opus", fixture)
	if l := pub.line(tb, 2*time.Minute); l != "connected" {
		tb.Fatalf("publisher: %q, want \"connected\"", l)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		var st Status
		getJSON(tb, http.MethodGet, hello.URL+"/status", &st)
		if st.Tracks == cfg.tracks {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%d of %d tracks recording a minute after the publisher connected (%d peer connections up)", st.Tracks, cfg.tracks, st.PeerConnections)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(cfg.warmup)
	pid := recv.cmd.Process.Pid
	cpu0, t0 := procCPU(tb, pid), time.Now()
	time.Sleep(cfg.window)
	cpu1, t1 := procCPU(tb, pid), time.Now()

	var rep Report
	getJSON(tb, http.MethodPost, hello.URL+"/finish", &rep)
	pub.stop(tb)
	recv.stop(tb)
	res := pathResult{cpu: cpu1 - cpu0, wall: t1.Sub(t0), report: &rep}
	tot := rep.Totals()
	if cfg.discard {
		tb.Logf("%d tracks on %d peer connections, receiver flags %q: receiver CPU %v over %v (%.3f cores), nothing recorded",
			cfg.tracks, cfg.pcs, args, res.cpu, res.wall.Round(time.Millisecond), res.cpu.Seconds()/res.wall.Seconds())
		return res
	}
	tb.Logf("%d tracks on %d peer connections, receiver flags %q: receiver CPU %v over %v (%.3f cores); %d packets, %d lost, %d late, %d duplicates, %d gap samples, %d resyncs, %d chunks, %d segments",
		cfg.tracks, cfg.pcs, args, res.cpu, res.wall.Round(time.Millisecond), res.cpu.Seconds()/res.wall.Seconds(),
		tot.Packets, tot.Lost, tot.Late, tot.Duplicates, tot.Gaps.Total(), tot.Resyncs, tot.Chunks, tot.Segments)
	// Every track ran through the warm-up and the window at 50 packets/s.
	minPackets := int64((cfg.warmup + cfg.window).Seconds() * 50 * 0.95)
	if err := rep.GapFree(cfg.tracks, minPackets); err != nil {
		tb.Fatalf("output is not gap-free:\n%v", err)
	}
	tb.Logf("gap-free: all %d tracks (no loss, no filled gap, every sample from a received packet)", len(rep.Tracks))
	return res
}

// TestWebRTCPathGapFree runs the benchmark's machinery on a few tracks: both
// programs build, negotiate over loopback, and every track is recorded
// without a gap.
func TestWebRTCPathGapFree(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two processes and records for a few seconds")
	}
	res := runPath(t, pathRun{tracks: 6, pcs: 2, warmup: time.Second, window: 2 * time.Second})
	if res.cpu <= 0 {
		t.Errorf("receiver CPU time over the window: %v", res.cpu)
	}
}

// envInt reads a positive integer override of a benchmark parameter.
func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// benchLoad is the benchmarks' load: 1,600 tracks over 16 peer
// connections, 3 s of warm-up and a 10 s window, or what
// EARSHOT_WEBRTCBENCH_TRACKS, _PCS and _WINDOW_S say.
//
// Why 1,600: the figure is how many tracks one core sustains, so the
// receiver is measured near a core's worth of work (about 0.8 of a core
// here), not extrapolated from a light load. Batched reads make a packet
// cheaper the more of them arrive together: the same programs measured
// about 1,500 tracks per core at 400 tracks (a quarter of a core busy),
// 2,100 at 1,600. The machine has two cores, and the publisher needs
// about 0.4 of one at this load.
func benchLoad(b *testing.B) pathRun {
	return pathRun{
		tracks: envInt(b, "EARSHOT_WEBRTCBENCH_TRACKS", 1600),
		pcs:    envInt(b, "EARSHOT_WEBRTCBENCH_PCS", 16),
		warmup: 3 * time.Second,
		window: time.Duration(envInt(b, "EARSHOT_WEBRTCBENCH_WINDOW_S", 10)) * time.Second,
	}
}

// BenchmarkWebRTCTracksPerCore: a publisher process sends 1,600 Opus tracks
// (50 packets/s each) over 16 DTLS-SRTP peer connections on loopback to a
// receiver process that records each as a listener bot does. The figure is
// tracks / (receiver CPU seconds per wall second): how many such tracks one
// fully used core sustains. It runs once whatever b.N is (about 20 s);
// EARSHOT_WEBRTCBENCH_TRACKS, _PCS and _WINDOW_S change the load, and
// EARSHOT_WEBRTCBENCH_RECEIVER_ARGS passes flags to the receiver (e.g.
// "-gomaxprocs 1", "-read-interval=-1ns" or "-interceptors pion":
// experiments, reported as experiment-tracks-per-core, never as the figure,
// which is taken from the receiver configured as the bots are).
func BenchmarkWebRTCTracksPerCore(b *testing.B) {
	cfg := benchLoad(b)
	cfg.receiverArgs = strings.Fields(os.Getenv("EARSHOT_WEBRTCBENCH_RECEIVER_ARGS"))
	res := runPath(b, cfg)
	packets := float64(cfg.tracks) * 50 * res.wall.Seconds()
	b.ReportMetric(res.cpu.Seconds()/res.wall.Seconds(), "receiver-cores")
	b.ReportMetric(float64(res.cpu.Nanoseconds())/packets, "receiver-cpu-ns/packet")
	b.ReportMetric(float64(len(res.report.Tracks)), "gap-free-tracks")
	if len(cfg.receiverArgs) > 0 {
		// Not the bots' receive path: not the figure.
		b.ReportMetric(res.tracksPerCore(cfg.tracks), "experiment-tracks-per-core")
		return
	}
	b.ReportMetric(res.tracksPerCore(cfg.tracks), "record_webrtc_tracks_per_core")
}

// BenchmarkWebRTCSmallRooms runs BenchmarkWebRTCTracksPerCore's load as a
// bot in many small rooms receives it: 10 tracks per peer connection (one
// connection per room) instead of 100, so 160 connections. It reports
// record_webrtc_small_rooms_tracks_per_core, the same measure: per
// connection costs (its socket, ICE, DTLS and SRTP state, goroutines and
// timers) are spread over fewer tracks. It has no target; it says how far
// a bot in rooms of ten speakers is from the benchmark's figure.
func BenchmarkWebRTCSmallRooms(b *testing.B) {
	cfg := benchLoad(b)
	cfg.pcs = cfg.tracks / 10
	res := runPath(b, cfg)
	b.ReportMetric(float64(len(res.report.Tracks)), "gap-free-tracks")
	b.ReportMetric(res.tracksPerCore(cfg.tracks), "record_webrtc_small_rooms_tracks_per_core")
}

// BenchmarkWebRTCPionFloor measures what record_webrtc_tracks_per_core
// cannot exceed on this machine: the same load received by the same
// receiver, but each track read through pion and dropped, nothing recorded.
//   - pion_floor_tracks_per_core: the bots' configuration (their
//     interceptors, batched reads, Go's default GOMAXPROCS);
//   - pion_min_floor_tracks_per_core: pion stripped to what no bot can do
//     without (no interceptors at all, so no NACK and no receiver reports;
//     GOMAXPROCS=1).
//
// Both are tracks / (receiver CPU seconds per wall second), as the figure.
func BenchmarkWebRTCPionFloor(b *testing.B) {
	base := benchLoad(b)
	base.discard = true
	for _, c := range []struct {
		figure string
		args   []string
	}{
		{"pion_floor_tracks_per_core", nil},
		{"pion_min_floor_tracks_per_core", []string{"-interceptors", "none", "-gomaxprocs", "1"}},
	} {
		cfg := base
		cfg.receiverArgs = c.args
		res := runPath(b, cfg)
		b.ReportMetric(res.tracksPerCore(cfg.tracks), c.figure)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func TestCheckLoopbackSDP(t *testing.T) {
	tests := []struct {
		name, sdp string
		ok        bool
	}{
		{"loopback host", "v=0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host\r\n", true},
		{"other address", "a=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host\r\na=candidate:2 1 udp 2130706431 10.0.0.5 50001 typ host\r\n", false},
		{"tcp", "a=candidate:1 1 tcp 2130706431 127.0.0.1 9 typ host tcptype active\r\n", false},
		{"server reflexive", "a=candidate:1 1 udp 1694498815 127.0.0.1 50000 typ srflx raddr 0.0.0.0 rport 0\r\n", false},
		{"none", "v=0\r\n", false},
	}
	for _, tt := range tests {
		if err := CheckLoopbackSDP(tt.sdp); (err == nil) != tt.ok {
			t.Errorf("%s: error %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}
