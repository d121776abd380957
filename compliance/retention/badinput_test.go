package retention_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/earshot/earshot/compliance/archive"
	"github.com/earshot/earshot/compliance/retention"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/compliancetest"
	"github.com/earshot/earshot/storage"
)

// TestSweepSurvivesBadObjects: the sweeper reads whatever the store holds.
// Unreadable archived events and manifests, keys of no known shape and
// truncated JSON never make it delete early, fail, or stop sweeping the
// sessions it can read: a session whose end it cannot read is kept until
// retention.assume_ended_after. An unreadable legal hold stops deletions
// altogether (its scope is unknown, so nothing is safe to delete) until
// it is fixed, and the sweep says which marker it was.
func TestSweepSurvivesBadObjects(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	put := func(key string, b []byte) {
		t.Helper()
		if _, err := f.store.Put(ctx, key, bytes.NewReader(b), int64(len(b)), storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	end := t0.Add(time.Minute)
	compliancetest.Build(t, f.store, f.kr, compliancetest.Session{Room: "r1_eph", ID: "ses_good", Speakers: []string{"p1_a"}, Start: t0, Ended: end})
	broken := compliancetest.Build(t, f.store, f.kr, compliancetest.Session{Room: "r1_eph2", ID: "ses_broken", Speakers: []string{"p1_b"}, Start: t0, Ended: end})

	// The broken session's end is unreadable everywhere it is written.
	for _, e := range broken.Envelopes {
		if e.Type == event.TypeSessionEnded {
			put(archive.Key(e), []byte(`{"schema_version":1,"type":"session.ended","time":`)) // truncated
		}
	}
	put(retention.ManifestPrefix+"r1_eph2/ses_broken.json", []byte("\x00\xffnot json"))
	// Objects of no known shape, in every prefix the sweeper lists.
	put(archive.Prefix+"r1_eph2/garbage", []byte("x"))
	put(archive.Prefix+"r1_eph2/ses_broken/_/alert.action/evt_bad.json", []byte("[1,2,3]"))
	put(retention.AudioPrefix+"r1_eph2", []byte("x"))
	put(retention.ManifestPrefix+"not-a-manifest", []byte("{}"))

	f.now = end.Add(3 * time.Second) // past the ephemeral grace
	rep := f.sweep(t)
	if got := f.keys(t, "audio/r1_eph/"); len(got) != 0 {
		t.Fatalf("the readable session was not swept (%+v): %v", rep, got)
	}
	if got := f.keys(t, "audio/r1_eph2/ses_broken/"); len(got) != len(broken.Audio) {
		t.Fatalf("the session whose end is unreadable lost audio before assume_ended_after: %d of %d objects left", len(got), len(broken.Audio))
	}

	// An unreadable hold marker: no deletion at all, and the sweep says why.
	bad := retention.HoldPrefix + "r1_eph2/_/_.json"
	put(bad, []byte(`{"room": `))
	// Past assume_ended_after (24 h) after the newest object, which the
	// store dates by its own clock.
	f.now = time.Now().Add(48 * time.Hour)
	if _, err := f.sw.Sweep(ctx); err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("sweep with an unreadable hold marker: %v, want an error naming %s", err, bad)
	}
	if got := f.keys(t, "audio/r1_eph2/ses_broken/"); len(got) != len(broken.Audio) {
		t.Fatalf("deleted %d objects while a hold marker was unreadable", len(broken.Audio)-len(got))
	}
	if err := f.store.Delete(ctx, bad); err != nil {
		t.Fatal(err)
	}
	f.sweep(t)
	if got := f.keys(t, "audio/r1_eph2/ses_broken/"); len(got) != 0 {
		t.Fatalf("the session whose end is unreadable was kept past assume_ended_after: %v", got)
	}
}
