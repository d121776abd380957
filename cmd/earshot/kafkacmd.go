package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/config"
)

// kafkaCluster is how this process reaches the configured brokers: with
// kafka.tls and kafka.sasl when set.
func kafkaCluster(k config.Kafka) (bus.Cluster, error) {
	c := bus.Plain(k.Brokers...)
	if k.TLS.Enabled {
		t, err := bus.LoadTLS(k.TLS.CAFile, k.TLS.CertFile, k.TLS.KeyFile, k.TLS.ServerName)
		if err != nil {
			return c, fmt.Errorf("kafka.tls: %w", err)
		}
		c.TLS = t
	}
	if k.SASL.Mechanism != "" {
		pw := k.SASL.Password.Reveal()
		if k.SASL.PasswordFile != "" {
			b, err := os.ReadFile(k.SASL.PasswordFile)
			if err != nil {
				return c, fmt.Errorf("kafka.sasl.password_file: %w", err)
			}
			pw = strings.TrimSpace(string(b))
			if pw == "" {
				return c, fmt.Errorf("kafka.sasl.password_file %s is empty", k.SASL.PasswordFile)
			}
		}
		c = c.As(k.SASL.Username, pw)
	}
	return c, nil
}

// stageACLs is the access table (event.Access) as ACLs: per stage
// principal, read and write on its topics, read on its consumer groups,
// describe on every Earshot topic, and topic configs for the retention
// sweeper. Topic and group names carry prefix (empty in a deployment).
func stageACLs(prefix, complianceGroup string) []bus.ACL {
	var out []bus.ACL
	for _, a := range event.Access(prefix, complianceGroup) {
		p := "User:" + a.Principal
		out = append(out, bus.ACL{Principal: p, Name: event.TopicPrefix(prefix), Prefixed: true, Operation: bus.OpDescribe})
		for _, t := range a.Reads {
			out = append(out, bus.ACL{Principal: p, Name: t, Operation: bus.OpRead})
		}
		for _, t := range a.Writes {
			out = append(out, bus.ACL{Principal: p, Name: t, Operation: bus.OpWrite})
		}
		for _, g := range a.Groups {
			out = append(out, bus.ACL{Principal: p, Group: true, Name: g, Prefixed: true, Operation: bus.OpRead})
		}
		for _, t := range a.Configs {
			out = append(out, bus.ACL{Principal: p, Name: t, Operation: bus.OpDescribeConfigs},
				bus.ACL{Principal: p, Name: t, Operation: bus.OpAlterConfigs})
		}
		if a.TopicConfigs {
			out = append(out,
				bus.ACL{Principal: p, Name: event.TopicPrefix(prefix), Prefixed: true, Operation: bus.OpDescribeConfigs},
				bus.ACL{Principal: p, Name: event.TopicPrefix(prefix), Prefixed: true, Operation: bus.OpAlterConfigs})
		}
	}
	return out
}

// runKafka is `earshot kafka acls [-apply]`: print the stage principals'
// ACLs, or (with -apply, run as the cluster's admin principal) create
// Earshot's topics and add the ACLs.
func runKafka(ctx context.Context, e *env) error {
	if len(e.args) == 0 || e.args[0] != "acls" {
		return usageError{errors.New("usage: earshot kafka acls [-apply] [-topic-prefix P]")}
	}
	e.args = e.args[1:]
	var apply bool
	var prefix string
	cfg, _, err := e.loadConfig("kafka acls", func(fs *flag.FlagSet) {
		fs.BoolVar(&apply, "apply", false, "create the topics and add the ACLs to the cluster (run as an admin principal: kafka.sasl.username of a super user)")
		fs.StringVar(&prefix, "topic-prefix", "", "`prefix` of every topic and group name (tests)")
	})
	if err != nil {
		return err
	}
	acls := stageACLs(prefix, cfg.Compliance.ConsumerGroup)
	for _, a := range acls {
		fmt.Fprintln(e.stdout, a)
	}
	if !apply {
		return nil
	}
	if cfg.Kafka.Embedded {
		return usageError{errors.New("kafka acls -apply needs a real cluster (kafka.embedded: false, kafka.brokers)")}
	}
	cl, err := kafkaCluster(cfg.Kafka)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var specs []bus.TopicSpec
	for _, t := range event.Topics(cfg.Kafka.Partitions) {
		specs = append(specs, bus.TopicSpec{Name: prefix + t.Name, Partitions: t.Partitions, ReplicationFactor: cfg.Kafka.ReplicationFactor,
			Compact: t.Compact, Retention: t.Retention, Config: t.Config})
	}
	if err := bus.EnsureTopics(ctx, cl, specs...); err != nil {
		return err
	}
	if err := bus.CreateACLs(ctx, cl, acls); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "applied %d ACLs for %d stage principals as %s\n", len(acls), len(event.Stages()), cl.Principal())
	return nil
}
