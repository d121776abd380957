package browsertest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/compliance/archive"
	"github.com/earshot/earshot/compliance/audit"
	"github.com/earshot/earshot/compliance/export"
	"github.com/earshot/earshot/compliance/retention"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/e2e"
	"github.com/earshot/earshot/serve"
	"github.com/earshot/earshot/serve/complianceview"
)

const (
	holdReason   = "Litigation 7: preserve the room."
	liftReason   = "Case 7 settled."
	exportReason = "Subpoena 12."
)

// complianceBackend is the console's compliance backend as earshot serve
// builds it (serve/complianceview), over the run's bucket, with an audit
// log publishing on the run's audit topic and a fresh export signing key.
func complianceBackend(t *testing.T, ing *e2e.Ingest, keys event.Keys, prod bus.Sender, auditTopic string) (*complianceview.Backend, ed25519.PublicKey) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	alog, err := audit.New(ctx, audit.Config{Store: ing.Store, Sender: prod, Topic: auditTopic, Producer: event.Producer{Name: "earshot-serve", Version: "e2e"}})
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, err := complianceview.New(complianceview.Config{Store: ing.Store, Keys: keys, Holds: &retention.Holds{Store: ing.Store}, Audit: alog,
		Pseudonyms: ing.Pseud, Signer: func() (ed25519.PrivateKey, error) { return priv, nil }, Producer: event.Producer{Name: "earshot-serve", Version: "e2e"}})
	if err != nil {
		t.Fatal(err)
	}
	return b, pub
}

// complianceInBrowser: a compliance operator sets a legal hold on the
// room (the form submitted from the keyboard) and lifts it with a
// reason, then exports the room and downloads the signed bundle, which
// verifies under the signing key; the audit chain shows it all. A
// moderator sees no compliance control and is refused when posting
// directly, with a valid CSRF token.
func complianceInBrowser(t *testing.T, chrome, base, roomP string, comp *complianceview.Backend, exportKey ed25519.PublicKey, alice, carol *tab) {
	t.Helper()
	ctx := context.Background()
	cora := newTab(t, chrome, base, "cora")
	cora.signIn(coraToken)
	cora.do(chromedp.Click(`nav a[href="/console/compliance"]`))
	cora.waitJSAcrossLoads("the compliance page", `!!document.getElementById('chain-status')`, 30*time.Second)

	// Set a hold on the room by its raw ID, from the keyboard.
	cora.do(chromedp.SendKeys("#hold-room", strconv.Itoa(room)), chromedp.SendKeys("#hold-reason", holdReason), chromedp.KeyEvent("\r"))
	cora.waitJSAcrossLoads("the hold set", `location.search === '?done=set'`, 30*time.Second)
	if !evalJS[bool](cora, `!!document.querySelector('#holds ~ table tbody td[title="`+roomP+`"]') && document.body.textContent.includes('`+holdReason+`')`) {
		t.Error("the compliance page does not list the hold on the room's pseudonym with its reason")
	}
	holds, err := comp.Holds(ctx)
	if err != nil || len(holds) != 1 || holds[0].Room != roomP || holds[0].Operator != "cora" || holds[0].Reason != holdReason {
		t.Fatalf("holds %+v (%v): want cora's on the room", holds, err)
	}
	cora.checkPage("compliance with a hold")

	// A moderator sees none of it and cannot post to it.
	if evalJS[bool](alice, `!!document.querySelector('a[href="/console/compliance"], form[action^="/console/compliance"]')`) {
		t.Error("a moderator's page shows compliance controls")
	}
	for _, f := range []string{`{op: 'set', room: '` + strconv.Itoa(room) + `', reason: 'not mine'}`, `{room: '` + strconv.Itoa(room) + `', reason: 'not mine'}`} {
		path := "/console/compliance/holds"
		if !strings.Contains(f, "op:") {
			path = "/console/compliance/export"
		}
		code := evalJS[int](alice, `fetch('`+path+`', {method: 'POST', credentials: 'same-origin',
			headers: {'X-CSRF-Token': document.querySelector('meta[name="csrf-token"]').content}, body: new URLSearchParams(`+f+`)}).then(r => r.status)`)
		if code != http.StatusForbidden {
			t.Errorf("a moderator's POST %s with a valid CSRF token: status %d, want 403", path, code)
		}
	}
	if code := alice.navigate(base + "/console/compliance"); code != http.StatusForbidden {
		t.Errorf("a moderator opening the compliance page: status %d, want 403", code)
	}

	// Lift it with a reason.
	cora.do(chromedp.SendKeys("#lift-reason-0", liftReason), chromedp.Click("form.lift button[type=submit]"))
	cora.waitJSAcrossLoads("the hold lifted", `location.search === '?done=lifted' && document.body.textContent.includes('No legal hold.')`, 30*time.Second)
	if holds, err := comp.Holds(ctx); err != nil || len(holds) != 0 {
		t.Errorf("holds after the lift: %+v (%v)", holds, err)
	}

	// Export the room and download the bundle.
	dir := t.TempDir()
	cora.do(chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dir})
		return err
	}))
	cora.do(chromedp.SendKeys("#export-room", strconv.Itoa(room)), chromedp.SendKeys("#export-reason", exportReason),
		chromedp.Click(`form[action="/console/compliance/export"] button[type=submit]`))
	bundle := waitDownload(t, dir, ".tar", time.Minute)
	res, err := export.Verify(bytes.NewReader(bundle), exportKey)
	if err != nil || !res.OK() {
		t.Fatalf("the downloaded bundle (%d bytes) does not verify: %v %+v", len(bundle), err, res)
	}
	var audio, transcripts int
	for _, f := range res.Files {
		audio += b2i(strings.HasPrefix(f.Path, "audio/"))
		transcripts += b2i(strings.HasPrefix(f.Path, "transcripts/"))
	}
	if m := res.Manifest; audio == 0 || transcripts == 0 || m == nil || m.Scope.Room != roomP || m.Scope.Operator != "cora" || m.Counts.Alerts == 0 {
		t.Errorf("the bundle holds %d audio and %d transcript files (manifest %+v): want the room's, with its alert, exported by cora", audio, transcripts, m)
	}

	// The audit log view: the chain is intact and ends with the export,
	// after the lift and the hold.
	cora.do(chromedp.Navigate(base + "/console/compliance"))
	if !evalJS[bool](cora, `document.getElementById('chain-status').textContent.includes('Hash chain intact')`) {
		t.Error("the audit chain is not shown intact")
	}
	got := evalJS[[]string](cora, `Array.from(document.querySelectorAll('#auditlog ~ table tbody tr')).slice(0, 3).map(r => r.children[2].textContent + ' ' + r.children[3].textContent)`)
	if want := []string{"cora export", "cora hold.lift", "cora hold.set"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("latest audit entries %q, want %q", got, want)
	}
	cora.checkPage("compliance")
	carol.do(chromedp.Navigate(base + "/console/compliance"))
	carol.checkPage("compliance (admin)")
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// waitDownload waits for a finished download ending in ext in dir.
func waitDownload(t *testing.T, dir, ext string, within time.Duration) []byte {
	t.Helper()
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		m, _ := filepath.Glob(filepath.Join(dir, "*"+ext))
		if len(m) == 1 {
			b, err := os.ReadFile(m[0])
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
	t.Fatalf("no %s downloaded within %v", ext, within)
	return nil
}

// waitArchived waits until the compliance archive holds the transcript
// segments the alert was raised on.
func waitArchived(t *testing.T, ing *e2e.Ingest, idx *serve.Index, id string) {
	t.Helper()
	ent, ok := idx.Get(id)
	a := ent.Alert
	if !ok || len(a.Segments) == 0 {
		t.Fatalf("alert %s: not in the index, or names no transcript segment", id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for ctx.Err() == nil {
		missing := map[string]bool{}
		for _, s := range a.Segments {
			missing[s] = true
		}
		for oi, err := range ing.Store.List(ctx, archive.ScopePrefix(ing.RoomP, "", "")) {
			if err != nil {
				break
			}
			if ref, ok := archive.ParseKey(oi.Key); ok && ref.Type == event.TypeTranscript {
				delete(missing, ref.EventID)
			}
		}
		if len(missing) == 0 {
			return
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Fatal("the archive does not hold the alert's transcript segments")
}

// statusIs is a script: the queue row of alert id shows status.
func statusIs(id, status string) string {
	return `(() => { const r = document.querySelector('#queue tr[data-id="` + id + `"] .status'); return !!r && r.textContent === '` + status + `'; })()`
}

// inOrder reports whether s holds the parts in that order.
func inOrder(s string, parts ...string) bool {
	for _, p := range parts {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return true
}

// act takes an action on the selected (or open) alert by keyboard alone:
// the key opens the note dialog with the note focused, the note is typed,
// Tab reaches Save, Enter saves.
func (b *tab) act(key, note string) {
	b.t.Helper()
	b.do(chromedp.Click("h1"), chromedp.KeyEvent(key))
	b.waitJS("the action dialog with the note focused", `document.getElementById('act-dialog').open && document.activeElement.id === 'act-note'`, 10*time.Second)
	b.do(chromedp.KeyEvent(note), chromedp.KeyEvent("\t"))
	if id := evalJS[string](b, `document.activeElement.id`); id != "act-ok" {
		b.t.Fatalf("%s: Tab from the note reached %q, not the dialog's Save", b.name, id)
	}
	b.do(chromedp.KeyEvent("\r"))
}
