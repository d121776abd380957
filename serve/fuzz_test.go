package serve

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/earshot/earshot/event"
)

// FuzzAPI sends the API whatever a client may: any method, path, query,
// body and header. Without an operator's token or a valid link nothing
// but /healthz answers 2xx, nothing answers 5xx, no answer carries speech
// or a token, and whatever reaches the audit log is bounded.
func FuzzAPI(f *testing.F) {
	h := newHarness(f)
	id := h.alert.EventID
	for _, s := range [][4]string{
		{"GET", "/evidence/" + id, "", ""},
		{"GET", "/evidence/" + id + "/audio.ogg", "track=trk_own", ""},
		{"POST", "/alerts/" + id + "/actions", "", `{"action":"ack","note":"x"}`},
		{"GET", "/alerts", "room=room_srv&status=open&limit=5", ""},
		{"GET", "/evidence/" + strings.Repeat("A", 5000), "t=" + strings.Repeat("b", 300), ""},
		{"DELETE", "/alerts", "", ""},
		{"GET", "/healthz", "", ""},
	} {
		f.Add(s[0], s[1], s[2], s[3], "Bearer nope")
	}
	methods := []string{"GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"}
	f.Fuzz(func(t *testing.T, method, path, query, body, auth string) {
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		m := methods[len(method)%len(methods)]
		req, err := http.NewRequest(m, "http://earshot.test"+path, strings.NewReader(body))
		if err != nil {
			return // not a request a client can send
		}
		req.URL.RawQuery = query
		req.Header.Set("Authorization", auth)
		req.RemoteAddr = "192.0.2.1:1234"
		before := len(h.audit.entries)
		rec := httptest.NewRecorder()
		h.s.ServeHTTP(rec, req)
		code := rec.Code
		if code >= 500 {
			t.Fatalf("%s %q ?%q: %d %.200s", m, path, query, code, rec.Body.String())
		}
		if code < 300 && req.URL.Path != "/healthz" {
			t.Fatalf("%s %q ?%q answered %d without a token", m, path, query, code)
		}
		out := rec.Body.String()
		for _, secret := range []string{"i will kill you", "and the other speaker answers", opToken} {
			if strings.Contains(out, secret) {
				t.Fatalf("the answer leaks %q", secret)
			}
		}
		h.audit.mu.Lock()
		defer h.audit.mu.Unlock()
		if n := len(h.audit.entries) - before; n > 1 {
			t.Fatalf("%d audit entries for one request", n)
		}
		for _, e := range h.audit.entries[before:] {
			b, _ := json.Marshal(e.Bounded())
			if len(b) > 32<<10 {
				t.Fatalf("an audit entry of %d bytes", len(b))
			}
			if e.Subject != "" && !event.ValidID(event.PrefixEvent, e.Subject) && e.Action != AuditAlertsList {
				t.Fatalf("audit subject %.80q is not an alert ID", e.Subject)
			}
		}
	})
}
