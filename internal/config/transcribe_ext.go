package config

import (
	"strings"
	"time"
)

// Backlog is what transcription does when engines fall behind. Kafka always
// holds the backlog (nothing is dropped); the worker measures its consumer
// lag every check_interval, exports it as a metric, and raises an
// operational alert (an alert.raised event of category
// ops.transcription_lag on earshot.ops, plus an error log line) when it
// passes lag_alert. With capacity_mode on, while the lag is over lag_alert
// the worker transcribes only flagged rooms: rooms in flagged_rooms and
// rooms with an alert or an alert action within flag_ttl (read from
// earshot.alerts and earshot.alert-actions). Chunks of other rooms are
// acknowledged without transcription, counted
// (earshot_transcribe_skipped_*) and logged per skipped range with its
// room/session, so `earshot transcribe --replay <room>/<session>` can
// transcribe them from object storage later.
type Backlog struct {
	// LagAlert is the consumer lag, in records (one record is one live
	// chunk of one track, ingest.chunk_duration of audio), that raises the
	// alert; 0 turns lag alerts and capacity mode off.
	LagAlert int `yaml:"lag_alert"`
	// CheckInterval is how often lag is measured.
	CheckInterval time.Duration `yaml:"check_interval"`
	// CapacityMode skips rooms that are not flagged while lag is over
	// LagAlert.
	CapacityMode bool `yaml:"capacity_mode"`
	// FlaggedRooms are always transcribed in capacity mode: raw room IDs
	// (pseudonymised at start-up with the identity secret) or room
	// pseudonyms (r1_...).
	FlaggedRooms []string `yaml:"flagged_rooms"`
	// FlagTTL is how long an alert or alert action keeps a room flagged.
	FlagTTL time.Duration `yaml:"flag_ttl"`
}

func defaultBacklog() Backlog {
	return Backlog{LagAlert: 3000, CheckInterval: 15 * time.Second, FlagTTL: 24 * time.Hour}
}

// validate reports every problem of the section through bad.
func (x *Backlog) validate(bad func(key, format string, a ...any)) {
	if x.LagAlert < 0 {
		bad("transcribe.backlog.lag_alert", "%d is negative: set a number of records, or 0 to turn lag alerts off", x.LagAlert)
	}
	if x.CheckInterval < time.Second {
		bad("transcribe.backlog.check_interval", "%v is under 1s: lag is asked of the brokers each time; use e.g. 15s", x.CheckInterval)
	}
	if x.CapacityMode && x.LagAlert == 0 {
		bad("transcribe.backlog.capacity_mode", "needs transcribe.backlog.lag_alert above 0: it is the lag at which rooms start being skipped")
	}
	if x.FlagTTL < 0 {
		bad("transcribe.backlog.flag_ttl", "%v is negative: use e.g. 24h, or 0 to keep rooms flagged for good", x.FlagTTL)
	}
	for _, r := range x.FlaggedRooms {
		if strings.TrimSpace(r) == "" {
			bad("transcribe.backlog.flagged_rooms", "has an empty entry: list room IDs or room pseudonyms")
		}
	}
}

// RoomLanguages sets the transcription language per room, overriding
// transcribe.language. Each entry of languages is ROOM=LANG: ROOM is a raw
// room ID (pseudonymised at start-up with the identity secret, so it must
// be exact: workers only ever see pseudonyms, and a pattern cannot be
// matched against them), a room pseudonym (r1_...), or * for every other
// room; LANG is an ISO 639-1 code ("ar", "en") or auto.
type RoomLanguages struct {
	Languages []string `yaml:"languages"`
}

func defaultRoomLanguages() RoomLanguages { return RoomLanguages{} }

// Parse returns the entries as room → language, in order.
func (x *RoomLanguages) Parse() (rooms, langs []string) {
	for _, e := range x.Languages {
		r, l, _ := strings.Cut(e, "=")
		rooms = append(rooms, strings.TrimSpace(r))
		langs = append(langs, strings.ToLower(strings.TrimSpace(l)))
	}
	return rooms, langs
}

// validate reports every problem of the section through bad.
func (x *RoomLanguages) validate(bad func(key, format string, a ...any)) {
	seen := map[string]bool{}
	for _, e := range x.Languages {
		r, l, ok := strings.Cut(e, "=")
		r, l = strings.TrimSpace(r), strings.ToLower(strings.TrimSpace(l))
		switch {
		case !ok || r == "":
			bad("transcribe.rooms.languages", "entry %q is not ROOM=LANG (e.g. 1234=ar, r1_...=en or *=en)", e)
			continue
		case l != "auto" && (len(l) < 2 || len(l) > 3 || strings.Trim(l, "abcdefghijklmnopqrstuvwxyz") != ""):
			bad("transcribe.rooms.languages", "entry %q: %q is not an ISO 639-1 code like ar or en, or auto", e, l)
		}
		if seen[r] {
			bad("transcribe.rooms.languages", "room %q is listed twice", r)
		}
		seen[r] = true
	}
}

// FinalPass is the second, non-live transcription of every ended session:
// its stored audio replayed in batches of speech as a new revision, close
// to what transcribing the whole file gives (live utterances are heard
// without context; see transcribe/README.md). It costs about as much
// engine time again as live transcription and shares the engine with it.
type FinalPass struct {
	// Enabled runs the final pass in the transcribe stage.
	Enabled bool `yaml:"enabled"`
	// Batch is how much speech goes to the engine per call.
	Batch time.Duration `yaml:"batch"`
	// Wait is the longest wait after a session ends for the segments its
	// manifest lists to be stored.
	Wait time.Duration `yaml:"wait"`
}

func defaultFinalPass() FinalPass {
	return FinalPass{Enabled: true, Batch: 25 * time.Second, Wait: 10 * time.Minute}
}

// validate reports every problem of the section through bad.
func (x *FinalPass) validate(bad func(key, format string, a ...any)) {
	if x.Enabled {
		validBatch(bad, "transcribe.final.batch", x.Batch)
	}
	if x.Wait < 0 {
		bad("transcribe.final.wait", "%v is negative: use e.g. 10m", x.Wait)
	}
}

// SettlePass is the settled revision: each track's live utterances
// transcribed again by the worker, once the speaker has said about batch
// of speech or been quiet for quiet, as one audio (the same batches as the
// final pass, while the room is still live). Best effort: a batch the
// worker cannot take at once (queue full, worker behind on live audio,
// shutdown) is dropped, counted and left to the final pass. It costs
// engine time beside the live pass.
type SettlePass struct {
	// Enabled runs the settled pass in every transcription worker.
	Enabled bool `yaml:"enabled"`
	// Batch is how much of a speaker's speech goes to the engine per call.
	Batch time.Duration `yaml:"batch"`
	// Quiet settles a speaker's last words after this long without speech.
	Quiet time.Duration `yaml:"quiet"`
	// Queue bounds the batches waiting for the engine per worker.
	Queue int `yaml:"queue"`
}

func defaultSettlePass() SettlePass {
	return SettlePass{Enabled: true, Batch: 25 * time.Second, Quiet: 15 * time.Second, Queue: 16}
}

// validate reports every problem of the section through bad.
func (x *SettlePass) validate(bad func(key, format string, a ...any)) {
	if !x.Enabled {
		return
	}
	validBatch(bad, "transcribe.settle.batch", x.Batch)
	if x.Quiet < time.Second {
		bad("transcribe.settle.quiet", "%v is under 1s: a pause between sentences would cut batches short; use e.g. 15s", x.Quiet)
	}
	if x.Queue < 1 {
		bad("transcribe.settle.queue", "%d: at least 1 batch must be able to wait; use e.g. 16", x.Queue)
	}
}

// validBatch checks a second pass's batch length: speech spliced into one
// engine call must fit Whisper's 30 s window.
func validBatch(bad func(key, format string, a ...any), key string, d time.Duration) {
	if d <= 0 || d > 28*time.Second {
		bad(key, "%v is outside (0, 28s]: a batch must fit Whisper's 30 s window; 25s is a good value", d)
	}
}
