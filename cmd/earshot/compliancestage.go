package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/compliance/archive"
	"github.com/earshot/earshot/compliance/audit"
	"github.com/earshot/earshot/compliance/erasure"
	"github.com/earshot/earshot/compliance/retention"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/ingest/pseudonym"
	"github.com/earshot/earshot/internal/config"
)

// compliance holds what the compliance commands and the stage share.
type compliance struct {
	rt     *Runtime
	keys   event.Keys // opens protected data (the runtime's keyring)
	audit  *audit.Log
	holds  *retention.Holds
	shred  retention.Keyring // nil when the keyring cannot shred
	eraser *erasure.Eraser   // nil when the keyring cannot shred
	// eraserErr says why eraser is nil.
	eraserErr error
}

// shredKeys returns the keyring erasure needs: the durable keyring, which
// can list and shred keys.
func shredKeys(rt *Runtime) (erasure.Keyring, error) {
	if rt.Keyring == nil {
		return nil, errors.New("erasure needs the durable keyring (crypto section of the configuration)")
	}
	return retention.CryptKeys(rt.Keyring), nil
}

// auditLog returns the process's audit log (package audit): entries stored
// under audit/ and published on earshot.audit. Every stage of a process
// appends through this one log, so through one chain head.
func auditLog(ctx context.Context, rt *Runtime) (*audit.Log, error) {
	rt.auditMu.Lock()
	defer rt.auditMu.Unlock()
	if rt.audit != nil {
		return rt.audit, nil
	}
	var sender bus.Sender
	if !rt.Config.Kafka.Embedded && rt.Producer != nil {
		// With the embedded broker, events live in this process only: the
		// stored chain is the record.
		sender = rt.Producer
	}
	l, err := audit.New(ctx, audit.Config{Store: rt.Store, Sender: sender, Producer: rt.Self, Logger: rt.Log})
	if err != nil {
		return nil, err
	}
	rt.audit = l
	return l, nil
}

// newCompliance builds the audit log, holds and eraser on rt.
func newCompliance(ctx context.Context, rt *Runtime) (*compliance, error) {
	c := &compliance{rt: rt, keys: rt.Keys}
	var err error
	if c.audit, err = auditLog(ctx, rt); err != nil {
		return nil, err
	}
	c.holds = &retention.Holds{Store: rt.Store}
	if rt.Config.Storage.Backend == "s3" && rt.Config.Storage.S3.ObjectLock {
		// Legal holds go on the stored versions themselves: the raw S3
		// store under the encrypting one.
		if lh, ok := rt.Raw.(retention.LegalHolder); ok {
			c.holds.Lock = lh
		} else {
			rt.Log.Warn("storage.s3.object_lock is set but this build's S3 store cannot set legal holds; holds are kept as markers only")
		}
	}
	if c.shred, err = shredKeys(rt); err != nil {
		c.eraserErr = err
		return c, nil
	}
	c.eraser, err = erasure.New(erasure.Config{Store: rt.Store, Keys: c.shred, Holds: c.holds, Audit: c.audit, Logger: rt.Log,
		// Past twice the key cache TTL no process still seals under a
		// shredded key: the recheck then finds everything written late.
		RecheckAfter: 2 * max(rt.Config.Crypto.KeyCacheTTL, time.Second)})
	return c, err
}

// complianceStage runs the archive and the sweeper.
type complianceStage struct {
	archiver *archive.Archiver // nil when compliance.archive is off
	sweeper  *retention.Sweeper
	cleanup  *cleanup // the parts above, released newest first
}

func newComplianceStage(ctx context.Context, rt *Runtime) (_ Stage, err error) {
	cc := rt.Config.Compliance
	if !cc.Archive && !cc.Sweep {
		return nil, fmt.Errorf("compliance stage: %w: compliance.archive and compliance.sweep are both off", errNotConfigured)
	}
	c, err := newCompliance(ctx, rt)
	if err != nil {
		return nil, err
	}
	var cl cleanup
	defer cl.onError(&err)
	st := &complianceStage{cleanup: &cl}
	if cc.Archive {
		cons, err := rt.consumer(cc.ConsumerGroup, archive.Topics...)
		if err != nil {
			return nil, err
		}
		cl.push(cons.Close)
		if st.archiver, err = archive.New(archive.Config{Consumer: cons, Store: rt.Store, DeadLetter: rt.Producer, Logger: rt.Log, Keys: rt.Keys}); err != nil {
			return nil, err
		}
		cl.push(st.archiver.Close)
	}
	if cc.Sweep {
		pol, err := retention.NewPolicy(rt.Config.Retention.Rules(), func(raw string) []string { return rt.Pseudonym.All(pseudonym.KindRoom, raw) })
		if err != nil {
			return nil, err
		}
		scfg := retention.SweeperConfig{
			Store: rt.Store, Holds: c.holds, Policy: pol, Audit: c.audit, Logger: rt.Log,
			AssumeEndedAfter: rt.Config.Retention.AssumeEndedAfter, Interval: rt.Config.Retention.SweepInterval,
		}
		if c.eraser != nil {
			scfg.Pending, scfg.Keys = c.eraser, c.shred
		} else {
			rt.Log.Warn("deferred erasures are not completed by this sweeper", "reason", c.eraserErr)
		}
		if rt.Config.Retention.ApplyKafka {
			scfg.Topics = &retention.KafkaTopics{Cluster: rt.Cluster, Retention: topicRetention(rt.Config.Retention), Logger: rt.Log}
		}
		if st.sweeper, err = retention.NewSweeper(scfg); err != nil {
			return nil, err
		}
		cl.push(st.sweeper.Close)
	}
	rt.Log.Info("compliance stage started", "archive", cc.Archive, "sweep", cc.Sweep, "interval", rt.Config.Retention.SweepInterval)
	return st, nil
}

// topicRetention is the configured Kafka retention, defaulting to the
// topic shapes in event.Topics.
func topicRetention(r config.Retention) map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, t := range event.Topics(1) {
		if !t.Compact && t.Retention > 0 {
			out[t.Name] = t.Retention
		}
	}
	for name, d := range r.KafkaTopics {
		out[name] = d
	}
	return out
}

func (s *complianceStage) Run(ctx context.Context) error {
	var parts []func(context.Context) error
	if s.archiver != nil {
		parts = append(parts, s.archiver.Run)
	}
	if s.sweeper != nil {
		parts = append(parts, s.sweeper.Run)
	}
	return runTogether(ctx, parts...)
}

// Close stops the sweeper and the archiver.
func (s *complianceStage) Close() error { return s.cleanup.release() }

// complianceCommand loads the configuration and the runtime for a
// compliance subcommand.
func complianceCommand(ctx context.Context, e *env, name string, flags func(*flag.FlagSet)) (*compliance, *flag.FlagSet, func(), error) {
	cfg, fs, err := e.loadConfig(name, flags)
	if err != nil {
		return nil, fs, nil, err
	}
	// Commands print their result on stdout; logs stay quiet on stderr.
	if cfg.Log.Level == "info" {
		cfg.Log.Level = "warn"
	}
	rt, err := commandRuntime(ctx, cfg, newLogger(cfg, e.stderr))
	if err != nil {
		return nil, fs, nil, err
	}
	c, err := newCompliance(ctx, rt)
	if err != nil {
		rt.Close()
		return nil, fs, nil, err
	}
	return c, fs, func() { rt.Close() }, nil
}

// operatorFlag adds --operator; resolveOperator checks it.
func operatorFlag(fs *flag.FlagSet) *string {
	def := os.Getenv("EARSHOT_OPERATOR")
	if def == "" {
		def = os.Getenv("USER")
	}
	return fs.String("operator", def, "staff member doing this (env EARSHOT_OPERATOR, else $USER); recorded in the audit log")
}

func checkOperator(cfg config.Compliance, op string) error {
	if op == "" {
		return usageError{errors.New("--operator is required (the audit log names who did this)")}
	}
	if len(cfg.Operators) > 0 && !slices.Contains(cfg.Operators, op) {
		return usageError{fmt.Errorf("operator %q is not in compliance.operators", op)}
	}
	return nil
}

func runAudit(ctx context.Context, e *env) error {
	sub := "verify"
	if len(e.args) > 0 && e.args[0] != "" && e.args[0][0] != '-' {
		sub, e.args = e.args[0], e.args[1:]
	}
	var minEntries int64
	c, _, done, err := complianceCommand(ctx, e, "audit "+sub, func(fs *flag.FlagSet) {
		fs.Int64Var(&minEntries, "min-entries", 0, "fail when the chain is shorter (an anchor noted at an earlier check)")
	})
	if err != nil {
		return err
	}
	defer done()
	switch sub {
	case "verify":
		rep, err := audit.Verify(ctx, c.rt.Store, audit.VerifyOptions{MinEntries: minEntries})
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "audit chain intact: %d entries, head %s\n", rep.Entries, rep.Head)
		return nil
	case "list":
		for en, err := range audit.Entries(ctx, c.rt.Store) {
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", en.Seq, en.Time.Format(time.RFC3339), en.Operator, en.Action, en.Outcome, en.Subject, en.Reason, en.Detail)
		}
		return nil
	default:
		return usageError{fmt.Errorf("unknown audit subcommand %q (verify, list)", sub)}
	}
}
