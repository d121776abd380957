// Package testbed gives tests the endpoints of the real components that the
// scripts under testbed/ start (Janus, Kafka, versitygw, the Whisper fixture,
// speech tools).
//
// Each start script writes <Dir()>/<component>.env with KEY=VALUE lines once
// the component is ready; tests read those files instead of hard-coding ports.
// With EARSHOT_TESTBED=1 (set by `make test`) a missing component fails the
// test with the script to run; without it the test is skipped and says why.
package testbed

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Component names, as used by testbed/<name>.sh and <Dir()>/<name>.env.
const (
	Janus   = "janus"
	Kafka   = "kafka"
	S3      = "s3"
	Whisper = "whisper"
	Speech  = "speech"
	Icecast = "icecast"
)

// Enabled reports whether the run requires the real test bed
// (EARSHOT_TESTBED=1): then a missing component is a failure, not a skip.
func Enabled() bool { return os.Getenv("EARSHOT_TESTBED") == "1" }

// Dir is the test bed's state folder: EARSHOT_TESTBED_DIR, or out/testbed at
// the module root.
func Dir() string {
	if d := os.Getenv("EARSHOT_TESTBED_DIR"); d != "" {
		return d
	}
	return filepath.Join(RepoRoot(), "out", "testbed")
}

// RepoRoot returns the module root (the nearest folder with go.mod above the
// working directory), so tests in any package find scripts and testdata.
func RepoRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return "."
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
}

// ReadEnv parses <Dir()>/<component>.env. It returns an error when the
// component has not been started.
func ReadEnv(component string) (map[string]string, error) {
	path := filepath.Join(Dir(), component+".env")
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("testbed: %s is not running (%w)", component, err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("testbed: %s: malformed line %q", path, line)
		}
		env[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"'`)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("testbed: read %s: %w", path, err)
	}
	return env, nil
}

// Require returns the component's environment, or ends the test: a failure
// under EARSHOT_TESTBED=1, a skip (with the reason) otherwise.
func Require(tb testing.TB, component string) map[string]string {
	tb.Helper()
	env, err := ReadEnv(component)
	if err != nil {
		missing(tb, component, err)
	}
	return env
}

// Get returns key from the component's environment, failing the test when it
// is absent (a start script that wrote a partial file is a bug).
func Get(tb testing.TB, component, key string) string {
	tb.Helper()
	env := Require(tb, component)
	v, ok := env[key]
	if !ok || v == "" {
		tb.Fatalf("testbed: %s.env has no %s; rerun testbed/%s.sh start", component, key, component)
	}
	return v
}

func missing(tb testing.TB, component string, err error) {
	tb.Helper()
	msg := fmt.Sprintf("%v: run `testbed/%s.sh install && testbed/%s.sh start` (or `make testbed-up`)", err, component, component)
	if Enabled() {
		tb.Fatal(msg)
	}
	tb.Skip("integration test not run: " + msg + "; set EARSHOT_TESTBED=1 to make this a failure")
}

// KafkaEndpoint is the test bed's Kafka broker as kafka.env describes it:
// a SASL_SSL listener (SCRAM-SHA-512, certificates from the test bed's own
// CA) with ACLs, an admin super user, and one user per stage principal.
// This package does not import bus (bus's own tests use it);
// bustest.Kafka turns it into a bus.Cluster.
type KafkaEndpoint struct {
	Brokers []string
	// CAFile is the PEM CA the broker's certificate chains to; empty when
	// the broker is a plaintext one (an older test bed).
	CAFile string
	// AdminUser and AdminPassword are the super user's SCRAM credentials.
	AdminUser, AdminPassword string
	// Users maps each stage (event.Stages) to its SCRAM user and password.
	Users map[string][2]string
}

// KafkaServer returns the running Kafka broker's endpoint.
func KafkaServer(tb testing.TB) KafkaEndpoint {
	tb.Helper()
	e, err := kafkaEndpoint(Require(tb, Kafka))
	if err != nil {
		tb.Fatalf("testbed: %s.env: %v; rerun testbed/kafka.sh start", Kafka, err)
	}
	return e
}

// kafkaEndpoint reads kafka.env's keys (kafka-cluster.env carries them
// too): KAFKA_BROKERS, and with KAFKA_CA_FILE the admin's and the stage
// principals' SCRAM logins.
func kafkaEndpoint(env map[string]string) (KafkaEndpoint, error) {
	if env["KAFKA_BROKERS"] == "" {
		return KafkaEndpoint{}, fmt.Errorf("no KAFKA_BROKERS")
	}
	e := KafkaEndpoint{Brokers: strings.Split(env["KAFKA_BROKERS"], ","), CAFile: env["KAFKA_CA_FILE"], Users: map[string][2]string{}}
	if e.CAFile == "" {
		return e, nil
	}
	e.AdminUser, e.AdminPassword = env["KAFKA_ADMIN_USER"], env["KAFKA_ADMIN_PASSWORD"]
	if e.AdminUser == "" || e.AdminPassword == "" {
		return KafkaEndpoint{}, fmt.Errorf("KAFKA_CA_FILE without KAFKA_ADMIN_USER and KAFKA_ADMIN_PASSWORD")
	}
	for k, v := range env {
		if stage, ok := strings.CutPrefix(k, "KAFKA_USER_"); ok {
			pw := env["KAFKA_PASSWORD_"+stage]
			if v == "" || pw == "" {
				return KafkaEndpoint{}, fmt.Errorf("%s without a user or KAFKA_PASSWORD_%s", k, stage)
			}
			e.Users[strings.ToLower(stage)] = [2]string{v, pw}
		}
	}
	return e, nil
}

// S3Endpoint describes the versitygw server.
type S3Endpoint struct {
	Endpoint  string // host:port, plain HTTP
	AccessKey string
	SecretKey string
	Region    string
}

// S3Server returns the running versitygw endpoint.
func S3Server(tb testing.TB) S3Endpoint {
	tb.Helper()
	return S3Endpoint{
		Endpoint:  Get(tb, S3, "S3_ENDPOINT"),
		AccessKey: Get(tb, S3, "S3_ACCESS_KEY"),
		SecretKey: Get(tb, S3, "S3_SECRET_KEY"),
		Region:    Get(tb, S3, "S3_REGION"),
	}
}

// WhisperURL returns the base URL of the OpenAI-compatible Whisper fixture
// (POST <url>/v1/audio/transcriptions).
func WhisperURL(tb testing.TB) string {
	tb.Helper()
	return Get(tb, Whisper, "WHISPER_URL")
}

// JanusEndpoint describes Janus running in its network namespace.
type JanusEndpoint struct {
	URL       string // HTTP API base, e.g. http://10.77.0.2:8088/janus
	HostIface string // the veth on the host side: bots bind ICE to it
	HostAddr  string // the host side's address on that veth
	NSAddr    string // Janus's address inside the namespace
	Netns     string // the namespace's name (for ip netns exec)
}

// JanusServer returns the running Janus endpoint.
func JanusServer(tb testing.TB) JanusEndpoint {
	tb.Helper()
	return JanusEndpoint{
		URL:       Get(tb, Janus, "JANUS_URL"),
		HostIface: Get(tb, Janus, "JANUS_HOST_IFACE"),
		HostAddr:  Get(tb, Janus, "JANUS_HOST_ADDR"),
		NSAddr:    Get(tb, Janus, "JANUS_NS_ADDR"),
		Netns:     Get(tb, Janus, "JANUS_NETNS"),
	}
}
