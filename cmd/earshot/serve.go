package main

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/ingest/pseudonym"
	"github.com/earshot/earshot/internal/config"
	"github.com/earshot/earshot/policy/notify"
	"github.com/earshot/earshot/serve"
)

// newServeStage builds the moderator API. Its alert index is rebuilt from
// earshot.alerts and earshot.alert-actions on every start.
func newServeStage(ctx context.Context, rt *Runtime) (Stage, error) {
	c := rt.Config.Serve
	if c.Listen == "" {
		return nil, fmt.Errorf("serve.listen is empty: set it to host:port to run the moderator API: %w", errNotConfigured)
	}
	links, err := linkSigner(c)
	if err != nil {
		return nil, err
	}
	ops, err := operatorsOf(c, rt.Pseudonym)
	if err != nil {
		return nil, err
	}
	if len(ops) == 0 {
		rt.Log.Warn("serve.operators is empty: only signed links from notifications can read evidence; nobody can list or act on alerts")
	}
	idx := serve.NewIndex(c.MaxAlerts)
	idx.RequireSealed(rt.Keys)
	tail := &serve.Tail{Cluster: rt.Cluster, Topics: []string{event.TopicAlerts, event.TopicAlertActions},
		Apply: func(e *event.Envelope) { idx.Apply(e) }, Logger: rt.Log}
	// The console's live rooms: what arrives from now on.
	live := serve.NewLive(nil)
	liveTail := &serve.Tail{Cluster: rt.Cluster, Topics: []string{event.TopicLifecycle, event.TopicSegments, event.TopicTranscripts},
		Apply: live.Apply, Logger: rt.Log, FromEnd: true}
	// One hash-chained audit log per process, shared with the compliance
	// stage, so that the chain has one writer here.
	alog, err := auditLog(ctx, rt)
	if err != nil {
		return nil, err
	}
	// The console's compliance views use the same holds and audit log as
	// the hold and audit commands; without them the views say so.
	var comp serve.Compliance
	if c, err := newCompliance(ctx, rt); err != nil {
		rt.Log.Warn("the console's compliance views are off", "error", err)
	} else if b, err := consoleCompliance(c); err != nil {
		rt.Log.Warn("the console's compliance views are off", "error", err)
	} else {
		comp = b
	}
	return serve.New(serve.Config{
		Listen: c.Listen, Store: rt.Store, Keys: rt.Keys, Sender: rt.Producer, Producer: rt.Self,
		Audit: alog,
		Links: links, Operators: ops, Index: idx, Tail: tail, Context: c.EvidenceContext, Logger: rt.Log,
		Console: consoleConfig(c), Live: live, LiveTail: liveTail, Compliance: comp,
	})
}

// linkSigner returns the signer of evidence links, creating the link key
// file on first use. Notifiers build theirs the same way, from the same
// file, so that the links they send verify here.
func linkSigner(c config.Serve) (*serve.LinkSigner, error) {
	key, err := serve.LoadOrCreateLinkKey(c.LinkSecretFile)
	if err != nil {
		return nil, fmt.Errorf("serve.link_secret_file: %w", err)
	}
	return serve.NewLinkSigner(key, c.PublicURL, c.LinkTTL)
}

// operatorsOf reads the configured operators' tokens, roles and rooms
// (room IDs become their pseudonyms under every key version).
func operatorsOf(c config.Serve, p *pseudonym.Pseudonymizer) ([]serve.Operator, error) {
	var ops []serve.Operator
	for _, o := range c.Operators {
		var (
			op  serve.Operator
			err error
		)
		if o.TokenFile != "" {
			op, err = serve.OperatorFromFile(o.Name, o.TokenFile)
		} else {
			op, err = serve.OperatorFromHex(o.Name, o.TokenSHA256)
		}
		if err != nil {
			return nil, fmt.Errorf("serve.operators: %w", err)
		}
		op.Role = o.Role
		for _, r := range o.Rooms {
			if pseudonym.IsPseudonym(pseudonym.KindRoom, r) {
				op.Rooms = append(op.Rooms, r)
				continue
			}
			op.Rooms = append(op.Rooms, p.All(pseudonym.KindRoom, r)...)
		}
		ops = append(ops, op)
	}
	return ops, nil
}

// consoleConfig is the console's sign-in and session settings.
func consoleConfig(c config.Serve) serve.ConsoleConfig {
	cc := serve.ConsoleConfig{Idle: c.Console.SessionIdle, MaxAge: c.Console.SessionMax, ProxyHeader: c.Console.ProxyHeader,
		Secure: strings.HasPrefix(c.PublicURL, "https://")}
	for _, n := range c.Console.ProxyCIDRs {
		if p, err := netip.ParsePrefix(n); err == nil { // Validate reported the others
			cc.ProxyNets = append(cc.ProxyNets, p)
		}
	}
	return cc
}

// evidenceLinks gives notifiers the serve stage's signed links, to the
// alert's console page (its JSON twin is /evidence/<alert> with the same
// token).
type evidenceLinks struct{ s *serve.LinkSigner }

var _ notify.Linker = evidenceLinks{}

// Link implements notify.Linker.
func (l evidenceLinks) Link(alertID string) (string, error) {
	u, _ := l.s.ConsoleLink(alertID)
	return u, nil
}
