package policy

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
)

var (
	procLive    = &event.Processing{Engine: "e", Model: "tiny.en"}
	procSettled = &event.Processing{Engine: "e", Model: "tiny.en", Options: map[string]string{"pass": event.PassSettled, "batch": "25s"}}
	procFinal   = &event.Processing{Engine: "e", Model: "tiny.en", Options: map[string]string{"pass": event.PassFinal, "replay": "1"}}
)

// said is one transcript line of a revision: a 3 s segment starting at
// second at.
type said struct {
	proc    *event.Processing
	at      float64
	text    string
	room    string
	speaker string
}

func (s said) msg(t *testing.T) bus.Message {
	return transcriptMsg(t, transcriptSpec{proc: s.proc, first: int64(s.at * event.SampleRate), text: s.text, room: s.room, speaker: s.speaker})
}

// revisionOutput is what a stage wrote, sorted by kind and pass.
type revisionOutput struct {
	alerts   map[string]int // by pass
	updates  map[string]int // by pass
	payloads []AlertPayload
	updated  []event.AlertUpdated
	ids      map[string]bool
}

func decodeRevisionOutput(t *testing.T, msgs []bus.Message) revisionOutput {
	t.Helper()
	out := revisionOutput{alerts: map[string]int{}, updates: map[string]int{}, ids: map[string]bool{}}
	for _, m := range msgs {
		e, err := event.Decode(m.Value)
		if err != nil {
			t.Fatal(err)
		}
		if out.ids[e.EventID] {
			t.Errorf("event %s (%s) written twice", e.EventID, e.Type)
		}
		out.ids[e.EventID] = true
		switch e.Type {
		case event.TypeAlert:
			var p AlertPayload
			if err := e.DecodePayload(&p); err != nil {
				t.Fatal(err)
			}
			out.alerts[p.Pass]++
			out.payloads = append(out.payloads, p)
		case event.TypeAlertUpdated:
			var u event.AlertUpdated
			if err := e.DecodePayload(&u); err != nil {
				t.Fatal(err)
			}
			if err := e.CheckPayload(); err != nil {
				t.Errorf("alert.updated does not check: %v", err)
			}
			out.updates[u.Pass]++
			out.updated = append(out.updated, u)
		default:
			t.Errorf("unexpected %s on the alerts topic", e.Type)
		}
	}
	return out
}

func TestRevisionsAlertOncePerThingSaid(t *testing.T) {
	p := mustDefault(t)
	// Preconditions from the engine itself: which lines are findings.
	for text, want := range map[string]bool{
		"i will kill you": true, "i will hurt you": true, "i will hurry you": false,
		"i will call you later": false, "see you at the game tonight": false,
	} {
		s := seg("x", "p1", "trk", 0, text, 0.9)
		if got := len(p.Evaluate(&s)) > 0; got != want {
			t.Fatalf("precondition: %q flagged %v, the test needs %v", text, got, want)
		}
	}
	tests := []struct {
		name        string
		lines       []said
		rooms       RoomLimits
		limit       RateLimit // Every -1 (off) unless the case is about the limit
		wantAlerts  map[string]int
		wantUpdates map[string]int
		suppressed  float64
	}{
		{name: "the same threat in every revision, cut differently",
			lines: []said{
				{proc: procLive, at: 0, text: "i will kill you"},
				{proc: procSettled, at: 0.5, text: "i will kill you"},
				{proc: procFinal, at: 0.2, text: "i will kill you"},
				{proc: procSettled, at: 0.5, text: "i will kill you"}, // redelivered
			},
			wantAlerts: map[string]int{PassLive: 1}},
		{name: "the settled text hears what the live text missed",
			lines: []said{
				{proc: procLive, at: 0, text: "i will hurry you"},
				{proc: procLive, at: 4, text: "see you at the game tonight"},
				{proc: procSettled, at: 0, text: "i will hurt you"},
				{proc: procSettled, at: 4, text: "see you at the game tonight"},
				{proc: procFinal, at: 0.3, text: "i will hurt you"},
			},
			wantAlerts: map[string]int{event.PassSettled: 1}},
		{name: "later revisions no longer support a live alert",
			lines: []said{
				{proc: procLive, at: 0, text: "i will kill you"},
				{proc: procSettled, at: 0, text: "i will call you later"},
				{proc: procSettled, at: 4, text: "see you at the game tonight"},
				{proc: procSettled, at: 4, text: "see you at the game tonight"}, // redelivered
				{proc: procFinal, at: 0, text: "i will call you later"},
				{proc: procFinal, at: 4, text: "see you at the game tonight"},
			},
			wantAlerts: map[string]int{PassLive: 1}, wantUpdates: map[string]int{event.PassSettled: 1, event.PassFinal: 1}},
		{name: "no update before the later revision has moved past the words",
			lines: []said{
				{proc: procLive, at: 0, text: "i will kill you"},
				{proc: procSettled, at: 0, text: "i will call you later"},
			},
			wantAlerts: map[string]int{PassLive: 1}},
		{name: "a number across a live utterance cut",
			lines: []said{
				{proc: procLive, at: 0, text: "My phone number is"},
				{proc: procLive, at: 2.5, text: "is 415 -867 -5 -3 -0 -9."},
			},
			wantAlerts: map[string]int{PassLive: 1}},
		{name: "a rate-limited finding heard again is not counted twice",
			lines: []said{
				{proc: procLive, at: 0, text: "i will kill you"},
				{proc: procLive, at: 10, text: "i will kill you"},
				{proc: procSettled, at: 0, text: "i will kill you"},
				{proc: procSettled, at: 10, text: "i will kill you"},
			},
			limit: RateLimit{Every: time.Minute}, wantAlerts: map[string]int{PassLive: 1}, suppressed: 1},
		{name: "memory outlives the room window",
			rooms: RoomLimits{Max: 1},
			lines: []said{
				{proc: procLive, at: 0, text: "i will kill you"},
				{proc: procLive, at: 1, text: "see you at the game tonight", room: "r1_other"},
				{proc: procLive, at: 2, text: "see you at the game tonight", room: "r1_third"},
				{proc: procSettled, at: 0.4, text: "i will kill you"},
			},
			wantAlerts: map[string]int{PassLive: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			if tc.limit.Every == 0 {
				// Off: the rate limit would hide a duplicate.
				tc.limit.Every = -1
			}
			st, feed, out := feedStage(t, StageConfig{Logger: quiet(), Metrics: reg, Rooms: tc.rooms, RateLimit: tc.limit})
			stop := startStage(t, st)
			var msgs []bus.Message
			for _, l := range tc.lines {
				msgs = append(msgs, l.msg(t))
			}
			feed.WaitAcked(t, feed.Push(msgs...)...)
			stop()
			got := decodeRevisionOutput(t, out.Topic(event.TopicAlerts))
			if !sameCounts(got.alerts, tc.wantAlerts) {
				t.Errorf("alerts by pass %v, want %v", got.alerts, tc.wantAlerts)
			}
			if !sameCounts(got.updates, tc.wantUpdates) {
				t.Errorf("updates by pass %v, want %v", got.updates, tc.wantUpdates)
			}
			for _, p := range got.payloads {
				if p.Pass == "" || p.DelayS <= 0 || len(p.Spans) == 0 {
					t.Errorf("alert not marked with its revision, delay and spans: %+v", p)
				}
			}
			for _, u := range got.updated {
				if u.Reason != event.UpdateNotInRevision || u.Note != "not in "+u.Pass+" text" || !event.ValidID(event.PrefixEvent, u.Alert) {
					t.Errorf("update %+v", u)
				}
			}
			if n := counterSum(t, reg, "earshot_policy_alerts_suppressed_total"); n != tc.suppressed {
				t.Errorf("suppressed %v, want %v", n, tc.suppressed)
			}
			if len(out.Topic(event.TopicDeadLetter)) != 0 {
				t.Errorf("dead letters: %d", len(out.Topic(event.TopicDeadLetter)))
			}
		})
	}
}

// counterSum is a counter's total over its labels in reg.
func counterSum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

func sameCounts(a, b map[string]int) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	for k, v := range b {
		if a[k] != v {
			return false
		}
	}
	return true
}

// startStage runs st until the returned stop is called (or the test ends).
func startStage(t *testing.T, st *Stage) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("stage: %v", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

// The ledger keeps a session's findings until its final revision is done
// (final text seen, then quiet for Idle), or for MaxAge when no final pass
// comes, whatever happens to the room windows.
func TestLedgerKeptUntilFinalPass(t *testing.T) {
	p := mustDefault(t)
	s := seg("evt_1", "p1_a", "trk_a", 0, "i will kill you", 0.9)
	fs := p.Evaluate(&s)
	if len(fs) != 1 {
		t.Fatalf("%d findings", len(fs))
	}
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		final bool          // a final-revision segment of the session is seen at t0
		after time.Duration // when the sweep runs
		kept  bool
	}{
		{"live session, an hour on", false, time.Hour, true},
		{"no final pass, a day on", false, 25 * time.Hour, false},
		{"final pass seen, still running", true, 10 * time.Minute, true},
		{"final pass done", true, 16 * time.Minute, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newLedger(LedgerConfig{})
			l.add(fs[0], "evt_alert", PassLive, t0)
			if tc.final {
				l.cover(s.Session, event.PassFinal, s.Timeline, t0)
			}
			l.sweep(t0.Add(tc.after))
			if got := l.match(fs[0]) != nil; got != tc.kept {
				t.Fatalf("kept %v, want %v", got, tc.kept)
			}
		})
	}
}

// segmentMsg is the transcript record of s (word timings kept) made by
// proc, sealed under testKeys.
func segmentMsg(t *testing.T, s Segment, proc *event.Processing) bus.Message {
	t.Helper()
	tl := s.Timeline
	e, err := event.New(event.TypeTranscript, event.Producer{Name: "test"}, proc, s.Room, s.Session, s.Speaker, &tl,
		event.TranscriptSegment{Language: "en", AvgLogProb: s.AvgLogProb, NoSpeechProb: s.NoSpeechProb, Speech: s.Speech})
	if err != nil {
		t.Fatal(err)
	}
	data := event.TranscriptSegmentData{Text: s.Text}
	for _, w := range s.Words {
		data.Words = append(data.Words, event.TranscriptWord{Word: w.Text, FirstSample: w.FirstSample, LastSample: w.LastSample, Probability: w.Probability})
	}
	if err := e.Seal(context.Background(), testKeys, data); err != nil {
		t.Fatal(err)
	}
	b, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return bus.Message{Topic: event.TopicTranscripts, Key: []byte(s.Room), Value: b}
}

// A settled batch puts two live lines in one segment, with its word times
// drifted by about a second (as Whisper's are in a long batch): both live
// alerts are still supported, none is marked "not in settled text".
func TestRevisionWordDriftIsNoUpdate(t *testing.T) {
	live1 := seg("", "p1_m", "trk_m", 0, "i know where you live", 0.9)
	live2 := seg("", "p1_m", "trk_m", 2.5, "i am going to kill you", 0.9)
	settled := seg("", "p1_m", "trk_m", 0, "i know where you live i am going to kill you", 0.9)
	for i := range settled.Words { // 0.2 s a word: the second line lands 1.5 s early
		settled.Words[i].FirstSample = int64(i) * 9600
		settled.Words[i].LastSample = int64(i)*9600 + 9599
	}
	// The segment's own range still covers both lines' audio.
	next := seg("", "p1_m", "trk_m", 8, "see you at the game tonight", 0.9)
	st, feed, out := feedStage(t, StageConfig{Logger: quiet(), RateLimit: RateLimit{Every: -1}})
	stop := startStage(t, st)
	msgs := []bus.Message{segmentMsg(t, live1, procLive), segmentMsg(t, live2, procLive), segmentMsg(t, settled, procSettled), segmentMsg(t, next, procSettled)}
	feed.WaitAcked(t, feed.Push(msgs...)...)
	stop()
	got := decodeRevisionOutput(t, out.Topic(event.TopicAlerts))
	if got.alerts[PassLive] != 2 || len(got.updated) != 0 || got.alerts[event.PassSettled] != 0 {
		t.Fatalf("alerts by pass %v, updates %+v; want two live alerts and nothing else", got.alerts, got.updated)
	}
}
