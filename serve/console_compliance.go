package serve

import (
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/earshot/earshot/event"
)

// Compliance is what the console's compliance views use: legal holds and
// the audit log's chain. earshot serve implements it over the retention
// and audit packages; the implementation audits hold changes itself.
type Compliance interface {
	// Holds lists the legal holds.
	Holds(ctx context.Context) ([]HoldInfo, error)
	// SetHold places a hold on a room and/or a speaker (raw IDs or
	// pseudonyms) for the operator, with the reason.
	SetHold(ctx context.Context, operator, room, speaker, reason string) error
	// LiftHold lifts the hold with that scope; it reports whether one
	// existed.
	LiftHold(ctx context.Context, operator string, h HoldInfo, reason string) (bool, error)
	// AuditStatus checks the audit log's hash chain and returns its
	// latest entries.
	AuditStatus(ctx context.Context, recent int) (AuditStatus, error)
	// Export writes the signed compliance bundle of a room (and, when
	// given, one speaker) to w, audited as the operator's, and returns the
	// bundle's file name.
	Export(ctx context.Context, operator, room, speaker, reason string, w io.Writer) (string, error)
}

// HoldInfo is one legal hold (pseudonyms only).
type HoldInfo struct {
	Room, Session, Speaker string
	Reason, Operator       string
	Set                    time.Time
}

// AuditStatus is the audit chain's state.
type AuditStatus struct {
	Intact  bool
	Entries int64
	Head    string
	Problem string             // why the chain is not intact
	Recent  []event.AuditEntry // newest first
}

// AuditConsoleCompliance: the compliance page (holds and audit log).
const AuditConsoleCompliance = "console.compliance"

type complianceView struct {
	Configured bool
	Holds      []HoldInfo
	HoldsErr   string
	Audit      AuditStatus
	AuditErr   string
	Notice     string
}

// compliant checks the caller may use the compliance views: role
// compliance or admin, not limited to some rooms (holds and the audit log
// are deployment-wide).
func (c *console) compliant(w http.ResponseWriter, r *http.Request, who caller, p page) bool {
	if who.op.Can(RoleCompliance) && len(who.op.Rooms) == 0 {
		return true
	}
	_ = c.s.audit(r.Context(), who.name, AuditConsoleCompliance, r.URL.Path, OutcomeDenied, "role "+who.op.Role)
	c.errorPage(w, http.StatusForbidden, p, "The compliance views are for the compliance role (not limited to some rooms).")
	return false
}

// complianceChange checks a compliance POST: the caller's role, and a
// configured backend.
func (c *console) complianceChange(w http.ResponseWriter, r *http.Request, who caller, p page) bool {
	if !c.compliant(w, r, who, p) {
		return false
	}
	if c.s.cfg.Compliance == nil {
		c.errorPage(w, http.StatusNotFound, p, "The compliance views are not configured on this server.")
		return false
	}
	return true
}

func (c *console) compliancePage(w http.ResponseWriter, r *http.Request, who caller, s consoleSession) {
	p := page{Title: "Compliance", Op: s.op, CSRF: s.csrf}
	if !c.compliant(w, r, who, p) {
		return
	}
	v := complianceView{Configured: c.s.cfg.Compliance != nil, Notice: holdNotices[r.URL.Query().Get("done")]}
	if !v.Configured {
		p.Data = v
		c.render(w, http.StatusOK, "compliance", p)
		return
	}
	if err := c.s.audit(r.Context(), who.name, AuditConsoleCompliance, "", OutcomeOK, "holds and audit log"); err != nil {
		c.errorPage(w, http.StatusServiceUnavailable, p, "The audit log is unavailable.")
		return
	}
	var err error
	if v.Holds, err = c.s.cfg.Compliance.Holds(r.Context()); err != nil {
		c.s.log.Warn("holds not listed", "error", err)
		v.HoldsErr = "The holds could not be listed: " + err.Error()
	}
	if v.Audit, err = c.s.cfg.Compliance.AuditStatus(r.Context(), 50); err != nil {
		c.s.log.Warn("audit chain not checked", "error", err)
		v.AuditErr = "The audit log could not be read: " + err.Error()
	}
	p.Data = v
	c.render(w, http.StatusOK, "compliance", p)
}

// holdAction sets or lifts a hold from the compliance page.
func (c *console) holdAction(w http.ResponseWriter, r *http.Request, who caller, s consoleSession) {
	p := page{Title: "Compliance", Op: s.op, CSRF: s.csrf}
	if !c.complianceChange(w, r, who, p) {
		return
	}
	f := func(k string) string { return strings.TrimSpace(r.PostFormValue(k)) }
	reason := f("reason")
	if reason == "" || len(reason) > MaxNoteBytes {
		c.errorPage(w, http.StatusBadRequest, p, "Give a reason (it is recorded in the audit log).")
		return
	}
	var (
		err  error
		done string
	)
	switch f("op") {
	case "set":
		if f("room") == "" && f("speaker") == "" {
			c.errorPage(w, http.StatusBadRequest, p, "A hold needs a room and/or a speaker.")
			return
		}
		err, done = c.s.cfg.Compliance.SetHold(r.Context(), who.name, f("room"), f("speaker"), reason), "set"
	case "lift":
		var existed bool
		existed, err = c.s.cfg.Compliance.LiftHold(r.Context(), who.name, HoldInfo{Room: f("room"), Session: f("session"), Speaker: f("speaker")}, reason)
		done = "lifted"
		if err == nil && !existed {
			done = "none"
		}
	default:
		c.errorPage(w, http.StatusBadRequest, p, "Unknown hold action.")
		return
	}
	if err != nil {
		c.s.log.Warn("hold change failed", "error", err)
		c.errorPage(w, http.StatusInternalServerError, p, "The hold could not be changed: "+err.Error())
		return
	}
	http.Redirect(w, r, "/console/compliance?done="+done, http.StatusSeeOther)
}

// holdNotices are the messages after a hold change (the query names one,
// so that no text of a link's choosing appears on the page).
var holdNotices = map[string]string{"set": "Hold set.", "lifted": "Hold lifted.", "none": "There was no such hold: nothing lifted."}

// exportBundle writes a room's signed bundle aside, then sends it as a
// download: a failed export sends an error page, never half a bundle.
func (c *console) exportBundle(w http.ResponseWriter, r *http.Request, who caller, s consoleSession) {
	p := page{Title: "Compliance", Op: s.op, CSRF: s.csrf}
	if !c.complianceChange(w, r, who, p) {
		return
	}
	room, speaker, reason := strings.TrimSpace(r.PostFormValue("room")), strings.TrimSpace(r.PostFormValue("speaker")), strings.TrimSpace(r.PostFormValue("reason"))
	if room == "" || reason == "" || len(reason) > MaxNoteBytes {
		c.errorPage(w, http.StatusBadRequest, p, "An export needs a room and a reason (recorded in the audit log).")
		return
	}
	tmp, err := os.CreateTemp("", "earshot-console-export-*.tar")
	if err != nil {
		c.errorPage(w, http.StatusInternalServerError, p, "The export could not be written.")
		return
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	name, err := c.s.cfg.Compliance.Export(r.Context(), who.name, room, speaker, reason, tmp)
	if err != nil {
		c.s.log.Warn("console export failed", "error", err)
		c.errorPage(w, http.StatusInternalServerError, p, "The export failed: "+err.Error())
		return
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		c.errorPage(w, http.StatusInternalServerError, p, "The export could not be read back.")
		return
	}
	w.Header().Set("Content-Type", "application/x-tar")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	http.ServeContent(w, r, "", time.Time{}, tmp)
}
