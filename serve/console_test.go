package serve

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/earshot/earshot/compliance/archive"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/policy"
	"github.com/earshot/earshot/serve/evidence/evidencetest"
)

// fakeClock is a settable clock for session timeouts.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

const (
	bobToken   = "bob-token-0123456789abcdef"   // moderator limited to another room
	carolToken = "carol-token-0123456789abcdef" // admin
)

// consoleHarness is the evidence harness with three operators: alice
// (moderator, every room), bob (moderator of another room only) and
// carol (admin), and a settable clock.
func consoleHarness(t *testing.T, edits ...func(*Config)) (*harness, *fakeClock) {
	clk := &fakeClock{t: time.Now()}
	h := newHarness(t, append([]func(*Config){func(c *Config) {
		c.Now = clk.Now
		c.Operators = append(c.Operators,
			Operator{Name: "bob", TokenHash: HashToken(bobToken), Rooms: []string{"room_elsewhere"}},
			Operator{Name: "carol", TokenHash: HashToken(carolToken), Role: RoleAdmin})
		c.Console = ConsoleConfig{Idle: 30 * time.Minute, MaxAge: 12 * time.Hour}
	}}, edits...)...)
	return h, clk
}

// browser is an HTTP client with a cookie jar that does not follow
// redirects, as a signed-in browser tab.
type browser struct {
	t    *testing.T
	base string
	c    *http.Client
	csrf string
}

func newBrowser(t *testing.T, srv *httptest.Server) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := new(http.Client)
	*c = *srv.Client()
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &browser{t: t, base: srv.URL, c: c}
}

func (b *browser) do(method, path string, form url.Values, hdr map[string]string) (*http.Response, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.base+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return resp, string(out)
}

var csrfMeta = regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`)

// signIn signs in with token and reads the session's CSRF token from the
// queue page.
func (b *browser) signIn(token string) {
	b.t.Helper()
	resp, body := b.do("POST", "/console/signin", url.Values{"token": {token}, "next": {"/console/"}}, nil)
	if resp.StatusCode != http.StatusSeeOther {
		b.t.Fatalf("sign-in: status %d: %s", resp.StatusCode, body)
	}
	b.readCSRF()
}

func (b *browser) readCSRF() {
	b.t.Helper()
	resp, body := b.do("GET", "/console/?status=all", nil, nil)
	m := csrfMeta.FindStringSubmatch(body)
	if resp.StatusCode != http.StatusOK || m == nil {
		b.t.Fatalf("queue: status %d, no CSRF token: %.300s", resp.StatusCode, body)
	}
	b.csrf = m[1]
}

func (a *fakeAudit) count(action, outcome string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, e := range a.entries {
		if e.Action == action && e.Outcome == outcome {
			n++
		}
	}
	return n
}

func TestConsoleSignInCookie(t *testing.T) {
	tests := []struct {
		name       string
		tls        bool
		secureConf bool
		wantSecure bool
	}{
		{"plain http", false, false, false},
		{"tls", true, false, true},
		{"behind a TLS proxy", false, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := consoleHarness(t, func(c *Config) { c.Console.Secure = tc.secureConf })
			srv := h.srv
			if tc.tls {
				srv = httptest.NewTLSServer(h.s)
				t.Cleanup(srv.Close)
			}
			b := newBrowser(t, srv)
			resp, body := b.do("POST", "/console/signin", url.Values{"token": {opToken}, "next": {"/console/alerts/x"}}, nil)
			if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/alerts/x" {
				t.Fatalf("status %d location %q: %s", resp.StatusCode, resp.Header.Get("Location"), body)
			}
			var ck *http.Cookie
			for _, c := range resp.Cookies() {
				if c.Name == sessionCookie {
					ck = c
				}
			}
			if ck == nil {
				t.Fatal("no session cookie")
			}
			if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Secure != tc.wantSecure || ck.Path != "/console" {
				t.Errorf("cookie HttpOnly=%v SameSite=%v Secure=%v Path=%q; want HttpOnly, Strict, Secure=%v, /console", ck.HttpOnly, ck.SameSite, ck.Secure, ck.Path, tc.wantSecure)
			}
			if strings.Contains(h.logs.String(), ck.Value) || strings.Contains(h.logs.String(), opToken) {
				t.Error("the cookie or the token appears in the logs")
			}
			if h.audit.count(AuditConsoleSignIn, OutcomeOK) != 1 {
				t.Error("sign-in not audited")
			}
		})
	}
}

func TestConsoleSignInRefusals(t *testing.T) {
	tests := []struct {
		name  string
		token string
		hdr   map[string]string
		want  int
	}{
		{"unknown token", "not-a-token-at-all-xx", nil, http.StatusUnauthorized},
		{"empty token", "", nil, http.StatusUnauthorized},
		{"cross-site form", opToken, map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}, http.StatusUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := consoleHarness(t)
			b := newBrowser(t, h.srv)
			resp, _ := b.do("POST", "/console/signin", url.Values{"token": {tc.token}}, tc.hdr)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
			for _, c := range resp.Cookies() {
				if c.Name == sessionCookie && c.Value != "" {
					t.Error("a refused sign-in got a session cookie")
				}
			}
			if h.audit.last().Outcome != OutcomeDenied {
				t.Errorf("last audit entry %+v, want a denial", h.audit.last())
			}
			resp, _ = b.do("GET", "/console/", nil, nil)
			if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/console/signin") {
				t.Errorf("queue after a refused sign-in: status %d location %q, want the sign-in form", resp.StatusCode, resp.Header.Get("Location"))
			}
		})
	}
}

func TestConsoleCSRF(t *testing.T) {
	h, _ := consoleHarness(t)
	b := newBrowser(t, h.srv)
	b.signIn(opToken)
	path := "/console/alerts/" + h.alert.EventID + "/actions"
	tests := []struct {
		name string
		form url.Values
		hdr  map[string]string
		want int
	}{
		{"no token", url.Values{"action": {"confirm"}}, nil, http.StatusUnauthorized},
		{"wrong token", url.Values{"action": {"confirm"}, "csrf": {"x" + b.csrf}}, nil, http.StatusUnauthorized},
		{"another origin", url.Values{"action": {"confirm"}, "csrf": {b.csrf}}, map[string]string{"Origin": "http://evil.example"}, http.StatusUnauthorized},
		{"opaque origin", url.Values{"action": {"confirm"}, "csrf": {b.csrf}}, map[string]string{"Origin": "null"}, http.StatusUnauthorized},
		{"cross-site fetch", url.Values{"action": {"confirm"}}, map[string]string{csrfHeader: b.csrf, "Sec-Fetch-Site": "cross-site"}, http.StatusUnauthorized},
		{"sign-out without token", nil, nil, http.StatusUnauthorized},
		{"form field", url.Values{"action": {"ack"}, "note": {"looking"}, "csrf": {b.csrf}}, nil, http.StatusSeeOther},
		{"header", url.Values{"action": {"confirm"}, "note": {"real threat"}}, map[string]string{csrfHeader: b.csrf, "Origin": b.base}, http.StatusSeeOther},
	}
	sent := 0
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := path
			if tc.form == nil {
				p = "/console/signout"
			}
			resp, body := b.do("POST", p, tc.form, tc.hdr)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d: %.200s", resp.StatusCode, tc.want, body)
			}
			if tc.want == http.StatusSeeOther {
				sent++
			}
			if got := len(h.sent.Topic(event.TopicAlertActions)); got != sent {
				t.Errorf("%d actions published, want %d", got, sent)
			}
		})
	}
	if ent, _ := h.s.cfg.Index.Get(h.alert.EventID); ent.Status() != StatusConfirmed {
		t.Errorf("status %s after confirm", ent.Status())
	}
	// The session survived the refused sign-out.
	if resp, _ := b.do("GET", "/console/", nil, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("queue: status %d after refused requests", resp.StatusCode)
	}
}

func TestConsoleSessionTimeouts(t *testing.T) {
	tests := []struct {
		name   string
		steps  []time.Duration // each step advances the clock, then uses the session
		wantOK bool
		reason string
	}{
		{"used within idle", []time.Duration{20 * time.Minute, 20 * time.Minute, 20 * time.Minute}, true, ""},
		{"idle too long", []time.Duration{31 * time.Minute}, false, "idle timeout"},
		{"past the absolute limit though busy", stepsOf(25, 29*time.Minute), false, "absolute timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, clk := consoleHarness(t)
			b := newBrowser(t, h.srv)
			b.signIn(opToken)
			var resp *http.Response
			for _, d := range tc.steps {
				clk.Add(d)
				resp, _ = b.do("GET", "/console/", nil, nil)
				if resp.StatusCode != http.StatusOK {
					break
				}
			}
			if ok := resp.StatusCode == http.StatusOK; ok != tc.wantOK {
				t.Fatalf("status %d, want ok=%v", resp.StatusCode, tc.wantOK)
			}
			if !tc.wantOK {
				if e := h.audit.last(); e.Outcome != OutcomeDenied || !strings.Contains(e.Detail, tc.reason) {
					t.Errorf("audit entry %+v, want denied: %s", e, tc.reason)
				}
				// An expired session stays refused, also for actions.
				resp, _ := b.do("POST", "/console/alerts/"+h.alert.EventID+"/actions", url.Values{"action": {"ack"}, "csrf": {b.csrf}}, nil)
				if resp.StatusCode != http.StatusUnauthorized {
					t.Errorf("action with an expired session: status %d", resp.StatusCode)
				}
			}
		})
	}
}

func stepsOf(n int, d time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}

func TestConsoleSignOut(t *testing.T) {
	h, _ := consoleHarness(t)
	b := newBrowser(t, h.srv)
	b.signIn(opToken)
	jar := b.c.Jar
	u, _ := url.Parse(b.base + "/console/")
	old := jar.Cookies(u)
	resp, _ := b.do("POST", "/console/signout", url.Values{"csrf": {b.csrf}}, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-out: status %d", resp.StatusCode)
	}
	// The old cookie, replayed, no longer works.
	b2 := newBrowser(t, h.srv)
	b2.c.Jar.SetCookies(u, old)
	if resp, _ := b2.do("GET", "/console/", nil, nil); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("old cookie after sign-out: status %d, want a redirect to sign in", resp.StatusCode)
	}
	if h.audit.count(AuditConsoleSignOut, OutcomeOK) != 1 {
		t.Error("sign-out not audited")
	}
}

func TestConsoleProxyHeader(t *testing.T) {
	tests := []struct {
		name   string
		header string // serve's ProxyHeader
		nets   []string
		sent   string // the header's value in the request
		wantOK bool
	}{
		{"off by default", "", nil, "alice", false},
		{"trusted proxy", "X-Forwarded-User", []string{"127.0.0.0/8"}, "alice", true},
		{"from outside the ranges", "X-Forwarded-User", []string{"10.0.0.0/8"}, "alice", false},
		{"unknown operator", "X-Forwarded-User", []string{"127.0.0.0/8"}, "mallory", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := consoleHarness(t, func(c *Config) {
				c.Console.ProxyHeader = tc.header
				for _, n := range tc.nets {
					c.Console.ProxyNets = append(c.Console.ProxyNets, netip.MustParsePrefix(n))
				}
			})
			b := newBrowser(t, h.srv)
			resp, _ := b.do("GET", "/console/", nil, map[string]string{"X-Forwarded-User": tc.sent})
			if ok := resp.StatusCode == http.StatusOK; ok != tc.wantOK {
				t.Fatalf("status %d, want ok=%v", resp.StatusCode, tc.wantOK)
			}
			if tc.wantOK {
				// The session cookie carries on without the header.
				if resp, _ := b.do("GET", "/console/", nil, nil); resp.StatusCode != http.StatusOK {
					t.Errorf("second request: status %d", resp.StatusCode)
				}
				if e := h.audit.count(AuditConsoleSignIn, OutcomeOK); e != 1 {
					t.Errorf("%d sign-in entries, want 1", e)
				}
			}
		})
	}
}

func TestConsoleRoomScope(t *testing.T) {
	h, _ := consoleHarness(t)
	id := h.alert.EventID
	b := newBrowser(t, h.srv)
	b.signIn(bobToken)
	if _, body := b.do("GET", "/console/?status=all", nil, nil); strings.Contains(body, id) {
		t.Error("the queue shows another room's alert")
	}
	resp, body := b.do("GET", "/console/alerts/"+id, nil, nil)
	if resp.StatusCode != http.StatusNotFound || strings.Contains(body, "kill") {
		t.Errorf("alert page of another room: status %d", resp.StatusCode)
	}
	if e := h.audit.last(); e.Outcome != OutcomeDenied || e.Subject != id {
		t.Errorf("audit entry %+v, want a denial for the alert", e)
	}
	resp, _ = b.do("POST", "/console/alerts/"+id+"/actions", url.Values{"action": {"dismiss"}, "csrf": {b.csrf}}, nil)
	if resp.StatusCode != http.StatusNotFound || len(h.sent.All()) != 0 {
		t.Errorf("action on another room's alert: status %d, %d records", resp.StatusCode, len(h.sent.All()))
	}
	// The API refuses the same operator the same way.
	for _, p := range []string{"/evidence/" + id, "/evidence/" + id + "/audio.ogg"} {
		if resp, _ := h.do("GET", p, bobToken, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: status %d, want 404", p, resp.StatusCode)
		}
	}
	if _, body := h.do("GET", "/alerts", bobToken, nil); strings.Contains(string(body), id) {
		t.Error("GET /alerts lists another room's alert")
	}
	// The live stream: an action on the alert changes the index; bob's
	// stream carries a queue update without it while alice's shows it.
	events := func(tok string) <-chan string {
		bb := newBrowser(t, h.srv)
		bb.signIn(tok)
		return bb.stream(t, "/console/events?status=all")
	}
	bobs, alices := events(bobToken), events(opToken)
	time.Sleep(100 * time.Millisecond) // both streams subscribed
	act, msg, err := NewAction(context.Background(), h.keys, event.Producer{Name: "t"}, "", h.alert, ActionRequest{Action: "ack", Operator: "alice"})
	if err != nil || msg.Topic == "" {
		t.Fatal(err)
	}
	h.s.cfg.Index.Apply(act)
	for who, ch := range map[string]<-chan string{"bob": bobs, "alice": alices} {
		select {
		case ev := <-ch:
			if has := strings.Contains(ev, id); has != (who == "alice") {
				t.Errorf("%s's stream: alert shown=%v", who, has)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s's stream sent nothing after a change", who)
		}
	}
}

// stream subscribes to a server-sent event stream and sends each
// event's data on the channel until the test ends.
func (b *browser) stream(t *testing.T, path string) <-chan string {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, "GET", b.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stream: status %d", resp.StatusCode)
	}
	out := make(chan string, 16)
	go func() {
		defer close(out)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var data strings.Builder
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "data: "):
				data.WriteString(line[6:] + "\n")
			case line == "" && data.Len() > 0:
				select {
				case out <- data.String():
				case <-ctx.Done():
					return
				}
				data.Reset()
			}
		}
	}()
	return out
}

func TestConsoleAlertPage(t *testing.T) {
	h, _ := consoleHarness(t)
	id := h.alert.EventID
	b := newBrowser(t, h.srv)
	b.signIn(opToken)
	resp, body := b.do("GET", "/console/alerts/"+id, nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %.300s", resp.StatusCode, body)
	}
	if rp := resp.Header.Get("Referrer-Policy"); rp != "same-origin" {
		t.Errorf("Referrer-Policy %q: a page URL with a link token could leave, or the browser would send Origin: null", rp)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP %q", csp)
	}
	if !regexp.MustCompile(`(?s)<li class="matched">.*<span class="text"><mark>i will kill you</mark></span>`).MatchString(body) {
		t.Error("the alert's own line is not highlighted")
	}
	for _, want := range []string{"and the other speaker answers", "threat.kill", `<audio id="player"`} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(body, "<script>") || regexp.MustCompile(`\son[a-z]+=`).MatchString(body) || strings.Contains(body, "style=") {
		t.Error("the page has inline script, event handlers or styles")
	}
	audio := regexp.MustCompile(`src="(/console/alerts/[^"]+/audio\?[^"]+)"`).FindStringSubmatch(body)
	if audio == nil {
		t.Fatal("no audio URL")
	}
	src := strings.ReplaceAll(audio[1], "&amp;", "&")
	full, whole := b.do("GET", src, nil, nil)
	if full.StatusCode != http.StatusOK || !strings.HasPrefix(whole, "OggS") {
		t.Fatalf("audio: status %d", full.StatusCode)
	}
	part, got := b.do("GET", src, nil, map[string]string{"Range": "bytes=100-199"})
	if part.StatusCode != http.StatusPartialContent || got != whole[100:200] {
		t.Errorf("range request: status %d, %d bytes", part.StatusCode, len(got))
	}
	if n := h.audit.count(AuditConsoleAlert, OutcomeOK); n != 1 {
		t.Errorf("%d audit entries for one page and its audio, want 1", n)
	}
	// Another session cannot use this page's audio view.
	other := newBrowser(t, h.srv)
	other.signIn(carolToken)
	if resp, _ := other.do("GET", src, nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("another session's view: status %d", resp.StatusCode)
	}
}

func TestConsoleSignedLink(t *testing.T) {
	h, _ := consoleHarness(t)
	id := h.alert.EventID
	anon := newBrowser(t, h.srv)
	link, _ := h.links.ConsoleLink(id)
	lu, err := url.Parse(link)
	if err != nil || lu.Path != "/console/alerts/"+id {
		t.Fatalf("console link %q", link)
	}
	resp, body := anon.do("GET", lu.RequestURI(), nil, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "<mark>i will kill you</mark>") {
		t.Fatalf("link: status %d", resp.StatusCode)
	}
	if strings.Contains(body, `action="/console/alerts/`) {
		t.Error("a link page offers actions")
	}
	src := regexp.MustCompile(`src="(/console/alerts/[^"]+/audio\?[^"]+)"`).FindStringSubmatch(body)
	if src == nil {
		t.Fatal("the link page has no audio")
	}
	if resp, audio := anon.do("GET", strings.ReplaceAll(src[1], "&amp;", "&"), nil, nil); resp.StatusCode != http.StatusOK || !strings.HasPrefix(audio, "OggS") {
		t.Errorf("the link page's audio: status %d", resp.StatusCode)
	}
	if resp, _ := anon.do("GET", "/console/?status=all", nil, nil); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("the link opened the queue: status %d", resp.StatusCode)
	}
	bad := h.links.Token("evt_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", time.Now().Add(time.Minute))
	if resp, _ := anon.do("GET", "/console/alerts/"+id+"?t="+bad, nil, nil); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("another alert's link: status %d", resp.StatusCode)
	}
}

func TestConsoleOneTimeLink(t *testing.T) {
	h, _ := consoleHarness(t)
	link, err := h.s.SignInLink("alice", 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(link)
	b := newBrowser(t, h.srv)
	if resp, _ := b.do("GET", u.RequestURI(), nil, nil); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/" {
		t.Fatalf("first use: status %d", resp.StatusCode)
	}
	b.readCSRF()
	if h.audit.count(AuditConsoleSignIn, OutcomeOK) != 1 {
		t.Error("the sign-in by link is not audited")
	}
	past := &LinkSigner{key: h.links.key, base: h.links.base, ttl: h.links.ttl, now: func() time.Time { return time.Now().Add(-time.Hour) }}
	fresh, _ := h.s.SignInLink("alice", time.Minute)
	fu, _ := url.Parse(fresh)
	q := fu.Query()
	q.Set("op", "carol") // alice's link presented as carol's
	tests := []struct {
		name, uri string
	}{
		{"used twice", u.RequestURI()},
		{"expired", mustURI(past.SignInLink("alice", time.Minute))},
		{"another operator", "/console/signin/once?" + q.Encode()},
		{"unknown operator", mustURI(h.links.SignInLink("mallory", time.Minute))},
		{"tampered", strings.Replace(fu.RequestURI(), "c=", "c=9", 1)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, _ := newBrowser(t, h.srv).do("GET", tc.uri, nil, nil)
			if !strings.HasPrefix(resp.Header.Get("Location"), "/console/signin") {
				t.Errorf("status %d location %q: the link signed someone in", resp.StatusCode, resp.Header.Get("Location"))
			}
			if e := h.audit.last(); e.Outcome != OutcomeDenied {
				t.Errorf("audit entry %+v, want a denial", e)
			}
		})
	}
	if _, err := h.s.SignInLink("nobody", time.Minute); err == nil {
		t.Error("a link for an unknown operator")
	}
}

func mustURI(link string) string {
	u, err := url.Parse(link)
	if err != nil {
		panic(err)
	}
	return u.RequestURI()
}

func TestConsoleRoles(t *testing.T) {
	h, _ := consoleHarness(t)
	mod, admin := newBrowser(t, h.srv), newBrowser(t, h.srv)
	mod.signIn(opToken)
	admin.signIn(carolToken)
	if resp, _ := mod.do("GET", "/console/sessions", nil, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("moderator on sessions: status %d", resp.StatusCode)
	}
	resp, body := admin.do("GET", "/console/sessions", nil, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "alice") {
		t.Fatalf("admin on sessions: status %d", resp.StatusCode)
	}
	ids := regexp.MustCompile(`name="id" value="([0-9a-f]+)"><button type="submit" aria-label="End alice`).FindStringSubmatch(body)
	if ids == nil {
		t.Fatal("no session of alice listed")
	}
	if resp, _ := mod.do("POST", "/console/sessions/end", url.Values{"id": {ids[1]}, "csrf": {mod.csrf}}, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("moderator ending a session: status %d", resp.StatusCode)
	}
	if resp, _ := admin.do("POST", "/console/sessions/end", url.Values{"id": {ids[1]}, "csrf": {admin.csrf}}, nil); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("admin ending a session: status %d", resp.StatusCode)
	}
	if resp, _ := mod.do("GET", "/console/", nil, nil); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("ended session still works: status %d", resp.StatusCode)
	}
}

func FuzzConsoleParams(f *testing.F) {
	for _, s := range []string{"status=open", "status=all&room=room_x&category=pii.phone&severity=high", "next=//evil", "next=/console/alerts/x", "room=%00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		fl, bad := queueFilter(q, Operator{})
		if bad == "" && (!validRoom(fl.Room) || len(fl.Category) > maxRoomFilter) {
			t.Errorf("accepted filter %+v", fl)
		}
		n := safeNext(q.Get("next"))
		if !strings.HasPrefix(n, "/console/") || strings.HasPrefix(n, "//") {
			t.Errorf("next %q leaves the console", n)
		}
		pre, m, post := highlight(q.Get("line"), q.Get("text"))
		if pre+m+post != q.Get("line") {
			t.Errorf("highlight lost text")
		}
	})
}

// liveEvent builds a sealed event of the harness's room for the live view.
func liveEvent(t *testing.T, h *harness, typ event.Type, track, spk string, first int64, payload, data any) *event.Envelope {
	t.Helper()
	var tl *event.Timeline
	if track != "" {
		tl = &event.Timeline{Track: track, FirstSample: first, LastSample: first + 47999, Origin: h.rec.Origin, Anchor: event.AnchorArrival}
	}
	e, err := event.New(typ, event.Producer{Name: "test"}, nil, room, session, spk, tl, payload, string(typ), track, fmt.Sprint(first))
	if err != nil {
		t.Fatal(err)
	}
	if data != nil {
		if err := e.Seal(context.Background(), h.keys, data); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func TestConsoleLiveRooms(t *testing.T) {
	var live *Live
	h, clk := consoleHarness(t, func(c *Config) { live = NewLive(c.Now); c.Live = live })
	live.Apply(liveEvent(t, h, event.TypeSessionStarted, "", "", 0, event.SessionStarted{Connector: "janus-videoroom"}, nil))
	live.Apply(liveEvent(t, h, event.TypeTrackStarted, ownTrack, speaker, 0, event.TrackStarted{Ordinal: 1, Codec: "opus"}, nil))
	live.Apply(liveEvent(t, h, event.TypeTranscript, ownTrack, speaker, 48000, event.TranscriptSegment{Language: "en", Speech: true},
		event.TranscriptSegmentData{Text: "good evening everyone"}))

	alice, bob := newBrowser(t, h.srv), newBrowser(t, h.srv)
	alice.signIn(opToken)
	bob.signIn(bobToken)
	_, list := alice.do("GET", "/console/rooms", nil, nil)
	if !strings.Contains(list, `href="/console/rooms/`+room+`"`) || !strings.Contains(list, "recording") {
		t.Errorf("rooms list lacks the live room:\n%.600s", list)
	}
	if _, l := bob.do("GET", "/console/rooms", nil, nil); strings.Contains(l, room) {
		t.Error("a room-scoped operator sees another room in the list")
	}
	if resp, body := bob.do("GET", "/console/rooms/"+room, nil, nil); resp.StatusCode != http.StatusNotFound || strings.Contains(body, "good evening") {
		t.Errorf("a room-scoped operator opened another room: status %d", resp.StatusCode)
	}
	resp, page := alice.do("GET", "/console/rooms/"+room, nil, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "good evening everyone") || !strings.Contains(page, speaker) {
		t.Fatalf("room page: status %d:\n%.600s", resp.StatusCode, page)
	}
	for _, raw := range []string{"janus", "feed"} {
		if strings.Contains(strings.ToLower(page), raw+"_id") {
			t.Errorf("the page shows a raw %s identity", raw)
		}
	}
	// The stream carries the next line, as one audit entry however many
	// lines follow.
	before := h.audit.count(AuditConsoleRoom, OutcomeOK)
	ch := alice.stream(t, "/console/rooms/"+room+"/events")
	time.Sleep(100 * time.Millisecond)
	for i, text := range []string{"the second line", "the third line"} {
		live.Apply(liveEvent(t, h, event.TypeTranscript, ownTrack, speaker, int64(3+i)*48000, event.TranscriptSegment{Language: "en", Speech: true},
			event.TranscriptSegmentData{Text: text}))
		select {
		case ev := <-ch:
			if !strings.Contains(ev, text) {
				t.Errorf("stream event lacks %q", text)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no stream event for %q", text)
		}
	}
	if n := h.audit.count(AuditConsoleRoom, OutcomeOK) - before; n != 1 {
		t.Errorf("%d audit entries for one stream, want 1", n)
	}
	// No stored segment for long: the track is stalled.
	clk.Add(2 * time.Minute)
	if _, page := alice.do("GET", "/console/rooms/"+room, nil, nil); !strings.Contains(page, "state-stalled") {
		t.Error("a track without a stored segment for 2 minutes is not shown stalled")
	}
	live.Apply(liveEvent(t, h, event.TypeSegmentStored, ownTrack, speaker, 0, event.SegmentStored{Key: "k", GapSamples: 48000}, nil))
	if _, page := alice.do("GET", "/console/rooms/"+room, nil, nil); !strings.Contains(page, "state-gaps") || !strings.Contains(page, "1.0 s") {
		t.Error("a segment with filled silence does not show the track with gaps")
	}
}

// fakeCompliance keeps holds in memory.
type fakeCompliance struct {
	mu     sync.Mutex
	holds  []HoldInfo
	broken string
}

func (f *fakeCompliance) Holds(context.Context) ([]HoldInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]HoldInfo(nil), f.holds...), nil
}

func (f *fakeCompliance) SetHold(_ context.Context, op, room, spk, reason string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.holds = append(f.holds, HoldInfo{Room: room, Speaker: spk, Reason: reason, Operator: op, Set: time.Now()})
	return nil
}

func (f *fakeCompliance) LiftHold(_ context.Context, _ string, h HoldInfo, _ string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, x := range f.holds {
		if x.Room == h.Room && x.Session == h.Session && x.Speaker == h.Speaker {
			f.holds = append(f.holds[:i], f.holds[i+1:]...)
			return true, nil
		}
	}
	return false, nil
}

func (f *fakeCompliance) AuditStatus(context.Context, int) (AuditStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.broken != "" {
		return AuditStatus{Entries: 3, Problem: f.broken}, nil
	}
	return AuditStatus{Intact: true, Entries: 7, Head: strings.Repeat("ab", 32), Recent: []event.AuditEntry{{Seq: 7, Operator: "carol", Action: "hold.set"}}}, nil
}

func (f *fakeCompliance) Export(_ context.Context, op, room, spk, reason string, w io.Writer) (string, error) {
	if room == "r_fail" {
		return "", errors.New("store down")
	}
	_, err := io.WriteString(w, "bundle of "+room+" by "+op+" for "+reason)
	return room + ".tar", err
}

func TestConsoleCompliance(t *testing.T) {
	fc := &fakeCompliance{}
	h, _ := consoleHarness(t, func(c *Config) {
		c.Compliance = fc
		c.Operators = append(c.Operators, Operator{Name: "cora", TokenHash: HashToken("cora-token-0123456789abcdef"), Role: RoleCompliance},
			Operator{Name: "rita", TokenHash: HashToken("rita-token-0123456789abcdef"), Role: RoleCompliance, Rooms: []string{room}})
	})
	tests := []struct {
		token string
		want  int
	}{
		{opToken, http.StatusForbidden},                       // moderator
		{"rita-token-0123456789abcdef", http.StatusForbidden}, // compliance, limited to a room
		{"cora-token-0123456789abcdef", http.StatusOK},
		{carolToken, http.StatusOK}, // admin
	}
	for _, tc := range tests {
		b := newBrowser(t, h.srv)
		b.signIn(tc.token)
		resp, _ := b.do("GET", "/console/compliance", nil, nil)
		if resp.StatusCode != tc.want {
			t.Errorf("token %.4s…: status %d, want %d", tc.token, resp.StatusCode, tc.want)
		}
		resp, _ = b.do("POST", "/console/compliance/holds", url.Values{"csrf": {b.csrf}, "op": {"set"}, "room": {room}, "reason": {"litigation 42"}}, nil)
		if tc.want == http.StatusForbidden && resp.StatusCode != http.StatusForbidden {
			t.Errorf("token %.4s…: setting a hold: status %d", tc.token, resp.StatusCode)
		}
	}
	if hs, _ := fc.Holds(context.Background()); len(hs) != 2 || hs[0].Operator != "cora" || hs[0].Reason != "litigation 42" {
		t.Fatalf("holds %+v, want one by cora and one by carol", hs)
	}
	b := newBrowser(t, h.srv)
	b.signIn("cora-token-0123456789abcdef")
	_, page := b.do("GET", "/console/compliance", nil, nil)
	if !strings.Contains(page, "litigation 42") || !strings.Contains(page, "Hash chain intact: 7 entries") {
		t.Errorf("compliance page lacks the hold or the chain status:\n%.800s", page)
	}
	for _, tc := range []struct {
		name string
		form url.Values
		want int
	}{
		{"no reason", url.Values{"op": {"lift"}, "room": {room}}, http.StatusBadRequest},
		{"no scope", url.Values{"op": {"set"}, "reason": {"x"}}, http.StatusBadRequest},
		{"no csrf", nil, http.StatusUnauthorized},
		{"lift", url.Values{"op": {"lift"}, "room": {room}, "reason": {"case closed"}}, http.StatusSeeOther},
	} {
		t.Run(tc.name, func(t *testing.T) {
			form := tc.form
			if form == nil {
				form = url.Values{"op": {"lift"}, "room": {room}, "reason": {"x"}}
			} else {
				form.Set("csrf", b.csrf)
			}
			if resp, _ := b.do("POST", "/console/compliance/holds", form, nil); resp.StatusCode != tc.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
	resp, bundle := b.do("POST", "/console/compliance/export", url.Values{"csrf": {b.csrf}, "room": {room}, "reason": {"subpoena"}}, nil)
	if resp.StatusCode != http.StatusOK || bundle != "bundle of "+room+" by cora for subpoena" || !strings.Contains(resp.Header.Get("Content-Disposition"), room+".tar") {
		t.Errorf("export: status %d, %q", resp.StatusCode, bundle)
	}
	if resp, body := b.do("POST", "/console/compliance/export", url.Values{"csrf": {b.csrf}, "room": {"r_fail"}, "reason": {"x"}}, nil); resp.StatusCode != http.StatusInternalServerError || strings.Contains(body, "bundle of") {
		t.Errorf("failed export: status %d", resp.StatusCode)
	}
	if hs, _ := fc.Holds(context.Background()); len(hs) != 1 {
		t.Errorf("%d holds after one lift, want 1", len(hs))
	}
	fc.mu.Lock()
	fc.broken = "audit: chain broken at entry 3: altered"
	fc.mu.Unlock()
	if _, page := b.do("GET", "/console/compliance", nil, nil); !strings.Contains(page, "Hash chain broken: audit: chain broken at entry 3") {
		t.Error("a broken chain is not shown")
	}
}

func TestConsoleQueueShowsSuppressedAndRevision(t *testing.T) {
	h, _ := consoleHarness(t)
	tl := *h.alert.Timeline
	tl.FirstSample += 48000
	tl.LastSample += 48000
	e, err := event.New(event.TypeAlert, event.Producer{Name: "test"}, &event.Processing{PolicyVersion: "p7"}, room, session, speaker, &tl,
		policy.AlertPayload{Alert: event.Alert{Severity: "medium", Category: "abuse.harassment", RuleID: "harass.x"}, Suppressed: 4}, "harass.x")
	if err != nil {
		t.Fatal(err)
	}
	if !h.s.cfg.Index.Apply(e) {
		t.Fatal("index did not take the alert")
	}
	b := newBrowser(t, h.srv)
	b.signIn(opToken)
	_, body := b.do("GET", "/console/?status=all&category=abuse.harassment", nil, nil)
	if !regexp.MustCompile(`(?s)<tr data-id="` + e.EventID + `".*<td>4 more</td>\s*<td>p7</td>`).MatchString(body) {
		t.Errorf("the row lacks the suppressed count or the policy revision:\n%.1500s", body)
	}
	if strings.Contains(body, h.alert.EventID) {
		t.Error("the category filter let another category's alert through")
	}
}

func TestConsoleStreamsEndAtShutdown(t *testing.T) {
	h, _ := consoleHarness(t)
	b := newBrowser(t, h.srv)
	b.signIn(opToken)
	ch := b.stream(t, "/console/events?status=all")
	h.s.console.shutdown()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("the queue stream did not end at shutdown")
		}
	}
}

func FuzzSignInToken(f *testing.F) {
	s, err := NewLinkSigner([]byte("0123456789abcdef0123456789abcdef"), "http://earshot.test", 15*time.Minute)
	if err != nil {
		f.Fatal(err)
	}
	good, _ := url.Parse(s.SignInLink("alice", time.Minute))
	f.Add("alice", good.Query().Get("c"))
	f.Add("alice", "1.2.3")
	f.Add("", "..")
	f.Fuzz(func(t *testing.T, op, tok string) {
		nonce, exp, err := s.verifySignIn(op, tok)
		if err != nil {
			return
		}
		// Only what the signer minted verifies: the token carries its own
		// expiry and nonce, and the MAC binds them to the operator.
		parts := strings.Split(tok, ".")
		if len(parts) != 3 || parts[1] != nonce || strconv.FormatInt(exp.Unix(), 10) != parts[0] || op != "alice" {
			t.Errorf("verified %q for %q", tok, op)
		}
	})
}

func TestConsoleStaticFiles(t *testing.T) {
	h, _ := consoleHarness(t)
	b := newBrowser(t, h.srv)
	for _, tc := range []struct {
		path, ctype string
		code        int
	}{
		{"/console/static/console.js", "text/javascript", http.StatusOK},
		{"/console/static/console.css", "text/css", http.StatusOK},
		{"/console/static/", "", http.StatusNotFound},
	} {
		resp, _ := b.do("GET", tc.path, nil, nil)
		if resp.StatusCode != tc.code || !strings.HasPrefix(resp.Header.Get("Content-Type"), tc.ctype) {
			t.Errorf("%s: status %d, type %q", tc.path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
	// The templates are not served, however the path is spelt.
	for _, p := range []string{"/console/static/../templates/layout.html", "/console/templates/layout.html", "/console/static/%2e%2e/templates/layout.html"} {
		if resp, body := b.do("GET", p, nil, nil); resp.StatusCode == http.StatusOK || strings.Contains(body, "{{") {
			t.Errorf("%s: status %d", p, resp.StatusCode)
		}
	}
}

func TestConsoleAlertPageShowsRevisionUpdates(t *testing.T) {
	h, _ := consoleHarness(t)
	u, err := event.New(event.TypeAlertUpdated, event.Producer{Name: "test"}, nil, room, session, speaker, nil,
		event.AlertUpdated{Alert: h.alert.EventID, Reason: "not_in_revision", Pass: "settled", Note: "not in settled text"}, h.alert.EventID, "settled")
	if err != nil {
		t.Fatal(err)
	}
	changed := h.s.cfg.Index.Changed()
	if !h.s.cfg.Index.Apply(u) {
		t.Fatal("index did not take the update")
	}
	select {
	case <-changed:
	default:
		t.Error("an update did not wake the index's waiters")
	}
	b := newBrowser(t, h.srv)
	b.signIn(opToken)
	if _, body := b.do("GET", "/console/alerts/"+h.alert.EventID, nil, nil); !strings.Contains(body, "settled revision: not in settled text") {
		t.Error("the alert page does not say what the settled revision found")
	}
}

// TestConsoleAlertPagePrefersFinalRevision: the alert page's transcript
// is the archived transcript around the alert with one text per stretch
// of speech, from the best revision there (final, else settled, else
// live), not the excerpt of the revision that raised the alert.
func TestConsoleAlertPagePrefersFinalRevision(t *testing.T) {
	h, _ := consoleHarness(t)
	ctx := context.Background()
	store := h.s.cfg.Store.(*evidencetest.Store)
	live := &event.Processing{Model: "tiny.en"}
	settled := &event.Processing{Model: "tiny.en", Options: map[string]string{"pass": event.PassSettled}}
	final := &event.Processing{Model: "small.en", Options: map[string]string{"pass": event.PassFinal}}
	archived := func(proc *event.Processing, spk, track string, origin time.Time, first, last int64, text string) {
		t.Helper()
		tl := event.Timeline{Track: track, FirstSample: first, LastSample: last, Origin: origin, Anchor: event.AnchorArrival}
		e, err := event.New(event.TypeTranscript, event.Producer{Name: "earshot-transcribe"}, proc, room, session, spk, &tl,
			event.TranscriptSegment{Language: "en", Speech: true})
		if err == nil {
			err = e.Seal(ctx, h.keys, event.TranscriptSegmentData{Text: text})
		}
		raw, merr := e.Marshal()
		if err = errors.Join(err, merr); err != nil {
			t.Fatal(err)
		}
		store.Set(archive.Key(e), raw)
	}
	at, otherOrigin := h.rec.At, h.rec.Origin.Add(time.Second)
	// The alert's stretch: heard live (as the excerpt has it), then again
	// by the final pass with different words.
	archived(live, speaker, ownTrack, h.rec.Origin, at(3500), at(3800)-1, "i will kill you")
	archived(final, speaker, ownTrack, h.rec.Origin, at(3400), at(3900), "I will kill you tomorrow at noon")
	// The other speaker's line: live and settled.
	archived(live, other, othTrack, otherOrigin, 1000, 2000, "and the other speaker answers")
	archived(settled, other, othTrack, otherOrigin, 900, 2100, "and the other one replies")
	// Outside the excerpt's stretch of the track: not shown.
	archived(live, speaker, ownTrack, h.rec.Origin, at(100), at(600), "much earlier words")

	b := newBrowser(t, h.srv)
	b.signIn(opToken)
	resp, body := b.do("GET", "/console/alerts/"+h.alert.EventID, nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %.300s", resp.StatusCode, body)
	}
	list := regexp.MustCompile(`(?s)<ol class="transcript"[^>]*>(.*?)</ol>`).FindStringSubmatch(body)
	if list == nil {
		t.Fatal("no transcript on the page")
	}
	lines := regexp.MustCompile(`(?s)<li[ >].*?</li>`).FindAllString(list[1], -1)
	type want struct{ speaker, pass, text string }
	wants := []want{ // spoken order: the other line is at 1 s on the wall clock, the alert's at 3.4 s
		{other, event.PassSettled, `and the other one replies`},
		{speaker, event.PassFinal, `<mark>I will kill you</mark> tomorrow at noon`},
	}
	if len(lines) != len(wants) {
		t.Fatalf("%d transcript lines, want %d (one per stretch):\n%s", len(lines), len(wants), list[1])
	}
	for i, w := range wants {
		l := lines[i]
		if !strings.Contains(l, `title="`+w.speaker+`"`) || !strings.Contains(l, `<span class="pass" title="transcription pass">`+w.pass+`</span>`) ||
			!strings.Contains(l, w.text) {
			t.Errorf("line %d: %s\nwant speaker %s, pass %s, text %q", i, l, w.speaker, w.pass, w.text)
		}
		if !regexp.MustCompile(`class="seek" data-offset="[0-9.]+"`).MatchString(l) {
			t.Errorf("line %d has no time to seek to: %s", i, l)
		}
	}
	if strings.HasPrefix(lines[0], `<li class="matched">`) || !strings.HasPrefix(lines[1], `<li class="matched">`) {
		t.Error("the alert's own stretch is not the one highlighted")
	}
	for _, gone := range []string{"and the other speaker answers", "much earlier words"} {
		if strings.Contains(body, gone) {
			t.Errorf("the page shows %q (a replaced revision, or outside the alert's stretch)", gone)
		}
	}
	if a := h.audit.last(); a.Action != AuditConsoleAlert || !strings.Contains(a.Detail, "lines=2 from the archive") {
		t.Errorf("audit entry %+v: want the page's, saying where its lines came from", a)
	}
}
