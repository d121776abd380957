package retention

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/earshot/earshot/bus"
)

// KafkaTopics keeps retention.ms of Kafka topics at configured values
// (incremental AlterConfigs, so other topic settings stay as they are).
// When the brokers do not allow it, Apply logs that once and returns nil:
// topic retention is then the Kafka operators' job.
type KafkaTopics struct {
	Cluster   bus.Cluster
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
	topics := slices.Sorted(maps.Keys(k.Retention))
	cur, err := bus.TopicConfigs(ctx, k.Cluster, topics...)
	if err != nil && !errors.Is(err, bus.ErrNotAllowed) {
		return fmt.Errorf("retention: describe topic configs: %w", err)
	}
	var change []string
	for _, t := range topics {
		tc, ok := cur[t]
		if !ok || tc.Err != nil {
			if ok && errors.Is(tc.Err, bus.ErrUnknownTopic) {
				log.Warn("retention: topic does not exist; its retention is set when it does", "topic", t)
				continue
			}
			change = append(change, t)
			continue
		}
		if tc.Configs[bus.ConfigRetentionMS] != bus.RetentionMS(k.Retention[t]) {
			change = append(change, t)
		}
	}
	var errs []error
	for _, t := range change {
		v := bus.RetentionMS(k.Retention[t])
		err := bus.AlterTopicConfigs(ctx, k.Cluster, t, map[string]string{bus.ConfigRetentionMS: v})
		switch {
		case err == nil:
			log.Info("kafka topic retention set", "topic", t, "retention_ms", v)
		case errors.Is(err, bus.ErrNotAllowed):
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
