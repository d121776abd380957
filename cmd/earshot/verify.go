package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/earshot/earshot/compliance/export"
)

// errVerifyFailed exits 1 after the failures were printed.
var errVerifyFailed = errors.New("bundle does not verify")

func runVerify(_ context.Context, e *env) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	key := fs.String("key", "", "trusted public `key`: a file (base64 or PEM, as `earshot signing-key` prints) or the base64 itself; never a key taken from the bundle")
	// Flags may come before or after the bundle's name.
	var bundle string
	args := e.args
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return usageError{err}
		}
		if fs.NArg() == 0 {
			break
		}
		if bundle != "" {
			return usageError{fmt.Errorf("one bundle at a time (got %q and %q)", bundle, fs.Arg(0))}
		}
		bundle, args = fs.Arg(0), fs.Args()[1:]
	}
	if bundle == "" || *key == "" {
		return usageError{errors.New("usage: earshot verify bundle.tar --key <public key file or base64>")}
	}
	pub, err := trustedKey(*key)
	if err != nil {
		return usageError{err}
	}
	f, err := os.Open(bundle)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	defer f.Close()
	res, err := export.Verify(f, pub)
	if err != nil {
		return err
	}
	// Everything named by the bundle is quoted (Go syntax, control bytes
	// escaped): a failing bundle must not be able to redraw the terminal
	// into a passing one.
	for _, fr := range res.Failed() {
		fmt.Fprintf(e.stdout, "FAIL %q: %s\n", fr.Path, fr.Status)
	}
	for _, p := range res.Problems {
		fmt.Fprintf(e.stdout, "FAIL %q\n", p)
	}
	if !res.OK() {
		if res.SignedBy != "" && res.SignedBy != export.KeyID(pub) {
			fmt.Fprintf(e.stdout, "the manifest names signing key %q; you trust %s\n", res.SignedBy, export.KeyID(pub))
		}
		return errVerifyFailed
	}
	m := res.Manifest
	fmt.Fprintf(e.stdout, "OK %q: %d files verified, signed by key %q on %s (room %q, operator %q)\n",
		bundle, len(res.Files), m.KeyID, m.Created.Format("2006-01-02 15:04:05Z07:00"), m.Scope.Room, m.Scope.Operator)
	return nil
}

// trustedKey reads --key: a file holding the key, or the key itself.
func trustedKey(s string) (ed25519.PublicKey, error) {
	if b, err := os.ReadFile(s); err == nil {
		return export.ParsePublicKey(string(b))
	}
	return export.ParsePublicKey(s)
}
