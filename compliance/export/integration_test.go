package export_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/earshot/earshot/compliance/audit"
	"github.com/earshot/earshot/compliance/export"
	"github.com/earshot/earshot/internal/compliancetest"
)

// TestExportOnTestbed exports from versitygw through the encrypting store
// (the raw objects hold no Ogg), and verifies the bundle: the round trip
// passes, one changed byte fails naming the file, another key fails.
func TestExportOnTestbed(t *testing.T) {
	s3 := compliancetest.NewS3(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	keys, store := compliancetest.NewCrypt(t, s3.Store, filepath.Join(t.TempDir(), "kek.key"))
	compliancetest.Build(t, store, keys, compliancetest.Session{Room: "r1_room", ID: "ses_a", Speakers: []string{"p1_alice", "p1_bob"}, Start: t0, Ended: t0.Add(time.Hour), Alert: true, Confirm: true})
	for _, v := range s3.Versions(t, "audio/") {
		if bytes.Contains(v.Data, []byte("OggS")) {
			t.Fatalf("raw object %s holds Ogg", v.Key)
		}
	}
	priv, err := export.LoadOrCreateKey(filepath.Join(t.TempDir(), "export.ed25519"))
	if err != nil {
		t.Fatal(err)
	}
	log, err := audit.New(ctx, audit.Config{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	sum, err := export.Write(ctx, export.Config{Store: store, Keys: keys, Signer: priv, Audit: log}, export.Request{Room: "r1_room", Operator: "officer", Reason: "case"}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if c, n := sum.Manifest.Counts, 4*len(compliancetest.DefaultOrdinals); c.Audio != n || c.Transcripts != n || c.Alerts != 1 || c.Actions != 1 || c.Unreadable != 0 {
		t.Fatalf("counts %+v", c)
	}
	bundle := buf.Bytes()
	pub := priv.Public().(ed25519.PublicKey)
	res, err := export.Verify(bytes.NewReader(bundle), pub)
	if err != nil || !res.OK() {
		t.Fatalf("round trip: %v %+v %v", err, res.Failed(), res.Problems)
	}
	m := members(t, bundle)
	for name, b := range m {
		if strings.HasPrefix(name, "audio/") && !bytes.HasPrefix(b, []byte("OggS")) {
			t.Fatalf("%s is not decrypted Ogg", name)
		}
	}
	var target string
	for _, f := range sum.Manifest.Files {
		if strings.HasSuffix(f.Path, ".vtt") {
			target = f.Path
		}
	}
	res, err = export.Verify(bytes.NewReader(flip(t, bundle, target)), pub)
	if err != nil || res.OK() || len(res.Failed()) != 1 || res.Failed()[0].Path != target {
		t.Fatalf("changed byte in %s: %v %+v", target, err, res.Failed())
	}
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	if res, err := export.Verify(bytes.NewReader(bundle), other); err != nil || res.OK() {
		t.Fatalf("verified under another key: %v", err)
	}
	if _, err := audit.Verify(ctx, store); err != nil {
		t.Fatal(err)
	}
}
