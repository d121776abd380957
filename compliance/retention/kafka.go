package retention

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// KafkaTopics keeps retention.ms of Kafka topics at configured values
// (incremental AlterConfigs, so other topic settings stay as they are).
// When the brokers do not allow it, Apply logs that once and returns nil:
// topic retention is then the Kafka operators' job.
type KafkaTopics struct {
	Brokers   []string
	Retention map[string]time.Duration // topic -> retention; negative keeps forever
	Logger    *slog.Logger

	once sync.Once
}

// Apply sets retention.ms where it differs from the configuration.
func (k *KafkaTopics) Apply(ctx context.Context) error {
	if len(k.Retention) == 0 {
		return nil
	}
	log := k.Logger
	if log == nil {
		log = slog.Default()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Brokers...), kgo.ClientID("earshot-retention"))
	if err != nil {
		return fmt.Errorf("retention: kafka client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	topics := slices.Sorted(maps.Keys(k.Retention))
	want := func(t string) string {
		d := k.Retention[t]
		if d < 0 {
			return "-1"
		}
		return strconv.FormatInt(d.Milliseconds(), 10)
	}
	cur, err := adm.DescribeTopicConfigs(ctx, topics...)
	if err != nil && !denied(err) {
		return fmt.Errorf("retention: describe topic configs: %w", err)
	}
	var change []string
	for _, t := range topics {
		rc, err := cur.On(t, nil)
		if err != nil || rc.Err != nil {
			if err == nil {
				err = rc.Err
			}
			if errors.Is(err, kerr.UnknownTopicOrPartition) {
				log.Warn("retention: topic does not exist; its retention is set when it does", "topic", t)
				continue
			}
			change = append(change, t)
			continue
		}
		have := ""
		for _, c := range rc.Configs {
			if c.Key == "retention.ms" && c.Value != nil {
				have = *c.Value
			}
		}
		if have != want(t) {
			change = append(change, t)
		}
	}
	var errs []error
	for _, t := range change {
		v := want(t)
		res, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: &v}}, t)
		if err == nil {
			if r, rerr := res.On(t, nil); rerr == nil {
				err = r.Err
			}
		}
		switch {
		case err == nil:
			log.Info("kafka topic retention set", "topic", t, "retention_ms", v)
		case denied(err):
			k.once.Do(func() {
				log.Warn("retention: the brokers do not allow altering topic configs; set retention.ms on the topics yourself or grant ALTER_CONFIGS", "topic", t, "err", err)
			})
			return nil
		default:
			errs = append(errs, fmt.Errorf("topic %s: %w", t, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("retention: set kafka topic retention: %w", errors.Join(errs...))
	}
	return nil
}

func denied(err error) bool {
	return errors.Is(err, kerr.TopicAuthorizationFailed) || errors.Is(err, kerr.ClusterAuthorizationFailed) ||
		errors.Is(err, kerr.PolicyViolation) || errors.Is(err, kerr.UnsupportedVersion) || errors.Is(err, kerr.InvalidRequest)
}
