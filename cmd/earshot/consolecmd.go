package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"time"

	"github.com/earshot/earshot/internal/config"
)

// runConsole prints a one-time sign-in link for an operator of
// serve.operators, signed with the link key the running serve stage reads
// (serve.link_secret_file): for a new moderator's first session, and for
// `make demo`.
func runConsole(_ context.Context, e *env) error {
	usage := usageError{errors.New("usage: earshot console link --operator NAME [--ttl 10m]")}
	if len(e.args) < 1 || e.args[0] != "link" {
		return usage
	}
	var (
		operator string
		ttl      time.Duration
	)
	sub := &env{args: e.args[1:], stdout: e.stdout, stderr: e.stderr}
	cfg, fs, err := sub.loadConfig("console link", func(fs *flag.FlagSet) {
		fs.StringVar(&operator, "operator", "", "the operator's `name` in serve.operators")
		fs.DurationVar(&ttl, "ttl", 10*time.Minute, "how long the link works (at most 1h); it works once")
	})
	if err != nil {
		return err
	}
	if fs.NArg() > 0 || operator == "" {
		return usage
	}
	if ttl <= 0 || ttl > time.Hour {
		return usageError{fmt.Errorf("--ttl %v must be between 0 and 1h", ttl)}
	}
	if !slices.ContainsFunc(cfg.Serve.Operators, func(o config.Operator) bool { return o.Name == operator }) {
		return usageError{fmt.Errorf("no operator %q in serve.operators", operator)}
	}
	links, err := linkSigner(cfg.Serve)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, links.SignInLink(operator, ttl))
	return nil
}
