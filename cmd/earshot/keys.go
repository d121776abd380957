package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/earshot/earshot/compliance/audit"
	"github.com/earshot/earshot/event"
)

// runKeys is `earshot keys rewrap`. The data keys stay the same; only
// their wrapping changes, so nothing stored is re-encrypted.
func runKeys(ctx context.Context, e *env) error {
	if len(e.args) == 0 || e.args[0] != "rewrap" {
		return usageError{errors.New("usage: earshot keys rewrap [--operator ...] [--reason ...]")}
	}
	e.args = e.args[1:]
	var reason string
	var op *string
	c, _, done, err := complianceCommand(ctx, e, "keys rewrap", func(fs *flag.FlagSet) {
		fs.StringVar(&reason, "reason", "KEK rotation", "why (recorded in the audit log)")
		op = operatorFlag(fs)
	})
	if err != nil {
		return err
	}
	defer done()
	if err := checkOperator(c.rt.Config.Compliance, *op); err != nil {
		return err
	}
	if c.rt.Keyring == nil {
		return errors.New("keys rewrap needs the durable keyring (crypto section of the configuration)")
	}
	rep, err := c.rt.Keyring.Rewrap(ctx)
	outcome, detail := audit.OutcomeOK, fmt.Sprintf("%d keys, %d re-wrapped, %d old versions deleted", rep.Keys, rep.Rewrapped, rep.Versions)
	if err != nil {
		outcome, detail = audit.OutcomeFailed, detail+"; failed: "+err.Error()
	}
	if aerr := c.audit.Record(ctx, event.AuditEntry{Operator: *op, Action: audit.ActionRewrap, Subject: "kek",
		Reason: reason, Outcome: outcome, Detail: detail}); aerr != nil {
		err = errors.Join(err, aerr)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "re-wrapped %d of %d data keys under the current KEK; %d old versions deleted\n", rep.Rewrapped, rep.Keys, rep.Versions)
	fmt.Fprintln(e.stdout, "every key is now wrapped by crypto.kek_file: remove crypto.previous_kek_files and retire the old key file")
	return nil
}
