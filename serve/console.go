package serve

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// The moderator console: server-rendered pages under /console/ with a
// little JavaScript (console/static), embedded in the binary. docs/console.md
// describes it.

//go:embed console/templates/*.html console/static
var consoleFiles embed.FS

// Console audit actions: one entry per page opened or stream subscribed,
// never one per row or line streamed.
const (
	AuditConsoleSignIn  = "console.signin"
	AuditConsoleSignOut = "console.signout"
	AuditConsoleQueue   = "console.queue"   // the queue page or its live stream
	AuditConsoleAlert   = "console.alert"   // an alert's page: transcript and audio
	AuditConsoleSession = "console.session" // an admin ended a session
)

// consoleCSP: scripts, styles and media only from this server, no inline
// script or style, no framing, forms post only here.
const consoleCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; media-src 'self'; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// queueRows is how many rows the queue shows.
const queueRows = 50

type console struct {
	s     *Server
	tmpl  map[string]*template.Template
	sess  *sessions
	views *viewCache
	// stop is closed when the server shuts down: streams end then, so
	// that shutdown does not wait for them.
	stop     chan struct{}
	stopOnce sync.Once
}

func newConsole(s *Server) (*console, error) {
	funcs := template.FuncMap{
		"clock": func(t time.Time) string { return t.UTC().Format("15:04:05") },
		"stamp": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
		"short": shortID,
		"can":   func(op Operator, role string) bool { return op.Can(role) },
	}
	c := &console{s: s, tmpl: map[string]*template.Template{}, sess: newSessions(s.cfg.Console, s.cfg.Now), views: newViewCache(s.cfg.Now),
		stop: make(chan struct{})}
	for _, page := range []string{"signin", "queue", "alert", "sessions", "error", "rooms", "room", "compliance"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(consoleFiles,
			"console/templates/layout.html", "console/templates/rows.html", "console/templates/"+page+".html")
		if err != nil {
			return nil, fmt.Errorf("serve: console template %s: %w", page, err)
		}
		c.tmpl[page] = t
	}
	return c, nil
}

// shutdown ends the live streams; idempotent.
func (c *console) shutdown() { c.stopOnce.Do(func() { close(c.stop) }) }

func (c *console) routes(mux *http.ServeMux) {
	static, _ := fs.Sub(consoleFiles, "console/static")
	files := http.StripPrefix("/console/static/", http.FileServerFS(static))
	mux.HandleFunc("GET /console/static/", func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") { // no folder listings
			http.NotFound(w, r)
			return
		}
		files.ServeHTTP(w, r)
	})
	mux.HandleFunc("GET /console/signin", c.signInPage)
	mux.HandleFunc("POST /console/signin", c.signIn)
	mux.HandleFunc("GET /console/signin/once", c.signInOnce)
	mux.HandleFunc("POST /console/signout", c.withSession(c.signOut))
	mux.HandleFunc("GET /console/{$}", c.withSession(c.queue))
	mux.HandleFunc("GET /console", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/console/", http.StatusSeeOther) })
	mux.HandleFunc("GET /console/events", c.withSession(c.queueEvents))
	mux.HandleFunc("GET /console/alerts/{alert}", c.alertPage)
	mux.HandleFunc("GET /console/alerts/{alert}/audio", c.alertAudio)
	mux.HandleFunc("POST /console/alerts/{alert}/actions", c.withSession(c.action))
	mux.HandleFunc("GET /console/sessions", c.withSession(c.sessionsPage))
	mux.HandleFunc("GET /console/compliance", c.withSession(c.compliancePage))
	mux.HandleFunc("POST /console/compliance/holds", c.withSession(c.holdAction))
	mux.HandleFunc("POST /console/compliance/export", c.withSession(c.exportBundle))
	mux.HandleFunc("GET /console/rooms", c.withSession(c.roomsPage))
	mux.HandleFunc("GET /console/rooms/{room}", c.withSession(c.roomPage))
	mux.HandleFunc("GET /console/rooms/{room}/events", c.withSession(c.roomEvents))
	mux.HandleFunc("POST /console/sessions/end", c.withSession(c.endSession))
}

// page is what every page template gets.
type page struct {
	Title string
	Op    Operator
	CSRF  string
	// Link: opened through a notification's signed link, without a
	// session; only that alert is shown and no action offered.
	Link  bool
	Error string
	Data  any
}

func (c *console) render(w http.ResponseWriter, code int, name string, p page) {
	var buf bytes.Buffer
	if err := c.tmpl[name].Execute(&buf, p); err != nil {
		c.s.log.Error("console page not rendered", "page", name, "error", err)
		http.Error(w, "page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

func (c *console) errorPage(w http.ResponseWriter, code int, p page, msg string) {
	p.Title, p.Error = http.StatusText(code), msg
	c.render(w, code, "error", p)
}

// secure reports whether the session cookie must be Secure.
func (c *console) secure(r *http.Request) bool { return r.TLS != nil || c.s.cfg.Console.Secure }

func (c *console) setCookie(w http.ResponseWriter, r *http.Request, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: value, Path: "/console", MaxAge: maxAge,
		HttpOnly: true, Secure: c.secure(r), SameSite: http.SameSiteStrictMode})
}

// sessionHandler is a console handler with the caller's session.
type sessionHandler func(w http.ResponseWriter, r *http.Request, who caller, s consoleSession)

// withSession finds the request's session (or signs in the operator a
// trusted proxy names). Without one, pages redirect to the sign-in form
// and everything else is 401; the refusal is audited. State-changing
// requests must carry the session's CSRF token and, when the browser
// sends one, this server's Origin.
func (c *console) withSession(h sessionHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, reason := c.session(w, r)
		if reason != "" {
			c.refuse(w, r, reason)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if !c.sameOrigin(r) {
				c.refuse(w, r, "cross-origin request")
				return
			}
			tok := r.Header.Get(csrfHeader)
			if tok == "" {
				tok = r.PostFormValue(csrfField)
			}
			if !s.validCSRF(tok) {
				c.refuse(w, r, "missing or wrong CSRF token")
				return
			}
		}
		h(w, r, caller{name: s.op.Name, op: s.op}, s)
	}
}

// session returns the request's live session, signing in through the
// proxy header when that is configured and the request comes from the
// proxy.
func (c *console) session(w http.ResponseWriter, r *http.Request) (consoleSession, string) {
	reason := "no session"
	if ck, err := r.Cookie(sessionCookie); err == nil {
		var s consoleSession
		if s, reason = c.sess.get(ck.Value); reason == "" {
			return s, ""
		}
	}
	cfg := c.s.cfg.Console
	if cfg.ProxyHeader == "" {
		return consoleSession{}, reason
	}
	name := strings.TrimSpace(r.Header.Get(cfg.ProxyHeader))
	if name == "" {
		return consoleSession{}, reason
	}
	if !cfg.fromProxy(r.RemoteAddr) {
		return consoleSession{}, "proxy header from an address outside serve.console.proxy_cidrs"
	}
	op, ok := c.s.ops.byName(name)
	if !ok {
		return consoleSession{}, "proxy names no configured operator"
	}
	cookie, s := c.sess.create(op, "proxy")
	c.setCookie(w, r, cookie, int(cfg.MaxAge.Seconds()))
	_ = c.s.audit(r.Context(), op.Name, AuditConsoleSignIn, "", OutcomeOK, "via proxy header")
	return *s, ""
}

// refuse audits a refused console request and answers it: a page is
// sent to the sign-in form, anything else gets 401.
func (c *console) refuse(w http.ResponseWriter, r *http.Request, reason string) {
	if ok, _ := c.s.refs.allow(r, c.s.cfg.Now()); ok {
		c.s.log.Warn("console request refused", "path", r.URL.Path, "reason", reason, "remote", r.RemoteAddr)
		_ = c.s.audit(r.Context(), "", "console", r.URL.Path, OutcomeDenied, reason)
	}
	if r.Method == http.MethodGet && r.Header.Get("Accept") != "text/event-stream" {
		http.Redirect(w, r, "/console/signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
		return
	}
	http.Error(w, "unauthorized: "+reason, http.StatusUnauthorized)
}

// sameOrigin reports whether a state-changing request comes from a page
// of this server: its Origin (when sent) names this host or the public
// URL's (behind a proxy that rewrites Host), and the browser does not flag
// it cross-site.
func (c *console) sameOrigin(r *http.Request) bool {
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
		return false
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	if err != nil {
		return false
	}
	pub, _ := url.Parse(c.s.cfg.Links.base)
	return u.Host == r.Host || (pub != nil && u.Scheme == pub.Scheme && u.Host == pub.Host)
}

// safeNext keeps a post-sign-in redirect on the console.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/console/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/console/"
	}
	return next
}

func (c *console) signInPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, http.StatusOK, "signin", page{Title: "Sign in", Data: safeNext(r.URL.Query().Get("next"))})
}

func (c *console) signIn(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.PostFormValue("next"))
	if !c.sameOrigin(r) {
		c.refuse(w, r, "cross-origin sign-in")
		return
	}
	op, err := c.s.ops.lookup(strings.TrimSpace(r.PostFormValue("token")))
	if err != nil {
		if ok, _ := c.s.refs.allow(r, c.s.cfg.Now()); !ok {
			http.Error(w, "too many refused requests", http.StatusTooManyRequests)
			return
		}
		_ = c.s.audit(r.Context(), "", AuditConsoleSignIn, "", OutcomeDenied, err.Error())
		c.render(w, http.StatusUnauthorized, "signin", page{Title: "Sign in", Error: "That token belongs to no operator.", Data: next})
		return
	}
	c.startSession(w, r, op, "token", next)
}

func (c *console) startSession(w http.ResponseWriter, r *http.Request, op Operator, via, next string) {
	if err := c.s.audit(r.Context(), op.Name, AuditConsoleSignIn, "", OutcomeOK, "via "+via); err != nil {
		c.errorPage(w, http.StatusServiceUnavailable, page{}, "The audit log is unavailable; nobody can sign in until it is back.")
		return
	}
	cookie, _ := c.sess.create(op, via)
	c.setCookie(w, r, cookie, int(c.sess.cfg.MaxAge.Seconds()))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// SignInLink returns a one-time sign-in link for the named operator,
// valid for ttl (at most an hour): for `make demo` and for handing a new
// moderator their first session. Any process with the link key can mint
// one (LinkSigner.SignInLink); this checks the operator exists.
func (s *Server) SignInLink(operator string, ttl time.Duration) (string, error) {
	if _, ok := s.ops.byName(operator); !ok {
		return "", fmt.Errorf("serve: no operator %q", operator)
	}
	return s.cfg.Links.SignInLink(operator, ttl), nil
}

func (c *console) signInOnce(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	name := q.Get("op")
	nonce, exp, err := c.s.cfg.Links.verifySignIn(name, q.Get("c"))
	if err != nil {
		reason := "one-time sign-in link invalid"
		if errors.Is(err, ErrLinkExpired) {
			reason = "one-time sign-in link expired"
		}
		c.refuse(w, r, reason)
		return
	}
	op, ok := c.s.ops.byName(name)
	if !ok {
		c.refuse(w, r, "one-time sign-in link for no configured operator")
		return
	}
	if !c.sess.useOnce(nonce, exp) {
		c.refuse(w, r, "one-time sign-in link already used")
		return
	}
	c.startSession(w, r, op, "link", "/console/")
}

func (c *console) signOut(w http.ResponseWriter, r *http.Request, who caller, _ consoleSession) {
	if ck, err := r.Cookie(sessionCookie); err == nil {
		c.sess.end(ck.Value)
	}
	_ = c.s.audit(r.Context(), who.name, AuditConsoleSignOut, "", OutcomeOK, "")
	c.setCookie(w, r, "", -1)
	http.Redirect(w, r, "/console/signin", http.StatusSeeOther)
}

// --- queue ---------------------------------------------------------------

// queueFilter reads the queue's filters; on a bad one it returns the
// problem.
func queueFilter(q url.Values, op Operator) (Filter, string) {
	f := Filter{Room: q.Get("room"), Status: q.Get("status"), Category: q.Get("category"), Severity: q.Get("severity"), Rooms: op.Rooms, Limit: queueRows}
	if f.Status == "" && !q.Has("status") {
		f.Status = StatusOpen // a shift starts on what is still open
	}
	if f.Status == "all" {
		f.Status = ""
	}
	switch {
	case !validRoom(f.Room):
		return f, "room must be a room pseudonym"
	case f.Status != "" && !slices.Contains(statuses, f.Status):
		return f, "status must be open, acknowledged, confirmed, dismissed or all"
	case !validRoom(strings.ReplaceAll(f.Category, ".", "_")):
		return f, "category must look like pii.phone"
	case f.Severity != "" && !slices.Contains([]string{"low", "medium", "high", "critical"}, f.Severity):
		return f, "severity must be low, medium, high or critical"
	}
	return f, ""
}

var statuses = []string{StatusOpen, StatusAcknowledged, StatusConfirmed, StatusDismissed}

// rowView is one queue row.
type rowView struct {
	ID, Room, Category, Severity, Status, Rule string
	// Revision is the policy version that judged it (a new policy is a
	// new judgement, so a new alert).
	Revision      string
	Raised, Start time.Time
	Actions       int
	Suppressed    int
}

// queueView is the queue's rows and counts.
type queueView struct {
	Filter Filter
	Rows   []rowView
	Counts []statusCount
	Total  int
	Query  string // the filter as a query string, for the live stream
}

type statusCount struct {
	Status string
	N      int
	Active bool
	Href   string
}

// QueueView renders what the queue shows for a filter: its first rows
// and the counts per status.
func (s *Server) queueView(f Filter) queueView {
	ents, counts := s.cfg.Index.Query(f, true)
	v := queueView{Filter: f}
	for _, e := range ents {
		r := rowView{ID: e.Env.EventID, Room: e.Env.Room, Category: e.Alert.Category, Severity: e.Alert.Severity,
			Status: e.Status(), Rule: e.Alert.RuleID, Raised: e.Env.Time, Start: e.Env.Timeline.Start(), Actions: len(e.Actions), Suppressed: e.Suppressed}
		if e.Env.Processing != nil {
			r.Revision = e.Env.Processing.PolicyVersion
		}
		v.Rows = append(v.Rows, r)
	}
	q := url.Values{}
	for k, val := range map[string]string{"room": f.Room, "category": f.Category, "severity": f.Severity} {
		if val != "" {
			q.Set(k, val)
		}
	}
	for _, st := range append(slices.Clone(statuses), "all") {
		n := 0
		if st == "all" {
			for _, k := range statuses {
				n += counts[k]
			}
			v.Total = n
		} else {
			n = counts[st]
		}
		qq := url.Values{}
		for k, vs := range q {
			qq[k] = vs
		}
		qq.Set("status", st)
		v.Counts = append(v.Counts, statusCount{Status: st, N: n, Active: f.Status == st || (f.Status == "" && st == "all"), Href: "/console/?" + qq.Encode()})
	}
	st := f.Status
	if st == "" {
		st = "all"
	}
	q.Set("status", st)
	v.Query = q.Encode()
	return v
}

func (c *console) queue(w http.ResponseWriter, r *http.Request, who caller, s consoleSession) {
	p := page{Title: "Alert queue", Op: s.op, CSRF: s.csrf}
	f, bad := queueFilter(r.URL.Query(), s.op)
	if bad != "" {
		c.errorPage(w, http.StatusBadRequest, p, bad)
		return
	}
	if err := c.s.audit(r.Context(), who.name, AuditConsoleQueue, f.Room, OutcomeOK, "page status="+f.Status); err != nil {
		c.errorPage(w, http.StatusServiceUnavailable, p, "The audit log is unavailable.")
		return
	}
	p.Data = c.s.queueView(f)
	c.render(w, http.StatusOK, "queue", p)
}

// queueEvents streams the queue (rows and counts, rendered) as
// server-sent events whenever the index changes, at most twice a second.
// The stream is one audit entry.
func (c *console) queueEvents(w http.ResponseWriter, r *http.Request, who caller, _ consoleSession) {
	f, bad := queueFilter(r.URL.Query(), who.op)
	if bad != "" {
		http.Error(w, bad, http.StatusBadRequest)
		return
	}
	if err := c.s.audit(r.Context(), who.name, AuditConsoleQueue, f.Room, OutcomeOK, "stream status="+f.Status); err != nil {
		http.Error(w, "audit log unavailable", http.StatusServiceUnavailable)
		return
	}
	c.stream(w, r, c.s.cfg.Index.Changed, func(buf *bytes.Buffer) error {
		return c.tmpl["queue"].ExecuteTemplate(buf, "rows", c.s.queueView(f))
	}, "queue")
}

// stream answers a server-sent event stream: after every change (taken
// from changed, at most twice a second) it sends what render writes as
// one event named name, until the client goes.
func (c *console) stream(w http.ResponseWriter, r *http.Request, changed func() <-chan struct{}, render func(*bytes.Buffer) error, name string) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	// The stream outlives the server's write timeout.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	ctx := r.Context()
	keepalive := time.NewTicker(20 * time.Second)
	defer keepalive.Stop()
	next := changed()
	send := func() error {
		next = changed() // taken before rendering: a change while rendering is not lost
		var buf bytes.Buffer
		if err := render(&buf); err != nil {
			return err
		}
		// An event's data lines may not contain a newline of their own.
		for line := range strings.SplitSeq(strings.TrimRight(buf.String(), "\n"), "\n") {
			if _, err := fmt.Fprintf(w, "data: %s\n", line); err != nil {
				return err
			}
		}
		if _, err := fmt.Fprintf(w, "event: %s\n\n", name); err != nil {
			return err
		}
		fl.Flush()
		return nil
	}
	if _, err := fmt.Fprint(w, "retry: 2000\n\n"); err != nil {
		return
	}
	fl.Flush()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.stop:
			return
		case <-keepalive.C:
			if _, err := fmt.Fprint(w, ": keepalive\n\n"); err != nil {
				return
			}
			fl.Flush()
		case <-next:
			if !sleepCtx(ctx, 500*time.Millisecond) { // coalesce a burst
				return
			}
			if err := send(); err != nil {
				c.s.log.Warn("console stream ended", "stream", name, "error", err)
				return
			}
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// shortID shortens a pseudonym or ID for display (the full one is in a
// title attribute).
func shortID(id string) string {
	if len(id) <= 14 {
		return id
	}
	return id[:14] + "…"
}

// errUnreadable: the alert's protected part can no longer be opened.
var errUnreadable = errors.New("the alert's content is no longer readable (its speaker's data was erased)")
