package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/bustest"
	"github.com/earshot/earshot/internal/testbed"
	"github.com/earshot/earshot/serve/evidence/evidencetest"
	"github.com/earshot/earshot/storage/crypt"
)

const (
	room     = "room_srv"
	session  = "ses_srv"
	ownTrack = "trk_own"
	othTrack = "trk_other"
	speaker  = "spk_own"
	other    = "spk_other"
	opToken  = "operator-token-0123456789"
)

// fakeAudit keeps entries; fail makes Record fail.
type fakeAudit struct {
	mu      sync.Mutex
	entries []event.AuditEntry
	fail    bool
}

func (f *fakeAudit) Record(_ context.Context, e event.AuditEntry) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return errors.New("audit store down")
	}
	f.entries = append(f.entries, e)
	return nil
}

func (f *fakeAudit) last() event.AuditEntry {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.entries) == 0 {
		return event.AuditEntry{}
	}
	return f.entries[len(f.entries)-1]
}

type harness struct {
	t      testing.TB
	srv    *httptest.Server
	s      *Server
	audit  *fakeAudit
	sent   *bustest.Capture
	keys   *crypt.Memory
	links  *LinkSigner
	alert  *event.Envelope
	rec    evidencetest.Recording
	logs   *testbed.SyncBuffer
	ctxDur time.Duration
}

// newHarness records the tones fixture as two speakers' tracks (the other
// one starting 1 s later on the wall clock) and raises one alert on the
// 880 Hz tone of the own track, with an excerpt line of each speaker.
func newHarness(t testing.TB, edits ...func(*Config)) *harness {
	t.Helper()
	ctx := context.Background()
	h := &harness{t: t, audit: &fakeAudit{}, sent: &bustest.Capture{}, keys: crypt.NewMemory(), logs: &testbed.SyncBuffer{}, ctxDur: time.Second}
	store := evidencetest.NewStore()
	fixture := filepath.Join("evidence", "testdata", "tones.opus")
	h.rec = evidencetest.Record(t, store, fixture, evidencetest.Track{Room: room, Session: session, Track: ownTrack, Speaker: speaker, SegmentDuration: 2 * time.Second})
	evidencetest.Record(t, store, fixture, evidencetest.Track{Room: room, Session: session, Track: othTrack, Speaker: other,
		SegmentDuration: 2 * time.Second, Origin: h.rec.Origin.Add(time.Second)})

	tl := event.Timeline{Track: ownTrack, FirstSample: h.rec.At(3500), LastSample: h.rec.At(3800) - 1, Origin: h.rec.Origin, Anchor: event.AnchorArrival}
	var err error
	h.alert, err = event.New(event.TypeAlert, event.Producer{Name: "test"}, &event.Processing{PolicyVersion: "p1"}, room, session, speaker, &tl,
		event.Alert{Severity: "high", Category: "abuse.threat", RuleID: "threat.kill", Score: 0.9, Confidence: 0.8, Segments: []string{"evt_seg"}}, "threat.kill")
	if err != nil {
		t.Fatal(err)
	}
	// Another speaker's line is sealed under their key, as the policy
	// stage does (policy.sealExcerpt).
	otherLine := []byte("and the other speaker answers")
	ref := event.KeyRef{ID: event.KeyID(session, other), Room: room, Session: session, Speaker: other}
	sealed, err := h.keys.Seal(ctx, ref, otherLine, []byte("earshot.alert.excerpt\x00"+h.alert.EventID+"\x001"))
	if err != nil {
		t.Fatal(err)
	}
	data := event.AlertData{Value: "kill", Text: "i will kill you", Excerpt: []event.ExcerptLine{
		{Speaker: speaker, Track: ownTrack, FirstSample: tl.FirstSample, LastSample: tl.LastSample, Text: "i will kill you"},
		{Speaker: other, Track: othTrack, FirstSample: 1000, LastSample: 2000, KeyID: ref.ID, Sealed: sealed},
	}}
	if err := h.alert.Seal(ctx, h.keys, data); err != nil {
		t.Fatal(err)
	}
	idx := NewIndex(1000)
	if !idx.Apply(h.alert) {
		t.Fatal("index did not take the alert")
	}
	h.links, err = NewLinkSigner([]byte("0123456789abcdef0123456789abcdef"), "http://earshot.test", 15*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Store: store, Keys: h.keys, Sender: h.sent, Producer: event.Producer{Name: "earshot-serve"},
		Audit: h.audit, Links: h.links, Operators: []Operator{{Name: "alice", TokenHash: HashToken(opToken)}},
		Index: idx, Context: h.ctxDur, Logger: slog.New(slog.NewTextHandler(h.logs, nil)),
	}
	for _, e := range edits {
		e(&cfg)
	}
	h.s, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.srv = httptest.NewServer(h.s)
	t.Cleanup(h.srv.Close)
	return h
}

func (h *harness) do(method, path, bearer string, body io.Reader) (*http.Response, []byte) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.srv.URL+path, body)
	if err != nil {
		h.t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp, b
}

func TestRefusalsAreAudited(t *testing.T) {
	h := newHarness(t)
	id := h.alert.EventID
	expired := &LinkSigner{key: h.links.key, base: h.links.base, ttl: h.links.ttl, now: func() time.Time { return time.Now().Add(-time.Hour) }}
	tests := []struct {
		name, method, path, bearer string
		action, reason             string
	}{
		{"no token", "GET", "/evidence/" + id, "", AuditEvidenceRead, "no token"},
		{"no token on audio", "GET", "/evidence/" + id + "/audio.ogg", "", AuditEvidenceAudio, "no token"},
		{"wrong bearer", "GET", "/evidence/" + id, "not-a-real-token-xyz", AuditEvidenceRead, "unknown operator token"},
		{"link of another alert", "GET", "/evidence/" + id + "?t=" + h.links.Token("evt_other", time.Now().Add(time.Minute)), "", AuditEvidenceRead, "link token invalid"},
		{"tampered link", "GET", "/evidence/" + id + "?t=" + h.links.Token(id, time.Now().Add(time.Minute)) + "x", "", AuditEvidenceRead, "link token invalid"},
		{"expired link", "GET", "/evidence/" + id + "?t=" + expired.Token(id, time.Now().Add(-time.Minute)), "", AuditEvidenceRead, "link token expired"},
		{"link on actions", "POST", "/alerts/" + id + "/actions?t=" + h.links.Token(id, time.Now().Add(time.Minute)), "", AuditAlertAction, "link tokens are not accepted here"},
		{"list without token", "GET", "/alerts", "", AuditAlertsList, "no token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := h.do(tc.method, tc.path, tc.bearer, strings.NewReader(`{"action":"ack"}`))
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d (%s), want 401", resp.StatusCode, body)
			}
			if resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("no WWW-Authenticate header")
			}
			e := h.audit.last()
			if e.Outcome != OutcomeDenied || e.Action != tc.action || e.Detail != tc.reason || e.Operator != "anonymous" {
				t.Errorf("audit entry %+v, want %s denied: %s", e, tc.action, tc.reason)
			}
			if tc.bearer != "" && (strings.Contains(h.logs.String(), tc.bearer) || strings.Contains(e.Detail, tc.bearer)) {
				t.Error("the token appears in the logs or the audit entry")
			}
		})
	}
	if len(h.sent.All()) != 0 {
		t.Errorf("refused requests produced %d records", len(h.sent.All()))
	}
}

func TestEvidenceDocument(t *testing.T) {
	h := newHarness(t)
	id := h.alert.EventID
	resp, body := h.do("GET", "/evidence/"+id, opToken, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var doc EvidenceDoc
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Alert.ID != id || doc.Alert.Category != "abuse.threat" || doc.Alert.Speaker != speaker || doc.Alert.Status != StatusOpen {
		t.Errorf("alert view %+v", doc.Alert)
	}
	if doc.Text != "i will kill you" || len(doc.Excerpt) != 2 || doc.Excerpt[0].Text != "i will kill you" {
		t.Fatalf("excerpt %+v", doc.Excerpt)
	}
	if doc.Excerpt[1].Text != "and the other speaker answers" || doc.Excerpt[1].Unreadable {
		t.Errorf("the other speaker's sealed line was not opened: %+v", doc.Excerpt[1])
	}
	if len(doc.Audio) != 2 || !doc.Audio[0].Own || doc.Audio[1].Track != othTrack {
		t.Fatalf("audio %+v", doc.Audio)
	}
	if want := "http://earshot.test/evidence/" + id + "/audio.ogg"; doc.Audio[0].URL != want {
		t.Errorf("audio URL %s, want %s", doc.Audio[0].URL, want)
	}
	if e := h.audit.last(); e.Outcome != OutcomeOK || e.Operator != "alice" || e.Action != AuditEvidenceRead || e.Subject != id {
		t.Errorf("audit entry %+v", e)
	}

	// Erasing the other speaker leaves their line unreadable, not an error.
	h.keys.Shred(event.KeyID(session, other))
	_, body = h.do("GET", "/evidence/"+id, opToken, nil)
	doc = EvidenceDoc{}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Excerpt) != 2 || doc.Excerpt[1].Text != "" || !doc.Excerpt[1].Unreadable {
		t.Errorf("after erasure: %+v", doc.Excerpt)
	}
}

func TestEvidenceAudioThroughLink(t *testing.T) {
	h := newHarness(t)
	id := h.alert.EventID
	link, exp := h.links.Link(id)
	if !strings.HasPrefix(link, "http://earshot.test/evidence/"+id+"?t=") || time.Until(exp) > 15*time.Minute {
		t.Fatalf("link %s expires %v", link, exp)
	}
	tok := link[strings.Index(link, "?t=")+3:]

	// The document fetched through the link carries the token on to the
	// audio links.
	resp, body := h.do("GET", "/evidence/"+id+"?t="+tok, "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var doc EvidenceDoc
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	if e := h.audit.last(); e.Operator != linkCaller || e.Outcome != OutcomeOK {
		t.Errorf("audit entry %+v", e)
	}
	ctxSamples := event.DurationToSamples(h.ctxDur)
	tl := h.alert.Timeline
	for _, a := range doc.Audio {
		path := strings.TrimPrefix(a.URL, "http://earshot.test")
		resp, b := h.do("GET", path, "", nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d: %s", a.Track, resp.StatusCode, b)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "audio/ogg") {
			t.Errorf("content type %q", ct)
		}
		first, _ := strconv.ParseInt(resp.Header.Get("X-Earshot-First-Sample"), 10, 64)
		last, _ := strconv.ParseInt(resp.Header.Get("X-Earshot-Last-Sample"), 10, 64)
		wantFirst, wantLast := tl.FirstSample-ctxSamples, tl.LastSample+ctxSamples
		if !a.Own {
			// The other track started 1 s later on the wall clock.
			wantFirst, wantLast = wantFirst-event.SampleRate, wantLast-event.SampleRate
		}
		if first != wantFirst || last != wantLast {
			t.Errorf("%s: samples %d-%d, want %d-%d", a.Track, first, last, wantFirst, wantLast)
		}
		if n := int64(len(evidencetest.Decode16k(t, b))); n != (wantLast-wantFirst+1)/3 {
			t.Errorf("%s: decodes to %d samples at 16 kHz, want %d", a.Track, n, (wantLast-wantFirst+1)/3)
		}
		if e := h.audit.last(); e.Action != AuditEvidenceAudio || e.Outcome != OutcomeOK || e.Operator != linkCaller {
			t.Errorf("audit entry %+v", e)
		}
	}
	// A track that is not part of the alert is refused.
	resp, _ = h.do("GET", "/evidence/"+id+"/audio.ogg?track=trk_nope&t="+tok, "", nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("foreign track: status %d, want 404", resp.StatusCode)
	}
}

func TestAuditFailureRefusesAccess(t *testing.T) {
	h := newHarness(t)
	h.audit.fail = true
	resp, body := h.do("GET", "/evidence/"+h.alert.EventID, opToken, nil)
	if resp.StatusCode != http.StatusServiceUnavailable || strings.Contains(string(body), "kill") {
		t.Errorf("status %d, body %s: want 503 without evidence", resp.StatusCode, body)
	}
}

func TestActions(t *testing.T) {
	h := newHarness(t)
	id := h.alert.EventID
	post := func(action, note string) (int, map[string]any) {
		b, _ := json.Marshal(map[string]string{"action": action, "note": note})
		resp, body := h.do("POST", "/alerts/"+id+"/actions", opToken, bytes.NewReader(b))
		var out map[string]any
		_ = json.Unmarshal(body, &out)
		return resp.StatusCode, out
	}
	code, out := post("ack", "looking")
	if code != http.StatusOK || out["status"] != StatusAcknowledged || out["operator"] != "alice" {
		t.Fatalf("ack: %d %v", code, out)
	}
	first := out["id"]
	if code, out = post("ack", "looking"); code != http.StatusOK || out["id"] != first {
		t.Errorf("repeated ack: %d %v, want the same event ID %v", code, out, first)
	}
	if code, out = post("confirm", "clear threat"); code != http.StatusOK || out["status"] != StatusConfirmed {
		t.Fatalf("confirm: %d %v", code, out)
	}
	if code, _ = post("escalate", ""); code != http.StatusBadRequest {
		t.Errorf("unknown action: %d, want 400", code)
	}
	if code, _ = post("ack", strings.Repeat("x", MaxNoteBytes+1)); code != http.StatusBadRequest {
		t.Errorf("oversized note: %d, want 400", code)
	}

	msgs := h.sent.Topic(event.TopicAlertActions)
	if len(msgs) != 3 {
		t.Fatalf("%d action records, want 3 (ack twice with one ID, confirm)", len(msgs))
	}
	e, err := event.Decode(msgs[2].Value)
	if err != nil {
		t.Fatal(err)
	}
	var a event.AlertAction
	var d event.AlertActionData
	if err := e.DecodePayload(&a); err != nil {
		t.Fatal(err)
	}
	if string(msgs[2].Key) != room || a.Alert != id || a.Action != event.ActionConfirm || a.Operator != "alice" {
		t.Errorf("action record key %q payload %+v", msgs[2].Key, a)
	}
	if e.Protected == nil || e.Protected.Alg != event.AlgAES256GCM || e.Protected.KeyID != event.KeyID(session, speaker) {
		t.Errorf("the note is not sealed under the alert's speaker key: %+v", e.Protected)
	}
	if err := e.Open(context.Background(), h.keys, &d); err != nil || d.Note != "clear threat" {
		t.Errorf("note %q, %v", d.Note, err)
	}

	// The list shows the status and filters by it and by room.
	list := func(q string) []AlertView {
		resp, body := h.do("GET", "/alerts"+q, opToken, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("list %s: %d %s", q, resp.StatusCode, body)
		}
		var out struct{ Alerts []AlertView }
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatal(err)
		}
		return out.Alerts
	}
	if got := list("?status=confirmed&room=" + room); len(got) != 1 || got[0].ID != id || len(got[0].Actions) != 2 {
		t.Errorf("confirmed alerts: %+v", got)
	}
	if got := list("?status=open"); len(got) != 0 {
		t.Errorf("open alerts: %+v", got)
	}
	if got := list("?room=room_else"); len(got) != 0 {
		t.Errorf("alerts of another room: %+v", got)
	}
	if resp, _ := h.do("GET", "/alerts?status=bogus", opToken, nil); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad status filter: %d", resp.StatusCode)
	}
}

func TestIndex(t *testing.T) {
	mk := func(i int) *event.Envelope {
		tl := event.Timeline{Track: "trk", FirstSample: int64(i), LastSample: int64(i), Origin: time.Unix(0, 0), Anchor: event.AnchorArrival}
		e, err := event.New(event.TypeAlert, event.Producer{Name: "t"}, nil, "r", "s", "p", &tl, event.Alert{Category: "c"}, "rule")
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	act := func(alert *event.Envelope, action string, at time.Time) *event.Envelope {
		e, err := event.New(event.TypeAlertAction, event.Producer{Name: "t"}, nil, "r", "s", "p", nil,
			event.AlertAction{Alert: alert.EventID, Action: action, Operator: "bob"}, alert.EventID, action, at.String())
		if err != nil {
			t.Fatal(err)
		}
		e.Time = at
		return e
	}
	x := NewIndex(3)
	a0 := mk(0)
	t0 := time.Unix(1000, 0)
	// An action read before its alert (topics are read independently).
	if !x.Apply(act(a0, event.ActionDismiss, t0.Add(time.Second))) {
		t.Fatal("pending action not taken")
	}
	x.Apply(a0)
	x.Apply(act(a0, event.ActionAck, t0))
	if x.Apply(a0) {
		t.Error("a repeated alert changed the index")
	}
	if e, _ := x.Get(a0.EventID); e.Status() != StatusDismissed || len(e.Actions) != 2 || e.Actions[0].Action != event.ActionAck {
		t.Errorf("status %s, actions %+v", e.Status(), e.Actions)
	}
	for i := 1; i <= 3; i++ {
		x.Apply(mk(i))
	}
	if _, ok := x.Get(a0.EventID); ok || x.Len() != 3 {
		t.Errorf("bound not kept: len %d, oldest still there %v", x.Len(), ok)
	}
	if got := x.List(Filter{Limit: 2}); len(got) != 2 || got[0].Env.Timeline.FirstSample != 3 {
		t.Errorf("list: %d entries, newest first wanted", len(got))
	}
}

func TestLinkKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secrets", "links.key")
	k1, err := LoadOrCreateLinkKey(path)
	if err != nil || len(k1) != linkKeyBytes {
		t.Fatalf("create: %v (%d bytes)", err, len(k1))
	}
	k2, err := LoadOrCreateLinkKey(path)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Errorf("reload: %v, same key %v", err, bytes.Equal(k1, k2))
	}
}

func FuzzLinkVerify(f *testing.F) {
	s, _ := NewLinkSigner([]byte("0123456789abcdef"), "http://x.test", time.Minute)
	f.Add("evt_a", s.Token("evt_a", time.Now().Add(30*time.Second)))
	f.Add("evt_a", "99999999999.AAAA")
	f.Fuzz(func(t *testing.T, alert, token string) {
		if s.Verify(alert, token) == nil && token != s.Token(alert, parseExp(token)) {
			t.Fatalf("accepted a token that the signer did not mint: %q for %q", token, alert)
		}
	})
}

func parseExp(tok string) time.Time {
	e, _, _ := strings.Cut(tok, ".")
	n, _ := strconv.ParseInt(e, 10, 64)
	return time.Unix(n, 0)
}
