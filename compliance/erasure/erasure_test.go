package erasure_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/earshot/earshot/compliance/archive"
	"github.com/earshot/earshot/compliance/audit"
	"github.com/earshot/earshot/compliance/erasure"
	"github.com/earshot/earshot/compliance/retention"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/compliancetest"
	"github.com/earshot/earshot/storage"
	"github.com/earshot/earshot/storage/crypt"
)

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

type fixture struct {
	store retention.Store
	keys  *compliancetest.Keyring
	holds *retention.Holds
	er    *erasure.Eraser
	log   *audit.Log
}

func newFixture(t *testing.T, store retention.Store) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{store: store, keys: compliancetest.NewKeyring(), holds: &retention.Holds{Store: store}}
	var err error
	if f.log, err = audit.New(ctx, audit.Config{Store: store}); err != nil {
		t.Fatal(err)
	}
	if f.er, err = erasure.New(erasure.Config{Store: store, Keys: f.keys, Holds: f.holds, Audit: f.log}); err != nil {
		t.Fatal(err)
	}
	return f
}

func local(t *testing.T) *storage.Local {
	t.Helper()
	s, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (f *fixture) build(t *testing.T) []compliancetest.Built {
	return []compliancetest.Built{
		compliancetest.Build(t, f.store, f.keys, compliancetest.Session{Room: "r1_room1", ID: "ses_one", Speakers: []string{"p1_alice", "p1_bob"}, Start: t0, Ended: t0.Add(time.Hour), Alert: true, Confirm: true}),
		compliancetest.Build(t, f.store, f.keys, compliancetest.Session{Room: "r1_room2", ID: "ses_two", Speakers: []string{"p1_alice"}, Start: t0, Ended: t0.Add(time.Hour)}),
		compliancetest.Build(t, f.store, f.keys, compliancetest.Session{Room: "r1_room2", ID: "ses_three", Speakers: []string{"p1_bob"}, Start: t0, Ended: t0.Add(time.Hour)}),
	}
}

// CheckPersonGone asserts nothing of speaker remains readable: no audio
// object or version of their tracks, no archived event of theirs, and every
// envelope of theirs fails to open.
func CheckPersonGone(t *testing.T, store retention.Store, keys event.Keys, speaker string, envs []*event.Envelope) {
	t.Helper()
	ctx := context.Background()
	for v, err := range store.ListVersions(ctx, "") {
		if err != nil {
			t.Fatal(err)
		}
		if a, ok := retention.ParseAudioKey(v.Key); ok && compliancetest.Tracks(a.Session, speaker)[a.Track] {
			t.Errorf("audio version of %s left: %s %s", speaker, v.Key, v.VersionID)
		}
		if r, ok := archive.ParseKey(v.Key); ok && r.Speaker == speaker {
			t.Errorf("archived event version of %s left: %s %s", speaker, v.Key, v.VersionID)
		}
	}
	for _, e := range envs {
		if e.Speaker != speaker || e.Protected == nil {
			continue
		}
		var v map[string]any
		if err := e.Open(ctx, keys, &v); !errors.Is(err, crypt.ErrKeyDestroyed) {
			t.Errorf("%s %s of %s still opens (err %v)", e.Type, e.EventID, speaker, err)
		}
	}
}

func all(b []compliancetest.Built) []*event.Envelope {
	var out []*event.Envelope
	for _, x := range b {
		out = append(out, x.Envelopes...)
	}
	return out
}

func TestErasePersonIsCompleteAndIdempotent(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, local(t))
	built := f.build(t)
	putManifest(t, f.store, "r1_room1", "ses_one", "p1_alice", "p1_bob")
	rc, err := f.er.Erase(ctx, erasure.Request{Kind: erasure.KindPerson, Subjects: []string{"p1_alice"}, Operator: "dpo", Reason: "GDPR art. 17"})
	if err != nil {
		t.Fatal(err)
	}
	if rc.Status != erasure.StatusErased || len(rc.KeysDestroyed) != 2 || rc.Sessions != 2 || rc.Deleted.Objects == 0 || rc.ManifestsRewritten != 1 {
		t.Fatalf("receipt %+v", rc)
	}
	CheckPersonGone(t, f.store, f.keys, "p1_alice", all(built))
	// The session manifest (unversioned store: one version) lists bob only.
	m := manifestText(t, f.store, "r1_room1", "ses_one")
	if strings.Contains(m, "p1_alice") || !strings.Contains(m, event.TrackID("ses_one", "p1_bob", 0)) {
		t.Fatalf("manifest after erasure: %s", m)
	}
	// Bob's data is untouched and readable.
	for _, e := range all(built) {
		if e.Speaker == "p1_bob" && e.Protected != nil {
			var v map[string]any
			if err := e.Open(ctx, f.keys, &v); err != nil {
				t.Fatalf("bob's %s no longer opens: %v", e.Type, err)
			}
		}
	}
	rc2, err := f.er.Erase(ctx, erasure.Request{Kind: erasure.KindPerson, Subjects: []string{"p1_alice"}, Operator: "dpo"})
	if err != nil || rc2.Status != erasure.StatusNothing || len(rc2.KeysDestroyed) != 0 || rc2.Deleted.Objects != 0 {
		t.Fatalf("second run: %+v %v", rc2, err)
	}
	entries := auditEntries(t, f.store)
	if len(entries) != 2 || entries[0].Action != audit.ActionErase || entries[0].Outcome != audit.OutcomeOK || entries[0].Operator != "dpo" {
		t.Fatalf("audit: %+v", entries)
	}
}

func TestEraseRoom(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, local(t))
	f.build(t)
	rc, err := f.er.Erase(ctx, erasure.Request{Kind: erasure.KindRoom, Subjects: []string{"r1_room2"}, Operator: "dpo"})
	if err != nil || rc.Status != erasure.StatusErased || rc.Sessions != 2 {
		t.Fatalf("%+v %v", rc, err)
	}
	for v, err := range f.store.ListVersions(ctx, "") {
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(v.Key, "r1_room2") && !strings.HasPrefix(v.Key, "audit/") {
			t.Errorf("left of the room: %s", v.Key)
		}
	}
	if n := countPrefix(t, f.store, "audio/r1_room1/"); n == 0 {
		t.Fatal("erasing room2 touched room1")
	}
}

func TestHoldDefersErasureUntilLifted(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, local(t))
	built := f.build(t)
	if err := f.holds.Set(ctx, retention.Hold{Scope: retention.Scope{Room: "r1_room1"}, Reason: "litigation", Operator: "legal"}); err != nil {
		t.Fatal(err)
	}
	req := erasure.Request{Kind: erasure.KindPerson, Subjects: []string{"p1_alice"}, Operator: "dpo", Reason: "request 12"}
	rc, err := f.er.Erase(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if rc.Status != erasure.StatusDeferred || len(rc.Deferred) != 1 || rc.Deferred[0].Room != "r1_room1" || rc.Pending == "" {
		t.Fatalf("receipt %+v", rc)
	}
	// The unheld room is erased now, the held one kept readable.
	if n := countTracks(t, f.store, "r1_room2", "ses_two", "p1_alice"); n != 0 {
		t.Fatalf("unheld data kept: %d objects", n)
	}
	if n := countTracks(t, f.store, "r1_room1", "ses_one", "p1_alice"); n == 0 {
		t.Fatal("held audio deleted")
	}
	if _, _, err := f.store.Get(ctx, rc.Pending); err != nil {
		t.Fatalf("pending record: %v", err)
	}
	e := auditEntries(t, f.store)
	if last := e[len(e)-1]; last.Outcome != audit.OutcomeDeferred || last.Action != audit.ActionErase {
		t.Fatalf("audit: %+v", last)
	}
	// Still held: nothing to do.
	if n, err := f.er.CompletePending(ctx); err != nil || n != 0 {
		t.Fatalf("CompletePending while held = %d, %v", n, err)
	}
	if _, err := f.holds.Lift(ctx, retention.Scope{Room: "r1_room1"}); err != nil {
		t.Fatal(err)
	}
	if n, err := f.er.CompletePending(ctx); err != nil || n != 1 {
		t.Fatalf("CompletePending after lift = %d, %v", n, err)
	}
	CheckPersonGone(t, f.store, f.keys, "p1_alice", all(built))
	if _, _, err := f.store.Get(ctx, rc.Pending); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("pending record left: %v", err)
	}
	e = auditEntries(t, f.store)
	if last := e[len(e)-1]; last.Outcome != audit.OutcomeOK || !strings.Contains(last.Detail, "completes the deferred erasure") {
		t.Fatalf("audit after completion: %+v", last)
	}
}

func countPrefix(t *testing.T, s retention.Store, prefix string) int {
	t.Helper()
	n := 0
	for _, err := range s.ListVersions(context.Background(), prefix) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}

func countTracks(t *testing.T, s retention.Store, room, session, speaker string) int {
	t.Helper()
	n := 0
	tr := compliancetest.Tracks(session, speaker)
	for v, err := range s.ListVersions(context.Background(), "audio/"+room+"/"+session+"/") {
		if err != nil {
			t.Fatal(err)
		}
		if a, _ := retention.ParseAudioKey(v.Key); tr[a.Track] {
			n++
		}
	}
	return n
}

func auditEntries(t *testing.T, s retention.Store) []event.AuditEntry {
	t.Helper()
	if _, err := audit.Verify(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	var out []event.AuditEntry
	for e, err := range audit.Entries(context.Background(), s) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// TestRecheckErasesWhatBotsWroteAfter: a bot still recording the person
// when they were erased may store one more segment (sealed under the key
// it still had in memory) and name them again in the manifest. The recheck
// a completed erasure schedules removes both once it is due, and not
// before.
func TestRecheckErasesWhatBotsWroteAfter(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, local(t))
	now := t0.Add(48 * time.Hour)
	er, err := erasure.New(erasure.Config{Store: f.store, Keys: f.keys, Holds: f.holds, Audit: f.log, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	built := f.build(t)
	putManifest(t, f.store, "r1_room1", "ses_one", "p1_alice", "p1_bob")
	rc, err := er.Erase(ctx, erasure.Request{Kind: erasure.KindPerson, Subjects: []string{"p1_alice"}, Operator: "dpo"})
	if err != nil {
		t.Fatal(err)
	}
	if rc.Status != erasure.StatusErased || rc.Recheck != erasure.RecheckKey(rc.ID) {
		t.Fatalf("receipt %+v: want erased with a recheck", rc)
	}
	// The late writes of a bot that had alice's key cached.
	// On the bot's second stay's track, as a restarted bot writes it.
	track := event.TrackID("ses_one", "p1_alice", 100_000)
	tl := event.Timeline{Track: track, FirstSample: 9 * 48000, LastSample: 10*48000 - 1}
	late := event.SegmentKey("r1_room1", "ses_one", tl)
	data := compliancetest.OggPayload("ses_one", "p1_alice", 100_000, 9)
	if _, err := f.store.Put(ctx, late, bytes.NewReader(data), int64(len(data)), storage.PutOptions{ContentType: "audio/ogg",
		Metadata: map[string]string{"room": "r1_room1", "session": "ses_one", "speaker": "p1_alice", "track": track}}); err != nil {
		t.Fatal(err)
	}
	putManifest(t, f.store, "r1_room1", "ses_one", "p1_alice", "p1_bob")
	auditBefore := len(auditEntries(t, f.store))

	now = now.Add(erasure.DefaultRecheckAfter - time.Second)
	if _, err := er.CompletePending(ctx); err != nil {
		t.Fatal(err)
	}
	if n := countTracks(t, f.store, "r1_room1", "ses_one", "p1_alice"); n != 1 {
		t.Fatalf("before the recheck is due: %d late objects, want the 1 written", n)
	}
	now = now.Add(2 * time.Second)
	if _, err := er.CompletePending(ctx); err != nil {
		t.Fatal(err)
	}
	CheckPersonGone(t, f.store, f.keys, "p1_alice", all(built))
	if m := manifestText(t, f.store, "r1_room1", "ses_one"); strings.Contains(m, "p1_alice") {
		t.Errorf("manifest still names the erased person after the recheck: %s", m)
	}
	if _, _, err := f.store.Get(ctx, rc.Recheck); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("recheck record left: %v", err)
	}
	e := auditEntries(t, f.store)
	if len(e) != auditBefore+1 || !strings.Contains(e[len(e)-1].Detail, "recheck") || e[len(e)-1].Outcome != audit.OutcomeOK {
		t.Fatalf("audit after the recheck: %d entries (was %d), last %+v", len(e), auditBefore, e[len(e)-1])
	}
	// Done once: a later sweep runs no further recheck.
	if _, err := er.CompletePending(ctx); err != nil || len(auditEntries(t, f.store)) != len(e) {
		t.Fatalf("a second recheck ran (err %v)", err)
	}
}

// manifestText reads a session's manifest as stored.
func manifestText(t *testing.T, store retention.Store, room, session string) string {
	t.Helper()
	r, _, err := store.Get(context.Background(), event.ManifestKey(room, session))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	m, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(m)
}

// failAfter is a store whose DeleteAll of audio fails once n audio keys
// were deleted: an erasure interrupted half-way through a person's audio,
// after their keys were shredded and the manifest scrubbed.
type failAfter struct {
	retention.Store
	n, done int
}

var errInterrupted = errors.New("interrupted")

func (s *failAfter) DeleteAll(ctx context.Context, key string) error {
	if strings.HasPrefix(key, retention.AudioPrefix) {
		if s.done == s.n {
			return errInterrupted
		}
		s.done++
	}
	return s.Store.DeleteAll(ctx, key)
}

// TestEraseInterruptedAfterManifestScrub: an erasure stopped after the
// manifest no longer names the person (and their keys are gone) is run
// again and still finds every track of theirs, those of a rejoin and of
// the bot's stay after a restart included, by the audio's own metadata.
func TestEraseInterruptedAfterManifestScrub(t *testing.T) {
	ctx := context.Background()
	store := local(t)
	f := newFixture(t, store)
	built := f.build(t)
	putManifest(t, f.store, "r1_room1", "ses_one", "p1_alice", "p1_bob")
	cut := &failAfter{Store: store, n: 1}
	er, err := erasure.New(erasure.Config{Store: cut, Keys: f.keys, Holds: &retention.Holds{Store: cut}, Audit: f.log})
	if err != nil {
		t.Fatal(err)
	}
	req := erasure.Request{Kind: erasure.KindPerson, Subjects: []string{"p1_alice"}, Operator: "dpo"}
	if _, err := er.Erase(ctx, req); !errors.Is(err, errInterrupted) {
		t.Fatalf("first run: %v, want it interrupted", err)
	}
	if m := manifestText(t, f.store, "r1_room1", "ses_one"); strings.Contains(m, "p1_alice") {
		t.Fatalf("the interruption came before the manifest scrub: %s", m)
	}
	if n := countTracks(t, f.store, "r1_room1", "ses_one", "p1_alice"); n == 0 {
		t.Fatal("nothing of alice's audio left to find after the interruption")
	}
	rc, err := f.er.Erase(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if rc.Deleted.Objects == 0 {
		t.Fatalf("second run deleted nothing: %+v", rc)
	}
	CheckPersonGone(t, f.store, f.keys, "p1_alice", all(built))
	if n := countTracks(t, f.store, "r1_room1", "ses_one", "p1_bob"); n != 2*len(compliancetest.DefaultOrdinals) {
		t.Fatalf("bob has %d audio objects left, want all %d", n, 2*len(compliancetest.DefaultOrdinals))
	}
}
