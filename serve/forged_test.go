package serve

import (
	"context"
	"testing"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/badinput"
	"github.com/earshot/earshot/storage/crypt"
)

// TestIndexRefusesForgedRecords: with keys required, a record carrying a
// real alert's ID but not sealed for it (readable, or sealed under
// another key) takes neither the alert's place nor adds an action to it;
// the real records are applied; an erased speaker's alert (key destroyed)
// is still indexed.
func TestIndexRefusesForgedRecords(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	real := h.alert
	readable := *real
	if err := readable.SetProtected(real.KeyRef().ID, event.AlertData{Text: "nothing to see"}); err != nil {
		t.Fatal(err)
	}
	readable.Payload = []byte(`{"severity":"low","category":"abuse.threat","rule_id":"x"}`)
	otherKeys := crypt.NewMemory()
	resealed := *real
	if err := resealed.Seal(ctx, otherKeys, event.AlertData{Text: "nothing to see"}); err != nil {
		t.Fatal(err)
	}
	action, _, err := NewAction(ctx, otherKeys, event.Producer{Name: "mallory"}, event.TopicAlertActions, real, ActionRequest{Action: event.ActionDismiss, Operator: "mallory"})
	if err != nil {
		t.Fatal(err)
	}

	idx := NewIndex(10)
	idx.RequireSealed(h.keys)
	for name, e := range map[string]*event.Envelope{"readable": &readable, "sealed under other keys": &resealed, "action sealed under other keys": action} {
		if idx.Apply(e) {
			t.Errorf("%s record applied", name)
		}
	}
	if !idx.Apply(real) {
		t.Fatal("the real alert was not applied")
	}
	if ent, _ := idx.Get(real.EventID); ent.Status() != StatusOpen || ent.Alert.Severity != "high" {
		t.Fatalf("indexed alert: status %s, severity %s", ent.Status(), ent.Alert.Severity)
	}

	// An alert whose speaker was erased cannot be verified, and is kept.
	erasedKeys := crypt.NewMemory()
	erased := *real
	erased.EventID = event.DeriveID(event.PrefixEvent, "another alert")
	if err := erased.Seal(ctx, erasedKeys, event.AlertData{Text: "x"}); err != nil {
		t.Fatal(err)
	}
	erasedKeys.Shred(erased.KeyRef().ID)
	idx2 := NewIndex(10)
	idx2.RequireSealed(erasedKeys)
	if !idx2.Apply(&erased) {
		t.Fatal("an erased speaker's alert was not indexed")
	}
}

// TestIndexBadInput: of the bad-input corpus, the alert index applies
// nothing but the erased speaker's alert (well formed, only unreadable),
// and the good alert after them is applied as itself.
func TestIndexBadInput(t *testing.T) {
	h := newHarness(t)
	v, err := h.alert.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	good := bus.Message{Topic: event.TopicAlerts, Value: v}
	cases := badinput.Corpus(t, good, h.keys, func(r event.KeyRef) { h.keys.Shred(r.ID) })
	idx := NewIndex(100)
	idx.RequireSealed(h.keys)
	for _, c := range cases {
		e, err := event.Decode(c.Msg.Value)
		if err != nil {
			continue // the tail skips what does not decode
		}
		if applied := idx.Apply(e); applied != c.Erased {
			t.Errorf("%s: applied %v", c.Name, applied)
		}
	}
	if !idx.Apply(h.alert) {
		t.Fatal("the good alert was not applied after the corpus")
	}
	if ent, ok := idx.Get(h.alert.EventID); !ok || ent.Alert.Severity != "high" {
		t.Fatalf("indexed: %+v", ent.Alert)
	}
}
