package ingest

import (
	"testing"
	"time"
)

// TestManifestClosesOpenStays: a continued session's stays still open (a
// bot killed without leaving) are closed at the given time with the named
// cause; closed stays keep their own end, and a stay never ends before it
// began.
func TestManifestClosesOpenStays(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 22, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	tests := []struct {
		name     string
		stays    [][2]int // joined, left (-1: open)
		closeAt  int
		wantLeft []int
		wantWhy  []string
	}{
		{"one open stay", [][2]int{{0, -1}}, 40, []int{40}, []string{StayGone}},
		{"closed stay kept", [][2]int{{0, 30}, {35, -1}}, 50, []int{30, 50}, []string{"left", StayGone}},
		{"renewal before the join", [][2]int{{60, -1}}, 40, []int{60}, []string{StayGone}},
		{"nothing open", [][2]int{{0, 30}}, 50, []int{30}, []string{"left"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newManifest("r1_room", "ses_1", "videoroom", t0)
			for i, s := range tc.stays {
				m.join("ingest-"+string(rune('a'+i)), at(s[0]))
				if s[1] >= 0 {
					m.leave("ingest-"+string(rune('a'+i)), "left", at(s[1]))
				}
			}
			m.closeOpen(StayGone, at(tc.closeAt))
			for i, s := range m.m.Stays {
				if s.Left == nil || !s.Left.Equal(at(tc.wantLeft[i])) || s.Reason != tc.wantWhy[i] {
					t.Errorf("stay %d: left %v reason %q; want %v %q", i, s.Left, s.Reason, at(tc.wantLeft[i]), tc.wantWhy[i])
				}
			}
		})
	}
}
