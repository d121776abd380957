package serve

import (
	"testing"
	"time"

	"github.com/earshot/earshot/event"
)

// An alert.updated event is shown with its alert and never changes its
// status; a repeat adds nothing; one for an alert not in the index is
// dropped.
func TestIndexAlertUpdated(t *testing.T) {
	tl := event.Timeline{Track: "trk_a", FirstSample: 0, LastSample: 47999, Origin: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC), Anchor: event.AnchorRTCP}
	alert, err := event.New(event.TypeAlert, event.Producer{Name: "t"}, &event.Processing{PolicyVersion: "v1"}, "r1", "ses_1", "p1_a", &tl,
		event.Alert{Severity: "high", Category: "abuse.threat", RuleID: "abuse.threat.en"}, "abuse.threat.en")
	if err != nil {
		t.Fatal(err)
	}
	update := func(id, pass string) *event.Envelope {
		e, err := event.New(event.TypeAlertUpdated, event.Producer{Name: "t"}, &event.Processing{PolicyVersion: "v1"}, "r1", "ses_1", "p1_a", &tl,
			event.AlertUpdated{Alert: id, Reason: event.UpdateNotInRevision, Pass: pass, Note: "not in " + pass + " text"}, id, pass)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	x := NewIndex(0)
	if x.Apply(update(alert.EventID, event.PassSettled)) {
		t.Fatal("an update before its alert changed the index")
	}
	if !x.Apply(alert) {
		t.Fatal("alert not applied")
	}
	steps := []struct {
		e       *event.Envelope
		changed bool
		updates int
	}{
		{update(alert.EventID, event.PassSettled), true, 1},
		{update(alert.EventID, event.PassSettled), false, 1}, // the same event again
		{update(alert.EventID, event.PassFinal), true, 2},
		{update("evt_other", event.PassFinal), false, 2},
	}
	for i, s := range steps {
		if got := x.Apply(s.e); got != s.changed {
			t.Errorf("step %d: changed %v, want %v", i, got, s.changed)
		}
		ent, ok := x.Get(alert.EventID)
		if !ok || len(ent.Updates) != s.updates {
			t.Fatalf("step %d: %d updates, want %d", i, len(ent.Updates), s.updates)
		}
		if ent.Status() != StatusOpen {
			t.Errorf("step %d: status %s: an update must not change it", i, ent.Status())
		}
		if v := view(ent); len(v.Updates) != s.updates || v.Updates[0].Note != "not in settled text" {
			t.Errorf("step %d: the alert view shows %+v", i, v.Updates)
		}
	}
}
