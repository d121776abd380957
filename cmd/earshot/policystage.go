package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/policy"
	"github.com/earshot/earshot/policy/notify"
)

// policyStage is the evaluator, the policy file watcher it reads, and the
// notifier that delivers its alerts to the configured sinks.
type policyStage struct {
	*policy.Stage
	loader   *policy.Loader // nil with the built-in default policy
	notifier *notify.Stage  // nil without sinks
	cleanup  *cleanup       // the parts above, released newest first
}

func newPolicyStage(_ context.Context, rt *Runtime) (_ Stage, err error) {
	var cl cleanup
	defer cl.onError(&err)
	ps := &policyStage{cleanup: &cl}
	var src policy.Provider
	if f := rt.Config.Policy.File; f != "" {
		l, err := policy.NewLoader(policy.LoaderConfig{Path: f, Logger: rt.Log})
		if err != nil {
			return nil, err
		}
		src, ps.loader = l, closer(&cl, l)
	} else {
		p, err := policy.Default()
		if err != nil {
			return nil, err
		}
		src = policy.Fixed{P: p}
		rt.Log.Info("no policy.file set: using the built-in default policy", "policy_version", p.Version())
	}
	ac := rt.Config.Alerts
	var classifier *policy.Classifier
	if c := ac.Classifier; c.Enabled {
		key, err := readSecretFile(c.APIKeyFile, "alerts.classifier.api_key_file")
		if err != nil {
			return nil, err
		}
		classifier, err = policy.NewClassifier(policy.ClassifierConfig{
			URL: c.URL.Reveal(), APIKey: key, Model: c.Model, Timeout: c.Timeout,
			FailureThreshold: c.FailureThreshold, CoolDown: c.CoolDown, Logger: rt.Log,
		})
		if err != nil {
			return nil, err
		}
	}
	limit := policy.RateLimit{Every: ac.RateLimit.Every, Burst: ac.RateLimit.Burst}
	if limit.Every == 0 {
		limit.Every = -1 // 0s in the configuration turns the limit off
	}
	cons, err := rt.consumer("earshot-policy", event.TopicTranscripts)
	if err != nil {
		return nil, err
	}
	cl.push(cons.Close)
	ps.Stage, err = policy.NewStage(policy.StageConfig{
		Consumer: cons, Sender: rt.Producer, Policy: src, Producer: rt.Self, Keys: rt.Keys, Logger: rt.Log,
		ExcerptContext: ac.ExcerptContext, RateLimit: limit, Classifier: classifier, Metrics: rt.Metrics,
		Rebuild: policy.RebuildConfig{
			Tail:        &policy.KafkaTail{Cluster: rt.Cluster, ClientID: rt.Config.Kafka.ClientID},
			Transcripts: ac.Rebuild.Transcripts, Alerts: ac.Rebuild.Alerts,
		},
	})
	if err != nil {
		return nil, err
	}
	cl.push(ps.Stage.Close)
	if len(ac.Sinks) > 0 {
		if ps.notifier, err = newNotifier(rt); err != nil {
			return nil, err
		}
		cl.push(ps.notifier.Close)
	}
	return ps, nil
}

// newNotifier builds the sinks and the consumer that feeds them (its own
// group on the alerts topic, so delivery keeps its own offsets).
func newNotifier(rt *Runtime) (*notify.Stage, error) {
	ac := rt.Config.Alerts
	retry := notify.Retry{Attempts: ac.Notify.Attempts, Initial: ac.Notify.Backoff, Max: ac.Notify.MaxBackoff}
	var routes []notify.Route
	for i, s := range ac.Sinks {
		name := s.SinkName(i)
		secret, err := readSecretFile(s.SecretFile, fmt.Sprintf("alerts.sinks[%d].secret_file", i))
		if err != nil {
			return nil, err
		}
		n, err := notify.NewSink(notify.SinkConfig{Name: name, Type: s.Type, URL: s.URL.Reveal(), Secret: secret, Timeout: ac.Notify.Timeout, Stdout: os.Stdout})
		if err != nil {
			return nil, fmt.Errorf("alerts.sinks[%d]: %w", i, err)
		}
		// Alerts carry room pseudonyms; the configuration names rooms as
		// the room server does.
		var rooms []string
		for _, r := range s.Rooms {
			rooms = append(rooms, rt.Pseudonym.Room(strings.TrimSpace(r)))
		}
		content := notify.Content(s.Content)
		if content == "" {
			content = notify.Minimal
		}
		routes = append(routes, notify.Route{Notifier: n, Content: content, Rooms: rooms, Retry: retry})
	}
	// Notifications carry signed, short-lived evidence links that
	// `earshot serve` verifies with the same key file.
	signer, err := linkSigner(rt.Config.Serve)
	if err != nil {
		return nil, fmt.Errorf("evidence links: %w", err)
	}
	var linker notify.Linker = evidenceLinks{signer}
	cons, err := rt.consumer("earshot-notify", event.TopicAlerts, event.TopicOps)
	if err != nil {
		return nil, err
	}
	st, err := notify.NewStage(notify.StageConfig{
		Consumer: cons, Sender: rt.Producer, Routes: routes, Keys: rt.Keys, Linker: linker, Logger: rt.Log, Metrics: rt.Metrics,
	})
	if err != nil {
		_ = cons.Close()
		return nil, err
	}
	return st, nil
}

// readSecretFile reads a one-line secret; an empty path is no secret.
func readSecretFile(path, key string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", key, err)
	}
	return strings.TrimSpace(string(b)), nil
}

func (s *policyStage) Run(ctx context.Context) error {
	parts := []func(context.Context) error{s.Stage.Run}
	if s.loader != nil {
		parts = append(parts, s.loader.Run) // hot reload; a broken file keeps the old policy
	}
	if s.notifier != nil {
		parts = append(parts, s.notifier.Run)
	}
	return runTogether(ctx, parts...)
}

// Close stops the notifier, the evaluator and the policy file watcher,
// newest first.
func (s *policyStage) Close() error { return s.cleanup.release() }
