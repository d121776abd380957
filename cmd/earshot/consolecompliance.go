package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/earshot/earshot/compliance/audit"
	"github.com/earshot/earshot/compliance/export"
	"github.com/earshot/earshot/compliance/retention"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/ingest/pseudonym"
	"github.com/earshot/earshot/serve"
)

// consoleCompliance backs the console's compliance views with the same
// holds and audit log as `earshot hold` and `earshot audit`.
type consoleCompliance struct{ c *compliance }

var _ serve.Compliance = consoleCompliance{}

// Holds implements serve.Compliance.
func (cc consoleCompliance) Holds(ctx context.Context) ([]serve.HoldInfo, error) {
	holds, err := cc.c.holds.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]serve.HoldInfo, 0, len(holds))
	for _, h := range holds {
		out = append(out, serve.HoldInfo{Room: h.Room, Session: h.Session, Speaker: h.Speaker, Reason: h.Reason, Operator: h.Operator, Set: h.Set})
	}
	return out, nil
}

// SetHold implements serve.Compliance: as `earshot hold set`, a raw ID is
// held under every key version's pseudonym, and each hold is audited.
func (cc consoleCompliance) SetHold(ctx context.Context, operator, room, speaker, reason string) error {
	if room == "" && speaker == "" {
		return retention.ErrNoScope
	}
	if err := checkOperator(cc.c.rt.Config.Compliance, operator); err != nil {
		return err
	}
	rooms, speakers := []string{""}, []string{""}
	if room != "" {
		rooms = pseudonyms(cc.c.rt.Pseudonym, pseudonym.KindRoom, room)
	}
	if speaker != "" {
		speakers = pseudonyms(cc.c.rt.Pseudonym, pseudonym.KindPerson, speaker)
	}
	for _, r := range rooms {
		for _, p := range speakers {
			s := retention.Scope{Room: r, Speaker: p}
			err := cc.c.holds.Set(ctx, retention.Hold{Scope: s, Reason: reason, Operator: operator})
			if aerr := cc.record(ctx, operator, audit.ActionHoldSet, s, reason, err, ""); aerr != nil || err != nil {
				return errors.Join(err, aerr)
			}
		}
	}
	return nil
}

// LiftHold implements serve.Compliance; deferred erasures the hold held
// back are completed, as `earshot hold lift` does.
func (cc consoleCompliance) LiftHold(ctx context.Context, operator string, h serve.HoldInfo, reason string) (bool, error) {
	if err := checkOperator(cc.c.rt.Config.Compliance, operator); err != nil {
		return false, err
	}
	s := retention.Scope{Room: h.Room, Session: h.Session, Speaker: h.Speaker}
	existed, err := cc.c.holds.Lift(ctx, s)
	detail := ""
	if err == nil && !existed {
		detail = "no such hold"
	}
	if aerr := cc.record(ctx, operator, audit.ActionHoldLift, s, reason, err, detail); aerr != nil || err != nil {
		return existed, errors.Join(err, aerr)
	}
	if existed && cc.c.eraser != nil {
		if _, err := cc.c.eraser.CompletePending(ctx); err != nil {
			return existed, fmt.Errorf("hold lifted; completing deferred erasures: %w", err)
		}
	}
	return existed, nil
}

func (cc consoleCompliance) record(ctx context.Context, operator, action string, s retention.Scope, reason string, err error, detail string) error {
	outcome := audit.OutcomeOK
	if err != nil {
		outcome, detail = audit.OutcomeFailed, err.Error()
	}
	return cc.c.audit.Record(ctx, event.AuditEntry{Operator: operator, Action: action, Subject: s.String(), Reason: reason, Outcome: outcome, Detail: detail})
}

// AuditStatus implements serve.Compliance: the whole chain is verified
// (as `earshot audit verify`), and its last entries returned.
func (cc consoleCompliance) AuditStatus(ctx context.Context, recent int) (serve.AuditStatus, error) {
	var st serve.AuditStatus
	rep, err := audit.Verify(ctx, cc.c.rt.Store)
	var chain *audit.ChainError
	switch {
	case errors.As(err, &chain):
		st.Problem = chain.Error()
	case err != nil:
		return st, err
	default:
		st.Intact = true
	}
	st.Entries, st.Head = rep.Entries, rep.Head
	for en, err := range audit.Entries(ctx, cc.c.rt.Store) {
		if err != nil {
			return st, err
		}
		st.Recent = append(st.Recent, en)
		if len(st.Recent) > recent {
			st.Recent = st.Recent[1:]
		}
	}
	for i, j := 0, len(st.Recent)-1; i < j; i, j = i+1, j-1 {
		st.Recent[i], st.Recent[j] = st.Recent[j], st.Recent[i]
	}
	return st, nil
}

// Export implements serve.Compliance, as `earshot export` does.
func (cc consoleCompliance) Export(ctx context.Context, operator, room, speaker, reason string, w io.Writer) (string, error) {
	if err := checkOperator(cc.c.rt.Config.Compliance, operator); err != nil {
		return "", err
	}
	signer, err := export.LoadOrCreateKey(cc.c.rt.Config.Compliance.SigningKeyFile)
	if err != nil {
		return "", err
	}
	req := export.Request{Room: room, Speaker: speaker, Operator: operator, Reason: reason}
	if !pseudonym.IsPseudonym(pseudonym.KindRoom, room) {
		req.Room = cc.c.rt.Pseudonym.Room(room)
	}
	if speaker != "" && !pseudonym.IsPseudonym(pseudonym.KindPerson, speaker) {
		req.Speaker = cc.c.rt.Pseudonym.Person(speaker)
	}
	sum, err := export.Write(ctx, export.Config{Store: cc.c.rt.Store, Keys: cc.c.keys, Signer: signer, Audit: cc.c.audit, Producer: cc.c.rt.Self}, req, w)
	if err != nil {
		return "", err
	}
	return "earshot-export-" + req.Room + "-" + sum.ManifestSHA256[:12] + ".tar", nil
}
