package serve

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/policy"
	"github.com/earshot/earshot/serve/evidence"
)

// viewCache keeps the audio cut for an alert page opened: the browser's
// Range requests for it are served from here, so that a page is one cut
// and one audit entry however the player seeks. A view belongs to the
// session (or signed link) that opened the page.
type viewCache struct {
	mu  sync.Mutex
	now func() time.Time
	m   map[string]*alertView
}

type alertView struct {
	owner string // "s:" + session key, or "l:" + link token
	alert string
	track string
	audio []byte
	made  time.Time
}

const (
	viewTTL   = time.Hour
	viewCount = 256 // views kept; the oldest is dropped first
)

func newViewCache(now func() time.Time) *viewCache {
	return &viewCache{now: now, m: map[string]*alertView{}}
}

func (vc *viewCache) put(v *alertView) string {
	id := randomToken()[:32]
	vc.mu.Lock()
	defer vc.mu.Unlock()
	now := vc.now()
	for k, o := range vc.m {
		if now.Sub(o.made) > viewTTL {
			delete(vc.m, k)
		}
	}
	for len(vc.m) >= viewCount {
		var oldest string
		for k, o := range vc.m {
			if oldest == "" || o.made.Before(vc.m[oldest].made) {
				oldest = k
			}
		}
		delete(vc.m, oldest)
	}
	vc.m[id] = v
	return id
}

func (vc *viewCache) get(id, owner, alert string) (*alertView, bool) {
	vc.mu.Lock()
	defer vc.mu.Unlock()
	v, ok := vc.m[id]
	if !ok || v.owner != owner || v.alert != alert || vc.now().Sub(v.made) > viewTTL {
		return nil, false
	}
	return v, true
}

// alertCaller authorises an alert page or its audio: a session, or the
// alert's own signed link (?t=). owner names who opened it, for the view
// cache.
func (c *console) alertCaller(w http.ResponseWriter, r *http.Request, id string) (who caller, s consoleSession, owner string, ok bool) {
	if t := r.URL.Query().Get("t"); t != "" {
		if err := c.s.cfg.Links.Verify(id, t); err != nil {
			reason := "link token invalid"
			if errors.Is(err, ErrLinkExpired) {
				reason = "link token expired"
			}
			c.refuse(w, r, reason)
			return caller{}, consoleSession{}, "", false
		}
		return caller{name: linkCaller, link: t}, consoleSession{}, "l:" + t, true
	}
	s, reason := c.session(w, r)
	if reason != "" {
		c.refuse(w, r, reason)
		return caller{}, consoleSession{}, "", false
	}
	return caller{name: s.op.Name, op: s.op}, s, "s:" + hex.EncodeToString(s.key[:]), true
}

// consoleAlert finds an alert the caller may see; otherwise it audits
// and answers 404 (another room's alert looks like no alert at all).
func (c *console) consoleAlert(w http.ResponseWriter, r *http.Request, who caller, p page, action, id string) (Entry, bool) {
	ent, ok := c.s.cfg.Index.Get(id)
	if !ok || !who.sees(ent.Env.Room) {
		outcome, detail := OutcomeFailed, "unknown alert"
		if ok {
			outcome, detail = OutcomeDenied, "alert outside the operator's rooms"
		}
		_ = c.s.audit(r.Context(), who.name, action, id, outcome, detail)
		c.errorPage(w, http.StatusNotFound, p, "No such alert (the index may still be rebuilding).")
		return Entry{}, false
	}
	return ent, true
}

// lineView is one transcript line of the alert page.
type lineView struct {
	Speaker    string
	Time       time.Time
	Offset     string // seconds into the audio, for seeking; "" when outside it
	Pre, Match string
	Post       string
	Matched    bool   // the alert's own line
	Pass       string // the revision's pass: live, settled or final
	Unreadable bool
}

type actionView struct {
	Action, Operator, Note string
	Time                   time.Time
}

type alertPageView struct {
	Alert      AlertView
	Pass       string
	Suppressed int
	Text       string
	Lines      []lineView
	AudioURL   string
	AudioDur   string // seconds, as the cut holds
	NoAudio    string
	History    []actionView
	Link       string // the link token, for a page opened through one
}

func (c *console) alertPage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("alert")
	p := page{Title: "Alert"}
	if !event.ValidID(event.PrefixEvent, id) {
		c.errorPage(w, http.StatusBadRequest, p, "That is not an alert ID.")
		return
	}
	who, s, owner, ok := c.alertCaller(w, r, id)
	if !ok {
		return
	}
	p.Op, p.CSRF, p.Link = s.op, s.csrf, who.link != ""
	ent, ok := c.consoleAlert(w, r, who, p, AuditConsoleAlert, id)
	if !ok {
		return
	}
	ctx := r.Context()
	var data event.AlertData
	if err := ent.Env.Open(ctx, c.s.cfg.Keys, &data); err != nil {
		_ = c.s.audit(ctx, who.name, AuditConsoleAlert, id, OutcomeFailed, "alert data not readable (speaker erased?)")
		c.errorPage(w, http.StatusGone, p, errUnreadable.Error())
		return
	}
	if _, err := policy.OpenExcerpt(ctx, c.s.cfg.Keys, ent.Env, data.Excerpt); err != nil {
		c.s.log.Warn("excerpt lines not readable", "alert", id, "error", err)
	}
	tl := *ent.Env.Timeline
	v := alertPageView{Alert: view(ent), Text: data.Text, Link: who.link, Suppressed: ent.Suppressed}
	if ent.Env.Processing != nil {
		v.Pass = ent.Env.Processing.Options["pass"]
	}
	// The audio: the alert's track over its window, cut once for the page.
	ctxSamples := event.DurationToSamples(c.s.cfg.Context)
	var buf bytes.Buffer
	res, cutErr := evidence.Cut(ctx, c.s.cfg.Store, evidence.Request{Room: ent.Env.Room, Session: ent.Env.Session, Track: tl.Track,
		First: tl.FirstSample - ctxSamples, Last: tl.LastSample + ctxSamples, Tags: [][2]string{{"EARSHOT_ALERT", id}}}, &buf)
	var audioStart time.Time
	detail := "transcript"
	switch {
	case cutErr == nil:
		origin := res.Origin
		if origin.IsZero() {
			origin = tl.Origin
		}
		audioStart = origin.Add(event.SamplesToDuration(res.First))
		vid := c.views.put(&alertView{owner: owner, alert: id, track: tl.Track, audio: buf.Bytes(), made: c.s.cfg.Now()})
		q := url.Values{"v": {vid}}
		if who.link != "" {
			q.Set("t", who.link)
		}
		v.AudioURL = "/console/alerts/" + url.PathEscape(id) + "/audio?" + q.Encode()
		v.AudioDur = fmt.Sprintf("%.3f", event.SamplesToDuration(res.Last-res.First+1).Seconds())
		detail = fmt.Sprintf("transcript and audio track=%s samples=%d-%d", tl.Track, res.First, res.Last)
	case errors.Is(cutErr, evidence.ErrNoAudio):
		v.NoAudio = "No stored audio covers this alert yet (segments are uploaded every 30 s) or any more (past retention)."
	default:
		c.s.log.Warn("evidence audio failed", "alert", id, "error", cutErr)
		v.NoAudio = "The audio could not be cut; try again."
	}
	origins := map[string]time.Time{tl.Track: tl.Origin}
	lineTime := func(track string, first int64) (time.Time, string) {
		origin, ok := origins[track]
		if !ok {
			if o, err := evidence.Origin(ctx, c.s.cfg.Store, ent.Env.Room, ent.Env.Session, track); err == nil {
				origin = o
			}
			origins[track] = origin
		}
		if origin.IsZero() {
			return time.Time{}, ""
		}
		t := origin.Add(event.SamplesToDuration(first))
		if audioStart.IsZero() {
			return t, ""
		}
		return t, fmt.Sprintf("%.2f", max(t.Sub(audioStart).Seconds(), 0))
	}
	matched := func(track string, first, last int64) bool {
		return track == tl.Track && first <= tl.LastSample && last >= tl.FirstSample
	}
	// The preferred text per stretch of speech from the archived
	// revisions; the alert's own excerpt (the revision that raised it)
	// when the archive has none there.
	preferred, err := preferredTranscript(ctx, c.s.cfg.Store, ent.Env, data.Excerpt)
	if err != nil {
		c.s.log.Warn("archived transcript not read; showing the alert's excerpt", "alert", id, "error", err)
	}
	for _, e := range preferred {
		lv := lineView{Speaker: e.Speaker, Pass: passOf(e)}
		lv.Time, lv.Offset = lineTime(e.Timeline.Track, e.Timeline.FirstSample)
		var d event.TranscriptSegmentData
		if err := e.Open(ctx, c.s.cfg.Keys, &d); err != nil {
			lv.Unreadable = true
		}
		lv.Matched = matched(e.Timeline.Track, e.Timeline.FirstSample, e.Timeline.LastSample)
		lv.Pre = d.Text
		if lv.Matched {
			lv.Pre, lv.Match, lv.Post = highlight(d.Text, data.Text, data.Value)
		}
		v.Lines = append(v.Lines, lv)
	}
	if len(preferred) > 0 {
		detail += fmt.Sprintf(" lines=%d from the archive", len(preferred))
	}
	for _, l := range data.Excerpt {
		if len(preferred) > 0 {
			break // the archive's lines stand in for the excerpt's
		}
		lv := lineView{Speaker: l.Speaker, Pass: passOf(ent.Env), Unreadable: l.Text == "" && len(l.Sealed) > 0}
		lv.Time, lv.Offset = lineTime(l.Track, l.FirstSample)
		lv.Matched = matched(l.Track, l.FirstSample, l.LastSample)
		lv.Pre = l.Text
		if lv.Matched {
			lv.Pre, lv.Match, lv.Post = highlight(l.Text, data.Text, data.Value)
		}
		v.Lines = append(v.Lines, lv)
	}
	// In spoken order; a line whose track has no stored audio yet (no
	// origin) keeps its place after the timed ones.
	slices.SortStableFunc(v.Lines, func(a, b lineView) int {
		switch {
		case a.Time.IsZero() && b.Time.IsZero():
			return 0
		case a.Time.IsZero():
			return 1
		case b.Time.IsZero():
			return -1
		}
		return a.Time.Compare(b.Time)
	})
	for _, a := range ent.Actions {
		av := actionView{Action: a.Action, Operator: a.Operator, Time: a.Time}
		if a.env != nil {
			var note event.AlertActionData
			if err := a.env.Open(ctx, c.s.cfg.Keys, &note); err == nil {
				av.Note = note.Note
			} else {
				av.Note = "(note not readable)"
			}
		}
		v.History = append(v.History, av)
	}
	if err := c.s.audit(ctx, who.name, AuditConsoleAlert, id, OutcomeOK, detail); err != nil {
		c.errorPage(w, http.StatusServiceUnavailable, p, "The audit log is unavailable.")
		return
	}
	p.Title, p.Data = ent.Alert.Category+" alert", v
	c.render(w, http.StatusOK, "alert", p)
}

// highlight splits line around the first of the matched words (or the
// normalised value) found in it, ignoring case; without one, the whole
// line is the match.
func highlight(line string, needles ...string) (pre, match, post string) {
	low := strings.ToLower(line)
	for _, n := range needles {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		if i := strings.Index(low, strings.ToLower(n)); i >= 0 && len(low) == len(line) {
			return line[:i], line[i : i+len(n)], line[i+len(n):]
		}
	}
	return "", line, ""
}

// alertAudio serves a page's audio cut, with Range requests, to whoever
// opened the page.
func (c *console) alertAudio(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("alert")
	if !event.ValidID(event.PrefixEvent, id) {
		http.Error(w, "not an alert ID", http.StatusBadRequest)
		return
	}
	_, _, owner, ok := c.alertCaller(w, r, id)
	if !ok {
		return
	}
	v, ok := c.views.get(r.URL.Query().Get("v"), owner, id)
	if !ok {
		http.Error(w, "this audio view has expired: reload the alert page", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "audio/ogg; codecs=opus")
	http.ServeContent(w, r, "", v.made, bytes.NewReader(v.audio))
}

// action takes an action from the console: a form post (answered with a
// redirect back) or a script's request asking for JSON.
func (c *console) action(w http.ResponseWriter, r *http.Request, who caller, s consoleSession) {
	id := r.PathValue("alert")
	p := page{Title: "Alert", Op: s.op, CSRF: s.csrf}
	if !event.ValidID(event.PrefixEvent, id) {
		c.errorPage(w, http.StatusBadRequest, p, "That is not an alert ID.")
		return
	}
	wantJSON := strings.Contains(r.Header.Get("Accept"), "application/json")
	fail := func(code int, msg string) {
		if wantJSON {
			writeError(w, code, msg)
			return
		}
		c.errorPage(w, code, p, msg)
	}
	req := ActionRequest{Action: r.PostFormValue("action"), Operator: who.name, Note: r.PostFormValue("note")}
	if err := req.Validate(); err != nil {
		fail(http.StatusBadRequest, err.Error())
		return
	}
	ent, ok := c.s.cfg.Index.Get(id)
	if !ok || !who.sees(ent.Env.Room) {
		_ = c.s.audit(r.Context(), who.name, AuditAlertAction, id, OutcomeDenied, "unknown alert or outside the operator's rooms")
		fail(http.StatusNotFound, "No such alert.")
		return
	}
	_, status, code, err := c.s.act(r.Context(), who, ent, req)
	if err != nil {
		fail(code, err.Error())
		return
	}
	if wantJSON {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"alert": id, "status": status})
		return
	}
	next := safeNext(r.PostFormValue("next"))
	if r.PostFormValue("next") == "" {
		next = "/console/alerts/" + url.PathEscape(id)
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// --- sessions (admin) ------------------------------------------------------

func (c *console) sessionsPage(w http.ResponseWriter, r *http.Request, who caller, s consoleSession) {
	p := page{Title: "Sessions", Op: s.op, CSRF: s.csrf}
	if !s.op.Can(RoleAdmin) {
		_ = c.s.audit(r.Context(), who.name, "console.sessions", "", OutcomeDenied, "role "+s.op.Role)
		c.errorPage(w, http.StatusForbidden, p, "Only an admin sees operators' sessions.")
		return
	}
	list := c.sess.list()
	slices.SortFunc(list, func(a, b SessionInfo) int { return b.Seen.Compare(a.Seen) })
	p.Data = list
	c.render(w, http.StatusOK, "sessions", p)
}

func (c *console) endSession(w http.ResponseWriter, r *http.Request, who caller, s consoleSession) {
	p := page{Title: "Sessions", Op: s.op, CSRF: s.csrf}
	id := r.PostFormValue("id")
	if !s.op.Can(RoleAdmin) {
		_ = c.s.audit(r.Context(), who.name, AuditConsoleSession, id, OutcomeDenied, "role "+s.op.Role)
		c.errorPage(w, http.StatusForbidden, p, "Only an admin ends operators' sessions.")
		return
	}
	if !c.sess.endByID(id) {
		c.errorPage(w, http.StatusNotFound, p, "No such session.")
		return
	}
	_ = c.s.audit(r.Context(), who.name, AuditConsoleSession, id, OutcomeOK, "ended")
	http.Redirect(w, r, "/console/sessions", http.StatusSeeOther)
}
