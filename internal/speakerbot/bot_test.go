package speakerbot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/earshot/earshot/ingest/janus"
	"github.com/earshot/earshot/internal/testbed"
)

// fakeRoom stands in for Janus: every connect is a publisher that records
// the packets written to it.
type fakeRoom struct {
	mu      sync.Mutex
	joins   []janus.ID // feed asked for at each connect
	packets []rtp.Packet
	closed  int
}

type fakePub struct {
	room *fakeRoom
	feed janus.ID
}

func (r *fakeRoom) connect(_ context.Context, feed janus.ID) (sink, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.joins = append(r.joins, feed)
	if feed.IsZero() {
		feed = janus.NumID(4242)
	}
	return &fakePub{room: r, feed: feed}, nil
}

func (p *fakePub) WriteRTP(pkt *rtp.Packet) error {
	p.room.mu.Lock()
	defer p.room.mu.Unlock()
	c := *pkt
	c.Payload = bytes.Clone(pkt.Payload)
	p.room.packets = append(p.room.packets, c)
	return nil
}

func (p *fakePub) FeedID() janus.ID { return p.feed }

func (p *fakePub) Close() error {
	p.room.mu.Lock()
	defer p.room.mu.Unlock()
	p.room.closed++
	return nil
}

func newTestBot(t *testing.T, log io.Writer, mutes, rejoins []Window) *Bot {
	t.Helper()
	b, err := New(Config{
		JanusURL: "http://127.0.0.1:1/janus", Interface: "lo", Room: janus.NumID(1234),
		Display: "Speaker T", File: "testdata/tone.opus", Log: log, Mutes: mutes, Rejoins: rejoins,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func parseLog(t *testing.T, b []byte) []LogEntry {
	t.Helper()
	var out []LogEntry
	dec := json.NewDecoder(bytes.NewReader(b))
	for dec.More() {
		var e LogEntry
		if err := dec.Decode(&e); err != nil {
			t.Fatalf("publish log line: %v", err)
		}
		out = append(out, e)
	}
	return out
}

func events(log []LogEntry) []string {
	out := make([]string, len(log))
	for i, e := range log {
		out[i] = e.Event
	}
	return out
}

func TestPlaySendsEveryPacketInOrder(t *testing.T) {
	var log bytes.Buffer
	b := newTestBot(t, &log, nil, nil)
	room := &fakeRoom{}
	if err := b.run(context.Background(), room.connect); err != nil {
		t.Fatal(err)
	}
	n := len(b.File().Packets)
	if len(room.packets) != n {
		t.Fatalf("sent %d packets, want %d", len(room.packets), n)
	}
	for i, p := range room.packets {
		if !bytes.Equal(p.Payload, b.File().Packets[i].Data) {
			t.Fatalf("packet %d payload differs from the file", i)
		}
		if p.Marker != (i == 0) {
			t.Errorf("packet %d marker %v", i, p.Marker)
		}
		if i == 0 {
			continue
		}
		prev := room.packets[i-1]
		if p.SequenceNumber != prev.SequenceNumber+1 || p.Timestamp-prev.Timestamp != 960 {
			t.Fatalf("packet %d: seq %d ts %d after seq %d ts %d", i, p.SequenceNumber, p.Timestamp, prev.SequenceNumber, prev.Timestamp)
		}
	}
	if room.closed != 1 {
		t.Errorf("publisher closed %d times, want 1", room.closed)
	}

	entries := parseLog(t, log.Bytes())
	if got := events(entries); len(got) != 3 || got[0] != EventStart || got[1] != EventCue || got[2] != EventEnd {
		t.Fatalf("log events %v, want start, cue, end", got)
	}
	start, cue, end := entries[0], entries[1], entries[2]
	if start.FeedID != janus.NumID(4242) || start.Room != janus.NumID(1234) || start.DurationMS != 1200 || start.UTC == nil {
		t.Errorf("start line %+v", start)
	}
	if cue.Kind != "tone" || cue.FreqHz != 440 || *cue.StartMS != 200 || *cue.EndMS != 500 {
		t.Errorf("cue line %+v", cue)
	}
	// On the schedule (which RTP timestamps follow) the tone lasts exactly
	// its 300 ms; send times are real clock readings, so only ordered.
	if d := cue.EndSchedUTC.Sub(*cue.StartSchedUTC); d < 300*time.Millisecond-time.Microsecond || d > 300*time.Millisecond+time.Microsecond {
		t.Errorf("scheduled tone length %v, want 300ms", d)
	}
	if !cue.StartUTC.After(*start.UTC) || !cue.EndUTC.After(*cue.StartUTC) || !end.UTC.After(*cue.EndUTC) {
		t.Errorf("times out of order: start %v cue %v..%v end %v", start.UTC, cue.StartUTC, cue.EndUTC, end.UTC)
	}
	if end.Packets != n || end.Reason != "" {
		t.Errorf("end line %+v", end)
	}
}

func TestPlayMuteAndRejoin(t *testing.T) {
	var log bytes.Buffer
	mute := Window{At: 300 * time.Millisecond, For: 200 * time.Millisecond}
	rejoin := Window{At: 700 * time.Millisecond, For: 100 * time.Millisecond}
	b := newTestBot(t, &log, []Window{mute}, []Window{rejoin})
	room := &fakeRoom{}
	if err := b.run(context.Background(), room.connect); err != nil {
		t.Fatal(err)
	}
	// The rejoin asks for the feed ID the first join got.
	if len(room.joins) != 2 || !room.joins[0].IsZero() || room.joins[1] != janus.NumID(4242) {
		t.Fatalf("joins %v, want [0 4242]", room.joins)
	}
	if room.closed != 2 {
		t.Errorf("publisher closed %d times, want 2", room.closed)
	}
	if len(room.packets) != len(b.File().Packets) {
		t.Fatalf("sent %d packets, want all %d", len(room.packets), len(b.File().Packets))
	}
	// Each pause shows as a timestamp jump of at least its length, with the
	// sequence numbers contiguous, and a marker on the first packet after it.
	jumps := 0
	for i := 1; i < len(room.packets); i++ {
		p, prev := room.packets[i], room.packets[i-1]
		if p.SequenceNumber != prev.SequenceNumber+1 {
			t.Fatalf("sequence gap at packet %d", i)
		}
		if d := p.Timestamp - prev.Timestamp; d != 960 {
			jumps++
			if !p.Marker {
				t.Errorf("no marker after the pause at packet %d", i)
			}
			if d < 960+9600/2 { // at least 100 ms (the shorter window) more
				t.Errorf("timestamp jump %d at packet %d is shorter than the pause", d, i)
			}
		}
	}
	if jumps != 2 {
		t.Errorf("%d timestamp jumps, want 2", jumps)
	}
	entries := parseLog(t, log.Bytes())
	want := []string{EventStart, EventMute, EventUnmute, EventCue, EventLeave, EventJoin, EventEnd}
	if got := events(entries); len(got) != len(want) {
		t.Fatalf("log events %v, want %v", got, want)
	} else {
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("log events %v, want %v", got, want)
			}
		}
	}
	// The mute falls inside the tone (200-500 ms), so on the schedule the
	// tone spans its 300 ms plus at least the 200 ms pause.
	cue := entries[3]
	if d := cue.EndSchedUTC.Sub(*cue.StartSchedUTC); d < 500*time.Millisecond {
		t.Errorf("scheduled tone span %v, want >= 500ms", d)
	}
	if *entries[1].AtMS < 300 || *entries[4].AtMS < 700 {
		t.Errorf("pause offsets %d and %d ms", *entries[1].AtMS, *entries[4].AtMS)
	}
}

func TestRunContextCancelLogsEnd(t *testing.T) {
	var log testbed.SyncBuffer
	b := newTestBot(t, &log, []Window{{At: 100 * time.Millisecond, For: time.Hour}}, nil)
	room := &fakeRoom{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.run(ctx, room.connect) }()
	deadline := time.After(30 * time.Second)
	for {
		if bytes.Contains(log.Bytes(), []byte(`"event":"mute"`)) {
			break
		}
		select {
		case <-deadline:
			t.Fatal("never muted")
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("run returned %v, want context.Canceled", err)
	}
	entries := parseLog(t, log.Bytes())
	last := entries[len(entries)-1]
	if last.Event != EventEnd || last.Reason == "" || last.Packets == 0 {
		t.Errorf("last line %+v, want an end with a reason", last)
	}
}

func TestNewValidates(t *testing.T) {
	var log bytes.Buffer
	base := Config{JanusURL: "http://x/janus", Interface: "esj0", Room: janus.NumID(1), File: "testdata/tone.opus", Log: &log}
	cases := map[string]func(*Config){
		"no url":        func(c *Config) { c.JanusURL = "" },
		"no iface":      func(c *Config) { c.Interface = "" },
		"no room":       func(c *Config) { c.Room = janus.ID{} },
		"no file":       func(c *Config) { c.File = "" },
		"no log":        func(c *Config) { c.Log = nil },
		"missing file":  func(c *Config) { c.File = "testdata/nope.opus" },
		"missing cues":  func(c *Config) { c.CuesFile = "testdata/nope.json" },
		"bad window":    func(c *Config) { c.Mutes = []Window{{At: time.Second}} },
		"not opus file": func(c *Config) { c.File = "testdata/tone.opus.cues.json" },
	}
	for name, mod := range cases {
		t.Run(name, func(t *testing.T) {
			c := base
			mod(&c)
			if _, err := New(c); err == nil {
				t.Fatal("no error")
			}
		})
	}
	b, err := New(base)
	if err != nil {
		t.Fatal(err)
	}
	if b.Cues() == nil || len(b.Cues().Cues) != 1 {
		t.Fatalf("cue sheet next to the file not loaded: %+v", b.Cues())
	}
}
