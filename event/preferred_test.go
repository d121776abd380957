package event

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

func TestPreferredTranscripts(t *testing.T) {
	live := &Processing{Engine: "whisper-http", Model: "tiny.en"}
	settled := &Processing{Engine: "whisper-http", Model: "tiny.en", Options: map[string]string{"pass": PassSettled, "batch": "25s"}}
	final := &Processing{Engine: "whisper-http", Model: "tiny.en", Options: map[string]string{"pass": PassFinal, "replay": "1", "batch": "25s"}}
	handOld := &Processing{Engine: "whisper-http", Model: "base.en", Options: map[string]string{"replay": "1"}}
	handNew := &Processing{Engine: "whisper-http", Model: "small.en", Options: map[string]string{"replay": "1"}}
	t0 := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

	// seg is one transcript event: name is what the test reports, track
	// and range are its timeline, at is its event time.
	type seg struct {
		name        string
		p           *Processing
		track       string
		first, last int64
		at          int // seconds after t0
	}
	tests := []struct {
		name string
		in   []seg
		want []string
	}{
		{
			name: "live only",
			in:   []seg{{"l2", live, "a", 200, 299, 2}, {"l1", live, "a", 0, 99, 1}},
			want: []string{"l1", "l2"},
		},
		{
			name: "settled replaces the live segments it overlaps",
			in: []seg{
				{"l1", live, "a", 0, 99, 1}, {"l2", live, "a", 150, 249, 2}, {"l3", live, "a", 400, 499, 3},
				{"s1", settled, "a", 10, 120, 30}, {"s2", settled, "a", 130, 260, 30},
			},
			// l3 lies where the settled pass did not reach (a dropped
			// batch, or not yet): its live text stays.
			want: []string{"s1", "s2", "l3"},
		},
		{
			name: "final over settled over live",
			in: []seg{
				{"l1", live, "a", 0, 99, 1}, {"s1", settled, "a", 0, 99, 30}, {"f1", final, "a", 5, 95, 90},
				{"l2", live, "a", 200, 299, 2}, {"s2", settled, "a", 200, 299, 31},
			},
			want: []string{"f1", "s2"},
		},
		{
			// An utterance cut keeps 0.5 s of overlap: the settled pass
			// reached the first utterance only; the second keeps its
			// live text.
			name: "a small overlap does not hide a segment",
			in: []seg{
				{"l1", live, "a", 0, 999, 1}, {"l2", live, "a", 900, 1999, 2},
				{"s1", settled, "a", 0, 999, 30},
			},
			want: []string{"s1", "l2"},
		},
		{
			name: "covered by several preferred segments",
			in: []seg{
				{"l1", live, "a", 0, 999, 1},
				{"s1", settled, "a", 0, 299, 30}, {"s2", settled, "a", 400, 699, 30},
			},
			want: []string{"s1", "s2"},
		},
		{
			name: "a revision's own overlapping segments are all kept",
			in:   []seg{{"l1", live, "a", 0, 120, 1}, {"l2", live, "a", 100, 220, 2}},
			want: []string{"l1", "l2"},
		},
		{
			name: "touching is not overlapping",
			in:   []seg{{"l1", live, "a", 0, 99, 1}, {"s1", settled, "a", 100, 199, 30}, {"l2", live, "a", 200, 299, 2}},
			want: []string{"l1", "s1", "l2"},
		},
		{
			name: "tracks are apart",
			in:   []seg{{"a1", live, "a", 0, 99, 1}, {"b1", live, "b", 0, 99, 1}, {"bs", settled, "b", 0, 99, 30}},
			want: []string{"a1", "bs"},
		},
		{
			name: "among hand replays the newest wins",
			in: []seg{
				{"old", handOld, "a", 0, 99, 50}, {"new", handNew, "a", 0, 99, 60}, {"l1", live, "a", 0, 99, 1},
			},
			want: []string{"new"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var in []*Envelope
			names := map[*Envelope]string{}
			for _, s := range tc.in {
				e := &Envelope{
					Type:       TypeTranscript,
					Time:       t0.Add(time.Duration(s.at) * time.Second),
					Processing: s.p,
					Revision:   s.p.Revision(),
					Timeline:   &Timeline{Track: s.track, FirstSample: s.first, LastSample: s.last, Origin: t0},
				}
				names[e] = s.name
				in = append(in, e)
			}
			before := slices.Clone(in)
			var got []string
			for _, e := range PreferredTranscripts(in) {
				got = append(got, names[e])
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
			if !slices.Equal(in, before) {
				t.Error("the input was reordered")
			}
		})
	}
}

func TestPreferredTranscriptsSkipsOthers(t *testing.T) {
	tl := &Timeline{Track: "a", FirstSample: 0, LastSample: 99}
	in := []*Envelope{
		nil,
		{Type: TypeTrackStarted, Timeline: tl},
		{Type: TypeTranscript}, // no timeline
		{Type: TypeTranscript, Timeline: tl, Revision: "rev_x"},
	}
	got := PreferredTranscripts(in)
	if len(got) != 1 || got[0] != in[3] {
		t.Errorf("got %s, want only the transcript with a timeline", fmt.Sprint(got))
	}
}
