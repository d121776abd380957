package speakerbot

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/earshot/earshot/ingest/janus"
)

// Publish-log event names.
const (
	EventStart  = "start"  // first packet sent
	EventCue    = "cue"    // a cue's audio was sent
	EventMute   = "mute"   // sending paused (the file pauses too)
	EventUnmute = "unmute" // sending resumed
	EventLeave  = "leave"  // left the room (rejoin window)
	EventJoin   = "join"   // joined again and publishing
	EventEnd    = "end"    // last packet sent, or stopped
)

// LogEntry is one line of the publish log, the ground truth that timing
// and latency checks compare against. UTC times are wall-clock times at
// which the bot handed the packet to the network stack.
type LogEntry struct {
	Event   string     `json:"event"`
	UTC     *time.Time `json:"utc,omitempty"`
	Room    janus.ID   `json:"room,omitzero"`
	FeedID  janus.ID   `json:"feed_id,omitzero"`
	Display string     `json:"display,omitempty"`
	File    string     `json:"file,omitempty"`
	// DurationMS is the file's playable duration (start lines).
	DurationMS int64 `json:"duration_ms,omitempty"`

	// Cue fields: what the cue sheet says, and when its first and last
	// samples were sent.
	Kind     string     `json:"kind,omitempty"`
	Text     string     `json:"text,omitempty"`
	Voice    string     `json:"voice,omitempty"`
	FreqHz   float64    `json:"freq_hz,omitempty"`
	StartMS  *int64     `json:"start_ms,omitempty"`
	EndMS    *int64     `json:"end_ms,omitempty"`
	StartUTC *time.Time `json:"start_utc,omitempty"`
	EndUTC   *time.Time `json:"end_utc,omitempty"`
	// StartSchedUTC and EndSchedUTC are the same instants on the pacing
	// schedule, which the RTP timestamps follow exactly: they differ from
	// StartUTC and EndUTC only when sending stalled (a loaded machine).
	// Compare positions on a decoded (RTP) timeline against these, and
	// latencies against the send times.
	StartSchedUTC *time.Time `json:"start_sched_utc,omitempty"`
	EndSchedUTC   *time.Time `json:"end_sched_utc,omitempty"`

	// AtMS is the audio offset of a mute, unmute, leave or join.
	AtMS *int64 `json:"at_ms,omitempty"`
	// Packets is the number of packets sent (end lines).
	Packets int    `json:"packets,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// logWriter writes one JSON object per line; each line is a single Write,
// so a reader tailing the file never sees half a line from us.
type logWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *logWriter) write(e LogEntry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("publish log: %w", err)
	}
	b = append(b, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.w.Write(b); err != nil {
		return fmt.Errorf("publish log: %w", err)
	}
	return nil
}

func utcPtr(t time.Time) *time.Time {
	u := t.UTC()
	return &u
}

func i64Ptr(v int64) *int64 { return &v }
