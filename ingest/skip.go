package ingest

import (
	"regexp"
	"slices"
	"strconv"
	"sync/atomic"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/ingest/janus"
)

// ParticipantSkip says which participants are never recorded. Operators
// rarely know pseudonyms in advance, so a display-name pattern is offered
// too; `earshot pseudonym` computes the pseudonym of an identity with the
// deployment's secret.
type ParticipantSkip struct {
	// Pseudonyms of participants (as pseudonym.Person of their identity).
	Pseudonyms []string
	// Display, when set, matches the display names of participants never
	// recorded.
	Display *regexp.Regexp
}

func (k ParticipantSkip) empty() bool { return len(k.Pseudonyms) == 0 && k.Display == nil }

// skipParticipant reports whether a participant must not be recorded and,
// when so, reports the skip: a recording_skipped event and a log line that
// carry the participant's pseudonym only.
func (p *presence) skipParticipant(feed janus.ID, display string) bool {
	s := p.r.st
	k := s.cfg.SkipParticipants
	if k.empty() {
		return false
	}
	identity, _ := s.identity(feed, display)
	speaker := s.cfg.Pseudonym.Person(identity)
	how := ""
	switch {
	case slices.Contains(k.Pseudonyms, speaker):
		how = "pseudonym"
	case k.Display != nil && display != "" && k.Display.MatchString(display):
		how = "display name pattern"
	default:
		return false
	}
	p.r.mu.Lock()
	n := p.skips[speaker]
	p.skips[speaker]++
	p.r.mu.Unlock()
	p.log.Info("participant must not be recorded; not recorded", "speaker", speaker, "matched", how)
	// The event ID's parts are pseudonyms and counters only: the n-th skip
	// of this speaker in this bot stay.
	s.lifecycleEvent(p.ctx, p.r.pRoom, p.sess.id, speaker, nil, event.TypeRecordingSkipped,
		event.RecordingSkipped{Scope: "participant", Reason: "configured skip (" + how + ")"},
		"participant-skip", strconv.Itoa(p.sess.stay), strconv.Itoa(n))
	return true
}

// gate stops a track's packets from being recorded while closed: the
// recorder then fills the timeline with silence (counted as mute). An
// AudioBridge mix is gated while a participant who must not be recorded
// is in it and not muted, since a mix cannot leave one voice out.
type gate struct{ closed atomic.Bool }

func (g *gate) open() bool { return g == nil || !g.closed.Load() }
