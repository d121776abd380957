package archive_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/compliance/archive"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/badinput"
	"github.com/earshot/earshot/internal/bustest"
	"github.com/earshot/earshot/internal/compliancetest"
	"github.com/earshot/earshot/storage"
)

// TestArchiverBadInput: the archive dead-letters and acks every record of
// the bad-input corpus (a forged record with a real alert's ID included,
// which must not take its key), skips an erased speaker's record, and
// stores the good one after them.
func TestArchiverBadInput(t *testing.T) {
	ctx := context.Background()
	local, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	keys, store := compliancetest.NewCrypt(t, local, filepath.Join(t.TempDir(), "kek.key"))
	built := compliancetest.Build(t, discard{}, keys, compliancetest.Session{Room: "r1_room", ID: "ses_a", Speakers: []string{"p1_a"}, Start: time.Now(), Alert: true})
	var alert *event.Envelope
	for _, e := range built.Envelopes {
		if e.Type == event.TypeAlert {
			alert = e
		}
	}
	v, err := alert.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	good := bus.Message{Topic: event.TopicAlerts, Key: []byte("r1_room"), Value: v}
	cases := badinput.Corpus(t, good, keys, func(r event.KeyRef) {
		if err := keys.Shred(ctx, r); err != nil {
			t.Fatal(err)
		}
	})
	feed := bustest.NewFeed()
	dl := &bustest.Capture{}
	a, err := archive.New(archive.Config{Consumer: feed, Store: store, DeadLetter: dl, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	stop := bustest.Start(t, a.Run)
	var offs []int64
	for _, c := range cases {
		offs = append(offs, feed.Push(c.Msg)...)
	}
	feed.WaitAcked(t, append(offs, feed.Push(good)...)...)
	stop()
	badinput.Check(t, cases, dl.Topic(event.TopicDeadLetter), func(i int) bool { return feed.Acked(offs[i]) })
	rc, _, err := store.Get(ctx, archive.Key(alert))
	if err != nil {
		t.Fatalf("the good alert was not archived: %v", err)
	}
	rc.Close()
}
