package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/earshot/earshot/compliance/audit"
	"github.com/earshot/earshot/compliance/retention"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/ingest/pseudonym"
)

func runHold(ctx context.Context, e *env) error {
	if len(e.args) == 0 || (e.args[0] != "set" && e.args[0] != "lift" && e.args[0] != "list") {
		return usageError{errors.New("usage: earshot hold set|lift|list [--room R] [--session S] [--speaker P] --reason ... [--operator ...]")}
	}
	sub := e.args[0]
	e.args = e.args[1:]
	var (
		room, session, speaker, reason string
		op                             *string
	)
	c, _, done, err := complianceCommand(ctx, e, "hold "+sub, func(fs *flag.FlagSet) {
		fs.StringVar(&room, "room", "", "room `ID or pseudonym`")
		fs.StringVar(&session, "session", "", "session `ID` (ses_...)")
		fs.StringVar(&speaker, "speaker", "", "participant `identity or pseudonym`")
		fs.StringVar(&reason, "reason", "", "why (required for set; recorded in the audit log)")
		op = operatorFlag(fs)
	})
	if err != nil {
		return err
	}
	defer done()
	if sub == "list" {
		holds, err := c.holds.List(ctx)
		if err != nil {
			return err
		}
		for _, h := range holds {
			fmt.Fprintf(e.stdout, "%s\tset %s by %s: %s\n", h.Scope, h.Set.Format(time.RFC3339), h.Operator, h.Reason)
		}
		if len(holds) == 0 {
			fmt.Fprintln(e.stdout, "no legal holds")
		}
		return nil
	}
	if room == "" && speaker == "" {
		return usageError{errors.New("give --room and/or --speaker")}
	}
	if session != "" && room == "" {
		return usageError{errors.New("--session needs --room")}
	}
	if sub == "set" && reason == "" {
		return usageError{errors.New("--reason is required to set a hold")}
	}
	if err := checkOperator(c.rt.Config.Compliance, *op); err != nil {
		return err
	}
	// A raw ID may have pseudonyms under several key versions: hold them all.
	rooms, speakers := []string{""}, []string{""}
	if room != "" {
		rooms = pseudonyms(c.rt.Pseudonym, pseudonym.KindRoom, room)
	}
	if speaker != "" {
		speakers = pseudonyms(c.rt.Pseudonym, pseudonym.KindPerson, speaker)
	}
	action := audit.ActionHoldSet
	if sub == "lift" {
		action = audit.ActionHoldLift
	}
	for _, r := range rooms {
		for _, p := range speakers {
			s := retention.Scope{Room: r, Session: session, Speaker: p}
			outcome, detail := audit.OutcomeOK, ""
			var err error
			if sub == "set" {
				err = c.holds.Set(ctx, retention.Hold{Scope: s, Reason: reason, Operator: *op})
			} else {
				var existed bool
				existed, err = c.holds.Lift(ctx, s)
				if err == nil && !existed {
					detail = "no such hold"
				}
			}
			if err != nil {
				outcome, detail = audit.OutcomeFailed, err.Error()
			}
			if aerr := c.audit.Record(ctx, event.AuditEntry{Operator: *op, Action: action, Subject: s.String(), Reason: reason, Outcome: outcome, Detail: detail}); aerr != nil {
				return errors.Join(err, aerr)
			}
			if err != nil {
				return err
			}
			verb := "set"
			if sub == "lift" {
				verb = "lifted"
				if detail != "" {
					verb = "not found (nothing lifted)"
				}
			}
			fmt.Fprintf(e.stdout, "hold %s: %s\n", verb, s)
		}
	}
	if sub == "lift" && c.eraser != nil {
		n, err := c.eraser.CompletePending(ctx)
		if n > 0 {
			fmt.Fprintf(e.stdout, "%d deferred erasure(s) completed\n", n)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// pseudonyms returns s itself when it is a pseudonym of kind, else every
// pseudonym of the raw ID.
func pseudonyms(p *pseudonym.Pseudonymizer, kind, s string) []string {
	if pseudonym.IsPseudonym(kind, s) {
		return []string{s}
	}
	return p.All(kind, s)
}
