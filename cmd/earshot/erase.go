package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/earshot/earshot/compliance/erasure"
	"github.com/earshot/earshot/ingest/pseudonym"
)

func runErase(ctx context.Context, e *env) error {
	var (
		person, room, reason string
		asJSON               bool
		op                   *string
	)
	c, _, done, err := complianceCommand(ctx, e, "erase", func(fs *flag.FlagSet) {
		fs.StringVar(&person, "person", "", "participant `identity or pseudonym` to erase across all rooms")
		fs.StringVar(&room, "room", "", "room `ID or pseudonym` to erase")
		fs.StringVar(&reason, "reason", "", "why (recorded in the audit log)")
		fs.BoolVar(&asJSON, "json", false, "print the receipt as JSON")
		op = operatorFlag(fs)
	})
	if err != nil {
		return err
	}
	defer done()
	if (person == "") == (room == "") {
		return usageError{errors.New("give exactly one of --person or --room")}
	}
	if err := checkOperator(c.rt.Config.Compliance, *op); err != nil {
		return err
	}
	if c.eraser == nil {
		return c.eraserErr
	}
	req := erasure.Request{Kind: erasure.KindPerson, Operator: *op, Reason: reason}
	switch {
	case person != "" && pseudonym.IsPseudonym(pseudonym.KindPerson, person):
		req.Subjects = []string{person}
	case person != "":
		// Every key version's pseudonym: data from before a rotation too.
		req.Subjects = c.rt.Pseudonym.All(pseudonym.KindPerson, person)
	case pseudonym.IsPseudonym(pseudonym.KindRoom, room):
		req.Kind, req.Subjects = erasure.KindRoom, []string{room}
	default:
		req.Kind, req.Subjects = erasure.KindRoom, c.rt.Pseudonym.All(pseudonym.KindRoom, room)
	}
	rc, err := c.eraser.Erase(ctx, req)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rc)
	}
	printReceipt(e.stdout, rc)
	return nil
}

func printReceipt(w io.Writer, rc erasure.Receipt) {
	fmt.Fprintf(w, "erasure receipt %s\n", rc.ID)
	fmt.Fprintf(w, "  %-16s %s\n", "kind:", rc.Kind)
	fmt.Fprintf(w, "  %-16s %s\n", "subjects:", strings.Join(rc.Subjects, ", "))
	fmt.Fprintf(w, "  %-16s %s\n", "status:", rc.Status)
	fmt.Fprintf(w, "  %-16s %s\n", "time:", rc.Time.Format(time.RFC3339))
	fmt.Fprintf(w, "  %-16s %s\n", "operator:", rc.Operator)
	fmt.Fprintf(w, "  %-16s %d\n", "keys destroyed:", len(rc.KeysDestroyed))
	fmt.Fprintf(w, "  %-16s %d\n", "sessions:", rc.Sessions)
	fmt.Fprintf(w, "  %-16s %d objects, %d versions\n", "deleted:", rc.Deleted.Objects, rc.Deleted.Versions)
	if rc.Deleted.Locked > 0 {
		fmt.Fprintf(w, "  %-16s %d objects under S3 object lock\n", "left locked:", rc.Deleted.Locked)
	}
	for _, s := range rc.Deferred {
		fmt.Fprintf(w, "  %-16s %s (legal hold)\n", "deferred:", s)
	}
	if rc.Pending != "" {
		fmt.Fprintf(w, "  %-16s %s (completed when the hold is lifted)\n", "pending record:", rc.Pending)
	}
	if rc.Recheck != "" {
		fmt.Fprintf(w, "  %-16s %s (run again shortly, for what bots still recording wrote)\n", "recheck:", rc.Recheck)
	}
	if rc.Status == erasure.StatusNothing {
		fmt.Fprintln(w, "nothing left to erase")
	}
}
