package ingest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/ingest"
	"github.com/earshot/earshot/ingest/janus"
	"github.com/earshot/earshot/internal/speakerbot"
	"github.com/earshot/earshot/internal/speech"
	"github.com/earshot/earshot/internal/testbed"
	"github.com/earshot/earshot/record"
)

// toneHz is the frequency of the alignment tones.
const toneHz = 1000

// speechTools returns the test bed's speech tools (espeak-ng, sox, opusenc,
// opusdec).
func speechTools(t testing.TB) speech.Tools {
	t.Helper()
	tools, err := speech.ToolsFromEnv(testbed.Require(t, testbed.Speech))
	if err != nil {
		t.Fatal(err)
	}
	return tools
}

// sentences are what the speakers say; each speaker starts at its own
// place in the list.
var sentences = []string{
	"The quick brown fox jumps over the lazy dog near the river bank.",
	"Every speaker in this room is recorded for trust and safety.",
	"Please keep your microphone muted when you are not talking.",
	"We will take questions at the end of the session today.",
	"The weather this morning was cold but the afternoon was warm.",
	"A good recording keeps every word exactly where it was said.",
	"Numbers like four hundred and twelve are easy to hear.",
	"She sells sea shells by the sea shore every summer.",
	"The train to the city leaves at seven fifteen each morning.",
	"Thank you all for joining this conversation about our plans.",
	"Let us move on to the next item on the agenda.",
	"The library opens early on weekdays and closes late on Fridays.",
	"Bright stars filled the night sky above the quiet valley.",
	"Our team reviewed the report and agreed on the next steps.",
}

// speakerScript is lines sentences starting at first: each line is followed
// by a pause, a 250 ms tone and another pause (tones always sit between
// pauses of at least 600 ms, so nothing else near them has energy at
// toneHz), and every third line by a long pause, where mute and rejoin
// windows go.
func speakerScript(voice string, first, lines int) []speech.Item {
	items := []speech.Item{{Kind: speech.KindPause, DurMS: 400}}
	for i := range lines {
		items = append(items,
			speech.Item{Kind: speech.KindSpeech, Text: sentences[(first+i)%len(sentences)], Voice: voice},
			speech.Item{Kind: speech.KindPause, DurMS: 700},
			speech.Item{Kind: speech.KindTone, FreqHz: toneHz, DurMS: int(toneDur / time.Millisecond)},
			speech.Item{Kind: speech.KindPause, DurMS: 700},
		)
		if i%3 == 2 {
			items = append(items, speech.Item{Kind: speech.KindPause, DurMS: 2500})
		}
	}
	return items
}

// synthesize renders scripts in parallel into dir.
func synthesize(t testing.TB, tools speech.Tools, dir string, scripts map[string][]speech.Item) map[string]speech.Clip {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	clips := map[string]speech.Clip{}
	errs := map[string]error{}
	for name, items := range scripts {
		wg.Go(func() {
			c, err := tools.Synthesize(ctx, items, filepath.Join(dir, name+".opus"))
			mu.Lock()
			defer mu.Unlock()
			clips[name], errs[name] = c, err
		})
	}
	wg.Wait()
	for name, err := range errs {
		if err != nil {
			t.Fatalf("synthesize %s: %v", name, err)
		}
	}
	return clips
}

// longPauseNear returns the audio offset a little after the start of the
// long pause that begins closest to at: a window placed there cuts no
// speech or tone.
func longPauseNear(c speech.Clip, at time.Duration) time.Duration {
	best := time.Duration(-1)
	for _, cue := range c.Cues {
		if cue.Kind != speech.KindPause || cue.EndMS-cue.StartMS < 2000 {
			continue
		}
		off := time.Duration(cue.StartMS)*time.Millisecond + 200*time.Millisecond
		if best < 0 || (off-at).Abs() < (best-at).Abs() {
			best = off
		}
	}
	return best
}

// speaker is one speaker bot and what it published.
type speaker struct {
	name    string
	display string
	feed    uint64
	clip    speech.Clip
	mutes   []speakerbot.Window
	rejoins []speakerbot.Window
	leadIn  time.Duration

	bot    *speakerbot.Bot
	plog   testbed.SyncBuffer
	logs   testbed.SyncBuffer
	done   chan error
	result error
}

// identity is the speaker's identity as the stage sees it.
func (s *speaker) identity(field string) string {
	if field == "display" {
		return s.display
	}
	return strconv.FormatUint(s.feed, 10)
}

// start runs the bot in the background until its file is played.
func (s *speaker) start(t testing.TB, ep testbed.JanusEndpoint, room uint64) {
	t.Helper()
	var err error
	s.bot, err = speakerbot.New(speakerbot.Config{
		JanusURL: ep.URL, LocalAddr: ep.HostAddr, Interface: ep.HostIface,
		Room: janus.NumID(room), Display: s.display, FeedID: janus.NumID(s.feed),
		File: s.clip.Path, Log: &s.plog, Mutes: s.mutes, Rejoins: s.rejoins, LeadIn: s.leadIn,
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
			t.Logf("speaker %s log:\n%s", s.name, tail(s.logs.String(), 30))
		}
	})
}

// wait waits for the bot to finish playing.
func (s *speaker) wait(t testing.TB, within time.Duration) {
	t.Helper()
	select {
	case s.result = <-s.done:
		if s.result != nil {
			t.Fatalf("speaker %s: %v", s.name, s.result)
		}
	case <-time.After(within):
		t.Fatalf("speaker %s did not finish within %s", s.name, within)
	}
}

// talk starts the stage, has the speakers play their files into the
// stage's room once it is there, and waits until every track has ended.
func (h *e2e) talk(speakers []*speaker, within time.Duration) {
	h.t.Helper()
	h.start()
	h.waitJoined()
	for _, sp := range speakers {
		sp.start(h.t, h.janus, h.cfg.room)
	}
	for _, sp := range speakers {
		sp.wait(h.t, within)
	}
	h.waitTracksEnded()
}

func (s *speaker) entries(t testing.TB) []speakerbot.LogEntry {
	t.Helper()
	var out []speakerbot.LogEntry
	dec := json.NewDecoder(bytes.NewReader(s.plog.Bytes()))
	for dec.More() {
		var e speakerbot.LogEntry
		if err := dec.Decode(&e); err != nil {
			t.Fatalf("speaker %s: publish log: %v", s.name, err)
		}
		out = append(out, e)
	}
	return out
}

// pubTrack is one stretch of continuous publishing (a track, as the room
// server sees it): from the first packet sent to just after the last.
type pubTrack struct {
	start, end time.Time
	muted      time.Duration
	tones      []time.Time // scheduled send time of each tone's first sample
}

func (p pubTrack) duration() time.Duration { return p.end.Sub(p.start) }

// published reads the publish log: a new track at start and at each
// rejoin. The last packet's own length is added to the end line's time.
func (s *speaker) published(t testing.TB) []pubTrack {
	t.Helper()
	pkts := s.bot.File().Packets
	last := time.Duration(pkts[len(pkts)-1].Samples) * time.Second / event.SampleRate
	var (
		out    []pubTrack
		cur    *pubTrack
		muteAt time.Time
		tones  []time.Time
	)
	for _, e := range s.entries(t) {
		switch e.Event {
		case speakerbot.EventStart, speakerbot.EventJoin:
			cur = &pubTrack{start: *e.UTC}
		case speakerbot.EventLeave:
			cur.end = *e.UTC
			out = append(out, *cur)
			cur = nil
		case speakerbot.EventMute:
			muteAt = *e.UTC
		case speakerbot.EventUnmute:
			cur.muted += e.UTC.Sub(muteAt)
		case speakerbot.EventEnd:
			if e.Reason != "" {
				t.Fatalf("speaker %s stopped early: %s", s.name, e.Reason)
			}
			cur.end = e.UTC.Add(last)
			out = append(out, *cur)
			cur = nil
		case speakerbot.EventCue:
			if e.Kind == string(speech.KindTone) {
				tones = append(tones, *e.StartSchedUTC)
			}
		}
	}
	for _, at := range tones {
		for i := range out {
			if !at.Before(out[i].start) && at.Before(out[i].end) {
				out[i].tones = append(out[i].tones, at)
			}
		}
	}
	return out
}

// --- What was recorded -----------------------------------------------------

// recSegment is one announced segment with its object.
type recSegment struct {
	ev  *event.Envelope
	p   event.SegmentStored
	obj storedObject
}

// recTrack is one recorded track: its lifecycle, its segments in timeline
// order and their decoded audio, concatenated.
type recTrack struct {
	id      string
	speaker string
	ordinal int
	ended   *event.TrackEnded
	segs    []recSegment
	pcm     []int16
	// man is the track in its session's manifest (nil: not listed).
	man *ingest.ManifestTrack
}

func (r *recTrack) duration() time.Duration { return event.SamplesToDuration(int64(len(r.pcm))) }

// origin is the UTC time of the sample at pos, as the segment holding it
// says (a sender report may move a track's origin between segments).
func (r *recTrack) origin(pos int64) time.Time {
	for _, s := range r.segs {
		if pos <= s.ev.Timeline.LastSample {
			return s.ev.Timeline.Origin
		}
	}
	return r.segs[len(r.segs)-1].ev.Timeline.Origin
}

// position maps a UTC time onto the track's timeline.
func (r *recTrack) position(at time.Time) int64 {
	pos := event.DurationToSamples(at.Sub(r.segs[0].ev.Timeline.Origin))
	return event.DurationToSamples(at.Sub(r.origin(pos)))
}

// recording is everything a run left in Kafka and the store.
type recording struct {
	tracks     map[string]*recTrack
	segEvents  int // segment_stored events after dedupe
	segDups    int // duplicates dropped
	objects    map[string]storedObject
	lifecycle  []*event.Envelope
	chunks     []*event.Envelope
	chunkDrops float64
	manifests  map[string]*ingest.Manifest // by object key
	// tagOriginSkew is the largest difference between a segment's
	// EARSHOT_ORIGIN tag (the origin when the segment began) and the
	// origin in its event (when it was finished).
	tagOriginSkew time.Duration
}

// collect reads the run's segment_stored and lifecycle events and every
// stored object, checks that they agree (key, size, SHA-256, metadata) and
// that each track's segments are contiguous, and decodes them.
func (h *e2e) collect(tools speech.Tools) *recording {
	t := h.t
	t.Helper()
	rec := &recording{tracks: map[string]*recTrack{}, objects: h.objects()}
	track := func(id string) *recTrack {
		if rec.tracks[id] == nil {
			rec.tracks[id] = &recTrack{id: id, ordinal: -1}
		}
		return rec.tracks[id]
	}
	rec.lifecycle, _ = h.events(event.TopicLifecycle)
	for _, e := range rec.lifecycle {
		switch e.Type {
		case event.TypeTrackStarted:
			var p event.TrackStarted
			if err := e.DecodePayload(&p); err != nil {
				t.Fatal(err)
			}
			tr := track(e.Timeline.Track)
			tr.ordinal, tr.speaker = p.Ordinal, e.Speaker
			if want := event.TrackID(e.Session, e.Speaker, p.Ordinal); e.Timeline.Track != want {
				t.Errorf("track_started: track %s is not TrackID(session, speaker, %d) = %s", e.Timeline.Track, p.Ordinal, want)
			}
		case event.TypeTrackEnded:
			var p event.TrackEnded
			if err := e.DecodePayload(&p); err != nil {
				t.Fatal(err)
			}
			track(e.Timeline.Track).ended = &p
		}
	}
	rec.chunks, _ = h.events(event.TopicAudio)
	rec.chunkDrops = h.metric("earshot_ingest_chunks_dropped_total")

	var segEvents []*event.Envelope
	segEvents, rec.segDups = h.events(event.TopicSegments)
	rec.segEvents = len(segEvents)
	announced := map[string]bool{}
	for _, e := range segEvents {
		if e.Type != event.TypeSegmentStored || e.Timeline == nil {
			t.Errorf("%s: unexpected %s event on %s", e.EventID, e.Type, event.TopicSegments)
			continue
		}
		var p event.SegmentStored
		if err := e.DecodePayload(&p); err != nil {
			t.Fatal(err)
		}
		tl := *e.Timeline
		if want := event.SegmentKey(e.Room, e.Session, tl); p.Key != want {
			t.Errorf("segment %s: key %s, want SegmentKey = %s", e.EventID, p.Key, want)
		}
		announced[p.Key] = true
		obj, ok := rec.objects[p.Key]
		if !ok {
			t.Errorf("segment %s announced but not stored", p.Key)
			continue
		}
		sum := sha256.Sum256(obj.Data)
		switch {
		case hex.EncodeToString(sum[:]) != p.SHA256:
			t.Errorf("%s: bytes have sha256 %x, the event says %s", p.Key, sum, p.SHA256)
		case obj.SHA256 != p.SHA256:
			t.Errorf("%s: the store keeps sha256 %s, the event says %s", p.Key, obj.SHA256, p.SHA256)
		case int64(len(obj.Data)) != p.Size || obj.Size != p.Size:
			t.Errorf("%s: %d bytes (store says %d), the event says %d", p.Key, len(obj.Data), obj.Size, p.Size)
		}
		if tags, err := opusTags(obj.Data); err != nil {
			t.Errorf("%s: %v", p.Key, err)
		} else {
			want := map[string]string{
				record.TagTrack: tl.Track, record.TagRoom: e.Room, record.TagSession: e.Session, record.TagSpeaker: e.Speaker,
				record.TagSegment: strconv.FormatInt(p.Seq, 10), record.TagFirstSample: strconv.FormatInt(tl.FirstSample, 10),
				record.TagSampleRate: "48000",
			}
			for k, v := range want {
				if tags[k] != v {
					t.Errorf("%s: Ogg tag %s=%q, want %q", p.Key, k, tags[k], v)
				}
			}
			if o, err := time.Parse(time.RFC3339Nano, tags[record.TagOrigin]); err != nil {
				t.Errorf("%s: Ogg tag %s: %v", p.Key, record.TagOrigin, err)
			} else {
				rec.tagOriginSkew = max(rec.tagOriginSkew, o.Sub(tl.Origin).Abs())
			}
		}
		md := obj.Metadata
		if md["track"] != tl.Track || md["first-sample"] != strconv.FormatInt(tl.FirstSample, 10) ||
			md["last-sample"] != strconv.FormatInt(tl.LastSample, 10) || md["event-id"] != e.EventID {
			t.Errorf("%s: metadata %v does not match the event's timeline %+v / %s", p.Key, md, tl, e.EventID)
		}
		tr := track(tl.Track)
		if tr.speaker == "" {
			tr.speaker = e.Speaker
		}
		tr.segs = append(tr.segs, recSegment{ev: e, p: p, obj: obj})
	}
	rec.manifests = readManifests(t, rec)
	for key := range rec.manifests {
		announced[key] = true // named by session_ended instead
	}
	for key := range rec.objects {
		if !announced[key] {
			t.Errorf("object %s stored but never announced on %s", key, event.TopicSegments)
		}
	}

	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for id, tr := range rec.tracks {
		slices.SortFunc(tr.segs, func(a, b recSegment) int {
			return int(a.ev.Timeline.FirstSample - b.ev.Timeline.FirstSample)
		})
		if tr.ordinal < 0 {
			t.Errorf("track %s: no track_started event", id)
		}
		if tr.ended == nil {
			t.Errorf("track %s: no track_ended event", id)
		}
		if len(tr.segs) == 0 {
			t.Errorf("track %s: no segments", id)
			continue
		}
		next := int64(0)
		for i, s := range tr.segs {
			tl := s.ev.Timeline
			if tl.FirstSample != next {
				t.Errorf("track %s: segment %d starts at sample %d, want %d (a segment is missing or overlaps)", id, i, tl.FirstSample, next)
			}
			if s.p.Seq != int64(i) {
				t.Errorf("track %s: segment %d has seq %d", id, i, s.p.Seq)
			}
			next = tl.LastSample + 1
			path := filepath.Join(dir, fmt.Sprintf("%s-%03d.opus", id, i))
			if err := os.WriteFile(path, s.obj.Data, 0o644); err != nil {
				t.Fatal(err)
			}
			pcm, err := tools.Decode(ctx, path)
			if err != nil {
				t.Fatalf("decode %s: %v", s.p.Key, err)
			}
			if pcm.Rate != event.SampleRate || pcm.Channels != 1 {
				t.Fatalf("%s decodes to %d Hz × %d, want 48 kHz mono", s.p.Key, pcm.Rate, pcm.Channels)
			}
			if int64(pcm.Frames()) != tl.Samples() {
				t.Errorf("%s decodes to %d samples, its timeline has %d", s.p.Key, pcm.Frames(), tl.Samples())
			}
			tr.pcm = append(tr.pcm, pcm.Samples...)
		}
		if tr.ended != nil && tr.ended.Samples != next {
			t.Errorf("track %s: segments cover %d samples, track_ended says %d", id, next, tr.ended.Samples)
		}
		if tr.ended != nil && tr.ended.Segments != int64(len(tr.segs)) {
			t.Errorf("track %s: %d segments stored, track_ended says %d", id, len(tr.segs), tr.ended.Segments)
		}
		checkManifestTrack(t, rec, tr)
	}
	return rec
}

// readManifests decodes the session manifests among the stored objects
// and checks that each is stored under its session's key and named by
// that session's session_ended event.
func readManifests(t testing.TB, rec *recording) map[string]*ingest.Manifest {
	t.Helper()
	named := map[string]string{} // manifest key → session
	for _, e := range rec.lifecycle {
		if e.Type != event.TypeSessionEnded {
			continue
		}
		var p event.SessionEnded
		if err := e.DecodePayload(&p); err != nil {
			t.Fatal(err)
		}
		if want := event.ManifestKey(e.Room, e.Session); p.Manifest != want {
			t.Errorf("session %s ended naming manifest %q, want %q", e.Session, p.Manifest, want)
		}
		named[p.Manifest] = e.Session
	}
	out := map[string]*ingest.Manifest{}
	for key, obj := range rec.objects {
		if !strings.HasPrefix(key, "manifests/") {
			continue
		}
		var m ingest.Manifest
		if err := json.Unmarshal(obj.Data, &m); err != nil {
			t.Errorf("manifest %s: %v", key, err)
			continue
		}
		if want := event.ManifestKey(m.Room, m.Session); key != want {
			t.Errorf("manifest of session %s stored as %s, want %s", m.Session, key, want)
		}
		if named[key] != m.Session {
			t.Errorf("manifest %s: no session_ended event names it", key)
		}
		if m.Ended == nil {
			t.Errorf("manifest %s: the session ended but its manifest says it is open", key)
		}
		out[key] = &m
	}
	for key := range named {
		if out[key] == nil {
			t.Errorf("session_ended names manifest %s, which was not stored", key)
		}
	}
	return out
}

// checkManifestTrack finds tr in its session's manifest and checks that
// the manifest lists its segments as stored and its losses as the
// track_ended event counts them.
func checkManifestTrack(t testing.TB, rec *recording, tr *recTrack) {
	t.Helper()
	if len(tr.segs) == 0 {
		return
	}
	first := tr.segs[0].ev
	m := rec.manifests[event.ManifestKey(first.Room, first.Session)]
	if m == nil {
		t.Errorf("track %s: no manifest for its session", tr.id)
		return
	}
	i := slices.IndexFunc(m.Tracks, func(mt ingest.ManifestTrack) bool { return mt.Track == tr.id })
	if i < 0 {
		t.Errorf("track %s: not in its session's manifest", tr.id)
		return
	}
	tr.man = &m.Tracks[i]
	var stored []ingest.ManifestSegment
	for _, s := range tr.segs {
		tl := s.ev.Timeline
		stored = append(stored, ingest.ManifestSegment{Seq: s.p.Seq, Key: s.p.Key, SHA256: s.p.SHA256, Size: s.p.Size, FirstSample: tl.FirstSample, LastSample: tl.LastSample})
	}
	if !slices.Equal(tr.man.Segments, stored) {
		t.Errorf("track %s: the manifest lists segments %+v, the store holds %+v", tr.id, tr.man.Segments, stored)
	}
	if tr.ended != nil && tr.man.Packets.Lost != tr.ended.LostPackets {
		t.Errorf("track %s: the manifest counts %d packets lost, track_ended %d", tr.id, tr.man.Packets.Lost, tr.ended.LostPackets)
	}
	var lossSamples int64
	for _, g := range tr.man.Gaps {
		if g.Cause == record.GapLoss {
			lossSamples += g.LastSample - g.FirstSample + 1
		}
	}
	if lossSamples != tr.man.GapSamples.Loss {
		t.Errorf("track %s: the manifest's loss gaps span %d samples, its gap_samples.loss says %d", tr.id, lossSamples, tr.man.GapSamples.Loss)
	}
}

// opusTags returns the user comments of an Ogg/Opus stream's OpusTags
// packet (the second packet of the stream).
func opusTags(data []byte) (map[string]string, error) {
	var packets [][]byte
	var cur []byte
	for off := 0; len(packets) < 2; {
		if len(data) < off+27 || string(data[off:off+4]) != "OggS" {
			return nil, errors.New("no OpusTags: not an Ogg stream")
		}
		nseg := int(data[off+26])
		if len(data) < off+27+nseg {
			return nil, errors.New("truncated Ogg page")
		}
		lacing := data[off+27 : off+27+nseg]
		body := off + 27 + nseg
		for _, l := range lacing {
			if len(data) < body+int(l) {
				return nil, errors.New("truncated Ogg page")
			}
			cur = append(cur, data[body:body+int(l)]...)
			body += int(l)
			if l < 255 {
				packets, cur = append(packets, cur), nil
			}
		}
		off = body
	}
	p := packets[1]
	if len(p) < 12 || string(p[:8]) != "OpusTags" {
		return nil, errors.New("second packet is not OpusTags")
	}
	rd := bytes.NewReader(p[8:])
	var n uint32
	if err := binary.Read(rd, binary.LittleEndian, &n); err != nil || int64(n) > int64(rd.Len()) {
		return nil, errors.New("malformed OpusTags vendor")
	}
	_, _ = rd.Seek(int64(n), io.SeekCurrent)
	var count uint32
	if err := binary.Read(rd, binary.LittleEndian, &count); err != nil {
		return nil, errors.New("malformed OpusTags")
	}
	tags := map[string]string{}
	for range count {
		if err := binary.Read(rd, binary.LittleEndian, &n); err != nil || int64(n) > int64(rd.Len()) {
			return nil, errors.New("malformed OpusTags comment")
		}
		c := make([]byte, n)
		_, _ = rd.Read(c)
		k, v, _ := strings.Cut(string(c), "=")
		tags[strings.ToUpper(k)] = v
	}
	return tags, nil
}

// checkSession checks the run's session lifecycle: one session, opened
// and closed with the bot's join and leave, which every track belongs to.
func checkSession(t testing.TB, rec *recording) {
	t.Helper()
	count := map[event.Type]int{}
	sessions := map[string]bool{}
	for _, e := range rec.lifecycle {
		count[e.Type]++
		sessions[e.Session] = true
	}
	for _, typ := range []event.Type{event.TypeSessionStarted, event.TypeBotJoined, event.TypeBotLeft, event.TypeSessionEnded} {
		if count[typ] != 1 {
			t.Errorf("%d %s events, want 1", count[typ], typ)
		}
	}
	if len(sessions) != 1 {
		t.Errorf("lifecycle events name %d sessions, want 1", len(sessions))
	}
	for id, tr := range rec.tracks {
		for _, s := range tr.segs {
			if !sessions[s.ev.Session] {
				t.Errorf("track %s: segment of session %s", id, s.ev.Session)
			}
		}
	}
}

// liveFaults says whether a run injected faults on the live-chunk path
// (the broker), the only thing that may make the stage drop live chunks.
type liveFaults bool

const (
	noLiveFaults liveFaults = false
	// liveFaultsInjected lets chunks be dropped; those that were not must
	// still be where they belong.
	liveFaultsInjected liveFaults = true
)

// checkChunks checks each track's live chunks, after dedupe, against its
// stored timeline: in order, never overlapping, never past the track's
// end. Without injected faults the stage must have dropped none and the
// chunks cover the timeline exactly. With faults, every stretch the chunks
// miss must be accounted for by the chunks the stage counted as dropped
// (no more stretches than drops, no more samples than that many chunks).
func checkChunks(t testing.TB, rec *recording, faults liveFaults) {
	t.Helper()
	drops := int64(rec.chunkDrops)
	if faults == noLiveFaults && drops != 0 {
		t.Errorf("the stage dropped %d live chunks (earshot_ingest_chunks_dropped_total) in a run without faults on the broker", drops)
	}
	byTrack := map[string][]*event.Timeline{}
	for _, c := range rec.chunks {
		if c.Type == event.TypeAudioChunk && c.Timeline != nil {
			byTrack[c.Timeline.Track] = append(byTrack[c.Timeline.Track], c.Timeline)
		}
	}
	var missSpans, missSamples, longest int64
	for id, tr := range rec.tracks {
		tls := byTrack[id]
		if len(tls) == 0 {
			t.Errorf("track %s: no live chunk", id)
			continue
		}
		slices.SortFunc(tls, func(a, b *event.Timeline) int { return int(a.FirstSample - b.FirstSample) })
		end := int64(len(tr.pcm))
		next := int64(0)
		for _, tl := range tls {
			longest = max(longest, tl.LastSample-tl.FirstSample+1)
			switch {
			case tl.FirstSample < next:
				t.Errorf("track %s: live chunk %d-%d overlaps the one before (ending at %d)", id, tl.FirstSample, tl.LastSample, next-1)
			case tl.FirstSample > next:
				if faults == noLiveFaults {
					t.Errorf("track %s: live chunks miss samples %d-%d", id, next, tl.FirstSample-1)
				}
				missSpans++
				missSamples += tl.FirstSample - next
			}
			if tl.LastSample >= end {
				t.Errorf("track %s: live chunk %d-%d goes past the stored timeline's end %d", id, tl.FirstSample, tl.LastSample, end)
			}
			next = max(next, tl.LastSample+1)
		}
		if next < end {
			if faults == noLiveFaults {
				t.Errorf("track %s: live chunks cover %d samples, the stored segments %d", id, next, end)
			}
			missSpans++
			missSamples += end - next
		}
	}
	if faults == liveFaultsInjected && (missSpans > drops || missSamples > drops*longest) {
		t.Errorf("live chunks miss %d stretches (%d samples) of the stored timelines; the stage dropped %d chunks of at most %d samples",
			missSpans, missSamples, drops, longest)
	}
}

// errorsTB collects what a check reports instead of failing the test.
type errorsTB struct {
	testing.TB
	errs []string
}

func (e *errorsTB) Helper()                      {}
func (e *errorsTB) Errorf(f string, args ...any) { e.errs = append(e.errs, fmt.Sprintf(f, args...)) }

// TestCheckChunks keeps checkChunks able to fail: a run without faults
// must have every chunk; with faults, only what the stage counted as
// dropped may be missing.
func TestCheckChunks(t *testing.T) {
	chunk := func(first, last int64) *event.Envelope {
		return &event.Envelope{Type: event.TypeAudioChunk, Timeline: &event.Timeline{Track: "trk", FirstSample: first, LastSample: last}}
	}
	const c = 48000 // one chunk
	whole := []*event.Envelope{chunk(0, c-1), chunk(c, 2*c-1), chunk(2*c, 3*c-1)}
	tests := []struct {
		name   string
		chunks []*event.Envelope
		drops  float64
		faults liveFaults
		ok     bool
	}{
		{"complete", whole, 0, noLiveFaults, true},
		{"one missing, none dropped", []*event.Envelope{whole[0], whole[2]}, 0, noLiveFaults, false},
		{"last missing, none dropped", whole[:2], 0, noLiveFaults, false},
		{"complete but drops counted, no faults", whole, 1, noLiveFaults, false},
		{"one dropped under faults", []*event.Envelope{whole[0], whole[2]}, 1, liveFaultsInjected, true},
		{"two missing, one dropped", whole[1:2], 1, liveFaultsInjected, false},
		{"overlap", []*event.Envelope{whole[0], chunk(c-960, 2*c-1), whole[2]}, 0, noLiveFaults, false},
		{"overlap under faults", []*event.Envelope{whole[0], chunk(c-960, 2*c-1), whole[2]}, 5, liveFaultsInjected, false},
		{"past the end", append(slices.Clone(whole), chunk(3*c, 4*c-1)), 0, noLiveFaults, false},
		{"no chunk", nil, 3, liveFaultsInjected, false},
	}
	for _, tc := range tests {
		rec := &recording{tracks: map[string]*recTrack{"trk": {id: "trk", pcm: make([]int16, 3*c)}}, chunks: tc.chunks, chunkDrops: tc.drops}
		e := &errorsTB{TB: t}
		checkChunks(e, rec, tc.faults)
		if ok := len(e.errs) == 0; ok != tc.ok {
			t.Errorf("%s: passed %v, want %v (%q)", tc.name, ok, tc.ok, e.errs)
		}
	}
}

// --- Tones -----------------------------------------------------------------

// toneLevel is the amplitude of the toneHz component of pcm[from:from+n]
// relative to full scale (Goertzel): about 0.5 for the test tones.
func toneLevel(pcm []int16, from, n int) float64 {
	if from < 0 || from+n > len(pcm) || n <= 0 {
		return 0
	}
	c := 2 * math.Cos(2*math.Pi*toneHz/event.SampleRate)
	var s1, s2 float64
	for _, v := range pcm[from : from+n] {
		s := float64(v)/32768 + c*s1 - s2
		s2, s1 = s1, s
	}
	return 2 * math.Sqrt(math.Max(s1*s1+s2*s2-c*s1*s2, 0)) / float64(n)
}

// toneOnset returns the first sample in [lo, hi] where a tone of about
// half scale starts, or -1. A 2.5 ms window sliding in 0.5 ms steps sees
// half the tone's level when it straddles the onset, so the onset is the
// centre of the first window at that level.
func toneOnset(pcm []int16, lo, hi int64) int64 {
	const win, step = 120, 24
	for i := max(lo-win/2, 0); i <= hi-win/2 && i+win <= int64(len(pcm)); i += step {
		if toneLevel(pcm, int(i), win) >= 0.25 {
			return i + win/2
		}
	}
	return -1
}

// tonePosition returns where a tone of length dur starts near want on
// the track (its onset within ±search samples), or -1 when there is none.
//
// The tone has two edges, each where its level crosses half of the tone's
// (toneOnset, toneEnd); for a whole tone the onset and end-dur agree. Loss
// only ever takes tone away: a lost packet at an edge moves that edge
// inwards by up to 20 ms, and a lost packet just before the tone also
// makes the decoder take up to lossRecovery to come back to level (the
// recorder fills the gap with a CELT-only silence frame, and libopus
// resets its SILK layer when a hybrid stream resumes after one). So an
// edge with a loss gap near it (listed in the manifest, or a run of
// digital zeros, which the source's own pauses never decode to) is not
// trusted and the other edge places the tone; with both or neither
// trusted, their mean does.
func tonePosition(tr *recTrack, want, search int64, dur time.Duration) int64 {
	pcm := tr.pcm
	n := event.DurationToSamples(dur)
	on := toneOnset(pcm, want-search, want+search)
	if on < 0 {
		return -1
	}
	end := toneEnd(pcm, on, on+n+search)
	const ms = event.SampleRate / 1000
	onBad := hasFilledGap(pcm, on-100*ms, on+5*ms) || tr.lossNear(on-lossRecovery, on+5*ms)
	endBad := hasFilledGap(pcm, end-5*ms, end+30*ms) || tr.lossNear(end-5*ms, end+30*ms)
	switch {
	case onBad && !endBad:
		return end - n
	case endBad && !onBad:
		return on
	}
	return (on + end - n) / 2
}

// toneEnd returns the centre of the last 2.5 ms window in [from, to] at
// half the tone's level or more (the tone's end), scanning from to back.
func toneEnd(pcm []int16, from, to int64) int64 {
	const win, step = 120, 24
	for i := min(to, int64(len(pcm))) - win/2; i-win/2 >= from; i -= step {
		if toneLevel(pcm, int(i-win/2), win) >= 0.25 {
			return i
		}
	}
	return from
}

// hasFilledGap reports whether pcm[from:to] holds a run of 2.5 ms or more
// of digital zeros: a gap the recorder filled with silence frames.
func hasFilledGap(pcm []int16, from, to int64) bool {
	run := 0
	for _, v := range pcm[max(from, 0):max(min(to, int64(len(pcm))), 0)] {
		if v != 0 {
			run = 0
			continue
		}
		if run++; run >= 120 {
			return true
		}
	}
	return false
}

// toneCheck is one published tone located on a recorded track.
type toneCheck struct {
	want, got int64 // timeline samples; got -1: not found
	onset     int64 // the first sample at half the tone's level (diagnostics)
}

func (c toneCheck) offsetMS() float64 { return float64(c.got-c.want) * 1000 / event.SampleRate }

// locateTones finds each published tone on the track: near where the
// track's origin puts its scheduled time, or (to report how far off it
// is) anywhere within 3 s.
func locateTones(tr *recTrack, tones []time.Time, dur time.Duration) []toneCheck {
	const near, far = event.SampleRate / 4, 3 * event.SampleRate
	var out []toneCheck
	for _, at := range tones {
		want := tr.position(at)
		got := tonePosition(tr, want, near, dur)
		if got < 0 {
			got = tonePosition(tr, want, far, dur)
		}
		out = append(out, toneCheck{want: want, got: got, onset: toneOnset(tr.pcm, want-near, want+near)})
	}
	return out
}

// lossRecovery is how long after a lost packet the decoded audio may stay
// below its level. The recorder fills the gap with a CELT-only silence
// frame; in a hybrid stream libopus then resets its SILK layer, and the
// tone comes back over 40–100 ms (measured in TestE2EPacketLoss runs).
const lossRecovery = 120 * event.SampleRate / 1000

// toneCover returns the share of 10 ms windows over the tone found at
// onset (its edges left out) where the tone is at its level: 1 for a whole
// tone. Windows a lost packet explains (from the loss gap the manifest
// lists to lossRecovery after it) are left out of the share and counted
// in excused; with every window excused, cover is 1.
func toneCover(tr *recTrack, onset int64, dur time.Duration) (cover float64, excused int) {
	n := event.DurationToSamples(dur) - 960
	var all, high int
	for i := onset + 480; i+480 <= onset+n; i += 480 {
		if tr.lossNear(i-lossRecovery, i+480) {
			excused++
			continue
		}
		all++
		if toneLevel(tr.pcm, int(i), 480) >= 0.3 {
			high++
		}
	}
	if all == 0 {
		return 1, excused
	}
	return float64(high) / float64(all), excused
}

// lossNear reports whether the manifest lists a loss gap overlapping
// samples [from, to).
func (r *recTrack) lossNear(from, to int64) bool {
	if r.man == nil {
		return false
	}
	for _, g := range r.man.Gaps {
		if g.Cause == record.GapLoss && g.FirstSample < to && g.LastSample >= from {
			return true
		}
	}
	return false
}

// describeSpan renders the tone level of the track's samples [from, to) in
// 5 ms steps, with "z" for steps of digital silence and "L" before steps
// in a loss gap the manifest lists.
func describeSpan(tr *recTrack, from, to int64) string {
	var b strings.Builder
	for i := max(from, 0); i+240 <= min(to, int64(len(tr.pcm))); i += 240 {
		b.WriteByte(' ')
		if tr.lossNear(i, i+240) {
			b.WriteByte('L')
		}
		if !slices.ContainsFunc(tr.pcm[i:i+240], func(v int16) bool { return v != 0 }) {
			b.WriteString("z")
			continue
		}
		fmt.Fprintf(&b, "%.2f", toneLevel(tr.pcm, int(i), 240))
	}
	return b.String()
}

// rms reports the RMS (relative to full scale) of pcm[from:to].
func rms(pcm []int16, from, to int64) float64 {
	from, to = max(from, 0), min(to, int64(len(pcm)))
	if to <= from {
		return 0
	}
	var sum float64
	for _, v := range pcm[from:to] {
		f := float64(v) / 32768
		sum += f * f
	}
	return math.Sqrt(sum / float64(to-from))
}

// discard is a logger for components whose logs the test does not need.
var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// TestTonePosition checks the tone locator on synthetic audio: a clean
// tone, one whose first 20 ms were a filled gap and whose level then comes
// back over 80 ms (what a lost first packet does), one whose last packet
// was lost, one with a packet missing inside, and none at all.
func TestTonePosition(t *testing.T) {
	const at, rate = 48000, event.SampleRate
	n := int(event.DurationToSamples(toneDur))
	// gen makes 3 s of decoder-like noise (a pause never decodes to
	// digital zeros) with a tone at at whose level shape gives; filled
	// gaps, [gap0, gap1) relative to the tone, are digital zeros.
	gen := func(shape func(i int) float64, gap0, gap1 int) []int16 {
		pcm := make([]int16, 3*rate)
		for i := range pcm {
			pcm[i] = int16(i%5 - 2)
		}
		for i := range n {
			pcm[at+i] += int16(16384 * shape(i) * math.Sin(2*math.Pi*toneHz*float64(i)/rate))
		}
		for i := gap0; i < gap1; i++ {
			pcm[at+i] = 0
		}
		return pcm
	}
	whole := func(int) float64 { return 1 }
	slow := func(i int) float64 { return min(max(float64(i-960)/3840, 0), 1) }
	// lost lists a loss gap [gap0, gap1) relative to the tone in the
	// track's manifest.
	lost := func(gap0, gap1 int) *ingest.ManifestTrack {
		return &ingest.ManifestTrack{Gaps: []record.GapSpan{{FirstSample: at + int64(gap0), LastSample: at + int64(gap1) - 1, Cause: record.GapLoss}}}
	}
	tests := []struct {
		name string
		pcm  []int16
		man  *ingest.ManifestTrack
	}{
		{"clean", gen(whole, 0, 0), nil},
		{"onset lost, slow recovery", gen(slow, -300, 960), nil},
		{"onset lost (manifest), slow recovery", gen(slow, 0, 0), lost(-300, 960)},
		{"end lost", gen(whole, n-960, n+100), nil},
		{"end lost (manifest)", gen(func(i int) float64 { return float64(min(max(n-960-i, 0), 1)) }, 0, 0), lost(n-960, n)},
		{"packet lost inside", gen(whole, 4800, 5760), nil},
	}
	for _, tt := range tests {
		if got := tonePosition(&recTrack{pcm: tt.pcm, man: tt.man}, at+2000, rate/4, toneDur); got < at-48 || got > at+48 {
			t.Errorf("%s: tone found at %d, want %d ± 1 ms", tt.name, got, at)
		}
	}
	if got := tonePosition(&recTrack{pcm: gen(func(int) float64 { return 0 }, 0, 0)}, at, rate/4, toneDur); got != -1 {
		t.Errorf("silence: tone found at %d", got)
	}
}
