package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/e2e"
	"github.com/earshot/earshot/internal/speakerbot"
	"github.com/earshot/earshot/internal/speech"
)

// An alert line the load says, and the category the default policy gives
// it.
type alertLine struct{ text, category string }

// The scripted alert lines: one of each per room (the first speaker says
// the threat as its second line, the second speaker the phone number as
// its last), so that a fault between them has alerts on both sides.
var alertLines = []struct {
	alertLine
	at int // the line's position in the speaker's clip
}{
	{alertLine{"If anyone leaks this I will find you and hurt you.", "abuse.threat"}, 1},
	{alertLine{"If you want the details, call me on five five five, one two three, four five six seven.", "pii.phone"}, 3},
}

// The filler: what the speakers say besides the alert lines.
var filler = []string{
	"Welcome to the product roadmap room. Thanks for joining so early.",
	"The beta opens on the fourth of March for everyone on the waiting list.",
	"Can we start with the launch dates and the pricing for schools?",
	"I think we should talk about the schedule for next week.",
	"The meeting will end at five o'clock today.",
	"Please keep the conversation friendly and respectful.",
}

// The load's pauses in sending, as the load generator has them:
// the second speaker of every room mutes (sends nothing) for muteFor in
// the pause after its first line; the first speaker of the first room
// leaves the room in the pause after its third line and joins again
// rejoinFor later, before its last line. Each sits in a pause, so no line
// is cut, and the file pauses meanwhile, so every line is still said.
const (
	muteFor                = 8 * time.Second
	rejoinFor              = 6 * time.Second
	muteAfter, rejoinAfter = 0, 2 // the line the window follows
)

// Load is the speaker bots of a run: Rooms × Speakers, each saying a few
// filler lines and (the first two speakers of a room) one alert line,
// with pauses of about twice the line's length between lines, so that a
// speaker talks about a third of the time; some mute for a while, one
// leaves and rejoins (see muteFor).
type Load struct {
	h        *Harness
	Speakers []*Talker
	Duration time.Duration // the longest clip
}

// Talker is one speaker bot in one room.
type Talker struct {
	*e2e.Speaker
	Room    uint64
	Alert   *alertLine // the alert line it says, if any
	started time.Time
}

// StartLoad renders the clips and starts every bot.
func (h *Harness) StartLoad() *Load {
	t := h.t
	t.Helper()
	tools := e2e.SpeechTools(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	l := &Load{h: h}
	if err := os.MkdirAll(filepath.Join(h.dir, "load"), 0o700); err != nil {
		t.Fatal(err)
	}
	n := 0
	for ri, room := range h.Rooms {
		for s := range h.cfg.Speakers {
			var items []speech.Item
			var al *alertLine
			at := -1
			if s < len(alertLines) {
				al, at = &alertLines[s].alertLine, alertLines[s].at
			}
			for k := range 4 {
				text := filler[(n+k)%len(filler)]
				if k == at {
					text = al.text
				}
				items = append(items, speech.Item{Kind: speech.KindSpeech, Text: text},
					speech.Item{Kind: speech.KindPause, DurMS: 5000 + 500*((n+k)%3)})
			}
			name := fmt.Sprintf("r%d-s%d", ri, s)
			clip, err := tools.Synthesize(ctx, items, filepath.Join(h.dir, "load", name+".opus"))
			if err != nil {
				t.Fatalf("render %s: %v", name, err)
			}
			tk := &Talker{Speaker: &e2e.Speaker{Name: name, Feed: 1_000_000 + randN(1_000_000_000), Clip: clip}, Room: room, Alert: al}
			paused := time.Duration(0)
			if s == 1 {
				tk.Mutes = []speakerbot.Window{{At: inPauseAfter(t, clip, muteAfter), For: muteFor}}
				paused += muteFor
			}
			if s == 0 && ri == 0 {
				tk.Rejoins = []speakerbot.Window{{At: inPauseAfter(t, clip, rejoinAfter), For: rejoinFor}}
				paused += rejoinFor
			}
			l.Speakers = append(l.Speakers, tk)
			l.Duration = max(l.Duration, time.Duration(clip.DurationMS)*time.Millisecond+paused)
			n++
		}
	}
	for _, tk := range l.Speakers {
		tk.started = time.Now()
		tk.Start(t, h.Janus, tk.Room)
	}
	return l
}

// inPauseAfter is the audio offset 2 s into the pause after speech line k
// of clip (every pause is at least 5 s long).
func inPauseAfter(t testing.TB, clip speech.Clip, k int) time.Duration {
	t.Helper()
	n := 0
	for _, c := range clip.Cues {
		if c.Kind != speech.KindSpeech {
			continue
		}
		if n == k {
			return time.Duration(c.EndMS)*time.Millisecond + 2*time.Second
		}
		n++
	}
	t.Fatalf("clip %s has no speech line %d", clip.Path, k)
	return 0
}

// Pause is a span in which a bot sent nothing: muted, or out of the room
// between a leave and its rejoin, as its publish log has it.
type Pause struct {
	Talker   *Talker
	Rejoin   bool // left and joined again (else muted)
	From, To time.Time
}

// Pauses returns every talker's pauses from the publish logs; a pause
// whose end is missing is an error (the bot never resumed).
func (l *Load) Pauses() []Pause {
	t := l.h.t
	var out []Pause
	for _, tk := range l.Speakers {
		var open *Pause
		for _, e := range tk.Entries(t) {
			switch e.Event {
			case speakerbot.EventMute, speakerbot.EventLeave:
				open = &Pause{Talker: tk, Rejoin: e.Event == speakerbot.EventLeave, From: *e.UTC}
			case speakerbot.EventUnmute, speakerbot.EventJoin:
				if open == nil {
					t.Errorf("speaker %s: publish log has %s without its start", tk.Name, e.Event)
					continue
				}
				open.To = *e.UTC
				out = append(out, *open)
				open = nil
			}
		}
		if open != nil {
			t.Errorf("speaker %s: a pause from %s never ended", tk.Name, open.From.Format("15:04:05.000"))
		}
	}
	return out
}

// Wait waits until every bot has played its clip.
func (l *Load) Wait() {
	for _, tk := range l.Speakers {
		tk.Wait(l.h.t, l.Duration+3*time.Minute)
	}
}

// Line is one published line with who said it where.
type Line struct {
	e2e.Line
	Talker  *Talker
	Speaker string // its pseudonym
	Room    string // its pseudonym
	Alert   string // the category when it is a scripted alert line
}

// Lines returns every published speech line of the publish logs.
func (l *Load) Lines() []Line {
	var out []Line
	for _, tk := range l.Speakers {
		for _, ln := range tk.Lines(l.h.t) {
			x := Line{Line: ln, Talker: tk, Speaker: l.h.Pseud.Person(strconv.FormatUint(tk.Feed, 10)),
				Room: l.h.Pseud.Room(strconv.FormatUint(tk.Room, 10))}
			if tk.Alert != nil && ln.Text == tk.Alert.text {
				x.Alert = tk.Alert.category
			}
			out = append(out, x)
		}
	}
	return out
}

// timeTolerance is how far a transcript's or alert's timeline may reach
// past the line it belongs to (jitter buffer, chunking, the bot's lead-in
// to its pacing schedule).
const timeTolerance = 500 * time.Millisecond

func (ln Line) overlaps(speaker string, tl *event.Timeline) bool {
	if tl == nil || speaker != ln.Speaker {
		return false
	}
	return tl.Start().Before(ln.End.Add(timeTolerance)) && tl.End().After(ln.Start.Add(-timeTolerance))
}

// --- What the pipeline made of it ---------------------------------------------

// Events reads topic from the run's start, deduplicated by event ID (as
// every reader does), keeping only the run's rooms; dups counts the
// duplicates dropped.
func (h *Harness) Events(topic string) (out []*event.Envelope, dups int) {
	t := h.t
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	recs, err := e2e.ReadTopic(ctx, h.Admin, topic, h.From[topic])
	if err != nil {
		t.Fatalf("read %s: %v", topic, err)
	}
	rooms := map[string]bool{}
	for _, r := range h.Rooms {
		rooms[h.Pseud.Room(strconv.FormatUint(r, 10))] = true
	}
	seen := map[string]bool{}
	for _, r := range recs {
		e, err := event.Decode(r.Value)
		if err != nil {
			t.Errorf("%s@%d/%d: not an event: %v", topic, r.Partition, r.Offset, err)
			continue
		}
		if !rooms[e.Room] {
			continue
		}
		if seen[e.EventID] {
			dups++
			continue
		}
		seen[e.EventID] = true
		out = append(out, e)
	}
	return out, dups
}

// Shown is the transcript a reader shows: one text per stretch of speech,
// as event.PreferredTranscripts picks it among the revisions, in time
// order; all is every transcript (deduplicated by event ID).
func (h *Harness) Shown() (shown, all []*event.Envelope, dups int) {
	all, dups = h.Events(event.TopicTranscripts)
	shown = event.PreferredTranscripts(all)
	sort.SliceStable(shown, func(i, j int) bool { return shown[i].Timeline.Start().Before(shown[j].Timeline.Start()) })
	return shown, all, dups
}

// Coverage is the shown transcripts per line, and those of no line.
type Coverage struct {
	PerLine [][]*event.Envelope
	Strays  []*event.Envelope
	// Twice are pairs of transcripts of one revision (live, settled, ...)
	// sharing audio of one track: the same speech transcribed twice,
	// under different event IDs, so no reader's dedupe removes it.
	Twice [][2]*event.Envelope
}

// Cover assigns each shown transcript to the line of its speaker it
// overlaps, and finds the audio of all transcribed twice in a revision.
func Cover(lines []Line, shown, all []*event.Envelope) Coverage {
	c := Coverage{PerLine: make([][]*event.Envelope, len(lines))}
	for _, e := range shown {
		hit := false
		for i, ln := range lines {
			if ln.overlaps(e.Speaker, e.Timeline) {
				c.PerLine[i] = append(c.PerLine[i], e)
				hit = true
				break
			}
		}
		if !hit {
			c.Strays = append(c.Strays, e)
		}
	}
	for i := range all {
		for j := i + 1; j < len(all); j++ {
			a, b := all[i], all[j]
			if a.Revision == b.Revision && a.Timeline != nil && b.Timeline != nil && a.Timeline.Overlaps(*b.Timeline) {
				c.Twice = append(c.Twice, [2]*event.Envelope{a, b})
			}
		}
	}
	return c
}

// Alert is one alert event with its clear fields.
type Alert struct {
	E        *event.Envelope
	Category string
}

// Alerts reads the run's raised alerts (deduplicated by event ID).
func (h *Harness) Alerts() (out []Alert, dups int) {
	evs, dups := h.Events(event.TopicAlerts)
	for _, e := range evs {
		if e.Type != event.TypeAlert {
			continue // alert.updated and the like: no new alert
		}
		var a event.Alert
		if len(e.Payload) > 0 {
			_ = json.Unmarshal(e.Payload, &a)
		}
		out = append(out, Alert{E: e, Category: a.Category})
	}
	return out, dups
}

// Delivery is one alert as the webhook received it.
type Delivery struct {
	ID, Category, Room, Speaker string
	Time                        time.Time
}

// Deliveries parses the webhook's POSTs (the generic JSON format:
// {"type", "timestamp", "data": alert}) and keeps the first of each
// webhook-id, as a receiver following Standard Webhooks does: delivery is
// at least once (a notifier killed between its POST and its offset commit
// posts again after the takeover, with the same ID). repeats counts the
// POSTs dropped.
func (h *Harness) Deliveries() (out []Delivery, repeats int) {
	seen := map[string]bool{}
	for _, p := range h.Hook.Posts() {
		var body struct {
			Data *struct {
				ID       string    `json:"id"`
				Category string    `json:"category"`
				Room     string    `json:"room"`
				Speaker  string    `json:"speaker"`
				Time     time.Time `json:"time"`
			} `json:"data"`
		}
		if err := json.Unmarshal(p.Body, &body); err != nil || body.Data == nil {
			h.t.Errorf("webhook POST is not an alert: %v: %.200s", err, p.Body)
			continue
		}
		d := body.Data
		if p.ID == "" || p.ID != d.ID {
			h.t.Errorf("webhook POST of alert %s has webhook-id %q: a receiver cannot drop its repeats", d.ID, p.ID)
		}
		if seen[p.ID] {
			repeats++
			continue
		}
		seen[p.ID] = true
		out = append(out, Delivery{ID: d.ID, Category: d.Category, Room: d.Room, Speaker: d.Speaker, Time: d.Time})
	}
	return out, repeats
}

// AlertReport is what became of the scripted alert lines.
type AlertReport struct {
	Raised    map[int][]Alert    // line index -> alerts of its category on it
	Delivered map[int][]Delivery // line index -> deliveries of its category in its room at its time
	Unmatched []Delivery         // deliveries of no scripted line
}

// MatchAlerts matches alerts and deliveries to the scripted alert lines.
func MatchAlerts(lines []Line, alerts []Alert, deliveries []Delivery) AlertReport {
	r := AlertReport{Raised: map[int][]Alert{}, Delivered: map[int][]Delivery{}}
	for i, ln := range lines {
		if ln.Alert == "" {
			continue
		}
		for _, a := range alerts {
			if a.Category == ln.Alert && ln.overlaps(a.E.Speaker, a.E.Timeline) {
				r.Raised[i] = append(r.Raised[i], a)
			}
		}
	}
	for _, d := range deliveries {
		hit := false
		for i, ln := range lines {
			if ln.Alert == "" || d.Category != ln.Alert || d.Room != ln.Room {
				continue
			}
			if !d.Time.Before(ln.Start.Add(-timeTolerance)) && d.Time.Before(ln.End.Add(timeTolerance)) {
				r.Delivered[i] = append(r.Delivered[i], d)
				hit = true
				break
			}
		}
		if !hit {
			r.Unmatched = append(r.Unmatched, d)
		}
	}
	return r
}

// Describe names a line for failure messages (never its text: the load's
// own script, but the habit holds).
func (ln Line) Describe() string {
	return fmt.Sprintf("%s line at %s–%s", ln.Talker.Name, ln.Start.Format("15:04:05.000"), ln.End.Format("15:04:05.000"))
}

// instances lists the producer instances of events.
func instances(es []*event.Envelope) string {
	var out []string
	for _, e := range es {
		if !slices.Contains(out, e.Producer.Instance) {
			out = append(out, e.Producer.Instance)
		}
	}
	return strings.Join(out, ",")
}
