package retention_test

import (
	"context"
	"testing"
	"time"

	"github.com/earshot/earshot/compliance/archive"
	"github.com/earshot/earshot/compliance/retention"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/compliancetest"
)

// A session_ended record comes through Kafka, where anyone who reaches
// the broker can write one. One claiming the session ended long ago, or
// before audio that was stored afterwards, must not bring the sweeper
// forward: the session ends no earlier than its newest stored segment
// does by the segment's own timeline. Each session has a speaker who
// rejoined in the bot's later stay (ordinal 100,000), whose audio is the
// session's newest.
func TestForgedEarlyEndDoesNotShortenRetention(t *testing.T) {
	day := 24 * time.Hour
	tests := []struct {
		name      string
		room      string
		ended     time.Time     // the session_ended record Build archives
		forged    time.Time     // a second session_ended record, if set
		laterStay time.Duration // when the later stay's tracks start
		keep      time.Duration // how long the policy keeps the session after its audio ends
	}{
		{"claims it ended two months before it began", "r1_std", t0.Add(-60 * day), time.Time{}, 2 * time.Hour, 30 * day},
		{"ended before the later stay's audio", "r1_eph", t0.Add(time.Minute), time.Time{}, 10 * time.Minute, 2 * time.Second},
		{"a forged early end beside the real one", "r1_eph2", t0.Add(11 * time.Minute), t0.Add(-day), 10 * time.Minute, 2 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			b := compliancetest.Build(t, f.store, f.kr, compliancetest.Session{Room: tc.room, ID: "ses_f", Speakers: []string{"p1_a", "p1_b"},
				Start: t0, Ended: tc.ended, LaterStay: tc.laterStay})
			if !tc.forged.IsZero() {
				e, err := event.New(event.TypeSessionEnded, compliancetest.Prod, nil, tc.room, "ses_f", "", nil, event.SessionEnded{Reason: "room closed"}, "forged end")
				if err != nil {
					t.Fatal(err)
				}
				e.Time = tc.forged
				if err := (archive.Writer{Store: f.store}).Put(context.Background(), e, nil); err != nil {
					t.Fatal(err)
				}
			}
			// Two 30 s segments per track: the later stay's audio ends
			// a minute after it starts.
			audioEnd := t0.Add(tc.laterStay + time.Minute)
			later := 0
			for _, k := range b.Audio {
				if a, _ := retention.ParseAudioKey(k); a.Track == event.TrackID("ses_f", "p1_b", 100_000) {
					later++
				}
			}
			if later == 0 {
				t.Fatal("the fixture stored no audio of the rejoined speaker's later stay")
			}
			audio := "audio/" + tc.room + "/ses_f/"
			// When a record's end would have let the sweeper delete, a
			// day in, and just before the policy's time after the audio.
			for _, at := range []time.Time{tc.ended.Add(tc.keep + time.Second), tc.forged.Add(tc.keep + time.Second), t0.Add(day), audioEnd.Add(tc.keep - time.Second)} {
				if at.Before(t0) || !at.Before(audioEnd.Add(tc.keep)) {
					continue
				}
				f.now = at
				if rep := f.sweep(t); rep.Expired != 0 {
					t.Fatalf("at %v, %v after the audio ends: swept %+v", at, at.Sub(audioEnd), rep)
				}
				if got := f.keys(t, audio); len(got) != len(b.Audio) {
					t.Fatalf("at %v, %v after the audio ends: %d of %d audio objects left", at, at.Sub(audioEnd), len(got), len(b.Audio))
				}
			}
			f.now = audioEnd.Add(tc.keep + time.Second)
			if rep := f.sweep(t); rep.Expired != 1 {
				t.Fatalf("past the policy's time after the audio: %+v, want the session expired", rep)
			}
			if got := f.keys(t, audio); len(got) != 0 {
				t.Fatalf("audio left after expiry: %v", got)
			}
		})
	}
}
