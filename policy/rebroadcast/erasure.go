package rebroadcast

import (
	"strings"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
)

// actionErase is the audit action of an erasure (compliance/audit's
// ActionErase; policy sits below compliance and does not import it).
const actionErase = "erase"

// noteAudit applies an erasure recorded on the audit topic: every track of
// the erased people or rooms leaves the index at once, and their audio
// from before the erasure is never indexed again (records read back from
// the fingerprints topic, or chunks opened under a key still cached).
// The entry's subject lists the pseudonyms, every key version's,
// comma-separated, current first; a pseudonym is either a person's or a
// room's, and the two never collide, so each is tried as both.
func (s *Stage) noteAudit(m bus.Message) {
	e, err := event.Decode(m.Value)
	if err != nil || e.Type != event.TypeAudit {
		return
	}
	var a event.AuditEntry
	if e.DecodePayload(&a) != nil || a.Action != actionErase {
		return
	}
	var subjects []string
	for _, p := range strings.Split(a.Subject, ",") {
		// A subject list cut to the audit bound ends in a marker that
		// names nobody; the pseudonyms before it still count.
		if p = strings.TrimSpace(p); p != "" && !strings.ContainsAny(p, " …[") {
			subjects = append(subjects, p)
		}
	}
	if len(subjects) == 0 {
		return
	}
	at := a.Time.UnixMilli()
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, subj := range subjects {
		if old, ok := s.erased[subj]; !ok || at > old {
			s.erased[subj] = at
		}
		n += s.idx.EraseSpeaker(subj) + s.idx.EraseRoom(subj)
	}
	s.forgetDropped()
	s.m.erasures.Inc()
	s.m.erasedTracks.Add(float64(n))
	s.log.Info("erasure applied to the fingerprint index", "tracks_dropped", n, "pseudonyms", len(subjects), "outcome", a.Outcome)
}

// erasedAt reports whether audio of speaker in room that began at startMS
// (Unix ms) was erased. Under s.mu.
func (s *Stage) erasedAt(room, speaker string, startMS int64) bool {
	for _, subj := range []string{speaker, room} {
		if at, ok := s.erased[subj]; ok && subj != "" && startMS <= at {
			return true
		}
	}
	return false
}

// forgetDropped forgets the identities of tracks the index no longer
// holds (expired or erased). Under s.mu.
func (s *Stage) forgetDropped() {
	for name := range s.remote {
		if !s.idx.Known(name) {
			delete(s.remote, name)
		}
	}
	for name := range s.idents {
		if !s.idx.Known(name) {
			delete(s.idents, name)
			delete(s.held, name)
		}
	}
}

// expireErasures forgets erasures older than twice the window: nothing
// from before them can still be read back (the fingerprints topic keeps
// the window) or be in the index. Under s.mu.
func (s *Stage) expireErasures(nowMS int64) {
	for subj, at := range s.erased {
		if at < nowMS-2*s.cfg.Window.Milliseconds() {
			delete(s.erased, subj)
		}
	}
}
