package event

import (
	"encoding/json"
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
