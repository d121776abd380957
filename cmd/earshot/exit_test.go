package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/internal/testbed"
)

// childArgsEnv makes the test binary run Main with these (JSON) arguments
// instead of the tests: the stage commands are checked as the child
// processes an orchestrator starts, exit code and all.
const childArgsEnv = "EARSHOT_TEST_CHILD_ARGS"

func TestMain(m *testing.M) {
	if a := os.Getenv(childArgsEnv); a != "" {
		var args []string
		if err := json.Unmarshal([]byte(a), &args); err != nil {
			fmt.Fprintln(os.Stderr, "bad", childArgsEnv, err)
			os.Exit(3)
		}
		os.Exit(Main(context.Background(), args, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// child is an earshot command running as its own process.
type child struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	done   chan error
}

func startChild(t *testing.T, args ...string) *child {
	t.Helper()
	a, _ := json.Marshal(args)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childArgsEnv+"="+string(a))
	c := &child{cmd: cmd, stderr: &bytes.Buffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = io.Discard, &lockedWriter{b: c.stderr}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-c.done
		}
	})
	return c
}

// wait returns the exit code, or fails the test when the process is still
// running after d (the hang this guards against).
func (c *child) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case err := <-c.done:
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return c.cmd.ProcessState.ExitCode()
	case <-time.After(d):
		// SIGQUIT makes the Go runtime print every goroutine: the failure
		// then shows where it hangs.
		_ = c.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.done
		}
		t.Fatalf("still running %s after it should have exited (a hang)\nstderr:\n%s", d, c.stderr)
		return -1
	}
}

// lockedWriter lets the test read stderr only after the process ended;
// exec copies into it from its own goroutine.
type lockedWriter struct{ b *bytes.Buffer }

func (w *lockedWriter) Write(p []byte) (int, error) { return w.b.Write(p) }

// baseArgs are settings every child shares: its own data folder, no
// metrics listener unless a case sets one.
func baseArgs(t *testing.T) []string {
	return []string{"-data-dir", t.TempDir(), "-set", "metrics.listen=", "-set", "log.level=warn"}
}

// TestStageCommandsExitOnPermanentStartError: a stage command that cannot
// start exits non-zero within 10 s, saying why, instead of hanging half
// up. The refusals are the kinds no retry changes: a topic the cluster
// will not create as asked, a broken policy file, a listen address in
// use, a spool that cannot be opened.
func TestStageCommandsExitOnPermanentStartError(t *testing.T) {
	dir := t.TempDir()
	badPolicy := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(badPolicy, []byte("rules: [this is not a rule\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	notADir := filepath.Join(dir, "spool-is-a-file")
	if err := os.WriteFile(notADir, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { taken.Close() }) // after the parallel subtests

	type tc struct {
		name string
		args []string
		want string // in stderr
	}
	cases := []tc{
		{"policy/bad policy file", []string{"policy", "-set", "policy.file=" + badPolicy}, "policy"},
		{"serve/listen address in use", []string{"serve", "-set", "serve.listen=" + taken.Addr().String()}, taken.Addr().String()},
		{"ingest/spool cannot be opened", []string{"ingest", "-set", "ingest.janus.url=http://127.0.0.1:9/janus", "-set", "ingest.spool_dir=" + notADir}, "spool"},
	}
	// The real broker refuses topics with more replicas than it has
	// brokers: the same refusal for every stage command.
	kafkaArgs := testbedKafkaArgs(t, "")
	stageSettings := map[string][]string{
		"ingest":     {"-set", "ingest.janus.url=http://127.0.0.1:9/janus"},
		"transcribe": {"-set", "transcribe.url=http://127.0.0.1:9/v1"},
	}
	for _, cmd := range []string{"ingest", "transcribe", "policy", "serve", "compliance", "run"} {
		cases = append(cases, tc{cmd + "/topics short of replicas", append(append([]string{cmd,
			"-set", "kafka.replication_factor=3", "-set", "kafka.create_topics=true"}, kafkaArgs...), stageSettings[cmd]...), "replication"})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ch := startChild(t, append(c.args, baseArgs(t)...)...)
			code := ch.wait(t, 10*time.Second)
			out := ch.stderr.String()
			if code == 0 || !strings.Contains(strings.ToLower(out), strings.ToLower(c.want)) {
				t.Fatalf("exit %d, want non-zero with %q in stderr:\n%s", code, c.want, out)
			}
		})
	}
}

// testbedKafkaArgs are the -set flags that point a command at the test
// bed's broker: TLS with its CA, and SCRAM as stage's principal (the admin
// when stage is empty).
func testbedKafkaArgs(t *testing.T, stage string) []string {
	t.Helper()
	k := testbed.KafkaServer(t)
	args := []string{"-set", "kafka.embedded=false", "-set", "kafka.brokers=" + strings.Join(k.Brokers, ",")}
	if k.CAFile == "" {
		return args
	}
	user, pw := k.AdminUser, k.AdminPassword
	if stage != "" {
		up, ok := k.Users[stage]
		if !ok {
			t.Fatalf("testbed: kafka.env has no user for stage %s; rerun testbed/kafka.sh start", stage)
		}
		user, pw = up[0], up[1]
	}
	return append(args, "-set", "kafka.tls.enabled=true", "-set", "kafka.tls.ca_file="+k.CAFile,
		"-set", "kafka.sasl.mechanism=SCRAM-SHA-512", "-set", "kafka.sasl.username="+user, "-set", "kafka.sasl.password="+pw)
}

// TestStageCommandWaitsForUnreachableBroker: a broker that cannot be
// reached is not a reason to exit: the command retries with backoff,
// /healthz says what it waits for, and it starts once the broker is up.
func TestStageCommandWaitsForUnreachableBroker(t *testing.T) {
	kport, mport := testbed.FreePort(t), testbed.FreePort(t)
	metrics := "127.0.0.1:" + strconv.Itoa(mport)
	ch := startChild(t, append([]string{"policy",
		"-set", "kafka.embedded=false", "-set", "kafka.brokers=127.0.0.1:" + strconv.Itoa(kport)},
		append(baseArgs(t), "-set", "metrics.listen="+metrics)...)...)

	health := func() (int, string) {
		resp, err := http.Get("http://" + metrics + "/healthz")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitHealth := func(want int, contains string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			code, body := health()
			if code == want && strings.Contains(body, contains) {
				return
			}
			select {
			case err := <-ch.done:
				t.Fatalf("exited (%v) while waiting for /healthz %d %q; stderr:\n%s", err, want, contains, ch.stderr)
			case <-time.After(200 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("/healthz is %d %s, want %d with %q", code, body, want, contains)
			}
		}
	}
	waitHealth(http.StatusServiceUnavailable, `"kafka"`)

	// The broker comes up where the command was told to look.
	emb, err := bus.NewEmbedded(t.Context(), bus.EmbeddedConfig{Port: kport})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	waitHealth(http.StatusOK, `"ok"`)

	// And SIGTERM still ends it cleanly.
	if err := ch.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := ch.wait(t, 40*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM; stderr:\n%s", code, ch.stderr)
	}
}
