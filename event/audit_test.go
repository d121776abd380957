package event

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestAuditEntryBounded(t *testing.T) {
	long := strings.Repeat("é", 40_000) // 80,000 bytes, two per rune
	e := AuditEntry{Operator: long, Action: "evidence.read", Subject: "/evidence/" + long, Outcome: "denied", Reason: long, Detail: long}.Bounded()
	for name, tc := range map[string]struct {
		v     string
		limit int
	}{"operator": {e.Operator, AuditMaxShort}, "subject": {e.Subject, AuditMaxShort}, "reason": {e.Reason, AuditMaxReason}, "detail": {e.Detail, AuditMaxDetail}} {
		if len(tc.v) > tc.limit || !utf8.ValidString(tc.v) || !strings.Contains(tc.v, "[cut: ") {
			t.Errorf("%s: %d bytes (limit %d), valid UTF-8 %v, marked %v", name, len(tc.v), tc.limit, utf8.ValidString(tc.v), strings.Contains(tc.v, "[cut: "))
		}
	}
	if e.Action != "evidence.read" || e.Outcome != "denied" {
		t.Errorf("short fields changed: %+v", e)
	}
	b, _ := json.Marshal(e)
	if len(b) > 32<<10 {
		t.Errorf("a bounded entry encodes to %d bytes", len(b))
	}
	// Different values cut to the same prefix stay distinguishable.
	a := AuditEntry{Subject: strings.Repeat("x", 1000) + "a"}.Bounded()
	c := AuditEntry{Subject: strings.Repeat("x", 1000) + "c"}.Bounded()
	if a.Subject == c.Subject {
		t.Error("two long subjects cut to the same text")
	}
}

func TestValidID(t *testing.T) {
	id := DeriveID(PrefixEvent, "a", "b")
	for _, tc := range []struct {
		prefix, id string
		ok         bool
	}{
		{PrefixEvent, id, true},
		{PrefixTrack, id, false},
		{PrefixEvent, id + "a", false},
		{PrefixEvent, id[:len(id)-1], false},
		{PrefixEvent, strings.ToUpper(id), false},
		{PrefixEvent, id[:len(id)-1] + "1", false},
		{PrefixEvent, "evt_", false},
		{PrefixEvent, "", false},
		{PrefixEvent, strings.Repeat("a", 70_000), false},
	} {
		if got := ValidID(tc.prefix, tc.id); got != tc.ok {
			t.Errorf("ValidID(%q, %.40q) = %v, want %v", tc.prefix, tc.id, got, tc.ok)
		}
	}
}

// TestOpenRefusesReadableWhenKeyed: with keys configured, readable (alg
// none) protected data is a forgery and does not open; without keys it
// does.
func TestOpenRefusesReadableWhenKeyed(t *testing.T) {
	e, err := New(TypeAlert, Producer{Name: "t"}, nil, "r1_r", "ses_s", "p1_p", nil, Alert{Severity: "high"}, "x")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.SetProtected(e.KeyRef().ID, AlertData{Text: "forged"}); err != nil {
		t.Fatal(err)
	}
	var d AlertData
	if err := e.Open(context.Background(), nil, &d); err != nil || d.Text != "forged" {
		t.Fatalf("without keys: %v %q", err, d.Text)
	}
	if err := e.Open(context.Background(), refuseAll{}, &d); !errors.Is(err, ErrUnsealed) {
		t.Fatalf("with keys: %v, want ErrUnsealed", err)
	}
	if err := e.VerifySealed(context.Background(), refuseAll{}); !errors.Is(err, ErrUnsealed) {
		t.Fatalf("VerifySealed: %v, want ErrUnsealed", err)
	}
}

// refuseAll is a keyring that opens nothing.
type refuseAll struct{}

func (refuseAll) Seal(context.Context, KeyRef, []byte, []byte) ([]byte, error) {
	return nil, errors.New("no")
}
func (refuseAll) Open(context.Context, KeyRef, []byte, []byte) ([]byte, error) {
	return nil, errors.New("no")
}

func TestCheckPayload(t *testing.T) {
	e, err := New(TypeAlert, Producer{Name: "t"}, nil, "r1_r", "ses_s", "p1_p", nil, Alert{Severity: "high"}, "x")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.SetProtected(e.KeyRef().ID, AlertData{Text: "x"}); err != nil {
		t.Fatal(err)
	}
	if err := e.CheckPayload(); err != nil {
		t.Fatalf("a good alert: %v", err)
	}
	for name, mod := range map[string]func(e *Envelope){
		"unknown type":   func(e *Envelope) { e.Type = "bogus.type" },
		"no payload":     func(e *Envelope) { e.Payload = nil },
		"wrong type":     func(e *Envelope) { e.Payload = []byte(`[1]`) },
		"mistyped field": func(e *Envelope) { e.Payload = []byte(`{"severity": 3}`) },
		"no protected":   func(e *Envelope) { e.Protected = nil },
	} {
		c := *e
		mod(&c)
		if c.CheckPayload() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
