package serve

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/earshot/earshot/event"
)

// AuditConsoleRoom: a live room's page or its stream (speakers and the
// live transcript).
const AuditConsoleRoom = "console.room"

type roomsView struct {
	Configured bool
	Rooms      []roomRow
}

type roomRow struct {
	LiveRoom
	Open     int
	Speakers int
	State    string // the worst of its tracks' states
}

// stateRank orders track states from best to worst.
var stateRank = map[string]int{"ended": 0, "recording": 1, "gaps": 2, "stalled": 3}

func (c *console) roomsPage(w http.ResponseWriter, r *http.Request, who caller, s consoleSession) {
	p := page{Title: "Live rooms", Op: s.op, CSRF: s.csrf}
	v := roomsView{Configured: c.s.cfg.Live != nil}
	if v.Configured {
		open := c.s.cfg.Index.CountByRoom(StatusOpen)
		for _, lr := range c.s.cfg.Live.Rooms(who.sees) {
			row := roomRow{LiveRoom: lr, Open: open[lr.Room], State: "ended"}
			for _, t := range lr.Tracks {
				if !t.Ended {
					row.Speakers++
				}
				if stateRank[t.State] > stateRank[row.State] {
					row.State = t.State
				}
			}
			v.Rooms = append(v.Rooms, row)
		}
	}
	if err := c.s.audit(r.Context(), who.name, AuditConsoleRoom, "", OutcomeOK, fmt.Sprintf("rooms list (%d rooms)", len(v.Rooms))); err != nil {
		c.errorPage(w, http.StatusServiceUnavailable, p, "The audit log is unavailable.")
		return
	}
	p.Data = v
	c.render(w, http.StatusOK, "rooms", p)
}

// roomLine is one live transcript line.
type roomLine struct {
	Time       time.Time
	Speaker    string
	Text       string
	Pass       string
	Unreadable bool
}

type roomView struct {
	Room   LiveRoom
	Open   int
	Lines  []roomLine
	Stream string
}

// roomView opens the room's latest transcript lines.
func (c *console) roomView(r *http.Request, lr LiveRoom) roomView {
	v := roomView{Room: lr, Stream: "/console/rooms/" + lr.Room + "/events"}
	_, counts := c.s.cfg.Index.Query(Filter{Room: lr.Room, Limit: 1}, true)
	v.Open = counts[StatusOpen]
	for _, e := range lr.Lines {
		var d event.TranscriptSegmentData
		l := roomLine{Time: lineStart(e), Speaker: e.Speaker}
		if e.Processing != nil {
			l.Pass = e.Processing.Options["pass"]
		}
		if err := e.Open(r.Context(), c.s.cfg.Keys, &d); err != nil {
			l.Unreadable = true
		} else {
			l.Text = strings.TrimSpace(d.Text)
		}
		v.Lines = append(v.Lines, l)
	}
	return v
}

// liveRoom finds a room the caller may see; otherwise it audits and
// answers 404.
func (c *console) liveRoom(w http.ResponseWriter, r *http.Request, who caller, p page) (LiveRoom, bool) {
	room := r.PathValue("room")
	if !validRoom(room) {
		c.errorPage(w, http.StatusBadRequest, p, "That is not a room pseudonym.")
		return LiveRoom{}, false
	}
	var (
		lr LiveRoom
		ok bool
	)
	if c.s.cfg.Live != nil {
		lr, ok = c.s.cfg.Live.Room(room)
	}
	if !ok || !who.sees(room) {
		outcome, detail := OutcomeFailed, "room not live"
		if ok {
			outcome, detail = OutcomeDenied, "room outside the operator's rooms"
		}
		_ = c.s.audit(r.Context(), who.name, AuditConsoleRoom, room, outcome, detail)
		if r.Header.Get("Accept") == "text/event-stream" {
			http.Error(w, "no such live room", http.StatusNotFound)
		} else {
			c.errorPage(w, http.StatusNotFound, p, "No such live room (rooms show up with their next stored segment or transcript line).")
		}
		return LiveRoom{}, false
	}
	return lr, true
}

func (c *console) roomPage(w http.ResponseWriter, r *http.Request, who caller, s consoleSession) {
	p := page{Title: "Live room", Op: s.op, CSRF: s.csrf}
	lr, ok := c.liveRoom(w, r, who, p)
	if !ok {
		return
	}
	if err := c.s.audit(r.Context(), who.name, AuditConsoleRoom, lr.Room, OutcomeOK, "page"); err != nil {
		c.errorPage(w, http.StatusServiceUnavailable, p, "The audit log is unavailable.")
		return
	}
	p.Title = "Live room " + shortID(lr.Room)
	p.Data = c.roomView(r, lr)
	c.render(w, http.StatusOK, "room", p)
}

// roomEvents streams the room's speakers and live transcript, re-rendered
// on every change: one audit entry for the stream.
func (c *console) roomEvents(w http.ResponseWriter, r *http.Request, who caller, s consoleSession) {
	lr, ok := c.liveRoom(w, r, who, page{Op: s.op})
	if !ok {
		return
	}
	if err := c.s.audit(r.Context(), who.name, AuditConsoleRoom, lr.Room, OutcomeOK, "stream"); err != nil {
		http.Error(w, "audit log unavailable", http.StatusServiceUnavailable)
		return
	}
	live := c.s.cfg.Live
	c.stream(w, r, live.Changed, func(buf *bytes.Buffer) error {
		lr, _ := live.Room(lr.Room)
		return c.tmpl["room"].ExecuteTemplate(buf, "roomlive", c.roomView(r, lr))
	}, "room")
}
