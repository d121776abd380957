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

	"golang.org/x/sys/unix"

	"github.com/earshot/earshot/internal/testbed"
)

// fixture is the Opus file the publisher plays: 12 s of speech and tones
// in 20 ms packets (the recorder's own benchmark fixture).
func fixture() string {
	return filepath.Join(testbed.RepoRoot(), "record", "testdata", "speech_tones.opus")
}

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
	// gaps is why the output was not gap-free (nil: it was; always nil
	// when nothing was recorded).
	gaps error
	// pubLag is how far behind its schedule the publisher fell at worst.
	pubLag time.Duration
	// waited is the time the receiver's threads were ready to run but
	// waited for a CPU, from the warm-up to the window's end (busy), the
	// machine's share in a gap, not the receiver's.
	waited, busy time.Duration
}

// cores is the receiver's CPU use over the window, in cores.
func (r pathResult) cores() float64 { return r.cpu.Seconds() / r.wall.Seconds() }

// tracksPerCore: tracks / (CPU seconds per wall second).
func (r pathResult) tracksPerCore(tracks int) float64 {
	return float64(tracks) / r.cores()
}

// programs are the built publisher and receiver, and the CPUs each runs
// on (nil: wherever the scheduler puts it).
type programs struct {
	publisher, receiver         string
	publisherCPUs, receiverCPUs []int
}

// buildPrograms builds the publisher and the receiver into a temporary
// folder. With two or more CPUs the receiver gets one of its own and the
// publisher the others, so the receiver's capacity is one core's.
func buildPrograms(tb testing.TB) programs {
	tb.Helper()
	dir := tb.TempDir()
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./publisher", "./receiver")
	cmd.Dir = filepath.Join(testbed.RepoRoot(), "ingest", "webrtcbench")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build ./publisher ./receiver: %v\n%s", err, out)
	}
	p := programs{publisher: filepath.Join(dir, "publisher"), receiver: filepath.Join(dir, "receiver")}
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		tb.Fatalf("CPUs this test may use: %v", err)
	}
	var cpus []int
	for c := range 1024 {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	if len(cpus) >= 2 {
		p.receiverCPUs, p.publisherCPUs = cpus[len(cpus)-1:], cpus[:len(cpus)-1]
	}
	return p
}

// pinned returns the command line that runs bin on cpus (taskset from
// util-linux, so that the Go runtime starts on them and sizes GOMAXPROCS
// to them, as it would on a machine of that many cores).
func pinned(tb testing.TB, cpus []int, bin string, args ...string) (string, []string) {
	tb.Helper()
	if len(cpus) == 0 {
		return bin, args
	}
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		tb.Fatalf("taskset (Debian package util-linux) pins the benchmark's processes: %v", err)
	}
	list := make([]string, len(cpus))
	for i, c := range cpus {
		list[i] = strconv.Itoa(c)
	}
	return taskset, append([]string{"-c", strings.Join(list, ","), bin}, args...)
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
	case err, ok := <-p.done:
		if ok && err != nil {
			tb.Errorf("%s: %v\n%s", p.name, err, tail(p.stderr.String(), 30))
		}
	case <-time.After(30 * time.Second):
		tb.Errorf("%s did not exit within 30 s of SIGTERM", p.name)
	}
}

// ProcCPU returns a process's user+system CPU time, all threads, from
// /proc/<pid>/stat.
func ProcCPU(tb testing.TB, pid int) time.Duration {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatalf("CPU time of process %d: %v", pid, err)
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

// procRunDelay returns how long a process's threads have waited, ready
// to run, for a CPU (the second field of /proc/<pid>/task/<tid>/schedstat,
// summed over the threads alive now).
func procRunDelay(tb testing.TB, pid int) time.Duration {
	tb.Helper()
	stats, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(stats) == 0 {
		tb.Fatalf("scheduler statistics of the receiver: %v (no /proc/%d/task/*/schedstat)", err, pid)
	}
	var sum int64
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the thread ended
		}
		fields := strings.Fields(string(b))
		if len(fields) < 2 {
			tb.Fatalf("%s: %q", f, b)
		}
		n, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			tb.Fatalf("%s: %q", f, b)
		}
		sum += n
	}
	return time.Duration(sum)
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
// the window, closes every track and checks whether each was recorded
// without a gap. A process that fails, or tracks that do not start within
// a minute, fail tb: those are faults whatever the load; gaps are
// returned, since a load the machine cannot carry causes them too.
func runPath(tb testing.TB, prog programs, cfg pathRun) pathResult {
	tb.Helper()
	args := cfg.receiverArgs
	if cfg.discard {
		args = append([]string{"-discard"}, args...)
	}
	bin, argv := pinned(tb, prog.receiverCPUs, prog.receiver, args...)
	recv := start(tb, "receiver", bin, argv...)
	var hello struct{ URL string }
	if err := json.Unmarshal([]byte(recv.line(tb, 30*time.Second)), &hello); err != nil || !strings.HasPrefix(hello.URL, "http://127.0.0.1:") {
		tb.Fatalf("receiver: first line is not {\"url\": \"http://127.0.0.1:...\"} (%v)", err)
	}
	bin, argv = pinned(tb, prog.publisherCPUs, prog.publisher, "-url", hello.URL, "-tracks", strconv.Itoa(cfg.tracks), "-pcs", strconv.Itoa(cfg.pcs), "-opus", fixture())
	pub := start(tb, "publisher", bin, argv...)
	if l := pub.line(tb, 2*time.Minute+time.Duration(cfg.pcs)*200*time.Millisecond); l != "connected" {
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
	pid := recv.cmd.Process.Pid
	wait0, began := procRunDelay(tb, pid), time.Now()
	time.Sleep(cfg.warmup)
	cpu0, t0 := ProcCPU(tb, pid), time.Now()
	time.Sleep(cfg.window)
	cpu1, t1 := ProcCPU(tb, pid), time.Now()
	waited := procRunDelay(tb, pid) - wait0

	var rep Report
	getJSON(tb, http.MethodPost, hello.URL+"/finish", &rep)
	pub.stop(tb)
	recv.stop(tb)
	res := pathResult{cpu: cpu1 - cpu0, wall: t1.Sub(t0), report: &rep, pubLag: publisherLag(tb, pub), waited: waited, busy: t1.Sub(began)}
	tot := rep.Totals()
	if cfg.discard {
		logf(tb, "%d tracks on %d peer connections, receiver flags %q: receiver CPU %v over %v (%.3f cores), publisher lag at worst %v, waited for a CPU %v, nothing recorded",
			cfg.tracks, cfg.pcs, args, res.cpu, res.wall.Round(time.Millisecond), res.cores(), res.pubLag.Round(time.Millisecond), res.waited.Round(time.Millisecond))
		return res
	}
	logf(tb, "%d tracks on %d peer connections, receiver flags %q: receiver CPU %v over %v (%.3f cores), publisher lag at worst %v, waited for a CPU %v; %d packets, %d lost, %d late, %d duplicates, %d gap samples, %d resyncs, %d chunks, %d segments",
		cfg.tracks, cfg.pcs, args, res.cpu, res.wall.Round(time.Millisecond), res.cores(), res.pubLag.Round(time.Millisecond), res.waited.Round(time.Millisecond),
		tot.Packets, tot.Lost, tot.Late, tot.Duplicates, tot.Gaps.Total(), tot.Resyncs, tot.Chunks, tot.Segments)
	// Every track ran through the warm-up and the window at 50 packets/s.
	minPackets := int64((cfg.warmup + cfg.window).Seconds() * 50 * 0.95)
	res.gaps = rep.GapFree(cfg.tracks, minPackets)
	return res
}

// EnvInt reads a positive integer override of a benchmark parameter from
// the environment (def when unset).
func EnvInt(b testing.TB, name string, def int) int {
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

// Floor is pion's floor at one load: the receiver reading every track
// through pion (DTLS-SRTP, interceptors, the track read) and dropping it,
// the publisher sending them from pre-encoded Opus over loopback.
type Floor struct {
	Tracks, PerPeerConnection int
	// Cores is the receiver's CPU use over the window (user + system).
	Cores float64
	// TracksPerCore is Tracks / Cores.
	TracksPerCore float64
	// PublisherLag is how far behind its schedule the publisher fell at
	// worst; Waited is the time the receiver's threads waited for a CPU.
	PublisherLag, Waited time.Duration
}

// MeasureFloor measures pion's floor with tracks spread perPC to a peer
// connection, over a window after 2 s of warm-up, with the receiver and the
// publisher as the capacity benchmarks run them (separate processes, the
// receiver pinned to a CPU of its own when there are two or more). Other
// benchmarks report their figures beside it, as these do.
func MeasureFloor(tb testing.TB, tracks, perPC int, window time.Duration) Floor {
	tb.Helper()
	res := runPath(tb, buildPrograms(tb), pathRun{tracks: tracks, pcs: max(1, tracks/perPC), warmup: 2 * time.Second, window: window, discard: true})
	return Floor{Tracks: tracks, PerPeerConnection: perPC, Cores: res.cores(), TracksPerCore: res.tracksPerCore(tracks), PublisherLag: res.pubLag, Waited: res.waited}
}

// logf logs a test's details; a benchmark's go to stderr, since the
// testing package keeps only its first ten lines of log.
func logf(tb testing.TB, format string, args ...any) {
	tb.Helper()
	if _, ok := tb.(*testing.B); ok {
		fmt.Fprintf(os.Stderr, "webrtcbench: "+format+"\n", args...)
		return
	}
	tb.Logf(format, args...)
}

// publisherLag reads the line a stopped publisher printed last (stop has
// returned, so every line it wrote is queued).
func publisherLag(tb testing.TB, pub *process) time.Duration {
	tb.Helper()
	var last string
	for len(pub.lines) > 0 {
		last = <-pub.lines
	}
	var v struct {
		MaxLagMS *float64 `json:"max_lag_ms"`
	}
	if err := json.Unmarshal([]byte(last), &v); err != nil || v.MaxLagMS == nil {
		tb.Fatalf("publisher: last line %q, want {\"max_lag_ms\": ...} (%v)", last, err)
	}
	return time.Duration(*v.MaxLagMS * float64(time.Millisecond))
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
