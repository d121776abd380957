// Package e2etest runs the `whisper`-tagged Earshot (whisper.cpp in
// process) end to end on the test bed: `earshot-whisper run`, built by
// testbed/whisper-sid.sh in the Debian sid root and run there (a chroot
// shares the host's network, so it reaches Janus at 10.77.0.2 and
// loopback), records speaker bots that the test starts from the host in a
// real Janus VideoRoom (rooms 1960-1969 belong to this package), on the
// embedded broker and a local store as `earshot run` defaults, with
// transcribe.engine: whisper and the converted tiny.en. No HTTP engine is
// configured. Real time: make test runs it with the other real-time
// packages, one at a time; it needs root (chroot, mount).
package e2etest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/e2e"
	"github.com/earshot/earshot/internal/speech"
	"github.com/earshot/earshot/internal/testbed"
	"github.com/earshot/earshot/transcribe"
)

// sidModel is the converted tiny.en as the root sees it
// (testbed/whisper-sid.sh model).
const sidModel = "/out/ggml-tiny.en.bin"

// sidRun is one staged build of the tagged binaries and at most one
// `earshot-whisper run` of them in the sid root.
type sidRun struct {
	t      testing.TB
	script string // testbed/whisper-sid.sh
	dir    string // this run's folder on the host, under <state>/whisper-sid
	root   string // the same folder as the root sees it, under /out

	cmd     *exec.Cmd
	logs    testbed.SyncBuffer // earshot's stdout and stderr
	done    chan error
	exited  bool
	brokers bus.Cluster // the embedded broker, once started
}

// newSidRun stages this run's own copy of the tagged binaries (building
// them first when the sources changed); the folder goes when the test ends.
func newSidRun(t testing.TB) *sidRun {
	t.Helper()
	if !testbed.Enabled() {
		t.Skip("real-time end-to-end test of the whisper engine: run with EARSHOT_TESTBED=1 under flock /tmp/earshot-realtime.lock")
	}
	testbed.RequireRoot(t, "run testbed/whisper-sid.sh (chroot, mount)")
	for _, c := range []string{testbed.Janus, testbed.Speech} {
		testbed.Require(t, c)
	}
	out := filepath.Join(testbed.Dir(), "whisper-sid")
	name := "e2e-" + e2e.RandHex(6)
	r := &sidRun{t: t, script: filepath.Join(testbed.RepoRoot(), "testbed", "whisper-sid.sh"),
		dir: filepath.Join(out, name), root: "/out/" + name}
	t.Cleanup(r.close)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Minute)
	defer cancel()
	t0 := time.Now()
	if b, err := r.scriptCmd(ctx, "stage", r.dir).CombinedOutput(); err != nil {
		t.Fatalf("whisper-sid.sh stage: %v\n%s", err, b)
	}
	t.Logf("staged the whisper-tagged binaries in %.1fs", time.Since(t0).Seconds())
	return r
}

// scriptCmd is testbed/whisper-sid.sh with args; its children go with it
// when ctx ends.
func (r *sidRun) scriptCmd(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "bash", append([]string{r.script}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// offline transcribes each WAV file of wavs (name -> 16 kHz mono PCM) with
// the staged whispercpp.test (TestTranscribeFolder: the engine the live
// worker uses, called the same way) and returns name -> text.
func (r *sidRun) offline(wavs map[string][]int16) map[string]string {
	r.t.Helper()
	dir := filepath.Join(r.dir, "offline")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		r.t.Fatal(err)
	}
	for name, s := range wavs {
		if err := os.WriteFile(filepath.Join(dir, name), e2e.WAVBytes(s, transcribe.AudioRate), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(r.t.Context(), 10*time.Minute)
	defer cancel()
	out, err := r.scriptCmd(ctx, "exec", "env", "EARSHOT_WHISPER_MODEL="+sidModel, "EARSHOT_WHISPER_FOLDER="+r.root+"/offline",
		r.root+"/whispercpp.test", "-test.run", "^TestTranscribeFolder$", "-test.v", "-test.count=1").CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS: TestTranscribeFolder")) {
		r.t.Fatalf("offline transcription in the sid root: %v\n%s", err, out)
	}
	// TestTranscribeFolder's output file.
	b, err := os.ReadFile(filepath.Join(dir, "transcripts.json"))
	if err != nil {
		r.t.Fatal(err)
	}
	texts := map[string]string{}
	if err := json.Unmarshal(b, &texts); err != nil {
		r.t.Fatal(err)
	}
	if len(texts) != len(wavs) {
		r.t.Fatalf("offline transcription: %d texts for %d files", len(texts), len(wavs))
	}
	return texts
}

// config writes the run's configuration: `earshot run`'s embedded
// defaults (in-memory broker, local store under the run's folder), the
// ingest on the test bed's Janus for one room, and the whisper engine on
// the converted tiny.en; nothing points at an HTTP engine. It returns the
// configuration's path in the root.
func (r *sidRun) config(room uint64) string {
	r.t.Helper()
	janus := testbed.JanusServer(r.t)
	cfg := fmt.Sprintf(`# testbed whisper e2e: embedded broker and local store, whisper.cpp in process
data_dir: %s/data
log: {level: info, format: json}
metrics: {listen: "127.0.0.1:0"}
serve: {listen: "127.0.0.1:0"}
ingest:
  janus: {url: %q, interface: %q}
  rooms: {mode: list, list: ["%d"]}
transcribe: {engine: whisper, model_path: %q, threads: 2, language: en}
`, r.root, janus.URL, janus.HostIface, room, sidModel)
	if err := os.WriteFile(filepath.Join(r.dir, "earshot.yaml"), []byte(cfg), 0o644); err != nil {
		r.t.Fatal(err)
	}
	return r.root + "/earshot.yaml"
}

// effectiveTranscribe is the transcribe section of `earshot-whisper config
// show` for the configuration at path (in the root): what the binary will
// run with, defaults and environment applied.
func (r *sidRun) effectiveTranscribe(path string) (engine, url, modelPath string) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(r.t.Context(), time.Minute)
	defer cancel()
	cmd := r.scriptCmd(ctx, "exec", r.root+"/earshot-whisper", "config", "show", "-config", path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		r.t.Fatalf("earshot-whisper config show: %v\n%s", err, stderr.Bytes())
	}
	var c struct {
		Transcribe struct {
			Engine    string `yaml:"engine"`
			URL       string `yaml:"url"`
			ModelPath string `yaml:"model_path"`
		} `yaml:"transcribe"`
	}
	if err := yaml.Unmarshal(out, &c); err != nil {
		r.t.Fatalf("config show: %v\n%s", err, out)
	}
	return c.Transcribe.Engine, c.Transcribe.URL, c.Transcribe.ModelPath
}

// start runs `earshot-whisper run` with the configuration at path (in the
// root) and waits until the embedded broker is up.
func (r *sidRun) start(path string) {
	r.t.Helper()
	// whisper-sid.sh exec replaces itself with the binary: r.cmd.Process is
	// earshot, and SIGTERM reaches it as it would under a service manager.
	r.cmd = r.scriptCmd(context.Background(), "exec", r.root+"/earshot-whisper", "run", "-config", path,
		"-summary", r.root+"/summary.txt")
	r.cmd.Stdout, r.cmd.Stderr = &r.logs, &r.logs
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.done = make(chan error, 1)
	go func() { r.done <- r.cmd.Wait() }()
	r.t.Cleanup(func() {
		if r.t.Failed() {
			r.t.Logf("earshot-whisper log (last 60 lines):\n%s", e2e.Tail(r.logs.String(), 60))
		}
	})
	var addr string
	r.waitLog("the embedded broker", 2*time.Minute, func(rec logRecord) bool {
		if strings.Contains(rec.Msg, "embedded Kafka-protocol broker") {
			addr, _ = rec.Attrs["addr"].(string)
		}
		return addr != ""
	})
	r.brokers = bus.Plain(addr)
}

// logRecord is one line of earshot's JSON log.
type logRecord struct {
	Msg   string
	Attrs map[string]any
}

// records parses the log so far (lines that are not JSON are skipped:
// whisper.cpp's own lines, say).
func (r *sidRun) records() []logRecord {
	var out []logRecord
	sc := bufio.NewScanner(bytes.NewReader(r.logs.Bytes()))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue
		}
		msg, _ := m["msg"].(string)
		out = append(out, logRecord{Msg: msg, Attrs: m})
	}
	return out
}

// waitLog waits until some log record satisfies cond, failing the test
// when earshot exits first or within passes.
func (r *sidRun) waitLog(what string, within time.Duration, cond func(logRecord) bool) {
	r.t.Helper()
	deadline := time.Now().Add(within)
	for {
		for _, rec := range r.records() {
			if cond(rec) {
				return
			}
		}
		select {
		case err := <-r.done:
			r.exited = true
			r.t.Fatalf("earshot-whisper exited (%v) before %s", err, what)
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%s: not within %s", what, within)
		}
	}
}

// transcripts reads the transcript events so far from the embedded
// broker, deduplicated by event ID, with each record's timestamp.
func (r *sidRun) transcripts() []transcript {
	r.t.Helper()
	evs, recs := e2e.Events(r.t, r.brokers, event.TopicTranscripts)
	seen := map[string]bool{}
	var out []transcript
	for i, e := range evs {
		if seen[e.EventID] {
			continue
		}
		seen[e.EventID] = true
		out = append(out, transcript{e: e, produced: recs[i].Time})
	}
	return out
}

// transcript is one transcript event (sealed: the test reads its
// timeline, speaker and pass, never its text) and when it was produced.
type transcript struct {
	e        *event.Envelope
	produced time.Time
}

// pass is the revision a transcript belongs to: live, settled or final.
func (tr transcript) pass() string {
	switch {
	case tr.e.Processing.IsFinalPass():
		return event.PassFinal
	case tr.e.Processing.Options["pass"] == event.PassSettled:
		return event.PassSettled
	case !tr.e.Processing.IsSecondPass():
		return "live"
	}
	return "other"
}

// metrics reads the named samples (summed over labels) from the running
// earshot's metrics endpoint, for the log.
func (r *sidRun) metrics(names ...string) []float64 {
	r.t.Helper()
	var addr string
	for _, rec := range r.records() {
		if rec.Msg == "metrics endpoint" {
			addr, _ = rec.Attrs["addr"].(string)
		}
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		r.t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		r.t.Fatalf("metrics: %v", err)
	}
	out := make([]float64, len(names))
	for _, line := range strings.Split(string(body), "\n") {
		name, val, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		name, _, _ = strings.Cut(name, "{")
		if i := slices.Index(names, name); i >= 0 {
			if v, err := strconv.ParseFloat(strings.Fields(val)[0], 64); err == nil {
				out[i] += v
			}
		}
	}
	return out
}

// stop sends SIGTERM (stop intake, flush, upload), waits for a clean exit
// and returns the run's summary figures (`earshot run -summary`).
func (r *sidRun) stop() map[string]int64 {
	r.t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		r.t.Fatalf("SIGTERM earshot-whisper: %v", err)
	}
	select {
	case err := <-r.done:
		r.exited = true
		if err != nil {
			r.t.Fatalf("earshot-whisper run: %v", err)
		}
	case <-time.After(2 * time.Minute):
		r.t.Fatal("earshot-whisper did not stop within 2 minutes of SIGTERM")
	}
	b, err := os.ReadFile(filepath.Join(r.dir, "summary.txt"))
	if err != nil {
		r.t.Fatal(err)
	}
	fig := map[string]int64{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		k, v, ok := strings.Cut(line, "=")
		n, err := strconv.ParseInt(v, 10, 64)
		if !ok || err != nil {
			r.t.Fatalf("summary line %q is not name=integer", line)
		}
		fig[k] = n
	}
	return fig
}

// close ends the run if the test did not stop it and removes its folder.
func (r *sidRun) close() {
	r.kill()
	_ = os.RemoveAll(r.dir)
}

// kill ends a run the test did not stop.
func (r *sidRun) kill() {
	if r.cmd == nil || r.exited {
		return
	}
	_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
	}
	r.exited = true
}

// clipLines renders each speaker's part and cuts, from the same decoded
// audio the bot publishes, each spoken line with pad around it, as 16 kHz
// PCM keyed "<speaker>-<nn>.wav".
func clipLines(t testing.TB, clips map[string]speech.Clip, pad time.Duration) map[string][]int16 {
	t.Helper()
	tools := e2e.SpeechTools(t)
	out := map[string][]int16{}
	for who, c := range clips {
		wav := filepath.Join(t.TempDir(), who+".wav")
		// opusdec resamples to 16 kHz, the rate the engine works at.
		if b, err := exec.CommandContext(t.Context(), tools.Opusdec, "--quiet", "--rate", "16000", c.Path, wav).CombinedOutput(); err != nil {
			t.Fatalf("opusdec: %v\n%s", err, b)
		}
		pcm, err := speech.ReadWAVFile(wav)
		if err != nil {
			t.Fatal(err)
		}
		if pcm.Rate != transcribe.AudioRate || pcm.Channels != 1 {
			t.Fatalf("%s: %d Hz × %d, want 16 kHz mono", wav, pcm.Rate, pcm.Channels)
		}
		n := 0
		for _, cue := range c.Cues {
			if cue.Kind != speech.KindSpeech {
				continue
			}
			at := func(ms int64) int {
				return max(0, min(len(pcm.Samples), int(ms*int64(transcribe.AudioRate)/1000)))
			}
			from, to := at(cue.StartMS-pad.Milliseconds()), at(cue.EndMS+pad.Milliseconds())
			out[fmt.Sprintf("%s-%02d.wav", who, n)] = pcm.Samples[from:to]
			n++
		}
	}
	return out
}
