package policy

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/bustest"
)

// roomTranscript is a live transcript of room.
func roomTranscript(t *testing.T, room string, text string) bus.Message {
	t.Helper()
	return transcriptMsg(t, transcriptSpec{room: room, session: "ses_" + room, track: "trk_" + room, text: text})
}

// TestRoomWindowsBounded: the stage keeps windows of the rooms live now,
// at most Rooms.Max of them, and forgets a room idle past Rooms.Idle.
func TestRoomWindowsBounded(t *testing.T) {
	var (
		mu  sync.Mutex
		now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); defer mu.Unlock(); now = now.Add(d) }
	st, feed, _ := feedStage(t, StageConfig{Rooms: RoomLimits{Idle: 5 * time.Minute, Max: 10}, Now: clock})
	bustest.Start(t, st.Run)

	for i := range 50 {
		advance(time.Second)
		feed.WaitAcked(t, feed.Push(roomTranscript(t, fmt.Sprintf("r1_room%02d", i), "the weather is lovely today"))...)
		if n := st.Rooms(); n > 10 {
			t.Fatalf("after %d rooms: %d windows held, want at most 10", i+1, n)
		}
	}
	advance(6 * time.Minute)
	feed.WaitAcked(t, feed.Push(roomTranscript(t, "r1_new", "hello again"))...)
	if n := st.Rooms(); n != 1 {
		t.Fatalf("after every other room idled past the limit: %d windows held, want 1", n)
	}
}

func TestWindowDropSpeaker(t *testing.T) {
	p, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	w := NewWindow(WindowConfig{})
	tl := event.Timeline{Track: "trk_a", FirstSample: 0, LastSample: event.SampleRate, Origin: time.Now(), Anchor: event.AnchorArrival}
	w.Push(p, Segment{ID: "a", Room: "r", Session: "s", Speaker: "p1_a", Timeline: tl, Language: "en", Speech: true, Text: "my number is four one five"})
	tl.Track, tl.FirstSample, tl.LastSample = "trk_b", event.SampleRate, 2*event.SampleRate
	w.Push(p, Segment{ID: "b", Room: "r", Session: "s", Speaker: "p1_b", Timeline: tl, Language: "en", Speech: true, Text: "sounds good"})
	w.DropSpeaker("p1_a")
	if w.Len() != 1 || w.segs[0].Speaker != "p1_b" {
		t.Fatalf("after dropping p1_a: %d segments", w.Len())
	}
}
