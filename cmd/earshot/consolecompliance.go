package main

import (
	"context"
	"crypto/ed25519"

	"github.com/earshot/earshot/compliance/export"
	"github.com/earshot/earshot/serve/complianceview"
)

// consoleCompliance backs the console's compliance views with the same
// holds, audit log and signing key as `earshot hold`, `earshot audit` and
// `earshot export`.
func consoleCompliance(c *compliance) (*complianceview.Backend, error) {
	cfg := complianceview.Config{
		Store: c.rt.Store, Keys: c.keys, Holds: c.holds, Audit: c.audit, Pseudonyms: c.rt.Pseudonym, Producer: c.rt.Self,
		Signer: func() (ed25519.PrivateKey, error) {
			return export.LoadOrCreateKey(c.rt.Config.Compliance.SigningKeyFile)
		},
		CheckOperator: func(op string) error { return checkOperator(c.rt.Config.Compliance, op) },
	}
	if c.eraser != nil {
		cfg.AfterLift = func(ctx context.Context) error {
			_, err := c.eraser.CompletePending(ctx)
			return err
		}
	}
	return complianceview.New(cfg)
}
