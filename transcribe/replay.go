package transcribe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/storage"
)

// SegmentStore is what replay reads stored segments from. The store
// decrypts transparently where segments are encrypted.
type SegmentStore interface {
	storage.Getter
	storage.Lister
}

// ReplayMarker is the processing option that marks a replayed transcript:
// with the engine, model and language it makes the revision, so a replay
// is a new revision of the live transcripts (new event IDs), and running
// the same replay again reproduces the same IDs.
const ReplayMarker = "replay"

// ReplayConfig configures Replay.
type ReplayConfig struct {
	Store    SegmentStore
	Engine   Engine
	Sender   bus.Sender
	Producer event.Producer
	// Keys seals the transcripts (package crypt).
	Keys event.Keys
	// Language and RoomLanguage: as in WorkerConfig.
	Language     string
	RoomLanguage func(room string) string
	// Topic for transcripts; default event.TopicTranscripts.
	Topic     string
	Segmenter SegmenterConfig
	Logger    *slog.Logger
	// Context: as in WorkerConfig (use the same setting as live).
	Context ContextConfig
	// PromptPrevious: as in WorkerConfig (use the same setting as live).
	PromptPrevious bool
	// Batch, when positive, sends each track's utterances to the engine
	// in batches of up to this much audio (utterances spliced with 300 ms
	// pauses; at most 28 s, Whisper's window) and keeps every word: fewer,
	// longer engine calls and transcripts close to a whole file's (see
	// batch.go). Zero transcribes utterance by utterance, as live. It is
	// part of the revision. Context and PromptPrevious do not apply.
	Batch time.Duration
	// Pass, when set, goes into the revision as processing option "pass"
	// (event.PassFinal for the final pass).
	Pass string
}

// maxBatch keeps a batch inside Whisper's 30 s window.
const maxBatch = 28 * time.Second

// ErrNoSegments is returned by Replay for a session with no stored audio.
var ErrNoSegments = errors.New("no segments")

// ReplayStats says what a replay did.
type ReplayStats struct {
	Tracks, Segments, Utterances, Transcripts int
	AudioSeconds                              float64
	Revision                                  string
}

// Replay re-transcribes the stored segments of one session
// (audio/<room>/<session>/<track>/...) track by track, in timeline order,
// through the same decoder, segmenter, engine and attribution as live
// transcription, and produces transcript.segment events of a new revision
// (processing option ReplayMarker). Segments that cannot be read or
// decoded are logged and skipped; an engine error ends the replay.
func Replay(ctx context.Context, cfg ReplayConfig, room, session string) (ReplayStats, error) {
	var st ReplayStats
	if cfg.Store == nil || cfg.Engine == nil || cfg.Sender == nil {
		return st, errors.New("transcribe: replay needs a Store, an Engine and a Sender")
	}
	if room == "" || session == "" || strings.Contains(room, "/") || strings.Contains(session, "/") {
		return st, fmt.Errorf("transcribe: replay: %q/%q is not <room>/<session>", room, session)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Topic == "" {
		cfg.Topic = event.TopicTranscripts
	}
	if _, err := NewSegmenter(cfg.Segmenter); err != nil {
		return st, err
	}
	lang := cfg.Language
	if cfg.RoomLanguage != nil {
		if l := cfg.RoomLanguage(room); l != "" {
			lang = l
		}
	}
	proc := Processing(cfg.Engine, lang)
	proc.Options[ReplayMarker] = "1"
	if cfg.Batch > 0 {
		cfg.Batch = min(cfg.Batch, maxBatch)
		proc.Options["batch"] = cfg.Batch.String()
	}
	if cfg.Pass != "" {
		proc.Options["pass"] = cfg.Pass
	}
	st.Revision = proc.Revision()
	log := cfg.Logger.With("replay", room+"/"+session, "revision", st.Revision)

	prefix := fmt.Sprintf("audio/%s/%s/", room, session)
	tracks := map[string][]string{}
	for oi, err := range cfg.Store.List(ctx, prefix) {
		if err != nil {
			return st, fmt.Errorf("transcribe: replay: list %s: %w", prefix, err)
		}
		track, _, ok := strings.Cut(strings.TrimPrefix(oi.Key, prefix), "/")
		if ok && strings.HasSuffix(oi.Key, ".ogg") {
			tracks[track] = append(tracks[track], oi.Key)
		}
	}
	if len(tracks) == 0 {
		return st, fmt.Errorf("transcribe: replay: %w under %s", ErrNoSegments, prefix)
	}
	names := make([]string, 0, len(tracks))
	for n := range tracks {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, track := range names {
		keys := tracks[track]
		sort.Strings(keys) // zero-padded sample numbers: timeline order
		r := &replayTrack{cfg: &cfg, log: log.With("track", track), room: room, session: session, track: track, proc: proc, st: &st}
		if err := r.run(ctx, keys); err != nil {
			return st, err
		}
		st.Tracks++
	}
	log.Info("replay done", "tracks", st.Tracks, "segments", st.Segments, "utterances", st.Utterances,
		"transcripts", st.Transcripts, "audio_seconds", st.AudioSeconds)
	return st, nil
}

type replayTrack struct {
	cfg                  *ReplayConfig
	log                  *slog.Logger
	room, session, track string
	proc                 *event.Processing
	st                   *ReplayStats

	speaker string
	tl      event.Timeline // the newest segment's: origin and anchor
	dec     *TrackDecoder
	seg     *Segmenter
	context promptContext
	audio   *TrackContext
	batch   []Utterance // utterances waiting for a batch (cfg.Batch)
	batchN  int         // their audio samples, pauses included
}

func (r *replayTrack) run(ctx context.Context, keys []string) error {
	var err error
	if r.dec, err = NewTrackDecoder(DecoderConfig{}); err != nil {
		return err
	}
	defer r.dec.Close()
	if r.seg, err = NewSegmenter(r.cfg.Segmenter); err != nil {
		return err
	}
	r.audio = NewTrackContext(r.cfg.Context)
	for _, key := range keys {
		if err := ctx.Err(); err != nil {
			return err
		}
		pcm, ok := r.segment(ctx, key)
		if !ok {
			continue
		}
		if err := r.transcribe(ctx, r.seg.Push(pcm.Start, pcm.Samples)); err != nil {
			return err
		}
	}
	if err := r.transcribe(ctx, r.seg.Flush()); err != nil {
		return err
	}
	return r.flushBatch(ctx)
}

// segment reads and decodes one stored segment; false when it is skipped.
func (r *replayTrack) segment(ctx context.Context, key string) (PCM, bool) {
	first, last, err := segmentRange(key)
	if err != nil {
		r.log.Warn("segment skipped: key not understood", "key", key, "error", err)
		return PCM{}, false
	}
	rc, info, err := r.cfg.Store.Get(ctx, key)
	if err != nil {
		r.log.Warn("segment skipped: not readable", "key", key, "error", err)
		return PCM{}, false
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		r.log.Warn("segment skipped: not readable", "key", key, "error", err)
		return PCM{}, false
	}
	sg, err := parseOggOpus(data)
	if err != nil {
		r.log.Warn("segment skipped: not Ogg/Opus", "key", key, "error", err)
		return PCM{}, false
	}
	originText, anchor := info.Metadata["origin"], info.Metadata["anchor"]
	if originText == "" {
		originText, anchor = sg.Tags["EARSHOT_ORIGIN"], sg.Tags["EARSHOT_ANCHOR"]
	}
	origin, err := time.Parse(time.RFC3339Nano, originText)
	if err != nil {
		r.log.Warn("segment skipped: no timeline origin", "key", key, "error", err)
		return PCM{}, false
	}
	if s := sg.Tags["EARSHOT_SPEAKER"]; s != "" {
		r.speaker = s
	}
	// The packets begin PreSkip samples before the segment's first sample
	// (warm-up that repeats the end of the previous segment; the decoder
	// skips what it already decoded). Warm-up before the track's start is
	// filler and is dropped.
	start := first - sg.PreSkip
	var data2 event.AudioChunkData
	pos := start
	chunkFirst := max(start, 0)
	for i, p := range sg.Packets {
		if pos >= chunkFirst {
			data2.Packets = append(data2.Packets, p)
			data2.Offsets = append(data2.Offsets, pos-chunkFirst)
		}
		pos += int64(sg.Samples[i])
	}
	tl := event.Timeline{Track: r.track, FirstSample: chunkFirst, LastSample: max(last, pos-1), Origin: origin, Anchor: event.Anchor(anchor)}
	r.tl = tl
	pcm, err := r.dec.Decode(tl, data2)
	if err != nil && !errors.Is(err, ErrCorruptAudio) {
		r.log.Warn("segment skipped: not decodable", "key", key, "error", err)
		return PCM{}, false
	}
	r.st.Segments++
	r.st.AudioSeconds += float64(last-first+1) / event.SampleRate
	return pcm, true
}

func (r *replayTrack) prompt(u Utterance) string {
	if !r.cfg.PromptPrevious {
		return ""
	}
	return r.context.prompt(u)
}

// segmentRange reads the sample range from a segment key
// (.../<first>-<last>.ogg, event.SegmentKey).
func segmentRange(key string) (first, last int64, err error) {
	name := key[strings.LastIndex(key, "/")+1:]
	a, b, ok := strings.Cut(strings.TrimSuffix(name, ".ogg"), "-")
	if !ok {
		return 0, 0, errors.New("no <first>-<last>")
	}
	if first, err = strconv.ParseInt(a, 10, 64); err != nil {
		return 0, 0, err
	}
	if last, err = strconv.ParseInt(b, 10, 64); err != nil {
		return 0, 0, err
	}
	if last < first || first < 0 {
		return 0, 0, fmt.Errorf("range %d-%d", first, last)
	}
	return first, last, nil
}

// language is what the engine is asked for ("" to detect).
func (r *replayTrack) language() string {
	if lang := r.proc.Options["language"]; !AutoLanguage(lang) {
		return lang
	}
	return ""
}

func (r *replayTrack) transcribe(ctx context.Context, utts []Utterance) error {
	if r.cfg.Batch > 0 {
		limit := int(r.cfg.Batch.Seconds() * AudioRate)
		for _, u := range utts {
			if len(r.batch) > 0 && r.batchN+batchGap+len(u.Samples) > limit {
				if err := r.flushBatch(ctx); err != nil {
					return err
				}
			}
			if len(r.batch) > 0 {
				r.batchN += batchGap
			}
			r.batch = append(r.batch, u)
			r.batchN += len(u.Samples)
		}
		return nil
	}
	lang := r.language()
	for _, u := range utts {
		at, res, _, err := r.audio.Transcribe(ctx, r.cfg.Engine, u, Audio{Language: lang, Prompt: r.prompt(u)})
		if err != nil {
			return fmt.Errorf("transcribe: replay: engine: %w", err)
		}
		r.st.Utterances++
		var said []string
		msgs, err := transcriptMessages(ctx, transcriptSource{
			producer: r.cfg.Producer, proc: r.proc, keys: r.cfg.Keys, topic: r.cfg.Topic,
			room: r.room, session: r.session, speaker: r.speaker, timeline: r.tl,
		}, at, res, func(_ event.Timeline, text string) { said = append(said, text) })
		r.context.update(u, said)
		if err != nil {
			return err
		}
		if len(msgs) == 0 {
			continue
		}
		if err := r.produce(ctx, msgs); err != nil {
			return err
		}
	}
	return nil
}

// flushBatch transcribes the waiting utterances as one audio and produces
// each one's transcripts.
func (r *replayTrack) flushBatch(ctx context.Context) error {
	utts := r.batch
	r.batch, r.batchN = nil, 0
	if len(utts) == 0 {
		return nil
	}
	src := transcriptSource{producer: r.cfg.Producer, proc: r.proc, keys: r.cfg.Keys, topic: r.cfg.Topic,
		room: r.room, session: r.session, speaker: r.speaker, timeline: r.tl}
	msgs, err := batchMessages(ctx, r.cfg.Engine, r.language(), src, utts, nil)
	if err != nil {
		return fmt.Errorf("transcribe: replay: %w", err)
	}
	r.st.Utterances += len(utts)
	return r.produce(ctx, msgs)
}

func (r *replayTrack) produce(ctx context.Context, msgs []bus.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if err := r.cfg.Sender.Produce(ctx, msgs...); err != nil {
		return fmt.Errorf("transcribe: replay: produce: %w", err)
	}
	r.st.Transcripts += len(msgs)
	return nil
}
