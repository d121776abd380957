// Package compliancetest builds recorded sessions in a store for the tests
// of the archive, retention, erasure and export packages: archived events
// sealed per speaker, and audio segments, as the pipeline writes them.
package compliancetest

import (
	"bytes"
	"context"
	"fmt"
	"iter"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/earshot/earshot/compliance/archive"
	"github.com/earshot/earshot/compliance/retention"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/record/spool"
	"github.com/earshot/earshot/storage"
	"github.com/earshot/earshot/storage/crypt"
)

// Keyring is an in-memory keyring with the index and shredding of the
// durable one: it remembers every key it sealed under.
type Keyring struct {
	*crypt.Memory
	mu   sync.Mutex
	refs map[string]event.KeyRef
	dead map[string]bool
}

// NewKeyring returns an empty keyring.
func NewKeyring() *Keyring {
	return &Keyring{Memory: crypt.NewMemory(), refs: map[string]event.KeyRef{}, dead: map[string]bool{}}
}

// Seal records ref and seals.
func (k *Keyring) Seal(ctx context.Context, ref event.KeyRef, pt, aad []byte) ([]byte, error) {
	k.mu.Lock()
	if !k.dead[ref.ID] {
		k.refs[ref.ID] = ref
	}
	k.mu.Unlock()
	return k.Memory.Seal(ctx, ref, pt, aad)
}

// KeysOf yields the live keys in scope.
func (k *Keyring) KeysOf(_ context.Context, s retention.Scope) iter.Seq2[event.KeyRef, error] {
	k.mu.Lock()
	var out []event.KeyRef
	for _, r := range k.refs {
		if (s.Room == "" || r.Room == s.Room) && (s.Speaker == "" || r.Speaker == s.Speaker) && (s.Session == "" || r.Session == s.Session) {
			out = append(out, r)
		}
	}
	k.mu.Unlock()
	return func(yield func(event.KeyRef, error) bool) {
		for _, r := range out {
			if !yield(r, nil) {
				return
			}
		}
	}
}

// Shred destroys a key.
func (k *Keyring) Shred(_ context.Context, ref event.KeyRef) error {
	k.mu.Lock()
	delete(k.refs, ref.ID)
	k.dead[ref.ID] = true
	k.mu.Unlock()
	k.Memory.Shred(ref.ID)
	return nil
}

// Session describes a recorded session to build.
type Session struct {
	Room, ID string
	Speakers []string
	Start    time.Time
	// Ended, when set, archives a session_ended event at that time.
	Ended time.Time
	// Alert raises an alert on the first speaker; Confirm confirms it.
	Alert, Confirm bool
	// Segments per track (default 2).
	Segments int
	// Ordinals are each speaker's tracks (default DefaultOrdinals): a
	// speaker has a track per join, and a bot's later stay in the session
	// numbers its tracks from 100,000 up.
	Ordinals []int
	// Class, when set, goes into session_started metadata.
	Class string
	// Replayed adds a second revision of every transcript (a replay).
	Replayed bool
	// LaterStay starts the tracks of a bot's later stay (ordinals from
	// 100,000) this long after Start; by default they start at Start too.
	LaterStay time.Duration
}

// DefaultOrdinals give every speaker three tracks, as ingest numbers
// them: the first join, a rejoin in the same stay of the bot, and a join
// after the bot restarted and continued the session (its second stay).
var DefaultOrdinals = []int{0, 1, 100_000}

// Tracks returns the track IDs Build gives speaker in session with the
// default ordinals: what a test knows it wrote.
func Tracks(session, speaker string) map[string]bool {
	m := map[string]bool{}
	for _, o := range DefaultOrdinals {
		m[event.TrackID(session, speaker, o)] = true
	}
	return m
}

// Built is what Build wrote.
type Built struct {
	Envelopes []*event.Envelope // every archived event, in order
	Audio     []string          // audio object keys
	Texts     map[string]string // transcript text by speaker
	AlertID   string
}

// Prod is the producer the fixtures use.
var Prod = event.Producer{Name: "compliancetest", Version: "test"}

// OggPayload is the plaintext of a fake audio segment.
func OggPayload(session, speaker string, ordinal, seq int) []byte {
	return fmt.Appendf(nil, "OggS\x00\x02fake opus of %s in %s track %d segment %d", speaker, session, ordinal, seq)
}

// Build writes s into store (events archived, audio stored with the
// metadata the encrypting store keys on), sealing under keys.
func Build(tb testing.TB, store storage.Putter, keys event.Keys, s Session) Built {
	tb.Helper()
	ctx := context.Background()
	b := Built{Texts: map[string]string{}}
	if s.Segments == 0 {
		s.Segments = 2
	}
	w := archive.Writer{Store: store}
	add := func(e *event.Envelope) {
		tb.Helper()
		if err := w.Put(ctx, e, nil); err != nil {
			tb.Fatal(err)
		}
		b.Envelopes = append(b.Envelopes, e)
	}
	md := map[string]string{"purpose": "test"}
	if s.Class != "" {
		md[retention.MetaClass] = s.Class
	}
	e, err := event.New(event.TypeSessionStarted, Prod, nil, s.Room, s.ID, "", nil, event.SessionStarted{Connector: "test", Metadata: md}, "start")
	if err != nil {
		tb.Fatal(err)
	}
	e.Time = s.Start
	add(e)
	if s.Ordinals == nil {
		s.Ordinals = DefaultOrdinals
	}
	for i, sp := range s.Speakers {
		for _, ord := range s.Ordinals {
			b.addTrack(tb, ctx, store, keys, s, i, sp, ord, add)
		}
		track := event.TrackID(s.ID, sp, s.Ordinals[0])
		if i == 0 && s.Alert {
			tl := event.Timeline{Track: track, FirstSample: 0, LastSample: event.SampleRate, Origin: s.Start, Anchor: event.AnchorArrival}
			a, _ := event.New(event.TypeAlert, Prod, &event.Processing{PolicyVersion: "p1"}, s.Room, s.ID, sp, &tl,
				event.Alert{Severity: "high", Category: "abuse.threat", RuleID: "r1", Score: 0.9, Confidence: 0.9}, "r1")
			if err := a.Seal(ctx, keys, event.AlertData{Value: "threat", Text: "secret threat words"}); err != nil {
				tb.Fatal(err)
			}
			add(a)
			b.AlertID = a.EventID
			if s.Confirm {
				act, _ := event.New(event.TypeAlertAction, Prod, nil, s.Room, s.ID, sp, nil,
					event.AlertAction{Alert: a.EventID, Action: event.ActionConfirm, Operator: "mod1"}, a.EventID, "confirm")
				if err := act.Seal(ctx, keys, event.AlertActionData{Note: "confirmed: secret note"}); err != nil {
					tb.Fatal(err)
				}
				add(act)
			}
		}
	}
	if !s.Ended.IsZero() {
		e, _ := event.New(event.TypeSessionEnded, Prod, nil, s.Room, s.ID, "", nil, event.SessionEnded{Reason: "room closed"}, "end")
		e.Time = s.Ended
		add(e)
	}
	return b
}

// addTrack writes one track of speaker sp (the i-th) with s.Segments
// segments, their transcripts and the track_started event.
func (b *Built) addTrack(tb testing.TB, ctx context.Context, store storage.Putter, keys event.Keys, s Session, i int, sp string, ord int, add func(*event.Envelope)) {
	tb.Helper()
	track := event.TrackID(s.ID, sp, ord)
	e, _ := event.New(event.TypeTrackStarted, Prod, nil, s.Room, s.ID, sp, nil, event.TrackStarted{Ordinal: ord, Codec: "opus"}, track)
	add(e)
	const seg = 30 * event.SampleRate
	origin := s.Start
	if ord >= 100_000 {
		origin = origin.Add(s.LaterStay)
	}
	for n := range s.Segments {
		tl := event.Timeline{Track: track, FirstSample: int64(n) * seg, LastSample: int64(n+1)*seg - 1, Origin: origin, Anchor: event.AnchorArrival}
		key := event.SegmentKey(s.Room, s.ID, tl)
		data := OggPayload(s.ID, sp, ord, n)
		// The metadata ingest stores with a segment (spool.Descriptor).
		if _, err := store.Put(ctx, key, bytes.NewReader(data), int64(len(data)), storage.PutOptions{
			ContentType: spool.ContentType,
			Metadata: map[string]string{"room": s.Room, "session": s.ID, "speaker": sp, spool.MetaTrack: track,
				spool.MetaFirstSample: strconv.FormatInt(tl.FirstSample, 10), spool.MetaLastSample: strconv.FormatInt(tl.LastSample, 10),
				spool.MetaOrigin: tl.Origin.UTC().Format(time.RFC3339Nano), spool.MetaAnchor: string(tl.Anchor)},
		}); err != nil {
			tb.Fatal(err)
		}
		b.Audio = append(b.Audio, key)
		text := fmt.Sprintf("speaker %d says secret words number %d on track %d", i, n, ord)
		b.Texts[sp] += text + "\n"
		tr, _ := event.New(event.TypeTranscript, Prod, &event.Processing{Engine: "test"}, s.Room, s.ID, sp, &tl, event.TranscriptSegment{Language: "en", Speech: true})
		if err := tr.Seal(ctx, keys, event.TranscriptSegmentData{Text: text}); err != nil {
			tb.Fatal(err)
		}
		add(tr)
		if s.Replayed {
			rp, _ := event.New(event.TypeTranscript, Prod, &event.Processing{Engine: "test", Options: map[string]string{"replay": "1"}}, s.Room, s.ID, sp, &tl, event.TranscriptSegment{Language: "en", Speech: true})
			if err := rp.Seal(ctx, keys, event.TranscriptSegmentData{Text: text + " (replayed)"}); err != nil {
				tb.Fatal(err)
			}
			add(rp)
		}
	}
}

// NewCrypt returns the durable keyring (KEK file at kekPath, created when
// missing; wrapped keys in inner; no cache, so a shred takes effect at
// once) and the encrypting store over inner, as a deployment has them.
func NewCrypt(tb testing.TB, inner storage.Store, kekPath string) (*crypt.Keyring, *crypt.Store) {
	tb.Helper()
	kek, err := crypt.LoadLocalKEK(kekPath, true)
	if err != nil {
		tb.Fatal(err)
	}
	k, err := crypt.NewKeyring(crypt.KeyringConfig{KEK: kek, Store: inner, CacheTTL: -1})
	if err != nil {
		tb.Fatal(err)
	}
	return k, crypt.NewStore(inner, k)
}
