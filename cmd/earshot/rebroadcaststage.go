package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/ingest/pseudonym"
	"github.com/earshot/earshot/internal/config"
	"github.com/earshot/earshot/policy/rebroadcast"
)

// newRebroadcastStage builds the live rebroadcast stage: its own consumer
// group on the live audio, following every partition of the fingerprints
// topic.
func newRebroadcastStage(ctx context.Context, rt *Runtime) (Stage, error) {
	c := rt.Config.Rebroadcast
	if !c.Enabled {
		return nil, fmt.Errorf("rebroadcast: %w (rebroadcast.enabled is false)", errNotConfigured)
	}
	secret, err := loadSecret(rt.Config.Identity)
	if err != nil {
		return nil, err
	}
	// The deployment's secret, under its own label: the fingerprint key
	// is not the pseudonym key.
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("earshot fingerprint key v1"))
	if rt.Config.Kafka.CreateTopics && c.Window != event.FingerprintRetention {
		// The index is rebuilt from the topic: it keeps the window, and
		// no longer (fingerprints are personal data).
		if err := bus.AlterTopicConfigs(ctx, rt.Cluster, event.TopicFingerprints, map[string]string{"retention.ms": bus.RetentionMS(c.Window)}); err != nil {
			return nil, fmt.Errorf("rebroadcast: retention of %s: %w", event.TopicFingerprints, err)
		}
	}
	cons, err := bus.NewConsumer(bus.ConsumerConfig{
		Cluster: rt.Cluster, GroupID: "earshot-rebroadcast", Topics: []string{event.TopicAudio},
		StartOffset: bus.LastOffset, MaxInFlight: c.MaxInFlight, ClientID: rt.Config.Kafka.ClientID, Logger: rt.Log,
	})
	if err != nil {
		return nil, err
	}
	allow, err := rebroadcastAllow(c.Allow, rt.Pseudonym)
	if err != nil {
		_ = cons.Close()
		return nil, err
	}
	st, err := rebroadcast.New(rebroadcast.Config{
		Consumer: cons, Log: bus.LogReader{Cluster: rt.Cluster, ClientID: rt.Config.Kafka.ClientID}, Sender: rt.Producer,
		Keys: rt.Keys, Producer: rt.Self, Secret: mac.Sum(nil), Window: c.Window, MaxLandmarks: c.MaxLandmarks,
		QueryDelay: c.QueryDelay, Allow: allow, AlertLookback: rt.Config.Alerts.Rebuild.Alerts, Metrics: rt.Metrics, Logger: rt.Log, Watch: watchList(c.Watch),
		Evidence: rt.Store,
	})
	if err != nil {
		_ = cons.Close()
		return nil, err
	}
	return st, nil
}

// watchList converts the configured outside streams.
func watchList(ws []config.WatchStream) []rebroadcast.Watch {
	var out []rebroadcast.Watch
	for _, w := range ws {
		out = append(out, rebroadcast.Watch{Name: w.Name, URL: w.URL.Reveal()})
	}
	return out
}

// rebroadcastAllow turns rebroadcast.allow into the stage's pairs: rooms
// named as the room server names them are pseudonymised, as every room
// in the configuration is; pseudonyms are taken as they are.
func rebroadcastAllow(list []config.RebroadcastAllow, p *pseudonym.Pseudonymizer) ([]rebroadcast.AllowedPair, error) {
	var out []rebroadcast.AllowedPair
	for i, a := range list {
		until, err := a.UntilTime()
		if err != nil || len(a.Rooms) != 2 {
			return nil, fmt.Errorf("rebroadcast.allow[%d]: not a pair with a valid until (config validation lists the fix)", i)
		}
		out = append(out, rebroadcast.AllowedPair{Rooms: [2]string{roomPseudonym(p, a.Rooms[0]), roomPseudonym(p, a.Rooms[1])}, Until: until, Reason: a.Reason})
	}
	return out, nil
}
