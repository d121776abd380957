package bus

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
)

// ErrNotAllowed is wrapped by the admin calls' errors when the brokers
// refuse the request itself: not authorised, against the cluster's policy,
// or not supported by the brokers' version. Retrying does not help; the
// operators must change the cluster or its ACLs.
var ErrNotAllowed = errors.New("bus: not allowed by the brokers")

// ConfigRetentionMS is the topic config that bounds how long records are
// kept.
const ConfigRetentionMS = "retention.ms"

// RetentionMS is d as the value of retention.ms: milliseconds, or "-1"
// (keep forever) for a negative d.
func RetentionMS(d time.Duration) string {
	if d < 0 {
		return "-1"
	}
	return strconv.FormatInt(d.Milliseconds(), 10)
}

// TopicConfig is one topic's configuration as the brokers describe it.
type TopicConfig struct {
	// Configs maps each config the brokers report (defaults included) to
	// its value; sensitive values are absent.
	Configs map[string]string
	// Err is the brokers' error for this topic; it wraps ErrUnknownTopic
	// when the topic does not exist, ErrNotAllowed when describing it is
	// refused.
	Err error
}

// TopicConfigs describes the configs of topics, by topic. An error for the
// whole request is returned as such (wrapping ErrNotAllowed when refused);
// errors for single topics are in their TopicConfig.Err.
func TopicConfigs(ctx context.Context, cl Cluster, topics ...string) (map[string]TopicConfig, error) {
	c, done, err := adminClient(cl)
	if err != nil {
		return nil, fmt.Errorf("bus: describe configs of %s: %w", strings.Join(topics, ","), err)
	}
	defer done()
	if err := preflight(ctx, c, cl); err != nil {
		return nil, fmt.Errorf("bus: describe configs of %s: %w", strings.Join(topics, ","), err)
	}
	req := &kafka.DescribeConfigsRequest{}
	for _, t := range topics {
		req.Resources = append(req.Resources, kafka.DescribeConfigRequestResource{ResourceType: kafka.ResourceTypeTopic, ResourceName: t})
	}
	res, err := c.DescribeConfigs(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("bus: describe configs of %s via brokers %s: %w", strings.Join(topics, ","), cl, classify(err))
	}
	out := make(map[string]TopicConfig, len(topics))
	for _, r := range res.Resources {
		tc := TopicConfig{Configs: map[string]string{}}
		if r.Error != nil {
			tc.Err = fmt.Errorf("bus: describe configs of %s: %w", r.ResourceName, classify(r.Error))
		}
		for _, e := range r.ConfigEntries {
			if !e.IsSensitive {
				tc.Configs[e.ConfigName] = e.ConfigValue
			}
		}
		out[r.ResourceName] = tc
	}
	for _, t := range topics {
		if _, ok := out[t]; !ok {
			out[t] = TopicConfig{Err: fmt.Errorf("bus: describe configs of %s: not in the brokers' answer", t)}
		}
	}
	return out, nil
}

// AlterTopicConfigs sets the configs in set on topic, leaving its other
// configs as they are (IncrementalAlterConfigs, Kafka 2.3+). The error
// wraps ErrNotAllowed when the brokers refuse, ErrUnknownTopic when the
// topic does not exist.
func AlterTopicConfigs(ctx context.Context, cl Cluster, topic string, set map[string]string) error {
	if len(set) == 0 {
		return nil
	}
	c, done, err := adminClient(cl)
	if err != nil {
		return fmt.Errorf("bus: alter configs of %s: %w", topic, err)
	}
	defer done()
	if err := preflight(ctx, c, cl); err != nil {
		return fmt.Errorf("bus: alter configs of %s: %w", topic, err)
	}
	res := kafka.IncrementalAlterConfigsRequestResource{ResourceType: kafka.ResourceTypeTopic, ResourceName: topic}
	for _, k := range slices.Sorted(maps.Keys(set)) {
		res.Configs = append(res.Configs, kafka.IncrementalAlterConfigsRequestConfig{Name: k, Value: set[k], ConfigOperation: kafka.ConfigOperationSet})
	}
	ans, err := c.IncrementalAlterConfigs(ctx, &kafka.IncrementalAlterConfigsRequest{Resources: []kafka.IncrementalAlterConfigsRequestResource{res}})
	if err != nil {
		return fmt.Errorf("bus: alter configs of %s via brokers %s: %w", topic, cl, classify(err))
	}
	for _, r := range ans.Resources {
		if r.ResourceName == topic && r.Error != nil {
			return fmt.Errorf("bus: alter configs of %s: %w", topic, classify(r.Error))
		}
	}
	return nil
}

// DeleteTopics deletes topics; topics that do not exist are no error.
func DeleteTopics(ctx context.Context, cl Cluster, topics ...string) error {
	if len(topics) == 0 {
		return nil
	}
	c, done, err := adminClient(cl)
	if err != nil {
		return fmt.Errorf("bus: delete topics %s: %w", strings.Join(topics, ","), err)
	}
	defer done()
	if err := preflight(ctx, c, cl); err != nil {
		return fmt.Errorf("bus: delete topics %s: %w", strings.Join(topics, ","), err)
	}
	res, err := c.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: topics})
	if err != nil {
		return fmt.Errorf("bus: delete topics %s via brokers %s: %w", strings.Join(topics, ","), cl, classify(err))
	}
	var errs []error
	for _, t := range topics {
		if e := res.Errors[t]; e != nil && !errors.Is(e, kafka.UnknownTopicOrPartition) {
			errs = append(errs, fmt.Errorf("topic %s: %w", t, classify(e)))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("bus: delete topics: %w", errors.Join(errs...))
	}
	return nil
}

// TopicPartitions lists the partition IDs of topics, sorted, by topic; with
// no topics it lists every topic the brokers have. A named topic that does
// not exist fails with ErrUnknownTopic.
func TopicPartitions(ctx context.Context, cl Cluster, topics ...string) (map[string][]int, error) {
	c, done, err := adminClient(cl)
	if err != nil {
		return nil, fmt.Errorf("bus: partitions: %w", err)
	}
	defer done()
	md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, fmt.Errorf("bus: partitions of %s via brokers %s: %w", strings.Join(topics, ","), cl, err)
	}
	out := map[string][]int{}
	for _, tp := range md.Topics {
		if errors.Is(tp.Error, kafka.UnknownTopicOrPartition) {
			return nil, fmt.Errorf("%w %s", ErrUnknownTopic, tp.Name)
		}
		if tp.Error != nil {
			return nil, fmt.Errorf("bus: partitions of %s: %w", tp.Name, classify(tp.Error))
		}
		ids := make([]int, 0, len(tp.Partitions))
		for _, p := range tp.Partitions {
			ids = append(ids, p.ID)
		}
		slices.Sort(ids)
		out[tp.Name] = ids
	}
	for _, t := range topics {
		if _, ok := out[t]; !ok {
			return nil, fmt.Errorf("%w %s", ErrUnknownTopic, t)
		}
	}
	return out, nil
}

// adminClient is a client for one admin call, with its own transport: the
// default transport answers metadata from a cache shared by the whole
// process, which can predate a topic's creation. The caller calls done.
// Its MetadataTTL is its timeout, as LogReader's is (see there why).
func adminClient(cl Cluster) (c *kafka.Client, done func(), err error) {
	if err := cl.check(); err != nil {
		return nil, nil, err
	}
	const timeout = 30 * time.Second
	tr := cl.transport("earshot-admin", timeout)
	return &kafka.Client{Addr: kafka.TCP(cl.Brokers...), Timeout: timeout, Transport: tr}, tr.CloseIdleConnections, nil
}

// preflight returns the error of the client's first contact with the
// cluster when no retry changes it (a refused login, a certificate that
// does not verify). kafka-go keeps that error for metadata requests only;
// requests routed to one broker (the controller, a partition's leader)
// fail as "broker not available" instead, which reads as a cluster that
// is down. The metadata is the transport's own first request, so this
// costs no extra round trip.
func preflight(ctx context.Context, c *kafka.Client, cl Cluster) error {
	if _, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{}}); err != nil && Permanent(err) {
		return cl.refused(err, "describe", "the cluster")
	}
	return nil
}

// Refused reports whether err is the brokers refusing the request (an
// ACL, authentication, a request they will never accept) rather than a
// fault that may pass, whichever client call it came from.
func Refused(err error) bool { return errors.Is(classify(err), ErrNotAllowed) }

// classify makes a broker's refusal match ErrNotAllowed and an unknown
// topic match ErrUnknownTopic, keeping the original error in the chain.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, kafka.UnknownTopicOrPartition):
		return fmt.Errorf("%w: %w", ErrUnknownTopic, err)
	case errors.Is(err, kafka.TopicAuthorizationFailed), errors.Is(err, kafka.ClusterAuthorizationFailed),
		errors.Is(err, kafka.GroupAuthorizationFailed), errors.Is(err, kafka.SASLAuthenticationFailed),
		errors.Is(err, kafka.PolicyViolation), errors.Is(err, kafka.UnsupportedVersion), errors.Is(err, kafka.InvalidRequest):
		return fmt.Errorf("%w: %w", ErrNotAllowed, err)
	}
	return err
}
