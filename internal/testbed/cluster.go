package testbed

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// KafkaClusterComponent names the three-node Kafka cluster that
// `testbed/kafka.sh start --cluster` starts beside the single broker, and
// its env file.
const KafkaClusterComponent = "kafka-cluster"

// ClusterAsked reports whether the run asked for the Kafka cluster
// (EARSHOT_KAFKA_CLUSTER=1, set by `make cluster-test` and `make bench`,
// which start it). `make test` does not start it: its tests that need the
// cluster skip there and say where they run.
func ClusterAsked() bool { return os.Getenv("EARSHOT_KAFKA_CLUSTER") == "1" }

// Cluster is the running three-node Kafka cluster: KRaft nodes that are
// broker and controller each, default.replication.factor=3,
// min.insync.replicas=2, secured as the single broker is (SASL_SSL with the
// test bed's CA, SCRAM users, ACLs). A fault test kills one node and
// starts it again.
type Cluster struct {
	// Endpoint is how clients reach the cluster: every node's address,
	// the CA, the admin's and the stage principals' logins.
	Endpoint KafkaEndpoint
	// Brokers are the bootstrap addresses of every node.
	Brokers []string
	// Nodes maps each node's Kafka node.id to its broker address.
	Nodes map[int]string
	// script is testbed/kafka.sh.
	script string
}

// KafkaCluster returns the running cluster, or ends the test: a skip
// without EARSHOT_TESTBED=1 or when the run did not ask for the cluster
// (ClusterAsked), a failure when it did and the cluster is not running.
func KafkaCluster(tb testing.TB) *Cluster {
	tb.Helper()
	if !Enabled() {
		tb.Skip("needs the test bed's Kafka cluster: run `make cluster-test` (EARSHOT_TESTBED=1 EARSHOT_KAFKA_CLUSTER=1 after `testbed/kafka.sh start --cluster`)")
	}
	if !ClusterAsked() {
		tb.Skip("needs the Kafka cluster, which `make test` does not start: it runs in `make cluster-test` and `make bench` (EARSHOT_KAFKA_CLUSTER=1)")
	}
	env, err := ReadEnv(KafkaClusterComponent)
	if err != nil {
		tb.Fatalf("%v: run `testbed/kafka.sh start --cluster` (EARSHOT_KAFKA_CLUSTER=1 asks for it)", err)
	}
	c, err := parseCluster(env)
	if err != nil {
		tb.Fatalf("testbed: %s.env: %v; rerun testbed/kafka.sh start --cluster", KafkaClusterComponent, err)
	}
	c.script = filepath.Join(RepoRoot(), "testbed", "kafka.sh")
	return c
}

// parseCluster reads KAFKA_CLUSTER_BROKERS, KAFKA_CLUSTER_NODE_<id> and
// the endpoint keys kafka.env has too. A cluster without TLS and SCRAM
// (an older plaintext one) is refused: cluster mode has no plaintext path.
func parseCluster(env map[string]string) (*Cluster, error) {
	e, err := kafkaEndpoint(env)
	if err != nil {
		return nil, err
	}
	if e.CAFile == "" {
		return nil, fmt.Errorf("no KAFKA_CA_FILE: a plaintext cluster from an older test bed; run testbed/kafka.sh stop --cluster, then start --cluster")
	}
	c := &Cluster{Endpoint: e, Nodes: map[int]string{}}
	for k, v := range env {
		id, ok := strings.CutPrefix(k, "KAFKA_CLUSTER_NODE_")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(id)
		if err != nil || n < 0 || v == "" {
			return nil, fmt.Errorf("bad node entry %s=%q", k, v)
		}
		c.Nodes[n] = v
	}
	if b := env["KAFKA_CLUSTER_BROKERS"]; b != "" {
		c.Brokers = strings.Split(b, ",")
	}
	if len(c.Brokers) == 0 || len(c.Nodes) == 0 {
		return nil, fmt.Errorf("no KAFKA_CLUSTER_BROKERS or KAFKA_CLUSTER_NODE_<id> entries")
	}
	if strings.Join(c.Brokers, ",") != env["KAFKA_BROKERS"] {
		return nil, fmt.Errorf("KAFKA_BROKERS %s is not KAFKA_CLUSTER_BROKERS %s", env["KAFKA_BROKERS"], env["KAFKA_CLUSTER_BROKERS"])
	}
	for n, addr := range c.Nodes {
		found := false
		for _, b := range c.Brokers {
			found = found || b == addr
		}
		if !found {
			return nil, fmt.Errorf("node %d at %s is not among the brokers %s", n, addr, env["KAFKA_CLUSTER_BROKERS"])
		}
	}
	return c, nil
}

// Node returns the node.id of the broker at addr (host:port, as the
// cluster's metadata advertises it).
func (c *Cluster) Node(addr string) (int, bool) {
	for n, a := range c.Nodes {
		if a == addr {
			return n, true
		}
	}
	return 0, false
}

// Kill ends node with SIGKILL, as a crash would: no controlled shutdown,
// no leadership handed over.
func (c *Cluster) Kill(ctx context.Context, node int) error { return c.run(ctx, "kill", node) }

// Start starts node again and returns once the cluster lists it.
func (c *Cluster) Start(ctx context.Context, node int) error { return c.run(ctx, "start", node) }

// Pid returns the process ID of node, or 0 when it is not running (as
// the start script recorded it).
func (c *Cluster) Pid(node int) int {
	b, err := os.ReadFile(filepath.Join(Dir(), fmt.Sprintf("%s-%d.pid", KafkaClusterComponent, node)))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	pid, _ := strconv.Atoi(f[0])
	if pid <= 0 {
		return 0
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
		return 0
	}
	return pid
}

func (c *Cluster) run(ctx context.Context, verb string, node int) error {
	if _, ok := c.Nodes[node]; !ok {
		return fmt.Errorf("testbed: kafka cluster has no node %d", node)
	}
	cmd := exec.CommandContext(ctx, "bash", c.script, verb, "--cluster", strconv.Itoa(node))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("testbed: kafka.sh %s --cluster %d: %w\n%s", verb, node, err, out)
	}
	return nil
}
