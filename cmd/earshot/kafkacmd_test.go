package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/bustest"
	"github.com/earshot/earshot/internal/testbed"
)

// securedKafka is the test bed's broker, which must be the SASL_SSL one:
// these tests are about its listener and ACLs.
func securedKafka(t *testing.T) (testbed.KafkaEndpoint, bus.Cluster) {
	t.Helper()
	k := testbed.KafkaServer(t)
	if k.CAFile == "" {
		t.Fatal("testbed: kafka.env has no KAFKA_CA_FILE: the running broker is an older plaintext one; run testbed/kafka.sh stop && testbed/kafka.sh start")
	}
	return k, bustest.Cluster(t, k)
}

// stageCluster is the broker as stage's own principal.
func stageCluster(t *testing.T, k testbed.KafkaEndpoint, admin bus.Cluster, stage string) bus.Cluster {
	t.Helper()
	up, ok := k.Users[stage]
	if !ok || up[1] == "" {
		t.Fatalf("testbed: kafka.env has no principal for stage %s; rerun testbed/kafka.sh start", stage)
	}
	return admin.As(up[0], up[1])
}

// TestKafkaStagePrincipals: with the access table applied by `earshot
// kafka acls -apply` to topics under a fresh prefix, each stage's
// principal can write and read exactly its topics and join its consumer
// groups; every other write, read and group is refused as a permanent
// error naming the principal and the topic.
func TestKafkaStagePrincipals(t *testing.T) {
	k, admin := securedKafka(t)
	prefix := "acltest-" + randHex(t) + "."
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()

	var out, errOut bytes.Buffer
	args := append(append([]string{"kafka", "acls", "-apply", "-topic-prefix", prefix, "-set", "kafka.partitions=1"},
		testbedKafkaArgs(t, "")...), baseArgs(t)...)
	if code := Main(ctx, args, &out, &errOut); code != 0 {
		t.Fatalf("earshot kafka acls -apply: exit %d\n%s", code, errOut.String())
	}
	var topics []string
	for _, s := range event.Topics(1) {
		topics = append(topics, prefix+s.Name)
	}
	t.Cleanup(func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = bus.DeleteTopics(dctx, admin, topics...)
	})
	if !strings.Contains(out.String(), "allow User:earshot-transcribe WRITE topic literal "+prefix+event.TopicTranscripts) {
		t.Errorf("kafka acls printed no WRITE of transcripts for transcribe:\n%s", out.String())
	}

	// One record in every topic, so a read that is allowed has something
	// to fetch (an empty topic would need no fetch at all).
	adminProd := newProducer(t, admin)
	for _, tp := range topics {
		if err := adminProd.Produce(ctx, bus.Message{Topic: tp, Key: []byte("k"), Value: []byte("seed")}); err != nil {
			t.Fatalf("admin seeds %s: %v", tp, err)
		}
	}

	for _, a := range event.Access(prefix, "") {
		t.Run(a.Stage, func(t *testing.T) {
			t.Parallel()
			// Its own context: the parent's ends when the parent returns,
			// before parallel subtests run.
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
			defer cancel()
			cl := stageCluster(t, k, admin, a.Stage)
			if a.Principal != k.Users[a.Stage][0] {
				t.Fatalf("access table names %s, the test bed's user is %s", a.Principal, k.Users[a.Stage][0])
			}
			prod := newProducer(t, cl)
			for _, tp := range topics {
				err := prod.Produce(ctx, bus.Message{Topic: tp, Key: []byte("k"), Value: []byte(a.Stage)})
				checkAccess(t, err, slices.Contains(a.Writes, tp), cl.Principal(), "write to", tp)
				_, err = (bus.LogReader{Cluster: cl}).ReadTopic(ctx, tp, nil)
				checkAccess(t, err, slices.Contains(a.Reads, tp), cl.Principal(), "read", tp)
			}
			// Its own groups work; another stage's group is refused.
			for _, g := range a.Groups {
				if err := consumeOne(ctx, cl, g+"-test", a.Reads[0]); err != nil {
					t.Errorf("%s joining its group %s: %v", a.Stage, g, err)
				}
			}
			other := prefix + "earshot-policy"
			if a.Stage == "policy" {
				other = prefix + "earshot-transcribe"
			}
			err := consumeOne(ctx, cl, other+"-test", a.Reads[0])
			checkAccess(t, err, false, cl.Principal(), "join", "consumer group "+other)
		})
	}
}

// checkAccess fails the test unless err is nil when allowed, and a
// permanent refusal naming the principal, the operation and the resource
// otherwise.
func checkAccess(t *testing.T, err error, allowed bool, principal, op, resource string) {
	t.Helper()
	switch {
	case allowed && err != nil:
		t.Errorf("%s %s %s: want allowed, got %v", principal, op, resource, err)
	case !allowed && err == nil:
		t.Errorf("%s %s %s: want refused, it was allowed", principal, op, resource)
	case !allowed && (!bus.Permanent(err) || !strings.Contains(err.Error(), principal+" may not "+op) || !strings.Contains(err.Error(), resource)):
		t.Errorf("%s %s %s: want a permanent refusal naming principal, operation and resource, got (permanent %v) %v",
			principal, op, resource, bus.Permanent(err), err)
	}
}

// consumeOne joins group on topic and returns once one record arrives, or
// with the consumer's error.
func consumeOne(ctx context.Context, cl bus.Cluster, group, topic string) error {
	c, err := bus.NewConsumer(bus.ConsumerConfig{Cluster: cl, GroupID: group, Topics: []string{topic}, StartOffset: bus.FirstOffset})
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	got := make(chan struct{}, 1)
	runErr := make(chan error, 1)
	go func() {
		runErr <- c.Run(ctx, func(_ context.Context, d *bus.Delivery) {
			d.Ack()
			select {
			case got <- struct{}{}:
			default:
			}
		})
	}()
	select {
	case <-got:
		cancel()
		<-runErr
		return nil
	case err := <-runErr:
		if err == nil {
			err = errors.New("consumer stopped before a record arrived")
		}
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestKafkaRefusesUnauthenticated: the broker takes no plaintext client
// and no wrong password; a wrong password and a broker certificate that
// does not verify are permanent errors that say what to check.
func TestKafkaRefusesUnauthenticated(t *testing.T) {
	_, admin := securedKafka(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	topic := "acltest-" + randHex(t)
	if err := bus.EnsureTopics(ctx, admin, bus.TopicSpec{Name: topic, Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bus.DeleteTopics(context.Background(), admin, topic) })

	wrong := admin.As(admin.SASL.Username, "not-the-password")
	noTLS := admin
	noTLS.TLS = nil // SASL over plaintext: the listener expects TLS
	otherCA := admin
	otherCA.TLS = &tls.Config{RootCAs: x509.NewCertPool()} // trusts no CA
	cases := []struct {
		name      string
		cl        bus.Cluster
		permanent bool
		want      string
	}{
		{"plaintext", bus.Plain(admin.Brokers...), false, ""},
		{"SASL without TLS", noTLS, false, ""},
		{"wrong password", wrong, true, "User:" + admin.SASL.Username + " was not accepted"},
		{"broker certificate from an untrusted CA", otherCA, true, "certificate"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			p := newProducer(t, c.cl)
			err := p.Produce(cctx, bus.Message{Topic: topic, Value: []byte("x")})
			if err == nil {
				t.Fatal("produce: want refused")
			}
			if bus.Permanent(err) != c.permanent || !strings.Contains(err.Error(), c.want) {
				t.Errorf("produce: got (permanent %v) %v; want permanent %v with %q", bus.Permanent(err), err, c.permanent, c.want)
			}
			_, err = (bus.LogReader{Cluster: c.cl}).Offsets(cctx, topic)
			if err == nil {
				t.Error("offsets: want refused")
			}
		})
	}
	msgs, err := (bus.LogReader{Cluster: admin}).ReadTopic(ctx, topic, nil)
	if err != nil || len(msgs) != 0 {
		t.Errorf("topic holds %d record(s) (err %v); nothing refused may land", len(msgs), err)
	}
}

// TestStageCommandExitsOnKafkaLoginRefused: a stage command with a wrong
// Kafka password exits non-zero within 20 s, saying the login was refused,
// instead of retrying as it does for an unreachable broker.
func TestStageCommandExitsOnKafkaLoginRefused(t *testing.T) {
	securedKafka(t)
	settings := map[string][]string{
		"ingest":     {"-set", "ingest.janus.url=http://127.0.0.1:9/janus"},
		"transcribe": {"-set", "transcribe.url=http://127.0.0.1:9/v1"},
	}
	for _, cmd := range []string{"ingest", "transcribe", "policy", "serve", "compliance", "rebroadcast", "run"} {
		t.Run(cmd, func(t *testing.T) {
			t.Parallel()
			principal := cmd
			if cmd == "run" {
				principal = "" // every stage in one process: one principal
			}
			args := append(append([]string{cmd}, testbedKafkaArgs(t, principal)...), settings[cmd]...)
			args = append(args, "-set", "kafka.sasl.password=wrong-"+randHex(t), "-set", "kafka.create_topics=true")
			ch := startChild(t, append(args, baseArgs(t)...)...)
			code := ch.wait(t, 20*time.Second)
			if out := ch.stderr.String(); code == 0 || !strings.Contains(out, "was not accepted") {
				t.Fatalf("exit %d, want non-zero saying the login was not accepted:\n%s", code, out)
			}
		})
	}
}

func newProducer(t *testing.T, cl bus.Cluster) *bus.Producer {
	t.Helper()
	p, err := bus.NewProducer(bus.ProducerConfig{Cluster: cl, MaxAttempts: 2, MetadataTTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func randHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 5)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// TestStagesStartAsTheirPrincipals: with `earshot kafka acls -apply` run
// by the admin, each stage command started as its own principal (no
// CREATE right) gets through its start-up on the real topics (topic
// checks, consumer groups, tails, retention configs) to a healthy
// /healthz, and stops cleanly on SIGTERM.
func TestStagesStartAsTheirPrincipals(t *testing.T) {
	securedKafka(t)
	var out, errOut bytes.Buffer
	if code := Main(t.Context(), append(append([]string{"kafka", "acls", "-apply"}, testbedKafkaArgs(t, "")...), baseArgs(t)...), &out, &errOut); code != 0 {
		t.Fatalf("earshot kafka acls -apply: exit %d\n%s", code, errOut.String())
	}
	settings := map[string][]string{
		"transcribe": {"-set", "transcribe.url=http://127.0.0.1:9/v1"},
		"serve":      {"-set", "serve.listen=127.0.0.1:" + strconv.Itoa(testbed.FreePort(t))},
		// A group of its own under the stage's prefix: the archive does
		// not take over another run's offsets.
		"compliance": {"-set", "compliance.consumer_group=earshot-compliance-" + randHex(t)},
	}
	for _, stage := range []string{"transcribe", "policy", "serve", "compliance", "rebroadcast"} {
		t.Run(stage, func(t *testing.T) {
			t.Parallel()
			metrics := "127.0.0.1:" + strconv.Itoa(testbed.FreePort(t))
			args := append(append(append([]string{stage}, testbedKafkaArgs(t, stage)...), settings[stage]...), "-set", "kafka.create_topics=true")
			ch := startChild(t, append(args, append(baseArgs(t), "-set", "metrics.listen="+metrics)...)...)
			deadline := time.Now().Add(90 * time.Second)
			for {
				code, body := healthz(metrics)
				if code == http.StatusOK {
					break
				}
				select {
				case err := <-ch.done:
					t.Fatalf("exited (%v) before it was healthy; stderr:\n%s", err, ch.stderr)
				case <-time.After(300 * time.Millisecond):
				}
				if time.Now().After(deadline) {
					t.Fatalf("/healthz is %d %s after 90 s; stderr:\n%s", code, body, ch.stderr)
				}
			}
			// Consumer groups join in the background: a refused join ends
			// the stage (see the case below), so it must still run after
			// the joins had time to finish.
			select {
			case err := <-ch.done:
				t.Fatalf("exited (%v) after it was healthy; stderr:\n%s", err, ch.stderr)
			case <-time.After(8 * time.Second):
			}
			if err := ch.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if code := ch.wait(t, 45*time.Second); code != 0 {
				t.Fatalf("exit %d after SIGTERM; stderr:\n%s", code, ch.stderr)
			}
			if s := ch.stderr.String(); strings.Contains(s, "may not ") || strings.Contains(s, "Authorization") {
				t.Errorf("refused something it needs:\n%s", s)
			}
		})
	}
	// A consumer group outside the principal's ACLs: the stage exits,
	// naming the principal and the group, instead of retrying the join.
	t.Run("compliance in a group it may not use", func(t *testing.T) {
		t.Parallel()
		group := "not-earshot-" + randHex(t)
		args := append(append([]string{"compliance"}, testbedKafkaArgs(t, "compliance")...), "-set", "compliance.consumer_group="+group)
		ch := startChild(t, append(args, baseArgs(t)...)...)
		code := ch.wait(t, 60*time.Second)
		if out := ch.stderr.String(); code == 0 || !strings.Contains(out, "User:earshot-compliance may not join consumer group "+group) {
			t.Fatalf("exit %d, want non-zero naming the principal and group %s:\n%s", code, group, out)
		}
	})
}

func healthz(addr string) (int, string) {
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
