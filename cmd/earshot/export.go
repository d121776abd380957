package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/earshot/earshot/compliance/export"
	"github.com/earshot/earshot/ingest/pseudonym"
)

func runExport(ctx context.Context, e *env) error {
	var (
		room, session, speaker, out, reason string
		op                                  *string
	)
	c, _, done, err := complianceCommand(ctx, e, "export", func(fs *flag.FlagSet) {
		fs.StringVar(&room, "room", "", "room `ID or pseudonym` (required)")
		fs.StringVar(&session, "session", "", "only this session `ID` (ses_...)")
		fs.StringVar(&speaker, "speaker", "", "only this participant (`identity or pseudonym`)")
		fs.StringVar(&out, "out", "", "bundle `file` to write (.tar)")
		fs.StringVar(&reason, "reason", "", "why (recorded in the audit log)")
		op = operatorFlag(fs)
	})
	if err != nil {
		return err
	}
	defer done()
	if room == "" || out == "" {
		return usageError{errors.New("--room and --out are required")}
	}
	if err := checkOperator(c.rt.Config.Compliance, *op); err != nil {
		return err
	}
	signer, err := export.LoadOrCreateKey(c.rt.Config.Compliance.SigningKeyFile)
	if err != nil {
		return err
	}
	req := export.Request{Room: room, Session: session, Speaker: speaker, Operator: *op, Reason: reason}
	if !pseudonym.IsPseudonym(pseudonym.KindRoom, room) {
		req.Room = c.rt.Pseudonym.Room(room)
	}
	if speaker != "" && !pseudonym.IsPseudonym(pseudonym.KindPerson, speaker) {
		req.Speaker = c.rt.Pseudonym.Person(speaker)
	}
	// Write next to the target and rename, so a failed export leaves no
	// half bundle under the requested name.
	tmp, err := os.CreateTemp(filepath.Dir(out), ".earshot-export-*")
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer os.Remove(tmp.Name())
	prog := newProgress(e.stderr)
	sum, err := export.Write(ctx, export.Config{
		Store: c.rt.Store, Keys: c.keys, Signer: signer, Audit: c.audit, Producer: c.rt.Self, Progress: prog,
	}, req, tmp)
	prog.finish()
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	m := sum.Manifest
	fmt.Fprintf(e.stdout, "wrote %s: %d files, %d bytes (%d sessions, %d audio segments, %d transcript segments, %d alerts, %d actions",
		out, len(m.Files), sum.Bytes, m.Counts.Sessions, m.Counts.Audio, m.Counts.Transcripts, m.Counts.Alerts, m.Counts.Actions)
	if m.Counts.Unreadable > 0 {
		fmt.Fprintf(e.stdout, "; %d fields unreadable (keys destroyed)", m.Counts.Unreadable)
	}
	fmt.Fprintf(e.stdout, ")\nmanifest sha256 %s, signed by key %s\n", sum.ManifestSHA256, m.KeyID)
	return nil
}

func runSigningKey(_ context.Context, e *env) error {
	var asPEM bool
	cfg, _, err := e.loadConfig("signing-key", func(fs *flag.FlagSet) {
		fs.BoolVar(&asPEM, "pem", false, "print a PEM PUBLIC KEY block instead of base64")
	})
	if err != nil {
		return err
	}
	k, err := export.LoadOrCreateKey(cfg.Compliance.SigningKeyFile)
	if err != nil {
		return err
	}
	pub := k.Public().(ed25519.PublicKey)
	if asPEM {
		fmt.Fprint(e.stdout, export.PublicKeyPEM(pub))
		return nil
	}
	fmt.Fprintln(e.stdout, export.FormatPublicKey(pub))
	return nil
}

// progress shows an export's progress on stderr: a bar on a terminal,
// otherwise a count line at every tenth of the files.
type progress struct {
	w        io.Writer
	bar      *progressbar.ProgressBar
	total, n int
	step     int
}

var _ export.Progress = (*progress)(nil)

func newProgress(w io.Writer) *progress { return &progress{w: w} }

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func (p *progress) Start(files int) {
	p.total = files
	if isTerminal(p.w) {
		p.bar = progressbar.NewOptions(files, progressbar.OptionSetWriter(p.w), progressbar.OptionSetDescription("exporting"),
			progressbar.OptionShowCount(), progressbar.OptionSetItsString("files"), progressbar.OptionShowIts(),
			progressbar.OptionThrottle(100_000_000), progressbar.OptionOnCompletion(func() { fmt.Fprintln(p.w) }))
		return
	}
	p.step = max(1, files/10)
	fmt.Fprintf(p.w, "exporting %d files\n", files)
}

func (p *progress) Add(string, int64) {
	p.n++
	if p.bar != nil {
		_ = p.bar.Add(1)
		return
	}
	if p.n%p.step == 0 || p.n == p.total {
		fmt.Fprintf(p.w, "exported %d/%d files\n", p.n, p.total)
	}
}

func (p *progress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}
