package serve

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestBadIDsRefusedBeforeAudit: paths and filters that cannot name an
// alert or a room get 400 before anything is looked up or recorded, so
// no input can grow the audit log (a 70,000-character alert ID once made
// an entry over the size readers accept and broke the chain).
func TestBadIDsRefusedBeforeAudit(t *testing.T) {
	h := newHarness(t)
	huge := strings.Repeat("A", 70_000)
	for _, tc := range []struct{ name, method, path string }{
		{"huge alert ID", "GET", "/evidence/" + huge},
		{"huge alert ID, audio", "GET", "/evidence/" + huge + "/audio.ogg"},
		{"huge alert ID, action", "POST", "/alerts/" + huge + "/actions"},
		{"not an event ID", "GET", "/evidence/trk_" + strings.Repeat("a", 32)},
		{"upper case", "GET", "/evidence/" + strings.ToUpper(h.alert.EventID)},
		{"control bytes", "GET", "/evidence/evt_%1b%5b31m"},
		{"huge room filter", "GET", "/alerts?room=" + huge},
		{"room with markup", "GET", "/alerts?room=%3Cscript%3E"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(h.audit.entries)
			resp, body := h.do(tc.method, tc.path, opToken, strings.NewReader(`{"action":"ack"}`))
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("status %d (%.200s), want 400", resp.StatusCode, body)
			}
			if len(body) > 200 || strings.Contains(string(body), "AAAA") {
				t.Fatalf("the answer echoes the input: %.200s", body)
			}
			if n := len(h.audit.entries); n != before {
				t.Fatalf("%d audit entries written for a request refused at the edge", n-before)
			}
		})
	}
}

// TestRefusalsRateLimited: a client refused faster than refusals are
// audited gets 429 without an entry, and its next audited refusal says how
// many went unrecorded; another client is audited as before.
func TestRefusalsRateLimited(t *testing.T) {
	h := newHarness(t)
	path := "/evidence/" + h.alert.EventID
	var denied, limited int
	for range refusalBurst + 30 {
		resp, _ := h.do("GET", path, "wrong-token-0123456789", nil)
		switch resp.StatusCode {
		case http.StatusUnauthorized:
			denied++
		case http.StatusTooManyRequests:
			limited++
		default:
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	entries := len(h.audit.entries)
	if entries != denied || denied < refusalBurst || denied > refusalBurst+5 || limited == 0 {
		t.Fatalf("%d refused and audited, %d limited, %d entries (burst %d)", denied, limited, entries, refusalBurst)
	}
	// The limiter refills: a later refusal is audited with the count.
	now := h.s.cfg.Now
	h.s.cfg.Now = func() time.Time { return now().Add(10 * time.Second) }
	resp, _ := h.do("GET", path, "wrong-token-0123456789", nil)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(h.audit.last().Detail, "refusals of this client not recorded") {
		t.Fatalf("status %d, last entry %+v", resp.StatusCode, h.audit.last())
	}
	// An allowed request is never limited.
	if resp, body := h.do("GET", path, opToken, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("operator after refusals: %d %.200s", resp.StatusCode, body)
	}
}
