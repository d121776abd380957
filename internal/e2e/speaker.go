package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/earshot/earshot/ingest/janus"
	"github.com/earshot/earshot/internal/speakerbot"
	"github.com/earshot/earshot/internal/speech"
	"github.com/earshot/earshot/internal/testbed"
)

// SpeechTools returns the test bed's speech tools.
func SpeechTools(t testing.TB) speech.Tools {
	t.Helper()
	tools, err := speech.ToolsFromEnv(testbed.Require(t, testbed.Speech))
	if err != nil {
		t.Fatal(err)
	}
	return tools
}

// Speaker is one speaker bot playing a clip into a room.
type Speaker struct {
	Name    string
	Feed    uint64
	Clip    speech.Clip
	Display string
	// LeadIn is the wait between joining and the first packet (default
	// 2 s): the ingest stage finds a publisher by polling the room (1 s in
	// these tests) and then subscribes, so audio sent at once is partly
	// missed, as it would be in a real room.
	LeadIn time.Duration
	// Mutes and Rejoins are the bot's windows at audio offsets: it stops
	// sending (mute) or leaves the room and joins again (rejoin) for a
	// while, the file paused meanwhile, as speakerbot.Config says.
	Mutes, Rejoins []speakerbot.Window

	bot  *speakerbot.Bot
	plog testbed.SyncBuffer
	logs testbed.SyncBuffer
	done chan error
}

// Start runs the bot until its file is played.
func (s *Speaker) Start(t testing.TB, ep testbed.JanusEndpoint, room uint64) {
	t.Helper()
	display := s.Display
	if display == "" {
		display = s.Name
	}
	var err error
	s.bot, err = speakerbot.New(speakerbot.Config{
		JanusURL: ep.URL, LocalAddr: ep.HostAddr, Interface: ep.HostIface,
		Room: janus.NumID(room), Display: display, FeedID: janus.NumID(s.Feed),
		File: s.Clip.Path, Log: &s.plog, LeadIn: s.leadIn(), Mutes: s.Mutes, Rejoins: s.Rejoins,
		Logger: slog.New(slog.NewTextHandler(&s.logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	s.done = make(chan error, 1)
	go func() { s.done <- s.bot.Run(context.Background()) }()
	t.Cleanup(func() {
		_ = s.bot.Close()
		if t.Failed() && s.logs.String() != "" {
			t.Logf("speaker %s log:\n%s", s.Name, Tail(s.logs.String(), 20))
		}
	})
}

func (s *Speaker) leadIn() time.Duration {
	if s.LeadIn > 0 {
		return s.LeadIn
	}
	return 2 * time.Second
}

// Wait waits for the bot to finish playing.
func (s *Speaker) Wait(t testing.TB, within time.Duration) {
	t.Helper()
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("speaker %s: %v", s.Name, err)
		}
	case <-time.After(within):
		t.Fatalf("speaker %s did not finish within %s", s.Name, within)
	}
}

// Stop ends the bot now (its room server went away, say) and returns how
// its run ended.
func (s *Speaker) Stop() error {
	_ = s.bot.Close()
	return <-s.done
}

// Entries parses the publish log.
func (s *Speaker) Entries(t testing.TB) []speakerbot.LogEntry {
	t.Helper()
	var out []speakerbot.LogEntry
	dec := json.NewDecoder(bytes.NewReader(s.plog.Bytes()))
	for dec.More() {
		var e speakerbot.LogEntry
		if err := dec.Decode(&e); err != nil {
			t.Fatalf("speaker %s: publish log: %v", s.Name, err)
		}
		out = append(out, e)
	}
	return out
}

// Line is one spoken line as the publish log has it.
type Line struct {
	Speaker string
	Text    string
	// Start and End are when the line's first and last samples were sent.
	Start, End time.Time
	// SchedStart and SchedEnd are the same on the pacing schedule (what
	// RTP timestamps, and so recorded timelines, follow).
	SchedStart, SchedEnd time.Time
}

// Lines returns the speech cues of the publish log.
func (s *Speaker) Lines(t testing.TB) []Line {
	t.Helper()
	var out []Line
	for _, e := range s.Entries(t) {
		if e.Event != speakerbot.EventCue || e.Kind != string(speech.KindSpeech) || e.StartUTC == nil || e.EndUTC == nil {
			continue
		}
		l := Line{Speaker: s.Name, Text: e.Text, Start: *e.StartUTC, End: *e.EndUTC, SchedStart: *e.StartUTC, SchedEnd: *e.EndUTC}
		if e.StartSchedUTC != nil && e.EndSchedUTC != nil {
			l.SchedStart, l.SchedEnd = *e.StartSchedUTC, *e.EndSchedUTC
		}
		out = append(out, l)
	}
	return out
}

// Talk starts the speakers together in room and waits until they are done.
func Talk(t testing.TB, ep testbed.JanusEndpoint, room uint64, speakers []*Speaker, within time.Duration) {
	t.Helper()
	for _, s := range speakers {
		s.Start(t, ep, room)
	}
	for _, s := range speakers {
		s.Wait(t, within)
	}
}
