package export_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/earshot/earshot/compliance/audit"
	"github.com/earshot/earshot/compliance/export"
	"github.com/earshot/earshot/compliance/retention"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/compliancetest"
	"github.com/earshot/earshot/storage"
)

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

type fixture struct {
	store *storage.Local
	keys  *compliancetest.Keyring
	priv  ed25519.PrivateKey
	cfg   export.Config
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	s, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	priv, err := export.LoadOrCreateKey(filepath.Join(t.TempDir(), "secrets", "export.ed25519"))
	if err != nil {
		t.Fatal(err)
	}
	log, err := audit.New(context.Background(), audit.Config{Store: s})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{store: s, keys: compliancetest.NewKeyring(), priv: priv}
	f.cfg = export.Config{Store: s, Keys: f.keys, Signer: priv, Audit: log, Producer: compliancetest.Prod}
	compliancetest.Build(t, s, f.keys, compliancetest.Session{Room: "r1_room", ID: "ses_a", Speakers: []string{"p1_alice", "p1_bob"}, Start: t0, Ended: t0.Add(time.Hour), Alert: true, Confirm: true})
	compliancetest.Build(t, s, f.keys, compliancetest.Session{Room: "r1_room", ID: "ses_b", Speakers: []string{"p1_bob"}, Start: t0, Ended: t0.Add(time.Hour)})
	compliancetest.Build(t, s, f.keys, compliancetest.Session{Room: "r1_other", ID: "ses_c", Speakers: []string{"p1_alice"}, Start: t0})
	return f
}

func (f *fixture) export(t *testing.T, req export.Request) ([]byte, export.Summary) {
	t.Helper()
	var buf bytes.Buffer
	sum, err := export.Write(context.Background(), f.cfg, req, &buf)
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), sum
}

// tracks is how many tracks compliancetest.Build gives each speaker: a
// first join, a rejoin, and a join after the bot restarted.
var tracks = len(compliancetest.DefaultOrdinals)

func members(t *testing.T, bundle []byte) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(bundle))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		out[h.Name] = b
	}
}

func TestExportVerifyRoundTrip(t *testing.T) {
	f := newFixture(t)
	bundle, sum := f.export(t, export.Request{Room: "r1_room", Operator: "officer", Reason: "case 9"})
	c := sum.Manifest.Counts
	// Three speakers' sessions, each speaker with their tracks of two segments.
	if n := 3 * 2 * tracks; c.Sessions != 2 || c.Audio != n || c.Transcripts != n || c.Alerts != 1 || c.Actions != 1 || c.Unreadable != 0 {
		t.Fatalf("counts %+v", c)
	}
	res, err := export.Verify(bytes.NewReader(bundle), f.priv.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() {
		t.Fatalf("fresh bundle fails: %+v %v", res.Failed(), res.Problems)
	}
	m := members(t, bundle)
	// Audio is decrypted Ogg; transcripts and alerts are readable.
	var audio int
	for name, b := range m {
		if strings.HasPrefix(name, "audio/") {
			audio++
			if !bytes.HasPrefix(b, []byte("OggS")) {
				t.Errorf("%s is not Ogg", name)
			}
		}
	}
	if audio != 3*2*tracks {
		t.Fatalf("%d audio files", audio)
	}
	vtt := string(m["transcripts/ses_a/p1_alice-"+event.TrackID("ses_a", "p1_alice", 0)+".vtt"])
	if !strings.HasPrefix(vtt, "WEBVTT\n") || !strings.Contains(vtt, "00:00:30.000 --> 00:01:00.000\n<v p1_alice>speaker 0 says secret words number 1") {
		t.Fatalf("vtt:\n%s", vtt)
	}
	var alerts []export.Alert
	if err := json.Unmarshal(m["alerts/ses_a.json"], &alerts); err != nil {
		t.Fatal(err)
	}
	if len(alerts) != 1 || alerts[0].Data == nil || alerts[0].Data.Text != "secret threat words" || len(alerts[0].Actions) != 1 || *alerts[0].Actions[0].Note != "confirmed: secret note" {
		t.Fatalf("alerts: %s", m["alerts/ses_a.json"])
	}
	// The export was audited.
	var last event.AuditEntry
	for e, err := range audit.Entries(context.Background(), f.store) {
		if err != nil {
			t.Fatal(err)
		}
		last = e
	}
	if last.Action != audit.ActionExport || last.Operator != "officer" || last.Reason != "case 9" || !strings.Contains(last.Detail, sum.ManifestSHA256) {
		t.Fatalf("audit %+v", last)
	}
}

func TestExportScopes(t *testing.T) {
	f := newFixture(t)
	_, sum := f.export(t, export.Request{Room: "r1_room", Session: "ses_a", Speaker: "p1_alice", Operator: "o"})
	c := sum.Manifest.Counts
	if c.Sessions != 1 || c.Audio != 2*tracks || c.Transcripts != 2*tracks || c.Alerts != 1 {
		t.Fatalf("speaker scope counts %+v", c)
	}
	bob := compliancetest.Tracks("ses_a", "p1_bob")
	alice := map[string]int{}
	for _, fe := range sum.Manifest.Files {
		for tr := range bob {
			if strings.Contains(fe.Path, "p1_bob") || strings.Contains(fe.Path, tr) {
				t.Fatalf("bob's file in alice's export: %s", fe.Path)
			}
		}
		for tr := range compliancetest.Tracks("ses_a", "p1_alice") {
			if strings.HasPrefix(fe.Path, "audio/") && strings.Contains(fe.Path, tr) {
				alice[tr]++
			}
		}
	}
	if len(alice) != tracks {
		t.Fatalf("alice's export has audio of %d of her %d tracks (a rejoin's and the bot's second stay's included): %v", len(alice), tracks, alice)
	}
	_, sum = f.export(t, export.Request{Room: "r1_room", Session: "ses_b", Operator: "o"})
	if c := sum.Manifest.Counts; c.Sessions != 1 || c.Audio != 2*tracks || c.Alerts != 0 {
		t.Fatalf("session scope counts %+v", c)
	}
}

// TestExportKeepsRevisionsApart: a replayed session has two revisions of
// each transcript; the bundle has one file per track and revision, each
// holding that revision's lines only, and one file with the text a reader
// shows (the newer revision's, one line per stretch of speech).
func TestExportKeepsRevisionsApart(t *testing.T) {
	f := newFixture(t)
	compliancetest.Build(t, f.store, f.keys, compliancetest.Session{Room: "r1_rep", ID: "ses_r", Speakers: []string{"p1_alice"}, Start: t0, Replayed: true, Ordinals: []int{0}})
	bundle, sum := f.export(t, export.Request{Room: "r1_rep", Operator: "o"})
	if c := sum.Manifest.Counts; c.Transcripts != 4 {
		t.Fatalf("counts %+v: want 4 transcript segments (2 lines, 2 revisions)", c)
	}
	perRevision, preferred := 0, 0
	for name, b := range members(t, bundle) {
		if !strings.HasPrefix(name, "transcripts/") || !strings.HasSuffix(name, ".json") {
			continue
		}
		var lines []export.Transcript
		if err := json.Unmarshal(b, &lines); err != nil {
			t.Fatal(err)
		}
		if len(lines) != 2 {
			t.Errorf("%s: %d lines, want 2", name, len(lines))
			continue
		}
		replayed := strings.HasSuffix(*lines[0].Text, "(replayed)")
		for _, l := range lines {
			if l.Revision != lines[0].Revision || strings.HasSuffix(*l.Text, "(replayed)") != replayed {
				t.Errorf("%s mixes revisions: %+v", name, lines)
			}
		}
		if lines[0].LastSample >= lines[1].FirstSample {
			t.Errorf("%s: lines overlap or are out of order: %+v", name, lines)
		}
		if strings.Contains(name, "."+lines[0].Revision+".json") {
			perRevision++
			continue
		}
		preferred++
		if !replayed {
			t.Errorf("%s shows the live revision, want the newer replay: %+v", name, lines)
		}
	}
	if perRevision != 2 || preferred != 1 {
		t.Fatalf("%d per-revision and %d preferred transcript files, want 2 and 1", perRevision, preferred)
	}
}

// flip changes one byte inside the content of the named member.
func flip(t *testing.T, bundle []byte, name string) []byte {
	t.Helper()
	content := members(t, bundle)[name]
	i := bytes.Index(bundle, content)
	if i < 0 || len(content) == 0 {
		t.Fatalf("member %s not found", name)
	}
	out := bytes.Clone(bundle)
	out[i+len(content)/2] ^= 0x01
	return out
}

func TestVerifyNamesTheFailingFile(t *testing.T) {
	f := newFixture(t)
	bundle, sum := f.export(t, export.Request{Room: "r1_room", Operator: "o"})
	pub := f.priv.Public().(ed25519.PublicKey)
	for _, fe := range sum.Manifest.Files {
		if !strings.HasPrefix(fe.Path, "audio/") && !strings.HasPrefix(fe.Path, "transcripts/") {
			continue
		}
		res, err := export.Verify(bytes.NewReader(flip(t, bundle, fe.Path)), pub)
		if err != nil {
			t.Fatal(err)
		}
		failed := res.Failed()
		if res.OK() || len(failed) != 1 || failed[0].Path != fe.Path || failed[0].Status != export.FileModified || !res.Signature {
			t.Fatalf("changed byte in %s: ok=%v failed=%+v", fe.Path, res.OK(), failed)
		}
	}
	// A changed manifest breaks the signature.
	res, _ := export.Verify(bytes.NewReader(flip(t, bundle, export.ManifestFile)), pub)
	if res.OK() || res.Signature {
		t.Fatal("altered manifest verified")
	}
}

func TestVerifyRejectsAnotherKey(t *testing.T) {
	f := newFixture(t)
	bundle, _ := f.export(t, export.Request{Room: "r1_room", Operator: "o"})
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	res, err := export.Verify(bytes.NewReader(bundle), other)
	if err != nil {
		t.Fatal(err)
	}
	if res.OK() || res.Signature || len(res.Problems) == 0 {
		t.Fatalf("bundle verified under another key: %+v", res)
	}
	// A bundle re-signed by someone else (their own key, files edited)
	// fails against the deployment's key.
	_, mallory, _ := ed25519.GenerateKey(rand.Reader)
	f.cfg.Signer = mallory
	forged, _ := f.export(t, export.Request{Room: "r1_room", Operator: "o"})
	if res, _ := export.Verify(bytes.NewReader(forged), f.priv.Public().(ed25519.PublicKey)); res.OK() {
		t.Fatal("a bundle signed by another key verified")
	}
}

func TestVerifyFindsMissingAndExtraFiles(t *testing.T) {
	f := newFixture(t)
	bundle, sum := f.export(t, export.Request{Room: "r1_room", Session: "ses_b", Operator: "o"})
	drop := sum.Manifest.Files[0].Path
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, b := range members(t, bundle) {
		if name == drop {
			continue
		}
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b))})
		tw.Write(b)
	}
	tw.WriteHeader(&tar.Header{Name: "audio/extra.ogg", Mode: 0o644, Size: 4})
	tw.Write([]byte("OggS"))
	tw.Close()
	res, err := export.Verify(&buf, f.priv.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, fr := range res.Failed() {
		got[fr.Path] = fr.Status
	}
	if res.OK() || got[drop] != export.FileMissing || got["audio/extra.ogg"] != export.FileUnlisted || len(got) != 2 {
		t.Fatalf("failed: %v", got)
	}
}

func TestExportMarksUnreadableAfterErasure(t *testing.T) {
	f := newFixture(t)
	for ref := range f.keys.KeysOf(context.Background(), retention.Scope{Speaker: "p1_bob"}) {
		f.keys.Shred(context.Background(), ref)
	}
	_, sum := f.export(t, export.Request{Room: "r1_room", Session: "ses_b", Operator: "o"})
	if sum.Manifest.Counts.Unreadable != 2*tracks {
		t.Fatalf("unreadable = %d, want %d", sum.Manifest.Counts.Unreadable, 2*tracks)
	}
}

func TestKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.pem")
	a, err := export.LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := export.LoadOrCreateKey(path)
	if err != nil || !a.Equal(b) {
		t.Fatalf("reloaded key differs: %v", err)
	}
	pub := a.Public().(ed25519.PublicKey)
	for _, s := range []string{export.FormatPublicKey(pub), export.PublicKeyPEM(pub), " " + export.FormatPublicKey(pub) + "\n"} {
		got, err := export.ParsePublicKey(s)
		if err != nil || !got.Equal(pub) {
			t.Fatalf("ParsePublicKey(%q) = %v", s, err)
		}
	}
	for _, s := range []string{"", "abc", export.FormatPublicKey(pub)[:10]} {
		if _, err := export.ParsePublicKey(s); err == nil {
			t.Fatalf("ParsePublicKey(%q) accepted", s)
		}
	}
}

func FuzzVerify(f *testing.F) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	m := []byte(`{"format":"earshot-export/1","files":[{"path":"a","size":1,"sha256":"00"}]}`)
	for _, x := range []struct {
		n string
		b []byte
	}{{"a", []byte("x")}, {"manifest.json", m}, {"manifest.sig", ed25519.Sign(priv, m)}} {
		tw.WriteHeader(&tar.Header{Name: x.n, Mode: 0o644, Size: int64(len(x.b))})
		tw.Write(x.b)
	}
	tw.Close()
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := export.Verify(bytes.NewReader(b), pub)
		if err == nil && res.OK() && res.Manifest == nil {
			t.Fatal("verified without a manifest")
		}
	})
}
