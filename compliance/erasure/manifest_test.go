package erasure

import (
	"strings"
	"testing"

	"github.com/earshot/earshot/event"
)

func TestScrubJSON(t *testing.T) {
	const alice = "p1_alice"
	// A track of a rejoin in the bot's second stay.
	aliceTrack := event.TrackID("ses_x", alice, 100_001)
	tracks := map[string]bool{aliceTrack: true}
	tests := []struct {
		name, in string
		changed  bool
		want     []string // substrings the result keeps
	}{
		{"speaker's track", `{"room":"r","tracks":[{"track":"t1","speaker":"p1_alice"},{"track":"t2","speaker":"p1_bob","last_sample":9007199254740993}]}`,
			true, []string{`"t2"`, `9007199254740993`, `"room": "r"`}},
		{"track by id only", `{"tracks":[{"track":"` + aliceTrack + `"},{"track":"t2"}]}`, true, []string{`"t2"`}},
		{"strings naming them", `{"speakers":["p1_alice","p1_bob"],"note":"joined p1_alice","x":{"k":"audio/r/s/` + aliceTrack + `/0.ogg"}}`,
			true, []string{`"p1_bob"`, `"x": {}`}},
		{"absent", `{"tracks":[{"speaker":"p1_bob"}]}`, false, []string{`"p1_bob"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, changed, err := scrubJSON([]byte(tc.in), alice, tracks)
			if err != nil {
				t.Fatal(err)
			}
			if changed != tc.changed || strings.Contains(string(out), alice) || strings.Contains(string(out), aliceTrack) {
				t.Fatalf("changed %v: %s", changed, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("%s lost %s", out, w)
				}
			}
		})
	}
	if _, _, err := scrubJSON([]byte("not json"), alice, tracks); err == nil {
		t.Fatal("no error for a manifest that is not JSON")
	}
}
