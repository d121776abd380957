// Package complianceview backs the moderator console's compliance views
// (serve.Compliance) with the same legal holds, audit chain and signed
// exports as the `earshot hold`, `earshot audit` and `earshot export`
// commands. `earshot serve` wires it over its runtime; the browser tests
// wire it over the test bed's bucket.
package complianceview

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"

	"github.com/earshot/earshot/compliance/audit"
	"github.com/earshot/earshot/compliance/export"
	"github.com/earshot/earshot/compliance/retention"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/serve"
)

// Store is the object storage the views read and write.
type Store interface {
	audit.Store
	export.Source
}

// Kinds of ID, as ingest/pseudonym names them.
const (
	KindPerson = "p"
	KindRoom   = "r"
)

// Pseudonyms resolves what an operator typed (a raw room or person ID, or
// a pseudonym) to the pseudonyms data is stored under. ingest/pseudonym's
// Pseudonymizer implements it; serve sits below ingest and does not
// import it.
type Pseudonyms interface {
	// Resolve returns id itself when it is a pseudonym of kind, else its
	// pseudonyms under every key version.
	Resolve(kind, id string) []string
	// ResolveCurrent returns id itself when it is a pseudonym of kind,
	// else its pseudonym under the current key version.
	ResolveCurrent(kind, id string) string
}

// Config configures a Backend.
type Config struct {
	Store Store            // holds, the audit chain, the archive and audio; required
	Keys  event.Keys       // opens the archived events' protected data for exports
	Holds *retention.Holds // required
	Audit *audit.Log       // required: every change and export is recorded
	// Pseudonyms turns a raw room or person ID into its pseudonyms;
	// required.
	Pseudonyms Pseudonyms
	// Signer returns the export signing key; required.
	Signer func() (ed25519.PrivateKey, error)
	// Producer names the deployment in export manifests.
	Producer event.Producer
	// CheckOperator refuses an operator who may not take compliance
	// actions (compliance.operators); nil allows every console operator
	// the role lets in.
	CheckOperator func(operator string) error
	// AfterLift, when set, runs after a hold was lifted: completing the
	// erasures the hold held back.
	AfterLift func(ctx context.Context) error
}

// Backend implements serve.Compliance.
type Backend struct{ cfg Config }

var _ serve.Compliance = (*Backend)(nil)

// New checks cfg and returns the backend.
func New(cfg Config) (*Backend, error) {
	var errs []error
	if cfg.Store == nil {
		errs = append(errs, errors.New("no store"))
	}
	if cfg.Holds == nil {
		errs = append(errs, errors.New("no holds"))
	}
	if cfg.Audit == nil {
		errs = append(errs, errors.New("no audit log"))
	}
	if cfg.Pseudonyms == nil {
		errs = append(errs, errors.New("no pseudonymizer"))
	}
	if cfg.Signer == nil {
		errs = append(errs, errors.New("no export signing key"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("complianceview: %w", err)
	}
	return &Backend{cfg: cfg}, nil
}

func (b *Backend) check(operator string) error {
	if operator == "" {
		return errors.New("complianceview: no operator (the audit log names who did this)")
	}
	if b.cfg.CheckOperator != nil {
		return b.cfg.CheckOperator(operator)
	}
	return nil
}

// Holds implements serve.Compliance.
func (b *Backend) Holds(ctx context.Context) ([]serve.HoldInfo, error) {
	holds, err := b.cfg.Holds.List(ctx)
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
func (b *Backend) SetHold(ctx context.Context, operator, room, speaker, reason string) error {
	if room == "" && speaker == "" {
		return retention.ErrNoScope
	}
	if err := b.check(operator); err != nil {
		return err
	}
	rooms, speakers := []string{""}, []string{""}
	if room != "" {
		rooms = b.cfg.Pseudonyms.Resolve(KindRoom, room)
	}
	if speaker != "" {
		speakers = b.cfg.Pseudonyms.Resolve(KindPerson, speaker)
	}
	for _, r := range rooms {
		for _, p := range speakers {
			s := retention.Scope{Room: r, Speaker: p}
			err := b.cfg.Holds.Set(ctx, retention.Hold{Scope: s, Reason: reason, Operator: operator})
			if aerr := b.record(ctx, operator, audit.ActionHoldSet, s, reason, err, ""); aerr != nil || err != nil {
				return errors.Join(err, aerr)
			}
		}
	}
	return nil
}

// LiftHold implements serve.Compliance; AfterLift completes what the hold
// held back, as `earshot hold lift` does.
func (b *Backend) LiftHold(ctx context.Context, operator string, h serve.HoldInfo, reason string) (bool, error) {
	if err := b.check(operator); err != nil {
		return false, err
	}
	s := retention.Scope{Room: h.Room, Session: h.Session, Speaker: h.Speaker}
	existed, err := b.cfg.Holds.Lift(ctx, s)
	detail := ""
	if err == nil && !existed {
		detail = "no such hold"
	}
	if aerr := b.record(ctx, operator, audit.ActionHoldLift, s, reason, err, detail); aerr != nil || err != nil {
		return existed, errors.Join(err, aerr)
	}
	if existed && b.cfg.AfterLift != nil {
		if err := b.cfg.AfterLift(ctx); err != nil {
			return existed, fmt.Errorf("hold lifted; completing deferred erasures: %w", err)
		}
	}
	return existed, nil
}

func (b *Backend) record(ctx context.Context, operator, action string, s retention.Scope, reason string, err error, detail string) error {
	outcome := audit.OutcomeOK
	if err != nil {
		outcome, detail = audit.OutcomeFailed, err.Error()
	}
	return b.cfg.Audit.Record(ctx, event.AuditEntry{Operator: operator, Action: action, Subject: s.String(), Reason: reason, Outcome: outcome, Detail: detail})
}

// AuditStatus implements serve.Compliance: the whole chain is verified
// (as `earshot audit verify`), and its last entries returned.
func (b *Backend) AuditStatus(ctx context.Context, recent int) (serve.AuditStatus, error) {
	var st serve.AuditStatus
	rep, err := audit.Verify(ctx, b.cfg.Store)
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
	for en, err := range audit.Entries(ctx, b.cfg.Store) {
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
func (b *Backend) Export(ctx context.Context, operator, room, speaker, reason string, w io.Writer) (string, error) {
	if err := b.check(operator); err != nil {
		return "", err
	}
	signer, err := b.cfg.Signer()
	if err != nil {
		return "", err
	}
	req := export.Request{Room: b.cfg.Pseudonyms.ResolveCurrent(KindRoom, room), Speaker: speaker, Operator: operator, Reason: reason}
	if speaker != "" {
		req.Speaker = b.cfg.Pseudonyms.ResolveCurrent(KindPerson, speaker)
	}
	sum, err := export.Write(ctx, export.Config{Store: b.cfg.Store, Keys: b.cfg.Keys, Signer: signer, Audit: b.cfg.Audit, Producer: b.cfg.Producer}, req, w)
	if err != nil {
		return "", err
	}
	return "earshot-export-" + req.Room + "-" + sum.ManifestSHA256[:12] + ".tar", nil
}
