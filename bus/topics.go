package bus

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
)

// TopicSpec says how to create a topic that does not exist yet.
type TopicSpec struct {
	Name string
	// Partitions; 0 takes the broker's num.partitions.
	Partitions int
	// ReplicationFactor; 0 takes the broker's default.replication.factor.
	ReplicationFactor int
	// Compact sets cleanup.policy=compact: the newest record per key is kept
	// (state a stage rebuilds after a restart).
	Compact bool
	// Retention sets retention.ms: 0 keeps the broker's default, a negative
	// value keeps records forever.
	Retention time.Duration
	// Config holds further topic configs (for example "min.insync.replicas");
	// it overrides what Compact and Retention set.
	Config map[string]string
}

func (s *TopicSpec) configs() []kafka.ConfigEntry {
	cfg := map[string]string{}
	if s.Compact {
		cfg["cleanup.policy"] = "compact"
	}
	if s.Retention != 0 {
		cfg[ConfigRetentionMS] = RetentionMS(s.Retention)
	}
	maps.Copy(cfg, s.Config)
	entries := make([]kafka.ConfigEntry, 0, len(cfg))
	for _, k := range slices.Sorted(maps.Keys(cfg)) {
		entries = append(entries, kafka.ConfigEntry{ConfigName: k, ConfigValue: cfg[k]})
	}
	return entries
}

// EnsureTopics creates the topics in specs that do not exist, then waits
// until every partition of every named topic has a leader, so producers
// started next do not race the controller. Existing topics are left as they
// are (their partitions and configs are not compared or changed). It is
// idempotent. Without a deadline on ctx it gives up after 30 s.
func EnsureTopics(ctx context.Context, cl Cluster, specs ...TopicSpec) error {
	if err := cl.check(); err != nil {
		return fmt.Errorf("bus: ensure topics: %w", err)
	}
	if len(specs) == 0 {
		return nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
	}
	client, done, err := adminClient(cl)
	if err != nil {
		return fmt.Errorf("bus: ensure topics: %w", err)
	}
	defer done()
	where := cl.String()

	req := &kafka.CreateTopicsRequest{}
	names := make([]string, 0, len(specs))
	for i := range specs {
		s := &specs[i]
		if s.Name == "" {
			return fmt.Errorf("bus: ensure topics: spec %d has no name", i)
		}
		tc := kafka.TopicConfig{
			Topic:             s.Name,
			NumPartitions:     s.Partitions,
			ReplicationFactor: s.ReplicationFactor,
			ConfigEntries:     s.configs(),
		}
		// -1 asks the broker for its default (CreateTopics v4+, Kafka 2.4+).
		if tc.NumPartitions <= 0 {
			tc.NumPartitions = -1
		}
		if tc.ReplicationFactor <= 0 {
			tc.ReplicationFactor = -1
		}
		req.Topics = append(req.Topics, tc)
		names = append(names, s.Name)
	}
	// Ask only for the topics that are missing: a principal with no right
	// to create topics (its ACLs allow reading and writing) can then start
	// once an administrator has created them.
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: names})
	switch {
	case err == nil:
		// A topic the principal may not describe is not one to create:
		// say what is refused instead of asking for a CREATE it lacks too.
		var hidden []string
		for _, t := range md.Topics {
			if errors.Is(t.Error, kafka.TopicAuthorizationFailed) {
				hidden = append(hidden, t.Name)
			}
		}
		if len(hidden) > 0 {
			return fmt.Errorf("bus: ensure topics via brokers %s: %w", where,
				cl.refused(kafka.TopicAuthorizationFailed, "describe", "topics "+strings.Join(hidden, ",")))
		}
		req.Topics = slices.DeleteFunc(req.Topics, func(tc kafka.TopicConfig) bool {
			i := slices.IndexFunc(md.Topics, func(t kafka.Topic) bool { return t.Name == tc.Topic })
			return i >= 0 && md.Topics[i].Error == nil && len(md.Topics[i].Partitions) > 0
		})
	case Permanent(err):
		return fmt.Errorf("bus: ensure topics via brokers %s: %w", where, cl.refused(err, "describe", "topics "+strings.Join(names, ",")))
	}
	if len(req.Topics) > 0 {
		if err := createTopics(ctx, cl, client, req); err != nil {
			return err
		}
	}
	if err := waitForLeaders(ctx, client, names); err != nil {
		return fmt.Errorf("bus: ensure topics via brokers %s: %w", where, err)
	}
	return nil
}

func createTopics(ctx context.Context, cl Cluster, client *kafka.Client, req *kafka.CreateTopicsRequest) error {
	names := make([]string, len(req.Topics))
	for i, t := range req.Topics {
		names[i] = t.Topic
	}
	res, err := client.CreateTopics(ctx, req)
	if err != nil {
		return fmt.Errorf("bus: ensure topics %s via brokers %s: %w", strings.Join(names, ","), cl, cl.refused(err, "create", "topics "+strings.Join(names, ",")))
	}
	var errs []error
	for _, name := range names {
		if e := res.Errors[name]; e != nil && !errors.Is(e, kafka.TopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("topic %s: %w", name, cl.refused(e, "create", "topic "+name)))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("bus: ensure topics via brokers %s: %w", cl, errors.Join(errs...))
	}
	return nil
}

// waitForLeaders polls metadata until every partition of topics has a leader.
func waitForLeaders(ctx context.Context, client *kafka.Client, topics []string) error {
	var last error
	for {
		md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
		if err == nil {
			last = leaderless(md, topics)
			if last == nil {
				return nil
			}
		} else {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for partition leaders: %w (last: %v)", ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func leaderless(md *kafka.MetadataResponse, topics []string) error {
	for _, name := range topics {
		i := slices.IndexFunc(md.Topics, func(t kafka.Topic) bool { return t.Name == name })
		if i < 0 {
			return fmt.Errorf("topic %s not in metadata yet", name)
		}
		t := md.Topics[i]
		if t.Error != nil {
			return fmt.Errorf("topic %s: %w", name, t.Error)
		}
		if len(t.Partitions) == 0 {
			return fmt.Errorf("topic %s has no partitions yet", name)
		}
		for _, p := range t.Partitions {
			if p.Error != nil || p.Leader.Host == "" {
				return fmt.Errorf("topic %s partition %d has no leader yet", name, p.ID)
			}
		}
	}
	return nil
}
