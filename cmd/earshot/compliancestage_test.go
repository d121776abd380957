package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/earshot/earshot/compliance/audit"
	"github.com/earshot/earshot/compliance/erasure"
	"github.com/earshot/earshot/internal/compliancetest"
	"github.com/earshot/earshot/storage"
	"github.com/earshot/earshot/storage/crypt"
)

var (
	cliRoom  = "r1_" + strings.Repeat("b", 32)
	cliAlice = "p1_" + strings.Repeat("a", 32)
	cliBob   = "p1_" + strings.Repeat("c", 32)
)

// TestComplianceCommands drives export, verify, hold, erase and audit
// through the CLI on the embedded defaults (local store).
func TestComplianceCommands(t *testing.T) {
	dir := t.TempDir()
	store, err := storage.OpenLocal(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	// The data is written as the pipeline writes it: audio encrypted by the
	// durable keyring whose KEK the commands load from the data dir.
	keys, cstore := compliancetest.NewCrypt(t, store, filepath.Join(dir, "secrets", "kek.key"))
	t0 := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	compliancetest.Build(t, cstore, keys, compliancetest.Session{Room: cliRoom, ID: "ses_one", Speakers: []string{cliAlice, cliBob}, Start: t0, Ended: t0.Add(time.Hour), Alert: true, Confirm: true})
	dd := []string{"-data-dir", dir}
	cmd := func(wantCode int, args ...string) string {
		t.Helper()
		if args[0] != "verify" { // verify needs no configuration, only the key
			args = append(args, dd...)
		}
		code, out, errOut := run(t, args...)
		if code != wantCode {
			t.Fatalf("earshot %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, wantCode, out, errOut)
		}
		return out + errOut
	}

	pubFile := filepath.Join(dir, "export.pub")
	pub := cmd(0, "signing-key")
	if err := os.WriteFile(pubFile, []byte(pub), 0o600); err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(dir, "bundle.tar")
	out := cmd(0, "export", "--room", cliRoom, "--out", bundle, "--operator", "officer", "--reason", "case 1")
	if !strings.Contains(out, fmt.Sprintf("%d audio segments", 4*len(compliancetest.DefaultOrdinals))) || !strings.Contains(out, "exported") {
		t.Fatalf("export output: %s", out)
	}
	if out := cmd(0, "verify", bundle, "--key", pubFile); !strings.Contains(out, "OK ") {
		t.Fatalf("verify: %s", out)
	}
	// One changed byte in one audio file: verify names it.
	b, _ := os.ReadFile(bundle)
	name, content := firstAudio(t, b)
	i := bytes.Index(b, content)
	b[i+len(content)-1] ^= 0x80
	bad := filepath.Join(dir, "bad.tar")
	os.WriteFile(bad, b, 0o600)
	if out := cmd(1, "verify", "--key", pubFile, bad); !strings.Contains(out, fmt.Sprintf("FAIL %q: modified", name)) {
		t.Fatalf("verify of a changed bundle: %s", out)
	}
	// A member whose name would redraw the terminal is printed quoted.
	evil := filepath.Join(dir, "evil.tar")
	os.WriteFile(evil, withMember(t, b, "\x1b[2K\rOK all files verified\x1b[8m", []byte("x")), 0o600)
	if out := cmd(1, "verify", "--key", pubFile, evil); strings.ContainsAny(out, "\x1b\r") || !strings.Contains(out, `\x1b[2K\rOK all files verified`) {
		t.Fatalf("verify printed a bundle's name unescaped: %q", out)
	}
	// Another deployment's key does not verify it.
	other := filepath.Join(t.TempDir(), "other")
	otherPub := cmd(0, "signing-key", "-set", "compliance.signing_key_file="+other)
	if out := cmd(1, "verify", bundle, "--key", strings.TrimSpace(otherPub)); !strings.Contains(out, "not signed by the trusted key") {
		t.Fatalf("verify with another key: %s", out)
	}

	// A hold defers the erasure; lifting it completes it.
	cmd(0, "hold", "set", "--room", cliRoom, "--reason", "litigation 4", "--operator", "legal")
	if out := cmd(0, "hold", "list"); !strings.Contains(out, "litigation 4") {
		t.Fatalf("hold list: %s", out)
	}
	out = cmd(0, "erase", "--person", cliAlice, "--operator", "dpo", "--reason", "request 9", "--json")
	var rc erasure.Receipt
	if err := json.Unmarshal([]byte(out[:strings.LastIndex(out, "}")+1]), &rc); err != nil {
		t.Fatalf("receipt %q: %v", out, err)
	}
	if rc.Status != erasure.StatusDeferred || rc.Pending == "" || len(rc.KeysDestroyed) != 0 {
		t.Fatalf("erase under hold: %+v", rc)
	}
	// Held data is still readable.
	if out := cmd(0, "export", "--room", cliRoom, "--speaker", cliAlice, "--out", bundle, "--operator", "officer"); !strings.Contains(out, fmt.Sprintf("%d audio segments", 2*len(compliancetest.DefaultOrdinals))) || strings.Contains(out, "unreadable") {
		t.Fatalf("export of held data: %s", out)
	}
	if out := cmd(0, "hold", "lift", "--room", cliRoom, "--operator", "legal", "--reason", "case closed"); !strings.Contains(out, "1 deferred erasure(s) completed") {
		t.Fatalf("hold lift: %s", out)
	}
	if out := cmd(0, "erase", "--person", cliAlice, "--operator", "dpo"); !strings.Contains(out, "nothing left to erase") {
		t.Fatalf("second erase: %s", out)
	}
	// Alice is gone from the room's export; Bob is still there.
	out = cmd(0, "export", "--room", cliRoom, "--out", bundle, "--operator", "officer")
	if !strings.Contains(out, fmt.Sprintf("%d audio segments", 2*len(compliancetest.DefaultOrdinals))) || !strings.Contains(out, "0 alerts") || strings.Contains(out, "unreadable") {
		t.Fatalf("export after erasure: %s", out)
	}

	// Every action is in the audit log, and the chain checks out.
	var actions []string
	for e, err := range audit.Entries(context.Background(), store) {
		if err != nil {
			t.Fatal(err)
		}
		actions = append(actions, e.Action+":"+e.Outcome)
	}
	want := "export:ok hold.set:ok erase:deferred export:ok hold.lift:ok erase:ok erase:ok export:ok"
	if got := strings.Join(actions, " "); got != want {
		t.Fatalf("audit actions %q, want %q", got, want)
	}
	if out := cmd(0, "audit", "verify"); !strings.Contains(out, "8 entries") {
		t.Fatalf("audit verify: %s", out)
	}
	if err := store.DeleteAll(context.Background(), audit.Key(3)); err != nil {
		t.Fatal(err)
	}
	if out := cmd(1, "audit", "verify"); !strings.Contains(out, audit.Key(3)) || !strings.Contains(out, "missing") {
		t.Fatalf("audit verify after removing entry 3: %s", out)
	}
}

func TestVerifyUsage(t *testing.T) {
	if code, _, errOut := run(t, "verify", "x.tar"); code != 2 || !strings.Contains(errOut, "--key") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}

func firstAudio(t *testing.T, bundle []byte) (string, []byte) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(bundle))
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("no audio in bundle: %v", err)
		}
		if strings.HasPrefix(h.Name, "audio/") {
			b, _ := io.ReadAll(tr)
			return h.Name, b
		}
	}
}

// TestKeysRewrapCommand is a KEK rotation through the CLI: with the new
// KEK alone the deployment refuses to start; with the old one listed as
// previous, `keys rewrap` moves every data key to the new KEK; afterwards
// the new KEK alone exports everything and the old one is refused.
func TestKeysRewrapCommand(t *testing.T) {
	dir := t.TempDir()
	store, err := storage.OpenLocal(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	oldKEK := filepath.Join(dir, "secrets", "kek.key")
	keys, cstore := compliancetest.NewCrypt(t, store, oldKEK)
	t0 := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	compliancetest.Build(t, cstore, keys, compliancetest.Session{Room: cliRoom, ID: "ses_one", Speakers: []string{cliAlice, cliBob}, Start: t0, Ended: t0.Add(time.Hour)})
	if err := keys.CheckKEK(context.Background()); err != nil { // as every start of the deployment does
		t.Fatal(err)
	}
	newKEK := filepath.Join(dir, "secrets", "kek-2027.key")
	if _, err := crypt.LoadLocalKEK(newKEK, true); err != nil {
		t.Fatal(err)
	}
	cmd := func(wantCode int, args ...string) string {
		t.Helper()
		args = append(args, "-data-dir", dir)
		code, out, errOut := run(t, args...)
		if code != wantCode {
			t.Fatalf("earshot %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, wantCode, out, errOut)
		}
		return out + errOut
	}
	useNew := []string{"-set", "crypto.kek_file=" + newKEK}
	if out := cmd(1, append([]string{"keys", "rewrap", "--operator", "sec"}, useNew...)...); !strings.Contains(out, "previous_kek_files") {
		t.Fatalf("rewrap without the old KEK: %s", out)
	}
	out := cmd(0, append([]string{"keys", "rewrap", "--operator", "sec", "-set", "crypto.previous_kek_files=" + oldKEK}, useNew...)...)
	if !strings.Contains(out, "re-wrapped 2 of 2 data keys") {
		t.Fatalf("rewrap: %s", out)
	}
	out = cmd(0, append([]string{"export", "--room", cliRoom, "--out", filepath.Join(dir, "b.tar"), "--operator", "officer"}, useNew...)...)
	if !strings.Contains(out, fmt.Sprintf("%d audio segments", 4*len(compliancetest.DefaultOrdinals))) || strings.Contains(out, "unreadable") {
		t.Fatalf("export with the new KEK alone: %s", out)
	}
	if out := cmd(1, "export", "--room", cliRoom, "--out", filepath.Join(dir, "c.tar"), "--operator", "officer"); !strings.Contains(out, "kek_file") {
		t.Fatalf("export with the retired KEK: %s", out)
	}
	var actions []string
	for e, err := range audit.Entries(context.Background(), store) {
		if err != nil {
			t.Fatal(err)
		}
		actions = append(actions, e.Action+":"+e.Outcome)
	}
	if got := strings.Join(actions, " "); got != "keys.rewrap:ok export:ok" {
		t.Fatalf("audit actions %q", got)
	}
}

// withMember returns the tar bundle b with one more member.
func withMember(t *testing.T, b []byte, name string, content []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	tw.Write(content)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}
