package policy

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/bustest"
	"github.com/earshot/earshot/storage/crypt"
)

// fakeConsumer hands a fixed list of records to the handler, then waits
// for ctx.
type fakeConsumer struct{ recs []bus.Message }

func (f *fakeConsumer) Run(ctx context.Context, h bus.Handler) error {
	for i, m := range f.recs {
		m.Partition, m.Offset = 0, int64(i)
		h(ctx, &bus.Delivery{Message: m})
	}
	return nil
}

func (f *fakeConsumer) Close() error { return nil }

// transcript makes a sealed transcript.segment record of segment s made by
// model (the revision).
func transcript(t *testing.T, k event.Keys, s Segment, model string) bus.Message {
	t.Helper()
	tl := s.Timeline
	e, err := event.New(event.TypeTranscript, event.Producer{Name: "test"}, &event.Processing{Engine: "e", Model: model},
		s.Room, s.Session, s.Speaker, &tl, event.TranscriptSegment{Language: "en", AvgLogProb: s.AvgLogProb, NoSpeechProb: s.NoSpeechProb, Speech: s.Speech})
	if err != nil {
		t.Fatal(err)
	}
	data := event.TranscriptSegmentData{Text: s.Text}
	for _, w := range s.Words {
		data.Words = append(data.Words, event.TranscriptWord{Word: w.Text, FirstSample: w.FirstSample, LastSample: w.LastSample, Probability: w.Probability})
	}
	if err := e.Seal(context.Background(), k, data); err != nil {
		t.Fatal(err)
	}
	b, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return bus.Message{Topic: event.TopicTranscripts, Key: []byte(s.Room), Value: b}
}

// runStage runs a stage over recs and returns the alert events.
func runStage(t *testing.T, cfg StageConfig, recs []bus.Message) []*event.Envelope {
	t.Helper()
	out := &bustest.Capture{}
	cfg.Consumer, cfg.Sender = &fakeConsumer{recs: recs}, out
	if cfg.Policy == nil {
		cfg.Policy = Fixed{P: mustDefault(t)}
	}
	if cfg.Keys == nil {
		cfg.Keys = testKeys
	}
	cfg.Producer = event.Producer{Name: "t"}
	st, err := NewStage(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	var alerts []*event.Envelope
	for _, m := range out.Topic(event.TopicAlerts) {
		e, err := event.Decode(m.Value)
		if err != nil {
			t.Fatal(err)
		}
		alerts = append(alerts, e)
	}
	return alerts
}

func TestExcerptSealedPerSpeaker(t *testing.T) {
	keys := crypt.NewMemory()
	a := seg("evt_a", "p1_alice", "trk_a", 0, "lovely weather in the park today", 0.9)
	c := seg("evt_c", "p1_alice", "trk_a", 2.5, "please calm down", 0.9)
	b := seg("evt_b", "p1_bob", "trk_b", 4, "i will kill you", 0.9)
	alerts := runStage(t, StageConfig{Keys: keys}, []bus.Message{
		transcript(t, keys, a, "m"), transcript(t, keys, c, "m"), transcript(t, keys, b, "m"),
	})
	if len(alerts) != 1 || alerts[0].Speaker != "p1_bob" {
		t.Fatalf("want one alert on bob, got %d", len(alerts))
	}
	al := alerts[0]
	var data event.AlertData
	if err := al.Open(context.Background(), keys, &data); err != nil {
		t.Fatal(err)
	}
	if len(data.Excerpt) != 3 {
		t.Fatalf("excerpt has %d lines, want 3", len(data.Excerpt))
	}
	for i, l := range data.Excerpt {
		switch l.Speaker {
		case "p1_bob":
			if l.Text != b.Text || l.Sealed != nil {
				t.Errorf("line %d: the alert's own speaker's line should be plain text: %+v", i, l)
			}
		case "p1_alice":
			if l.Text != "" || len(l.Sealed) == 0 || l.KeyID != event.KeyID("ses_1", "p1_alice") {
				t.Errorf("line %d: alice's line is not sealed under her key: %+v", i, l)
			}
		}
	}

	// Everyone's key present: all lines readable.
	lines := append([]event.ExcerptLine(nil), data.Excerpt...)
	if n, err := OpenExcerpt(context.Background(), keys, al, lines); n != 0 || err != nil {
		t.Fatalf("open with all keys: %d unreadable, %v", n, err)
	}
	if lines[0].Text != a.Text || lines[1].Text != c.Text || lines[2].Text != b.Text {
		t.Fatalf("opened lines: %+v", lines)
	}
	// A line moved to another position does not open (AAD binds the index).
	swapped := append([]event.ExcerptLine(nil), data.Excerpt...)
	swapped[0], swapped[1] = swapped[1], swapped[0]
	if n, err := OpenExcerpt(context.Background(), keys, al, swapped); n != 2 || err == nil {
		t.Fatalf("reordered lines opened: %d unreadable, %v", n, err)
	}

	// Shred alice: her lines are gone for good, bob's alert stays readable.
	keys.Shred(event.KeyID("ses_1", "p1_alice"))
	var again event.AlertData
	if err := al.Open(context.Background(), keys, &again); err != nil {
		t.Fatalf("bob's alert no longer opens after alice's erasure: %v", err)
	}
	n, err := OpenExcerpt(context.Background(), keys, al, again.Excerpt)
	if err != nil || n != 2 {
		t.Fatalf("after shredding alice: %d unreadable lines (want 2), err %v", n, err)
	}
	for _, l := range again.Excerpt {
		if l.Speaker == "p1_alice" && l.Text != "" {
			t.Errorf("alice's words readable after her key was shredded: %q", l.Text)
		}
		if l.Speaker == "p1_bob" && l.Text != b.Text {
			t.Errorf("bob's line lost: %q", l.Text)
		}
	}
}

func TestOpenExcerptWrongKeyID(t *testing.T) {
	al := &event.Envelope{EventID: "evt_x", Room: "r1", Session: "ses_1", Speaker: "p1_b"}
	lines := []event.ExcerptLine{{Speaker: "p1_a", KeyID: event.KeyID("ses_other", "p1_a"), Sealed: []byte("x")}}
	n, err := OpenExcerpt(context.Background(), crypt.NewMemory(), al, lines)
	if n != 1 || err == nil {
		t.Fatalf("a line naming another session's key: %d, %v", n, err)
	}
	if errors.Is(err, crypt.ErrKeyDestroyed) {
		t.Fatal("a foreign key ID is not an erasure")
	}
}

// shifted returns s with every word moved by d samples, as another model's
// word timings would be (the utterance boundaries stay).
func shifted(s Segment, id string, d int64) Segment {
	s.ID = id
	s.Words = append([]Word(nil), s.Words...)
	for i := range s.Words {
		s.Words[i].FirstSample += d
		s.Words[i].LastSample += d
		s.Words[i].Probability = 0.7
	}
	return s
}

func TestAlertIDRevisionIndependent(t *testing.T) {
	p := mustDefault(t)
	orig := seg("evt_r1", "p1_x", "trk_x", 0, "i will kill you", 0.9)
	rev := shifted(orig, "evt_r2", 960)
	f1 := p.Evaluate(&orig)
	f2 := p.Evaluate(&rev)
	if len(f1) != 1 || len(f2) != 1 {
		t.Fatalf("findings %d and %d", len(f1), len(f2))
	}
	if f1[0].Spans[0].Timeline == f2[0].Spans[0].Timeline {
		t.Fatal("test needs different word timings")
	}
	if AlertID(f1[0]) != AlertID(f2[0]) {
		t.Fatal("a re-transcription with other word timings changes the alert ID")
	}
	// What does change it: another place, another speaker, another policy.
	other := seg("evt_r3", "p1_x", "trk_x", 10, "i will kill you", 0.9)
	f3 := p.Evaluate(&other)
	bob := orig
	bob.Speaker = "p1_bob"
	f4 := p.Evaluate(&bob)
	f5 := append([]Finding(nil), f1...)
	f5[0].PolicyVersion = "next"
	for i, fs := range [][]Finding{f3, f4, f5} {
		if AlertID(fs[0]) == AlertID(f1[0]) {
			t.Errorf("case %d: different finding, same alert ID", i)
		}
	}
	// Two findings of one category in one segment stay apart.
	two := seg("evt_r4", "p1_x", "trk_x", 20, "call two oh two five five five oh one four three or two oh two five five five oh one nine nine", 0.9)
	f6 := p.Evaluate(&two)
	if len(f6) != 2 || AlertID(f6[0]) == AlertID(f6[1]) {
		t.Fatalf("two numbers in one segment: %d findings, or equal IDs", len(f6))
	}
}

func TestStageReplayedRevisionAlertsOnce(t *testing.T) {
	keys := crypt.NewMemory()
	orig := seg("", "p1_x", "trk_x", 0, "i will kill you", 0.9)
	rev := shifted(orig, "", 960)
	r1, r2 := transcript(t, keys, orig, "tiny.en"), transcript(t, keys, rev, "small.en")
	e1, _ := event.Decode(r1.Value)
	e2, _ := event.Decode(r2.Value)
	if e1.EventID == e2.EventID {
		t.Fatal("revisions should have different transcript IDs")
	}
	// Rate limit off, so only de-duplication can keep the second one out.
	alerts := runStage(t, StageConfig{Keys: keys, RateLimit: RateLimit{Every: -1}}, []bus.Message{r1, r2, r1})
	if len(alerts) != 1 {
		t.Fatalf("a replayed revision raised %d alerts, want 1", len(alerts))
	}
	// A fresh stage (no window memory) that only sees the alerts already
	// raised skips the replay too.
	st, err := NewStage(StageConfig{Consumer: &fakeConsumer{}, Sender: &bustest.Capture{}, Policy: Fixed{P: mustDefault(t)}, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	st.raised.Add(alerts[0].EventID)
	f := mustDefault(t).Evaluate(&rev)
	if !st.raised.Seen(AlertID(f[0])) {
		t.Fatal("the replayed revision's alert ID is not the one raised")
	}
}

func TestStageRateLimit(t *testing.T) {
	keys := crypt.NewMemory()
	var recs []bus.Message
	// Bob threatens four times in 40 s, then again at 70 s; alice once at 10 s.
	for i, at := range []float64{0, 10, 20, 40, 70} {
		s := seg("", "p1_bob", "trk_b", at, "i will kill you", 0.9)
		s.ID = ""
		recs = append(recs, transcript(t, keys, s, "m"))
		if i == 1 {
			recs = append(recs, transcript(t, keys, seg("", "p1_alice", "trk_a", 12, "i will kill you", 0.9), "m"))
		}
	}
	tests := []struct {
		name       string
		limit      RateLimit
		want       int
		suppressed []int
	}{
		{"default one a minute", RateLimit{}, 3, []int{0, 0, 3}},
		{"two a minute", RateLimit{Every: time.Minute, Burst: 2}, 4, []int{0, 0, 0, 2}},
		{"off", RateLimit{Every: -1}, 6, []int{0, 0, 0, 0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			alerts := runStage(t, StageConfig{Keys: keys, RateLimit: tt.limit}, recs)
			if len(alerts) != tt.want {
				t.Fatalf("%d alerts, want %d", len(alerts), tt.want)
			}
			var got []int
			for _, a := range alerts {
				var p AlertPayload
				if err := a.DecodePayload(&p); err != nil {
					t.Fatal(err)
				}
				got = append(got, p.Suppressed)
			}
			if len(got) != len(tt.suppressed) {
				t.Fatalf("suppressed counts %v, want %v", got, tt.suppressed)
			}
			for i := range got {
				if got[i] != tt.suppressed[i] {
					t.Fatalf("suppressed counts %v, want %v", got, tt.suppressed)
				}
			}
		})
	}
}

func TestLimiter(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newLimiter(RateLimit{Every: time.Minute, Burst: 1})
	k := limitKey{"r", "rule", "s"}
	steps := []struct {
		at     time.Duration
		id     string
		ok     bool
		folded int
	}{
		{0, "a", true, 0},
		{10 * time.Second, "b", false, 0},
		{0, "a", true, 0}, // a retry of an alert already admitted
		{-30 * time.Second, "c", false, 0},
		{61 * time.Second, "d", true, 2},
		{90 * time.Second, "e", false, 0},
		{125 * time.Second, "f", true, 1},
	}
	for i, s := range steps {
		ok, folded := l.allow(k, t0.Add(s.at), s.id)
		if ok != s.ok || folded != s.folded {
			t.Fatalf("step %d: allow = %v, %d; want %v, %d", i, ok, folded, s.ok, s.folded)
		}
	}
	// A noted alert (from the alerts topic) counts against the limit.
	l2 := newLimiter(RateLimit{})
	l2.note(k, t0, "x")
	if ok, _ := l2.allow(k, t0.Add(30*time.Second), "y"); ok {
		t.Fatal("an alert read back from Kafka did not count")
	}
	if ok, _ := l2.allow(k, t0, "x"); !ok {
		t.Fatal("the alert read back was refused")
	}
}

// FuzzTranscriptRecord feeds arbitrary record values to the stage: no
// panic, every dead letter says why, and every alert it raises opens.
func FuzzTranscriptRecord(f *testing.F) {
	keys := crypt.NewMemory()
	var t testing.T
	for _, text := range []string{"i will kill you", "call two oh two five five five oh one four three", ""} {
		f.Add(transcript(&t, keys, seg("", "p1_x", "trk_x", 0, text, 0.9), "m").Value)
	}
	f.Add([]byte(`{"event_id":"evt_aaaaaaaa","type":"transcript.segment","schema_version":1,"revision":"r","producer":{"name":"x"}}`))
	p := mustDefault(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		out := &bustest.Capture{}
		st, err := NewStage(StageConfig{Consumer: &fakeConsumer{recs: []bus.Message{{Topic: event.TopicTranscripts, Value: b}}},
			Sender: out, Policy: Fixed{P: p}, Producer: event.Producer{Name: "t"}, Keys: keys, Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		_ = st.Run(context.Background())
		for _, m := range out.Topic(event.TopicAlerts) {
			e, err := event.Decode(m.Value)
			if err != nil {
				t.Fatalf("the stage wrote an alert it cannot read back: %v", err)
			}
			var data event.AlertData
			if err := e.Open(context.Background(), keys, &data); err != nil {
				t.Fatalf("alert does not open: %v", err)
			}
			if _, err := OpenExcerpt(context.Background(), keys, e, data.Excerpt); err != nil {
				t.Fatalf("excerpt does not open: %v", err)
			}
		}
		for _, m := range out.Topic(event.TopicDeadLetter) {
			if _, ok := m.Header(bus.HeaderDLQReason); !ok {
				t.Fatal("dead letter without a reason")
			}
		}
	})
}
