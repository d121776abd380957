package policy

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/earshot/earshot/event"
)

var origin = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// seg makes a segment of words on a track, starting at second `at`, each
// word 0.4 s long with probability prob.
func seg(id, speaker, track string, at float64, text string, prob float64) Segment {
	s := Segment{ID: id, Room: "r1_room", Session: "ses_1", Speaker: speaker, Text: text, Speech: true, AvgLogProb: -0.2, NoSpeechProb: 0.01}
	first := int64(at * event.SampleRate)
	n := first
	for _, w := range strings.Fields(text) {
		s.Words = append(s.Words, Word{Text: w, FirstSample: n, LastSample: n + 19199, Probability: prob})
		n += 19200
	}
	s.Timeline = event.Timeline{Track: track, FirstSample: first, LastSample: max(n-1, first), Origin: origin, Anchor: event.AnchorRTCP}
	return s
}

// halves is a US number said across two segments of two speakers:
// "<lead> two oh two five five five" at 0 s, "oh one four three" at 3.5 s.
func halves(lead string) (a, b Segment) {
	a = seg("evt_a", "p1_alice", "trk_a", 0, lead+" two oh two five five five", 0.9)
	b = seg("evt_b", "p1_bob", "trk_b", 3.5, "oh one four three", 0.9)
	return a, b
}

func categories(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Category)
	}
	slices.Sort(out)
	return out
}

func TestEvaluateDefault(t *testing.T) {
	p := mustDefault(t)
	tests := []struct {
		text string
		want []string
	}{
		{"I will kill you.", []string{"abuse.threat"}},
		{"I could kill for a coffee", nil},
		{"police said the man told her i will kill you", nil},
		{"call me on (202) 555-0143", []string{"pii.phone"}},
		{"my order number is 4111 1111 1111 1111", nil},
		{"card 4111 1111 1111 1111", []string{"pii.card"}},
		{"his number is two oh two five five five oh one four three", []string{"leak.doxxing", "pii.phone"}},
		{"she lives at forty two elm street", []string{"leak.doxxing"}},
		{"forty two elm street is a nice place", nil}, // an address alone is a signal, not an alert
		{"this is off the record", []string{"leak.off_record"}},
		{"سَأَقْتُلُكَ", []string{"abuse.threat"}},
		{"هذا الكلام بيني وبينك", []string{"leak.off_record"}},
		{"رقمه ٠٥٠ ١٢٣ ٤٥٦٧ كلموه", []string{"leak.doxxing", "pii.phone"}},
	}
	for _, tt := range tests {
		s := Segment{Text: tt.text, Speech: true}
		if got := categories(p.Evaluate(&s)); !slices.Equal(got, tt.want) {
			t.Errorf("%q: %v, want %v", tt.text, got, tt.want)
		}
	}
}

// TestSpeechGate: text from audio without detected speech never alerts.
func TestSpeechGate(t *testing.T) {
	p := mustDefault(t)
	s := seg("s1", "p1_a", "trk_a", 0, "i will kill you", 0.9)
	if len(p.Evaluate(&s)) != 1 {
		t.Fatal("no finding on speech")
	}
	noVAD := s
	noVAD.Speech = false
	if got := p.Evaluate(&noVAD); got != nil {
		t.Errorf("speech false: %v", got)
	}
	noisy := s
	noisy.NoSpeechProb = 0.8
	if got := p.Evaluate(&noisy); got != nil {
		t.Errorf("no_speech_prob 0.8: %v", got)
	}
	w := NewWindow(WindowConfig{})
	if got := w.Push(p, noVAD); got != nil || w.Len() != 0 {
		t.Errorf("window took a segment without speech: %v", got)
	}
}

func TestConfidence(t *testing.T) {
	p := mustDefault(t)
	score := func(s Segment) float64 {
		fs := p.Evaluate(&s)
		if len(fs) == 0 {
			return 0
		}
		return fs[0].Score
	}
	clear := seg("s", "p", "t", 0, "i will kill you", 0.95)
	unsure := seg("s", "p", "t", 0, "i will kill you", 0.4)
	garbled := seg("s", "p", "t", 0, "i will kill you", 0.02)
	noWords := Segment{Text: "i will kill you", Speech: true, AvgLogProb: -0.3}
	someNoise := clear
	someNoise.NoSpeechProb = 0.3
	c, u, g, nw, sn := score(clear), score(unsure), score(garbled), score(noWords), score(someNoise)
	if !(c > u && u > 0) {
		t.Errorf("scores clear %.3f, unsure %.3f: want clear > unsure > 0", c, u)
	}
	if g != 0 {
		t.Errorf("garbled words scored %.3f, want dropped below min_score", g)
	}
	if want := 0.85 * (0.5 + 0.5*0.7408); nw < want-0.01 || nw > want+0.01 {
		t.Errorf("no word probabilities: %.3f, want about %.3f from avg_logprob", nw, want)
	}
	if !(sn < c && sn > 0) {
		t.Errorf("no_speech_prob 0.3: %.3f, want below %.3f", sn, c)
	}
}

func TestFindingSpans(t *testing.T) {
	p := mustDefault(t)
	s := seg("evt_1", "p1_x", "trk_1", 10, "okay so i will kill you later", 0.9)
	fs := p.Evaluate(&s)
	if len(fs) != 1 {
		t.Fatalf("findings %v", fs)
	}
	f := fs[0]
	if f.Room != "r1_room" || f.Session != "ses_1" || f.Category != "abuse.threat" || f.PolicyVersion != p.Version() || f.Severity.String() != "high" || f.Text != "i will kill you" {
		t.Errorf("finding %+v", f)
	}
	if len(f.Spans) != 1 {
		t.Fatalf("spans %+v", f.Spans)
	}
	sp := f.Spans[0]
	if sp.Segment != "evt_1" || sp.Speaker != "p1_x" || sp.FirstWord != 2 || sp.LastWord != 5 {
		t.Errorf("span %+v", sp)
	}
	if sp.Timeline.FirstSample != s.Words[2].FirstSample || sp.Timeline.LastSample != s.Words[5].LastSample || sp.Timeline.Track != "trk_1" {
		t.Errorf("span timeline %+v", sp.Timeline)
	}
}

// TestWindowAcrossSpeakers: a phone number one speaker starts and another
// finishes is found once, with both speakers' words on the timeline.
func TestWindowAcrossSpeakers(t *testing.T) {
	p := mustDefault(t)
	w := NewWindow(WindowConfig{})
	a, b := halves("her number is")
	if got := w.Push(p, a); got != nil {
		t.Fatalf("first half alone: %v", categories(got))
	}
	got := w.Push(p, b)
	if cats := categories(got); !slices.Equal(cats, []string{"leak.doxxing", "pii.phone"}) {
		t.Fatalf("findings %v", cats)
	}
	var phone Finding
	for _, f := range got {
		if f.Category == "pii.phone" {
			phone = f
		}
	}
	if phone.Value != "+12025550143" || len(phone.Spans) != 2 {
		t.Fatalf("phone %+v", phone)
	}
	if sa, sb := phone.Spans[0], phone.Spans[1]; sa.Speaker != "p1_alice" || sa.FirstWord != 3 || sa.LastWord != 8 || sb.Speaker != "p1_bob" || sb.FirstWord != 0 || sb.LastWord != 3 ||
		sa.Timeline.FirstSample != a.Words[3].FirstSample || sb.Timeline.LastSample != b.Words[3].LastSample {
		t.Errorf("spans %+v", phone.Spans)
	}
	ex := w.Excerpt(phone, 5*time.Second)
	if len(ex) != 2 || ex[0].Segment != "evt_a" || ex[1].Text != "oh one four three" {
		t.Errorf("excerpt %+v", ex)
	}
	// Nothing new after it, and a redelivered segment adds nothing.
	if got := w.Push(p, seg("evt_c", "p1_alice", "trk_a", 6, "thanks for that", 0.9)); got != nil {
		t.Errorf("third segment re-reported %v", categories(got))
	}
	if got := w.Push(p, b); got != nil {
		t.Errorf("redelivered segment reported %v", categories(got))
	}
}

func TestWindowBarriers(t *testing.T) {
	p := mustDefault(t)
	a, b := halves("call")
	w := NewWindow(WindowConfig{SameSpeakerOnly: true})
	w.Push(p, a)
	if got := w.Push(p, b); got != nil {
		t.Errorf("SameSpeakerOnly joined speakers: %v", categories(got))
	}
	late := seg("evt_b", "p1_alice", "trk_a", 12, "oh one four three", 0.9)
	w = NewWindow(WindowConfig{})
	w.Push(p, a)
	if got := w.Push(p, late); got != nil {
		t.Errorf("joined across a 9 s pause: %v", categories(got))
	}
}

// TestWindowSplitPhrase: a threat split over two segments of one speaker.
func TestWindowSplitPhrase(t *testing.T) {
	p := mustDefault(t)
	w := NewWindow(WindowConfig{})
	w.Push(p, seg("evt_1", "p1_x", "trk_x", 0, "i know where", 0.9))
	got := w.Push(p, seg("evt_2", "p1_x", "trk_x", 1.5, "you live", 0.9))
	if len(got) != 1 || got[0].Category != "abuse.threat" || len(got[0].Spans) != 2 {
		t.Errorf("findings %+v", got)
	}
}

// TestWindowOutOfOrder: the first half arriving after the second still
// completes the match, found when the late segment arrives.
func TestWindowOutOfOrder(t *testing.T) {
	p := mustDefault(t)
	w := NewWindow(WindowConfig{})
	a, b := halves("call")
	if got := w.Push(p, b); got != nil {
		t.Fatalf("%v", categories(got))
	}
	got := w.Push(p, a)
	if len(got) != 1 || got[0].Value != "+12025550143" || got[0].Spans[0].Segment != "evt_a" {
		t.Errorf("findings %+v", got)
	}
}

// TestWindowRebuild: a window rebuilt by replaying the same records
// reports nothing twice and still reports what is new.
func TestWindowRebuild(t *testing.T) {
	p := mustDefault(t)
	recs := []Segment{
		seg("evt_1", "p1_x", "trk_x", 0, "my number is two oh two five five five", 0.9),
		seg("evt_2", "p1_x", "trk_x", 3, "oh one four three", 0.9),
	}
	w := NewWindow(WindowConfig{})
	total := 0
	for _, r := range recs {
		total += len(w.Push(p, r))
	}
	if total != 1 {
		t.Fatalf("first run: %d findings", total)
	}
	rebuilt := NewWindow(WindowConfig{})
	for _, r := range recs {
		rebuilt.Push(p, r) // replay, findings discarded
	}
	for _, ww := range []*Window{w, rebuilt} {
		if got := ww.Push(p, recs[1]); got != nil {
			t.Errorf("replayed record re-reported: %v", categories(got))
		}
		if got := ww.Push(p, seg("evt_3", "p1_x", "trk_x", 6, "and i will kill you", 0.9)); len(got) != 1 || got[0].Category != "abuse.threat" {
			t.Errorf("new finding after rebuild: %v", categories(got))
		}
	}
}

func TestWindowEviction(t *testing.T) {
	p := mustDefault(t)
	w := NewWindow(WindowConfig{MaxSegments: 3, MaxSpan: 10 * time.Second})
	for i := range 5 {
		w.Push(p, seg("evt_"+string(rune('a'+i)), "p1_x", "trk_x", float64(i), "hello there", 0.9))
	}
	if w.Len() != 3 {
		t.Errorf("len %d, want 3", w.Len())
	}
	w.Push(p, seg("evt_z", "p1_x", "trk_x", 60, "hello again", 0.9))
	if w.Len() != 1 {
		t.Errorf("len %d after a minute, want 1", w.Len())
	}
	// A segment older than the window's span is still evaluated, alone.
	if got := w.Push(p, seg("evt_old", "p1_y", "trk_y", 1, "i will kill you", 0.9)); len(got) != 1 {
		t.Errorf("old segment: %v", categories(got))
	}
}

// FuzzEvaluate runs the default policy over arbitrary transcript text, as
// one segment and split into two in a window: no panics, and every
// finding's spans lie within the segments' words.
func FuzzEvaluate(f *testing.F) {
	for _, s := range []string{"i will kill you", "call two oh two five five five oh one four three", "gb82 west 1234 5698 7654 32", "john dot smith at example dot com", "سَأَقْتُلُكَ ٠٥٠ ١٢٣ ٤٥٦٧", "his number is 4111 1111 1111 1111"} {
		f.Add(s, 3)
	}
	p := mustDefault(f)
	f.Fuzz(func(t *testing.T, text string, cut int) {
		s := seg("evt_1", "p1_x", "trk_x", 0, text, 0.9)
		s.Text = text
		check := func(fs []Finding, segs ...Segment) {
			for _, fd := range fs {
				if fd.Score <= 0 || fd.Score > 1 || len(fd.Spans) == 0 {
					t.Fatalf("finding %+v", fd)
				}
				for _, sp := range fd.Spans {
					i := slices.IndexFunc(segs, func(s Segment) bool { return s.ID == sp.Segment })
					if i < 0 {
						t.Fatalf("span of unknown segment %q", sp.Segment)
					}
					if n := len(segs[i].Words); n > 0 && (sp.FirstWord < 0 || sp.LastWord >= n || sp.FirstWord > sp.LastWord) {
						t.Fatalf("span words %d..%d of %d", sp.FirstWord, sp.LastWord, n)
					}
				}
			}
		}
		check(p.Evaluate(&s), s)
		words := strings.Fields(text)
		if len(words) < 2 {
			return
		}
		k := 1 + (cut%(len(words)-1)+len(words)-1)%(len(words)-1)
		a := seg("evt_a", "p1_x", "trk_x", 0, strings.Join(words[:k], " "), 0.9)
		b := seg("evt_b", "p1_y", "trk_y", 1, strings.Join(words[k:], " "), 0.9)
		w := NewWindow(WindowConfig{})
		check(w.Push(p, a), a)
		check(w.Push(p, b), a, b)
	})
}

// TestEvaluateConcurrent: one Policy serves many goroutines (run with
// -race).
func TestEvaluateConcurrent(t *testing.T) {
	p := mustDefault(t)
	set := loadLabelled(t)
	want := make([][]string, len(set))
	for i, e := range set {
		want[i] = predicted(p, e)
	}
	errs := make(chan string, 4)
	for g := range 4 {
		go func() {
			for k := range set {
				i := (k + g*97) % len(set)
				if got := predicted(p, set[i]); !slices.Equal(got, want[i]) {
					errs <- set[i].ID
					return
				}
			}
			errs <- ""
		}()
	}
	for range 4 {
		if id := <-errs; id != "" {
			t.Errorf("%s: concurrent result differs", id)
		}
	}
}

// TestWindowTwoFindingsOneSegment: two phone numbers in one segment without
// word timings are both reported.
func TestWindowTwoFindingsOneSegment(t *testing.T) {
	p := mustDefault(t)
	s := seg("evt_1", "p1_x", "trk_x", 0, "", 0.9)
	s.Text, s.Words = "call 202 555 0143 or else 020 7946 0018", nil
	if got := NewWindow(WindowConfig{}).Push(p, s); len(got) != 2 {
		t.Errorf("findings %+v", got)
	}
}
