// Package serve is Earshot's moderator API (earshot serve): the evidence
// of an alert (its audio window cut from stored segments as one Ogg/Opus
// file, and its transcript excerpt), the alert list with statuses, and
// alert actions (ack, confirm, dismiss). Requests carry an operator's
// bearer token or a short-lived signed link token; every request, allowed
// or refused, is audited. docs/evidence.md describes the API.
package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/policy"
	"github.com/earshot/earshot/serve/evidence"
)

// Config configures a Server.
type Config struct {
	// Listen is host:port (Run only).
	Listen string
	// Store holds the audio segments (plaintext Ogg as Get returns it).
	Store evidence.Source
	// Keys opens alerts' protected data and seals action notes.
	Keys event.Keys
	// Sender publishes alert actions.
	Sender bus.Sender
	// ActionsTopic defaults to event.TopicAlertActions.
	ActionsTopic string
	Producer     event.Producer
	// Audit records every request. Required.
	Audit Auditor
	// Links checks (and, for the evidence document, mints) link tokens.
	Links *LinkSigner
	// Operators may use every endpoint with their bearer token.
	Operators []Operator
	// Index holds the alerts; Tail, when set, keeps it current in Run.
	Index *Index
	Tail  *Tail
	// Compliance, when set, backs the console's compliance views (legal
	// holds, the audit chain).
	Compliance Compliance
	// Live, when set, feeds the console's live rooms page; LiveTail, when
	// set, keeps it current in Run (lifecycle, segments and transcripts
	// topics, FromEnd).
	Live     *Live
	LiveTail *Tail
	// Context widens the alert's audio window on each side (default 10 s).
	Context time.Duration
	Logger  *slog.Logger
	// Now defaults to time.Now.
	Now func() time.Time
	// Console configures the moderator console's sign-in and sessions.
	Console ConsoleConfig
}

// Server is the HTTP API.
type Server struct {
	cfg  Config
	log  *slog.Logger
	ops  operators
	mux  *http.ServeMux
	srv  *http.Server
	once sync.Once
	addr chan string
	refs *refusals
	// console is the moderator console (console.go).
	console *console
}

// New checks cfg and builds the server.
func New(cfg Config) (*Server, error) {
	var missing []string
	if cfg.Store == nil {
		missing = append(missing, "Store")
	}
	if cfg.Keys == nil {
		missing = append(missing, "Keys")
	}
	if cfg.Sender == nil {
		missing = append(missing, "Sender")
	}
	if cfg.Audit == nil {
		missing = append(missing, "Audit")
	}
	if cfg.Links == nil {
		missing = append(missing, "Links")
	}
	if cfg.Index == nil {
		missing = append(missing, "Index")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("serve: config lacks %s", strings.Join(missing, ", "))
	}
	if cfg.ActionsTopic == "" {
		cfg.ActionsTopic = event.TopicAlertActions
	}
	if cfg.Context <= 0 {
		cfg.Context = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	ops := slices.Clone(cfg.Operators)
	for i := range ops {
		if ops[i].Role == "" {
			ops[i].Role = RoleModerator
		}
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("stage", "serve"), ops: operators(ops), addr: make(chan string, 1), refs: newRefusals()}
	con, err := newConsole(s)
	if err != nil {
		return nil, err
	}
	s.console = con
	mux := http.NewServeMux()
	con.routes(mux)
	mux.HandleFunc("GET /evidence/{alert}", s.evidenceDoc)
	mux.HandleFunc("GET /evidence/{alert}/audio.ogg", s.evidenceAudio)
	mux.HandleFunc("GET /alerts", s.listAlerts)
	mux.HandleFunc("POST /alerts/{alert}/actions", s.postAction)
	mux.HandleFunc("GET /healthz", s.health)
	s.mux = mux
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, WriteTimeout: 2 * time.Minute}
	s.srv.RegisterOnShutdown(con.shutdown)
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// Link tokens travel in the query: never let a browser pass them on.
	// The console's pages say same-origin instead: they load nothing from
	// elsewhere, and with no-referrer a browser sends "Origin: null" on
	// their own form posts, which the console's same-origin check refuses.
	if strings.HasPrefix(r.URL.Path, "/console/") {
		h.Set("Referrer-Policy", "same-origin")
	} else {
		h.Set("Referrer-Policy", "no-referrer")
	}
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", consoleCSP)
	h.Set("X-Frame-Options", "DENY")
	s.mux.ServeHTTP(w, r)
}

// Addr returns the address Run listens on, once it does.
func (s *Server) Addr(ctx context.Context) (string, error) {
	select {
	case a := <-s.addr:
		s.addr <- a
		return a, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// Run serves on cfg.Listen (and runs the tail) until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("serve: listen %s: %w", s.cfg.Listen, err)
	}
	s.addr <- ln.Addr().String()
	s.log.Info("moderator API listening", "addr", ln.Addr().String(), "operators", len(s.cfg.Operators))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var tails []*Tail
	for _, t := range []*Tail{s.cfg.Tail, s.cfg.LiveTail} {
		if t != nil {
			tails = append(tails, t)
		}
	}
	errs := make(chan error, len(tails))
	for _, t := range tails {
		go func() {
			err := t.Run(ctx)
			if err != nil && ctx.Err() == nil {
				cancel()
				errs <- err
				return
			}
			errs <- nil
		}()
	}
	go func() {
		<-ctx.Done()
		sctx, c := context.WithTimeout(context.Background(), 10*time.Second)
		defer c()
		_ = s.srv.Shutdown(sctx)
	}()
	err = s.srv.Serve(ln)
	cancel()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	for range tails {
		if terr := <-errs; terr != nil {
			err = errors.Join(err, terr)
		}
	}
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	return ctx.Err()
}

// Close stops the server; idempotent.
func (s *Server) Close() error {
	var err error
	s.once.Do(func() {
		s.console.shutdown()
		err = s.srv.Close()
	})
	return err
}

// --- authentication and audit -------------------------------------------

// caller is who made a request.
type caller struct {
	name string   // operator name, or "link" for a signed link
	link string   // the link token, to carry into sub-resource links
	op   Operator // the operator (zero for a link)
}

// sees reports whether the caller may see anything of room: a link is
// bound to one alert (checked in authorize), an operator may be limited
// to some rooms.
func (c caller) sees(room string) bool { return c.link != "" || c.op.Sees(room) }

const linkCaller = "link"

// authorize finds the caller. alertID is the alert a link token must be
// bound to ("" where links are not accepted). On failure it returns the
// reason, without any token in it.
func (s *Server) authorize(r *http.Request, alertID string) (caller, string) {
	if h := r.Header.Get("Authorization"); h != "" {
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			return caller{}, "authorization is not a bearer token"
		}
		op, err := s.ops.lookup(strings.TrimSpace(tok))
		if err != nil {
			return caller{}, err.Error()
		}
		return caller{name: op.Name, op: op}, ""
	}
	t := r.URL.Query().Get("t")
	if t == "" {
		return caller{}, "no token"
	}
	if alertID == "" {
		return caller{}, "link tokens are not accepted here"
	}
	if err := s.cfg.Links.Verify(alertID, t); err != nil {
		if errors.Is(err, ErrLinkExpired) {
			return caller{}, "link token expired"
		}
		return caller{}, "link token invalid"
	}
	return caller{name: linkCaller, link: t}, ""
}

// audit records one entry. For an allowed request a failure to record
// refuses the request (the caller answers 503).
func (s *Server) audit(ctx context.Context, who, action, subject, outcome, detail string) error {
	if who == "" {
		who = "anonymous"
	}
	err := s.cfg.Audit.Record(context.WithoutCancel(ctx), event.AuditEntry{
		Time: s.cfg.Now().UTC(), Operator: who, Action: action, Subject: subject, Outcome: outcome, Detail: detail,
	})
	if err != nil {
		s.log.Error("audit entry not recorded", "action", action, "subject", subject, "outcome", outcome, "error", err)
	}
	return err
}

// deny answers 401 and audits the refusal, or 429 without an entry when
// the client is refused faster than refusals are audited.
func (s *Server) deny(w http.ResponseWriter, r *http.Request, action, subject, reason string) {
	ok, dropped := s.refs.allow(r, s.cfg.Now())
	if !ok {
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, "too many refused requests")
		return
	}
	detail := reason
	if dropped > 0 {
		detail += fmt.Sprintf(" (after %d refusals of this client not recorded one by one)", dropped)
	}
	s.log.Warn("request refused", "action", action, "subject", subject, "reason", detail, "remote", r.RemoteAddr)
	_ = s.audit(r.Context(), "", action, subject, OutcomeDenied, detail)
	w.Header().Set("WWW-Authenticate", `Bearer realm="earshot"`)
	writeError(w, http.StatusUnauthorized, "unauthorized: "+reason)
}

// validAlertID answers 400 when id is not an alert ID: before anything is
// looked up or recorded.
func validAlertID(w http.ResponseWriter, id string) bool {
	if !event.ValidID(event.PrefixEvent, id) {
		writeError(w, http.StatusBadRequest, "not an alert ID")
		return false
	}
	return true
}

// maxRoomFilter bounds the room filter of GET /alerts (a pseudonym is 36
// bytes).
const maxRoomFilter = 64

// validRoom reports whether a room filter can be a room pseudonym.
func validRoom(room string) bool {
	if len(room) > maxRoomFilter {
		return false
	}
	for _, c := range []byte(room) {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"encoding failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// --- handlers ------------------------------------------------------------

func (s *Server) health(w http.ResponseWriter, _ *http.Request) {
	if s.cfg.Tail != nil && !s.cfg.Tail.CaughtUp() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "rebuilding alert index", "alerts": s.cfg.Index.Len()})
		return
	}
	if s.cfg.Tail != nil {
		if err := s.cfg.Tail.Health(); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "alert index not current", "error": err.Error(), "alerts": s.cfg.Index.Len()})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "alerts": s.cfg.Index.Len()})
}

// AlertView is an alert as the API shows it (no personal data).
type AlertView struct {
	ID            string         `json:"id"`
	Room          string         `json:"room"`
	Session       string         `json:"session"`
	Speaker       string         `json:"speaker"`
	Track         string         `json:"track"`
	FirstSample   int64          `json:"first_sample"`
	LastSample    int64          `json:"last_sample"`
	Start         time.Time      `json:"start"`
	End           time.Time      `json:"end"`
	Severity      string         `json:"severity"`
	Category      string         `json:"category"`
	RuleID        string         `json:"rule_id"`
	Score         float64        `json:"score"`
	Confidence    float64        `json:"confidence"`
	PolicyVersion string         `json:"policy_version,omitempty"`
	Raised        time.Time      `json:"raised"`
	Status        string         `json:"status"`
	Actions       []ActionRecord `json:"actions,omitempty"`
	Updates       []UpdateRecord `json:"updates,omitempty"`
}

func view(e Entry) AlertView {
	tl := e.Env.Timeline
	v := AlertView{
		ID: e.Env.EventID, Room: e.Env.Room, Session: e.Env.Session, Speaker: e.Env.Speaker,
		Track: tl.Track, FirstSample: tl.FirstSample, LastSample: tl.LastSample, Start: tl.Start(), End: tl.End(),
		Severity: e.Alert.Severity, Category: e.Alert.Category, RuleID: e.Alert.RuleID,
		Score: e.Alert.Score, Confidence: e.Alert.Confidence, Raised: e.Env.Time, Status: e.Status(), Actions: e.Actions, Updates: e.Updates,
	}
	if e.Env.Processing != nil {
		v.PolicyVersion = e.Env.Processing.PolicyVersion
	}
	return v
}

func (s *Server) listAlerts(w http.ResponseWriter, r *http.Request) {
	who, reason := s.authorize(r, "")
	if reason != "" {
		s.deny(w, r, AuditAlertsList, "", reason)
		return
	}
	q := r.URL.Query()
	f := Filter{Room: q.Get("room"), Status: q.Get("status"), Rooms: who.op.Rooms}
	if !validRoom(f.Room) {
		writeError(w, http.StatusBadRequest, "room must be a room pseudonym")
		return
	}
	if f.Status != "" && !slices.Contains([]string{StatusOpen, StatusAcknowledged, StatusConfirmed, StatusDismissed}, f.Status) {
		writeError(w, http.StatusBadRequest, "status must be open, acknowledged, confirmed or dismissed")
		return
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 10000 {
			writeError(w, http.StatusBadRequest, "limit must be between 1 and 10000")
			return
		}
		f.Limit = n
	}
	if err := s.audit(r.Context(), who.name, AuditAlertsList, f.Room, OutcomeOK, "status="+f.Status); err != nil {
		writeError(w, http.StatusServiceUnavailable, "audit log unavailable")
		return
	}
	out := []AlertView{}
	for _, e := range s.cfg.Index.List(f) {
		out = append(out, view(e))
	}
	writeJSON(w, http.StatusOK, map[string]any{"alerts": out})
}

// ExcerptView is one excerpt line as the evidence document shows it.
type ExcerptView struct {
	Speaker     string    `json:"speaker"`
	Track       string    `json:"track"`
	FirstSample int64     `json:"first_sample"`
	LastSample  int64     `json:"last_sample"`
	Start       time.Time `json:"start"`
	Text        string    `json:"text"`
	// Unreadable: the line's speaker was erased (their key destroyed).
	Unreadable bool `json:"unreadable,omitempty"`
}

// AudioView names one track's audio for the alert's window.
type AudioView struct {
	Track   string `json:"track"`
	Speaker string `json:"speaker"`
	// Own: the alert's own speaker's track.
	Own bool   `json:"own"`
	URL string `json:"url"`
}

// EvidenceDoc is the document GET /evidence/{alert} returns.
type EvidenceDoc struct {
	Alert   AlertView     `json:"alert"`
	Value   string        `json:"value,omitempty"`
	Text    string        `json:"text"`
	Excerpt []ExcerptView `json:"excerpt"`
	Audio   []AudioView   `json:"audio"`
	// Window is the audio window in UTC: the alert ± the context.
	WindowStart time.Time `json:"window_start"`
	WindowEnd   time.Time `json:"window_end"`
}

// evidenceAlert authorises an evidence request (operator or the alert's
// link) and finds the alert; on failure it has answered and audited.
func (s *Server) evidenceAlert(w http.ResponseWriter, r *http.Request, action, id string) (caller, Entry, bool) {
	if !validAlertID(w, id) {
		return caller{}, Entry{}, false
	}
	who, reason := s.authorize(r, id)
	if reason != "" {
		s.deny(w, r, action, id, reason)
		return caller{}, Entry{}, false
	}
	ent, ok := s.lookupAlert(w, r, who, action, id)
	return who, ent, ok
}

// lookupAlert finds an alert the caller may see; otherwise it audits and
// answers 404 (also for another room's alert, so that a room-scoped
// operator learns nothing of it).
func (s *Server) lookupAlert(w http.ResponseWriter, r *http.Request, who caller, action, id string) (Entry, bool) {
	ent, ok := s.cfg.Index.Get(id)
	if !ok {
		_ = s.audit(r.Context(), who.name, action, id, OutcomeFailed, "unknown alert")
		writeError(w, http.StatusNotFound, "no such alert (the index may still be rebuilding; see /healthz)")
		return Entry{}, false
	}
	if !who.sees(ent.Env.Room) {
		_ = s.audit(r.Context(), who.name, action, id, OutcomeDenied, "alert outside the operator's rooms")
		writeError(w, http.StatusNotFound, "no such alert (the index may still be rebuilding; see /healthz)")
		return Entry{}, false
	}
	return ent, true
}

func (s *Server) evidenceDoc(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("alert")
	who, ent, ok := s.evidenceAlert(w, r, AuditEvidenceRead, id)
	if !ok {
		return
	}
	var data event.AlertData
	if err := ent.Env.Open(r.Context(), s.cfg.Keys, &data); err != nil {
		s.log.Warn("alert data not readable", "alert", id, "error", err)
		_ = s.audit(r.Context(), who.name, AuditEvidenceRead, id, OutcomeFailed, "alert data not readable (speaker erased?)")
		writeError(w, http.StatusGone, "the alert's content is no longer readable (its speaker's data was erased)")
		return
	}
	if _, err := policy.OpenExcerpt(r.Context(), s.cfg.Keys, ent.Env, data.Excerpt); err != nil {
		s.log.Warn("excerpt lines not readable", "alert", id, "error", err)
	}
	if err := s.audit(r.Context(), who.name, AuditEvidenceRead, id, OutcomeOK, ""); err != nil {
		writeError(w, http.StatusServiceUnavailable, "audit log unavailable")
		return
	}
	tl := *ent.Env.Timeline
	doc := EvidenceDoc{Alert: view(ent), Value: data.Value, Text: data.Text, Excerpt: []ExcerptView{},
		WindowStart: tl.Start().Add(-s.cfg.Context), WindowEnd: tl.End().Add(s.cfg.Context)}
	tracks := []AudioView{{Track: tl.Track, Speaker: ent.Env.Speaker, Own: true}}
	for _, l := range data.Excerpt {
		doc.Excerpt = append(doc.Excerpt, ExcerptView{
			Speaker: l.Speaker, Track: l.Track, FirstSample: l.FirstSample, LastSample: l.LastSample,
			Text: l.Text, Unreadable: l.Text == "" && len(l.Sealed) > 0,
		})
		if l.Track == tl.Track {
			doc.Excerpt[len(doc.Excerpt)-1].Start = tl.Origin.Add(event.SamplesToDuration(l.FirstSample))
		}
		if !slices.ContainsFunc(tracks, func(a AudioView) bool { return a.Track == l.Track }) {
			tracks = append(tracks, AudioView{Track: l.Track, Speaker: l.Speaker})
		}
	}
	for i := range tracks {
		q := url.Values{}
		if !tracks[i].Own {
			q.Set("track", tracks[i].Track)
		}
		if who.link != "" {
			q.Set("t", who.link) // the link grants the alert's audio too
		}
		u := s.cfg.Links.base + "/evidence/" + url.PathEscape(id) + "/audio.ogg"
		if len(q) > 0 {
			u += "?" + q.Encode()
		}
		tracks[i].URL = u
	}
	doc.Audio = tracks
	writeJSON(w, http.StatusOK, doc)
}

func (s *Server) evidenceAudio(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("alert")
	who, ent, ok := s.evidenceAlert(w, r, AuditEvidenceAudio, id)
	if !ok {
		return
	}
	tl := *ent.Env.Timeline
	track := r.URL.Query().Get("track")
	ctxSamples := event.DurationToSamples(s.cfg.Context)
	req := evidence.Request{Room: ent.Env.Room, Session: ent.Env.Session, Track: tl.Track,
		First: tl.FirstSample - ctxSamples, Last: tl.LastSample + ctxSamples,
		Tags: [][2]string{{"EARSHOT_ALERT", id}}}
	if track != "" && track != tl.Track {
		if !s.involves(r.Context(), ent, track) {
			_ = s.audit(r.Context(), who.name, AuditEvidenceAudio, id, OutcomeFailed, "track not in the alert's excerpt")
			writeError(w, http.StatusNotFound, "that track is not part of this alert's evidence")
			return
		}
		// Another speaker's track has its own timeline: place the alert's
		// wall-clock window on it through its origin.
		origin, err := evidence.Origin(r.Context(), s.cfg.Store, ent.Env.Room, ent.Env.Session, track)
		if err != nil {
			s.fail(w, r, who, id, err)
			return
		}
		req.Track = track
		req.First = event.DurationToSamples(tl.Start().Add(-s.cfg.Context).Sub(origin))
		req.Last = event.DurationToSamples(tl.End().Add(s.cfg.Context).Sub(origin)) - 1
		if req.Last < 0 {
			s.fail(w, r, who, id, evidence.ErrNoAudio)
			return
		}
	}
	var buf bytes.Buffer
	res, err := evidence.Cut(r.Context(), s.cfg.Store, req, &buf)
	if err != nil {
		s.fail(w, r, who, id, err)
		return
	}
	detail := fmt.Sprintf("track=%s samples=%d-%d", req.Track, res.First, res.Last)
	if err := s.audit(r.Context(), who.name, AuditEvidenceAudio, id, OutcomeOK, detail); err != nil {
		writeError(w, http.StatusServiceUnavailable, "audit log unavailable")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "audio/ogg; codecs=opus")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	h.Set("Content-Disposition", `attachment; filename="`+id+"-"+req.Track+`.opus"`)
	h.Set("X-Earshot-Track", req.Track)
	h.Set("X-Earshot-First-Sample", strconv.FormatInt(res.First, 10))
	h.Set("X-Earshot-Last-Sample", strconv.FormatInt(res.Last, 10))
	h.Set("X-Earshot-Silence-Samples", strconv.FormatInt(res.SilenceSamples, 10))
	if !res.Origin.IsZero() {
		h.Set("X-Earshot-Start", res.Origin.Add(event.SamplesToDuration(res.First)).UTC().Format(time.RFC3339Nano))
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
}

// involves reports whether track appears in the alert's excerpt.
func (s *Server) involves(ctx context.Context, ent Entry, track string) bool {
	var data event.AlertData
	if err := ent.Env.Open(ctx, s.cfg.Keys, &data); err != nil {
		return false
	}
	return slices.ContainsFunc(data.Excerpt, func(l event.ExcerptLine) bool { return l.Track == track })
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, who caller, id string, err error) {
	code, msg := http.StatusInternalServerError, "evidence could not be cut"
	if errors.Is(err, evidence.ErrNoAudio) {
		code, msg = http.StatusNotFound, "no stored audio for this alert's window (not uploaded yet, or past retention)"
	}
	s.log.Warn("evidence audio failed", "alert", id, "error", err)
	_ = s.audit(r.Context(), who.name, AuditEvidenceAudio, id, OutcomeFailed, msg)
	writeError(w, code, msg)
}

// actionBody is the JSON body of POST /alerts/{id}/actions.
type actionBody struct {
	Action string `json:"action"`
	Note   string `json:"note"`
}

func (s *Server) postAction(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("alert")
	if !validAlertID(w, id) {
		return
	}
	who, reason := s.authorize(r, "")
	if reason != "" {
		s.deny(w, r, AuditAlertAction, id, reason)
		return
	}
	var body actionBody
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 2*MaxNoteBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "body must be JSON {\"action\": \"ack|confirm|dismiss\", \"note\": \"...\"}")
		return
	}
	req := ActionRequest{Action: body.Action, Operator: who.name, Note: body.Note}
	if err := req.Validate(); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ent, ok := s.lookupAlert(w, r, who, AuditAlertAction, id)
	if !ok {
		return
	}
	env, status, code, err := s.act(r.Context(), who, ent, req)
	if err != nil {
		writeError(w, code, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": env.EventID, "alert": id, "action": body.Action, "operator": who.name, "status": status})
}

// act records, audits and publishes an action on an alert the caller may
// see, and applies it to the index. On failure it returns the HTTP status
// and an error to show.
func (s *Server) act(ctx context.Context, who caller, ent Entry, req ActionRequest) (*event.Envelope, string, int, error) {
	id := ent.Env.EventID
	env, msg, err := NewAction(ctx, s.cfg.Keys, s.cfg.Producer, s.cfg.ActionsTopic, ent.Env, req)
	if err != nil {
		s.log.Error("alert action not built", "alert", id, "error", err)
		_ = s.audit(ctx, who.name, AuditAlertAction, id, OutcomeFailed, req.Action)
		return nil, "", http.StatusInternalServerError, errors.New("action could not be recorded")
	}
	if err := s.audit(ctx, who.name, AuditAlertAction, id, OutcomeOK, req.Action); err != nil {
		return nil, "", http.StatusServiceUnavailable, errors.New("audit log unavailable")
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := s.cfg.Sender.Produce(pctx, msg); err != nil {
		s.log.Error("alert action not produced", "alert", id, "error", err)
		return nil, "", http.StatusServiceUnavailable, errors.New("action could not be published; retry (the same request is idempotent)")
	}
	s.cfg.Index.Apply(env)
	ent, _ = s.cfg.Index.Get(id)
	s.log.Info("alert action", "alert", id, "action", req.Action, "operator", who.name, "status", ent.Status())
	return env, ent.Status(), 0, nil
}
