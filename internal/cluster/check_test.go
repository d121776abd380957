package cluster

import (
	"strings"
	"testing"
	"time"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/e2e"
)

func TestSumMetric(t *testing.T) {
	const page = `# HELP earshot_ingest_rooms Rooms recorded.
# TYPE earshot_ingest_rooms gauge
earshot_ingest_rooms 2
earshot_ingest_rooms_total 9
earshot_transcribe_tracks{partition="0"} 1
earshot_transcribe_tracks{partition="1",note="a } b"} 3
earshot_transcribe_tracks_x 100
`
	tests := []struct {
		name, page, metric string
		want               float64
		wantErr            bool
	}{
		{"plain", page, "earshot_ingest_rooms", 2, false},
		{"labels summed, braces in values", page, "earshot_transcribe_tracks", 4, false},
		{"absent", page, "earshot_policy_alerts_total", 0, false},
		{"prefix of another family", page, "earshot_ingest", 0, false},
		{"bad value", "m{a=\"b\"} x\n", "m", 0, true},
		{"no value", "m\n", "m", 0, false},
		{"no value after labels", "m{a=\"b\"}\n", "m", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := sumMetric(strings.NewReader(tc.page), tc.metric)
			if (err != nil) != tc.wantErr || (err == nil && got != tc.want) {
				t.Fatalf("sumMetric = %v, %v; want %v (error %v)", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func FuzzSumMetric(f *testing.F) {
	f.Add("m 1\nm{a=\"x\"} 2.5\n# c\n", "m")
	f.Add("m{ 1\n", "m")
	f.Add("m} 1", "m")
	f.Fuzz(func(t *testing.T, page, name string) {
		if name == "" {
			return
		}
		_, _ = sumMetric(strings.NewReader(page), name)
	})
}

// TestCoverAndMatch: transcripts are assigned to the line of their
// speaker they overlap, the same audio in two events of one revision is
// found (in two revisions it is not a repeat), and alerts and webhook
// deliveries are counted per scripted line by category, room and time.
func TestCoverAndMatch(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 22, 0, 0, 0, time.UTC)
	sec := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	tl := func(track string, from, to float64) *event.Timeline {
		return &event.Timeline{Track: track, Origin: t0, FirstSample: int64(from * 48000), LastSample: int64(to*48000) - 1}
	}
	ev := func(id, rev, speaker string, tl *event.Timeline) *event.Envelope {
		return &event.Envelope{EventID: id, Type: event.TypeTranscript, Revision: rev, Room: "r1_a", Speaker: speaker, Timeline: tl}
	}
	lines := []Line{
		{Line: e2e.Line{Start: sec(1), End: sec(4)}, Speaker: "p1_alice", Room: "r1_a"},
		{Line: e2e.Line{Start: sec(10), End: sec(13)}, Speaker: "p1_alice", Room: "r1_a", Alert: "abuse.threat"},
		{Line: e2e.Line{Start: sec(2), End: sec(5)}, Speaker: "p1_bob", Room: "r1_a"},
	}
	live := ev("t1", "live", "p1_alice", tl("trk_a", 1.1, 4.1))
	liveAgain := ev("t2", "live", "p1_alice", tl("trk_a", 3, 4.2)) // the same audio, another worker
	settled := ev("t3", "settled", "p1_alice", tl("trk_a", 1, 4))
	threat := ev("t4", "live", "p1_alice", tl("trk_a", 10.2, 12.9))
	stray := ev("t5", "live", "p1_alice", tl("trk_a", 30, 31))
	c := Cover(lines, []*event.Envelope{live, threat, stray}, []*event.Envelope{live, liveAgain, settled, threat, stray})
	if len(c.PerLine[0]) != 1 || len(c.PerLine[1]) != 1 || len(c.PerLine[2]) != 0 {
		t.Errorf("per line %d %d %d transcripts; want 1 1 0 (bob's line has none: alice's speech is not his)", len(c.PerLine[0]), len(c.PerLine[1]), len(c.PerLine[2]))
	}
	if len(c.Strays) != 1 || c.Strays[0] != stray {
		t.Errorf("strays %v; want the transcript at 30 s", c.Strays)
	}
	if len(c.Twice) != 1 || c.Twice[0] != [2]*event.Envelope{live, liveAgain} {
		t.Errorf("twice %v; want the two live events of the same audio (the settled one is another revision)", c.Twice)
	}

	alert := func(id, cat string, tl *event.Timeline) Alert {
		return Alert{E: &event.Envelope{EventID: id, Type: event.TypeAlert, Room: "r1_a", Speaker: "p1_alice", Timeline: tl}, Category: cat}
	}
	alerts := []Alert{alert("a1", "abuse.threat", tl("trk_a", 11, 12)), alert("a2", "pii.phone", tl("trk_a", 11, 12))}
	deliv := []Delivery{
		{ID: "a1", Category: "abuse.threat", Room: "r1_a", Time: sec(11)},
		{ID: "a1", Category: "abuse.threat", Room: "r1_a", Time: sec(11)}, // delivered again
		{ID: "a9", Category: "abuse.threat", Room: "r1_b", Time: sec(11)}, // another room
	}
	m := MatchAlerts(lines, alerts, deliv)
	if len(m.Raised[1]) != 1 || m.Raised[1][0].E.EventID != "a1" {
		t.Errorf("raised on the threat line: %v; want a1 only (a2 is another category)", m.Raised[1])
	}
	if len(m.Delivered[1]) != 2 {
		t.Errorf("delivered on the threat line: %d; want 2 (MatchAlerts counts what it is given)", len(m.Delivered[1]))
	}
	if len(m.Unmatched) != 1 || m.Unmatched[0].ID != "a9" {
		t.Errorf("unmatched %v; want the other room's", m.Unmatched)
	}
}
