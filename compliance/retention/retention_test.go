package retention_test

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/earshot/earshot/compliance/retention"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/compliancetest"
	"github.com/earshot/earshot/internal/config"
	"github.com/earshot/earshot/storage"
)

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

// perSpeaker is how many audio objects compliancetest.Build stores per
// speaker: two segments on each of the tracks of a first join, a rejoin,
// and a join after the bot restarted (ordinal 100,000).
var perSpeaker = 2 * len(compliancetest.DefaultOrdinals)

func policy(t *testing.T) *retention.Policy {
	t.Helper()
	cfg := config.Default().Retention
	cfg.Classes["ephemeral"] = config.RetentionClass{Mode: config.RetentionEphemeral, Grace: 2 * time.Second, Days: 30, ConfirmedDays: 90}
	cfg.Rooms = []config.RoomClass{{Class: "ephemeral", Rooms: []string{"r1_eph", "r1_eph2"}}}
	p, err := retention.NewPolicy(cfg.Rules(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type fixture struct {
	kr    *compliancetest.Keyring
	store *storage.Local
	holds *retention.Holds
	sw    *retention.Sweeper
	now   time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	s, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{store: s, holds: &retention.Holds{Store: s}, now: t0, kr: compliancetest.NewKeyring()}
	f.sw, err = retention.NewSweeper(retention.SweeperConfig{Store: s, Holds: f.holds, Policy: policy(t), Keys: f.kr, Now: func() time.Time { return f.now }})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) sweep(t *testing.T) retention.SweepReport {
	t.Helper()
	rep, err := f.sw.Sweep(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func (f *fixture) keys(t *testing.T, prefix string) []string {
	t.Helper()
	var out []string
	for v, err := range f.store.ListVersions(context.Background(), prefix) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, v.Key)
	}
	return out
}

func TestEphemeralRoomAudioGoneAfterGraceUnlessAlerted(t *testing.T) {
	f := newFixture(t)
	keys := f.kr
	quiet := compliancetest.Build(t, f.store, keys, compliancetest.Session{Room: "r1_eph", ID: "ses_quiet", Speakers: []string{"p1_a", "p1_b"}, Start: t0, Ended: t0.Add(time.Minute)})
	alerted := compliancetest.Build(t, f.store, keys, compliancetest.Session{Room: "r1_eph2", ID: "ses_alert", Speakers: []string{"p1_a"}, Start: t0, Ended: t0.Add(time.Minute), Alert: true})

	f.now = t0.Add(time.Minute + time.Second) // within the grace period
	if rep := f.sweep(t); rep.Expired != 0 {
		t.Fatalf("swept %d sessions within the grace period", rep.Expired)
	}
	if got := f.keys(t, "audio/r1_eph/"); len(got) != len(quiet.Audio) {
		t.Fatalf("audio within grace: %d objects, want %d", len(got), len(quiet.Audio))
	}

	f.now = t0.Add(time.Minute + 3*time.Second) // end + grace passed
	rep := f.sweep(t)
	if rep.Expired != 1 {
		t.Fatalf("expired = %d, want 1 (the quiet session)", rep.Expired)
	}
	if got := f.keys(t, "audio/r1_eph/"); len(got) != 0 {
		t.Fatalf("audio of the quiet ephemeral session left after end+grace: %v", got)
	}
	if got := f.keys(t, "events/r1_eph/"); len(got) != 0 {
		t.Fatalf("events of the quiet ephemeral session left: %v", got)
	}
	if got := f.keys(t, "audio/r1_eph2/"); len(got) != len(alerted.Audio) {
		t.Fatalf("alerted ephemeral session lost audio: %d objects, want %d", len(got), len(alerted.Audio))
	}
	// An alerted ephemeral session is kept like a fixed one (30 days).
	f.now = t0.Add(31 * 24 * time.Hour)
	f.sweep(t)
	if got := f.keys(t, "audio/r1_eph2/"); len(got) != 0 {
		t.Fatalf("alerted ephemeral session kept past 30 days: %v", got)
	}
}

func TestFixedRoomExtendedWhenAlertConfirmed(t *testing.T) {
	f := newFixture(t)
	keys := f.kr
	day := 24 * time.Hour
	compliancetest.Build(t, f.store, keys, compliancetest.Session{Room: "r1_std", ID: "ses_plain", Speakers: []string{"p1_a"}, Start: t0, Ended: t0})
	compliancetest.Build(t, f.store, keys, compliancetest.Session{Room: "r1_std", ID: "ses_conf", Speakers: []string{"p1_a"}, Start: t0, Ended: t0, Alert: true, Confirm: true})
	f.now = t0.Add(29 * day)
	if rep := f.sweep(t); rep.Expired != 0 {
		t.Fatalf("expired %d before 30 days", rep.Expired)
	}
	f.now = t0.Add(31 * day)
	if rep := f.sweep(t); rep.Expired != 1 || len(f.keys(t, "audio/r1_std/ses_plain/")) != 0 || len(f.keys(t, "audio/r1_std/ses_conf/")) == 0 {
		t.Fatalf("after 31 days: %+v; plain %v; confirmed %d objects", rep, f.keys(t, "audio/r1_std/ses_plain/"), len(f.keys(t, "audio/r1_std/ses_conf/")))
	}
	f.now = t0.Add(91 * day)
	f.sweep(t)
	if got := f.keys(t, "audio/r1_std/"); len(got) != 0 {
		t.Fatalf("confirmed session kept past 90 days: %v", got)
	}
}

func TestHoldKeepsExpiredData(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	keys := f.kr
	compliancetest.Build(t, f.store, keys, compliancetest.Session{Room: "r1_eph", ID: "ses_1", Speakers: []string{"p1_a", "p1_b"}, Start: t0, Ended: t0})
	compliancetest.Build(t, f.store, keys, compliancetest.Session{Room: "r1_eph", ID: "ses_2", Speakers: []string{"p1_a"}, Start: t0, Ended: t0})
	if err := f.holds.Set(ctx, retention.Hold{Scope: retention.Scope{Room: "r1_eph", Session: "ses_2"}, Reason: "case 7", Operator: "legal"}); err != nil {
		t.Fatal(err)
	}
	if err := f.holds.Set(ctx, retention.Hold{Scope: retention.Scope{Speaker: "p1_b"}, Reason: "case 8", Operator: "legal"}); err != nil {
		t.Fatal(err)
	}
	f.now = t0.Add(time.Hour)
	rep := f.sweep(t)
	if rep.Held != 1 || rep.Expired != 1 {
		t.Fatalf("report %+v: want ses_2 held, ses_1 partly expired", rep)
	}
	if got := f.keys(t, "audio/r1_eph/ses_2/"); len(got) != perSpeaker {
		t.Fatalf("held session lost audio: %v", got)
	}
	bTracks := compliancetest.Tracks("ses_1", "p1_b")
	for _, k := range f.keys(t, "audio/r1_eph/ses_1/") {
		a, _ := retention.ParseAudioKey(k)
		if !bTracks[a.Track] {
			t.Fatalf("unheld speaker's audio left: %s", k)
		}
	}
	if len(f.keys(t, "audio/r1_eph/ses_1/")) != perSpeaker || len(f.keys(t, "events/r1_eph/ses_1/p1_b/")) == 0 || len(f.keys(t, "events/r1_eph/ses_1/p1_a/")) != 0 {
		t.Fatalf("speaker hold: audio %v events %v", f.keys(t, "audio/r1_eph/ses_1/"), f.keys(t, "events/r1_eph/ses_1/"))
	}
	// Keys: the unheld speaker's key in ses_1 is shredded, the held one's
	// is not.
	live := map[string]bool{}
	for ref := range keys.KeysOf(ctx, retention.Scope{Room: "r1_eph"}) {
		live[ref.Session+"/"+ref.Speaker] = true
	}
	if live["ses_1/p1_a"] || !live["ses_1/p1_b"] || !live["ses_2/p1_a"] {
		t.Fatalf("live keys after the sweep: %v", live)
	}
	// Lifting the holds lets the next sweep finish.
	for _, s := range []retention.Scope{{Room: "r1_eph", Session: "ses_2"}, {Speaker: "p1_b"}} {
		if ok, err := f.holds.Lift(ctx, s); err != nil || !ok {
			t.Fatalf("lift %v: %v %v", s, ok, err)
		}
	}
	if ok, _ := f.holds.Lift(ctx, retention.Scope{Speaker: "p1_b"}); ok {
		t.Fatal("lifting a lifted hold reported it existed")
	}
	f.sweep(t)
	if got := f.keys(t, ""); slices.ContainsFunc(got, func(k string) bool { return !strings.HasPrefix(k, "holds/") }) {
		t.Fatalf("left after holds were lifted: %v", got)
	}
}

func TestSessionWithoutEndIsAssumedEnded(t *testing.T) {
	f := newFixture(t)
	compliancetest.Build(t, f.store, compliancetest.NewKeyring(), compliancetest.Session{Room: "r1_eph", ID: "ses_open", Speakers: []string{"p1_a"}, Start: t0})
	f.now = time.Now().Add(time.Hour) // objects were written just now
	if rep := f.sweep(t); rep.Expired != 0 {
		t.Fatal("an open session was swept")
	}
	f.now = time.Now().Add(25 * time.Hour)
	if rep := f.sweep(t); rep.Expired != 1 {
		t.Fatalf("a session silent for a day was not treated as ended: %+v", rep)
	}
}

func TestPolicyClassOf(t *testing.T) {
	cfg := config.Default().Retention
	cfg.Rooms = []config.RoomClass{
		{Class: "ephemeral", Rooms: []string{"1234"}},
		{Class: "ephemeral", Pattern: "^lobby-"},
	}
	pseud := func(raw string) []string { return []string{"r1_" + raw} }
	p, err := retention.NewPolicy(cfg.Rules(), pseud)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		room string
		meta map[string]string
		want string
	}{
		{"r1_1234", nil, "ephemeral"},
		{"r1_9999", nil, "standard"},
		{"r1_9999", map[string]string{retention.MetaClass: "ephemeral"}, "ephemeral"},
		{"r1_9999", map[string]string{retention.MetaClass: "nonsense"}, "standard"},
	}
	for _, tc := range tests {
		if got, _ := p.ClassOf(tc.room, tc.meta); got != tc.want {
			t.Errorf("ClassOf(%s, %v) = %s, want %s", tc.room, tc.meta, got, tc.want)
		}
	}
	if got := p.ClassOfRaw("lobby-7"); got != "ephemeral" {
		t.Errorf("ClassOfRaw(lobby-7) = %s", got)
	}
	if got := p.ClassOfRaw("1234"); got != "ephemeral" {
		t.Errorf("ClassOfRaw(1234) = %s", got)
	}
}

func TestExpires(t *testing.T) {
	eph := config.RetentionClass{Mode: config.RetentionEphemeral, Grace: 15 * time.Minute, Days: 30, ConfirmedDays: 90}
	fix := config.RetentionClass{Mode: config.RetentionFixed, Days: 30, ConfirmedDays: 90}
	day := 24 * time.Hour
	tests := []struct {
		c    config.RetentionClass
		f    retention.Facts
		want time.Duration
	}{
		{eph, retention.Facts{}, 15 * time.Minute},
		{config.RetentionClass{Mode: config.RetentionEphemeral, Grace: time.Minute}, retention.Facts{Alerts: 1}, 30 * day},
		{eph, retention.Facts{Alerts: 1}, 30 * day},
		{eph, retention.Facts{Alerts: 1, Confirmed: true}, 90 * day},
		{fix, retention.Facts{}, 30 * day},
		{fix, retention.Facts{Alerts: 2, Confirmed: true}, 90 * day},
	}
	for _, tc := range tests {
		tc.f.Ended = t0
		if got := retention.Expires(tc.c, tc.f).Sub(t0); got != tc.want {
			t.Errorf("Expires(%s, %+v) = +%v, want +%v", tc.c.Mode, tc.f, got, tc.want)
		}
	}
}

func TestScopeCovers(t *testing.T) {
	tests := []struct {
		s                      retention.Scope
		room, session, speaker string
		want                   bool
	}{
		{retention.Scope{Room: "r"}, "r", "s", "p", true},
		{retention.Scope{Room: "r"}, "x", "s", "p", false},
		{retention.Scope{Room: "r", Session: "s"}, "r", "s", "", true},
		{retention.Scope{Room: "r", Session: "s"}, "r", "t", "", false},
		{retention.Scope{Speaker: "p"}, "r", "s", "p", true},
		{retention.Scope{Speaker: "p"}, "r", "s", "q", false},
		{retention.Scope{Speaker: "p"}, "r", "s", "", false},
		{retention.Scope{}, "r", "s", "p", false},
	}
	for _, tc := range tests {
		if got := tc.s.Covers(tc.room, tc.session, tc.speaker); got != tc.want {
			t.Errorf("%v.Covers(%s,%s,%s) = %v", tc.s, tc.room, tc.session, tc.speaker, got)
		}
	}
}

func FuzzParseKeys(f *testing.F) {
	f.Add("audio/r/s/t/000-001.ogg")
	f.Add("manifests/r/s.json")
	f.Add("events/r/s/_/alert.raised/evt_x.json")
	f.Fuzz(func(t *testing.T, key string) {
		if a, ok := retention.ParseAudioKey(key); ok && (a.Room == "" && a.Session == "" && a.Track == "" && !strings.HasPrefix(key, "audio/")) {
			t.Fatal("parsed a non-audio key")
		}
		if r, s, ok := retention.ParseManifestKey(key); ok && event.ManifestKey(r, s) != key {
			t.Fatalf("manifest key %q does not round trip", key)
		}
	})
}

func TestManifestGivesEndAndSpeakers(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	// Audio and a manifest, no archived lifecycle events.
	compliancetest.Build(t, skipEvents{f.store}, f.kr, compliancetest.Session{Room: "r1_eph", ID: "ses_m", Speakers: []string{"p1_a", "p1_b"}, Start: t0})
	// The session ends when its audio does (two 30 s segments per track).
	m := fmt.Sprintf(`{"manifest_version":1,"room":"r1_eph","session":"ses_m","ended":%q,"tracks":[{"speaker":"p1_a"},{"speaker":"p1_b"}]}`, t0.Add(time.Minute).Format(time.RFC3339))
	if _, err := f.store.Put(ctx, event.ManifestKey("r1_eph", "ses_m"), strings.NewReader(m), int64(len(m)), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := f.holds.Set(ctx, retention.Hold{Scope: retention.Scope{Speaker: "p1_b"}, Reason: "r"}); err != nil {
		t.Fatal(err)
	}
	f.now = t0.Add(2 * time.Minute) // long before assume_ended_after: the manifest's end counts
	if rep := f.sweep(t); rep.Expired != 1 {
		t.Fatalf("report %+v", rep)
	}
	// p1_b is held: their audio and the (shared) manifest stay.
	left := f.keys(t, "")
	if !slices.Contains(left, event.ManifestKey("r1_eph", "ses_m")) || len(f.keys(t, "audio/")) != perSpeaker {
		t.Fatalf("left: %v", left)
	}
}

// skipEvents drops archive puts.
type skipEvents struct{ storage.Putter }

func (s skipEvents) Put(ctx context.Context, key string, r io.Reader, size int64, o storage.PutOptions) (storage.ObjectInfo, error) {
	if strings.HasPrefix(key, "events/") {
		return storage.ObjectInfo{}, nil
	}
	return s.Putter.Put(ctx, key, r, size, o)
}
