package main

import (
	"context"
	"errors"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/policy"
)

func init() { stageBuilders["policy"] = newPolicyStage }

// policyStage is the evaluator plus the policy file watcher it reads.
type policyStage struct {
	*policy.Stage
	loader *policy.Loader // nil with the built-in default policy
}

func newPolicyStage(_ context.Context, rt *Runtime) (Stage, error) {
	var (
		src    policy.Provider
		loader *policy.Loader
	)
	if f := rt.Config.Policy.File; f != "" {
		l, err := policy.NewLoader(policy.LoaderConfig{Path: f, Logger: rt.Log})
		if err != nil {
			return nil, err
		}
		src, loader = l, l
	} else {
		p, err := policy.Default()
		if err != nil {
			return nil, err
		}
		src = policy.Fixed{P: p}
		rt.Log.Info("no policy.file set: using the built-in default policy", "policy_version", p.Version())
	}
	cons, err := bus.NewConsumer(bus.ConsumerConfig{
		Brokers: rt.Brokers, GroupID: "earshot-policy", Topics: []string{event.TopicTranscripts},
		StartOffset: bus.FirstOffset, ClientID: rt.Config.Kafka.ClientID, Logger: rt.Log,
	})
	if err != nil {
		return nil, err
	}
	st, err := policy.NewStage(policy.StageConfig{Consumer: cons, Sender: rt.Producer, Policy: src, Producer: rt.Self, Keys: rt.Keys, Logger: rt.Log})
	if err != nil {
		return nil, err
	}
	return &policyStage{Stage: st, loader: loader}, nil
}

func (s *policyStage) Run(ctx context.Context) error {
	if s.loader != nil {
		go func() { _ = s.loader.Run(ctx) }() // hot reload; a broken file keeps the old policy
	}
	return s.Stage.Run(ctx)
}

func (s *policyStage) Close() error {
	var lerr error
	if s.loader != nil {
		lerr = s.loader.Close()
	}
	return errors.Join(s.Stage.Close(), lerr)
}
