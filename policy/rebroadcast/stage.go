package rebroadcast

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/policy/fingerprint"
	"github.com/earshot/earshot/storage"
)

// TopicFingerprints carries fingerprint records (key = track). Its
// retention is the index window: it is what a starting instance rebuilds
// its index from, and nothing older may be kept.
const TopicFingerprints = event.TopicFingerprints

// consumer is the part of bus.Consumer the stage uses.
type consumer interface {
	Run(ctx context.Context, h bus.Handler) error
	Close() error
}

// Log reads a topic without a consumer group (bus.LogReader): every
// instance follows every partition of the fingerprints topic.
type Log interface {
	Offsets(ctx context.Context, topic string) (map[int]bus.PartitionRange, error)
	OffsetAt(ctx context.Context, topic string, partition int, t time.Time) (int64, error)
	Follow(ctx context.Context, topic string, partition int, from int64, fn func(bus.Message) error) error
}

var _ Log = bus.LogReader{}

// Topics names the topics the stage uses; empty fields take the defaults.
type Topics struct {
	Fingerprints, Alerts, DeadLetter string
	// Lifecycle says which rooms are private (session_started metadata).
	Lifecycle string
	// Audio is the consumer's topic (its partition 0's owner watches the
	// outside streams); Ops takes the watcher's operational alerts.
	Audio, Ops string
	// Audit carries erasures (audit entries of action erase).
	Audit string
}

func (t *Topics) defaults() {
	if t.Fingerprints == "" {
		t.Fingerprints = TopicFingerprints
	}
	if t.Alerts == "" {
		t.Alerts = event.TopicAlerts
	}
	if t.DeadLetter == "" {
		t.DeadLetter = event.TopicDeadLetter
	}
	if t.Lifecycle == "" {
		t.Lifecycle = event.TopicLifecycle
	}
	if t.Audio == "" {
		t.Audio = event.TopicAudio
	}
	if t.Ops == "" {
		t.Ops = event.TopicOps
	}
	if t.Audit == "" {
		t.Audit = event.TopicAudit
	}
}

// Config configures the stage.
type Config struct {
	// Consumer delivers earshot.audio (group earshot-rebroadcast).
	Consumer consumer
	// Log follows the fingerprints topic.
	Log Log
	// Sender writes fingerprint records, alerts and dead letters.
	Sender bus.Sender
	// Keys opens chunks and seals alerts.
	Keys     event.Keys
	Producer event.Producer
	// Secret keys the landmark values on Kafka (at least 32 bytes; the
	// same on every instance of a deployment).
	Secret []byte
	// Instance names this process in its records; default a random ID
	// (a restarted process must not skip what it wrote before).
	Instance string
	// Window is how long audio stays in the index (default 30 min).
	Window time.Duration
	// MaxLandmarks bounds the index's memory: past it, the oldest audio
	// goes before the window ends. Default 100 million (about 1 GB:
	// 8 bytes each plus slice slack; 600 track-hours at a 30 % talk
	// share).
	MaxLandmarks int
	// QueryDelay is how long a chunk's landmarks wait before they are
	// matched, so that the other instances' records of the same moments
	// have reached this index (default 2 s). The chunk is acknowledged
	// after its matching.
	QueryDelay time.Duration
	// IdleTrack closes a track's decoder when no chunk came for this long
	// (default 2 min).
	IdleTrack time.Duration
	// Matcher holds the thresholds (default fingerprint.DefaultMatcherConfig).
	Matcher *fingerprint.MatcherConfig
	// Private reports whether a room is private or confidential (its
	// original raises critical alerts), besides the rooms the lifecycle
	// topic calls private; nil adds none.
	Private func(room string) bool
	// Allow lists room pairs that may carry the same audio (consented
	// simulcasts): never compared, so they raise nothing.
	Allow []AllowedPair
	// AlertLookback is how much of the alerts topic a starting instance
	// reads back, so that a match it finds again is not raised again
	// (default 24 h).
	AlertLookback time.Duration
	// RebuildWait bounds how long a starting instance waits to have read
	// back the fingerprints, lifecycle, alerts and audit topics before it
	// consumes audio (default 2 min).
	RebuildWait time.Duration
	// Metrics registers the stage's collectors when set.
	Metrics prometheus.Registerer
	Topics  Topics
	Logger  *slog.Logger
	// Now defaults to time.Now.
	Now func() time.Time

	// Watch lists outside streams compared with the live rooms (watch.go);
	// Streams opens them (default FFmpeg{}); OwnsWatch says whether this
	// instance watches them now (default: it owns the audio topic's
	// partition 0); WatchBackoff caps the wait between reconnects
	// (default 1 min).
	Watch        []Watch
	Streams      Streams
	OwnsWatch    func() bool
	WatchBackoff time.Duration
	// Evidence keeps the clip of an outside stream's matched span
	// (streamclip.go); it must encrypt evidence/ (crypt.Store). Nil keeps
	// none. StreamClipBuffer is how much of each stream's decoded audio
	// is held for that (default 60 s, 1.9 MB a stream).
	Evidence         storage.Putter
	StreamClipBuffer time.Duration
}

// Stage is the live rebroadcast stage.
type Stage struct {
	cfg    Config
	log    *slog.Logger
	perm   *fingerprint.Permutation
	mcfg   fingerprint.MatcherConfig
	raised *bus.Dedupe
	m      *stageMetrics
	// rebuilt says when the followed topics are read back.
	rebuilt *rebuild
	// fpNext is the next offset this instance reads of each partition of
	// the fingerprints topic (the lag gauge).
	posMu  sync.Mutex
	fpNext map[int]int64

	mu     sync.Mutex
	idx    *fingerprint.Index
	local  map[string]*localTrack  // by pipeline track ID
	remote map[string]*remoteTrack // by index name
	// idents are the identities of the index's tracks (local and
	// remote), by index name: what an alert names.
	idents map[string]Record
	// held is how far each local track's name is indexed: a track
	// fingerprinted again (its chunks redelivered after it ended) adds
	// nothing twice.
	held map[string]*extent
	// private are the rooms lifecycle events call private (as many as
	// the lifecycle topic's sessions in the window).
	private map[string]bool
	// erased are the erased people and rooms (pseudonyms) with the time
	// of their erasure (Unix ms), for twice the window.
	erased  map[string]int64
	queue   []*query
	lastExp time.Time

	closeOnce sync.Once

	wmu   sync.Mutex
	wstat map[string]*WatchStatus // by watched stream

	// rings hold each watched stream's last seconds of audio (its current
	// connection's), by stream name; clips are the stream clips of alerts
	// built but not yet produced. Under s.mu.
	rings map[string]*clipRing
	clips []pendingClip
}

// localTrack is a track this instance fingerprints and matches.
type localTrack struct {
	dec     *trackDecoder
	ext     *fingerprint.Extractor
	rec     Record // the record template: identity, Start, next Seq
	id      uint32
	matcher *fingerprint.Matcher
	used    time.Time
	pcm     []float32
	pairs   []fingerprint.Pair
	levels  []int8
}

// extent is what the index holds of a track: levels up to frame levels
// (exclusive), pairs up to anchor frame pair (inclusive).
type extent struct{ levels, pair int32 }

// remoteTrack is a track another instance fingerprints.
type remoteTrack struct {
	id      uint32
	lastSeq int64
	rec     Record // identity only
}

// query is a chunk's landmarks waiting for QueryDelay.
type query struct {
	due   time.Time
	track *localTrack
	pairs []fingerprint.Pair
	final bool
	d     *bus.Delivery
}

// New builds the stage.
func New(cfg Config) (*Stage, error) {
	var errs []string
	if cfg.Consumer == nil || cfg.Sender == nil || cfg.Log == nil {
		errs = append(errs, "needs a Consumer, a Log and a Sender")
	}
	keyer, err := fingerprint.NewKeyer(cfg.Secret)
	if err != nil {
		errs = append(errs, err.Error())
	}
	mcfg := fingerprint.DefaultMatcherConfig()
	if cfg.Matcher != nil {
		mcfg = *cfg.Matcher
	}
	if err := mcfg.Validate(); err != nil {
		errs = append(errs, err.Error())
	}
	if cfg.Window == 0 {
		cfg.Window = 30 * time.Minute
	}
	idx, err := fingerprint.NewIndex(fingerprint.IndexConfig{Window: cfg.Window})
	if err != nil {
		errs = append(errs, err.Error())
	}
	if cfg.MaxLandmarks < 0 || cfg.QueryDelay < 0 || cfg.IdleTrack < 0 || cfg.AlertLookback < 0 || cfg.RebuildWait < 0 {
		errs = append(errs, "negative max landmarks, query delay, idle track, alert lookback or rebuild wait")
	}
	for i, p := range cfg.Allow {
		if p.Rooms[0] == "" || p.Rooms[1] == "" || p.Rooms[0] == p.Rooms[1] {
			errs = append(errs, fmt.Sprintf("allowed pair %d does not name two rooms", i))
		}
	}
	if cfg.Evidence != nil {
		if err := checkEvidenceStore(cfg.Evidence); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if cfg.StreamClipBuffer < 0 || cfg.StreamClipBuffer > 10*time.Minute {
		errs = append(errs, "stream clip buffer outside 0–10 min")
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("rebroadcast: stage: %v", errs)
	}
	if cfg.MaxLandmarks == 0 {
		cfg.MaxLandmarks = 100_000_000
	}
	if cfg.QueryDelay == 0 {
		cfg.QueryDelay = 2 * time.Second
	}
	if cfg.IdleTrack == 0 {
		cfg.IdleTrack = 2 * time.Minute
	}
	if cfg.AlertLookback == 0 {
		cfg.AlertLookback = 24 * time.Hour
	}
	if cfg.RebuildWait == 0 {
		cfg.RebuildWait = 2 * time.Minute
	}
	if cfg.Instance == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		cfg.Instance = hex.EncodeToString(b[:])
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Streams == nil {
		cfg.Streams = FFmpeg{}
	}
	if cfg.StreamClipBuffer == 0 {
		cfg.StreamClipBuffer = time.Minute
	}
	if cfg.WatchBackoff <= 0 {
		cfg.WatchBackoff = time.Minute
	}
	cfg.Topics.defaults()
	if len(cfg.Allow) > 0 {
		allow, also := newAllowList(cfg.Allow, cfg.Now), mcfg.Allowed
		mcfg.Allowed = func(a, b string) bool { return allow.allowed(a, b) || (also != nil && also(a, b)) }
	}
	s := &Stage{
		cfg: cfg, log: cfg.Logger.With("stage", "rebroadcast"), perm: keyer.Permutation(), mcfg: mcfg,
		raised: bus.NewDedupe(0), idx: idx, local: map[string]*localTrack{}, remote: map[string]*remoteTrack{}, idents: map[string]Record{}, held: map[string]*extent{}, private: map[string]bool{},
		erased: map[string]int64{}, fpNext: map[int]int64{}, rings: map[string]*clipRing{},
	}
	s.m = newStageMetrics(s)
	s.rebuilt = newRebuild(len(s.followers()))
	if cfg.Metrics != nil {
		if err := cfg.Metrics.Register(s.m); err != nil {
			return nil, fmt.Errorf("rebroadcast: metrics: %w", err)
		}
	}
	for _, p := range cfg.Allow {
		until := "no end"
		if !p.Until.IsZero() {
			until = p.Until.UTC().Format(time.RFC3339)
		}
		s.log.Info("room pair allow-listed: never compared", "until", until, "reason", p.Reason)
	}
	return s, nil
}

// Run follows the fingerprints topic, consumes the audio and matches until
// ctx ends.
func (s *Stage) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(4)
	go func() {
		defer wg.Done()
		s.tick(ctx)
	}()
	go func() {
		defer wg.Done()
		s.watchers(ctx)
	}()
	go func() {
		defer wg.Done()
		s.followAll(ctx)
	}()
	go func() {
		defer wg.Done()
		s.monitorLag(ctx)
	}()
	s.log.Info("rebroadcast stage started", "instance", s.cfg.Instance, "window", s.cfg.Window, "query_delay", s.cfg.QueryDelay)
	// Audio waits for the rebuild: a chunk matched before the index,
	// the raised alerts and the erasures are read back could miss its
	// original, raise an alert again or index an erased person.
	s.waitRebuilt(ctx)
	err := s.cfg.Consumer.Run(ctx, s.handle)
	cancel()
	wg.Wait()
	return err
}

// Close releases the stage; idempotent.
func (s *Stage) Close() error {
	var err error
	s.closeOnce.Do(func() {
		err = s.cfg.Consumer.Close()
		s.mu.Lock()
		defer s.mu.Unlock()
		for id, t := range s.local {
			_ = t.dec.Close()
			delete(s.local, id)
		}
	})
	return err
}

// Instance is the name this stage writes in its records.
func (s *Stage) Instance() string { return s.cfg.Instance }

// IndexStats reports the tracks and landmarks the index holds and its
// memory estimate in bytes.
func (s *Stage) IndexStats() (tracks, landmarks int, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.idx.Tracks(), s.idx.Len(), s.idx.Bytes()
}

// followAll follows every partition of the followed topics until ctx
// ends.
func (s *Stage) followAll(ctx context.Context) {
	var wg sync.WaitGroup
	for _, f := range s.followers() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.followTopic(ctx, f, s.rebuilt.caughtUp())
		}()
	}
	wg.Wait()
}

// followTopic follows every partition of a topic from since before now,
// and calls caughtUp once it has read what the topic held at the start.
// Until the topic's partitions are known (the brokers answer), the
// instance goes on without (matching its own tracks only, or calling no
// room private); it asks again every 5 s.
func (s *Stage) followTopic(ctx context.Context, f follower, caughtUp func()) {
	var parts, ends map[int]int64
	for {
		var err error
		if parts, ends, err = s.startFollowing(ctx, f.topic, f.since); err == nil {
			break
		}
		if unreadable(err) {
			caughtUp() // nothing to read back; asked again for live records
		}
		s.log.Warn("topic not readable yet; again in 5 s", "topic", f.topic, "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Second):
		}
	}
	s.log.Info("following", "topic", f.topic, "partitions", len(parts))
	var behind atomic.Int64
	for p, from := range parts {
		if from < ends[p] {
			behind.Add(1)
		}
	}
	if behind.Load() == 0 {
		caughtUp()
	}
	var wg sync.WaitGroup
	for p, from := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.follow(ctx, f, p, from, ends[p], func() {
				if behind.Add(-1) == 0 {
					caughtUp()
				}
			})
		}()
	}
	wg.Wait()
}

// roomClass notes the rooms whose session_started says they are private:
// their audio found elsewhere raises a critical alert.
func (s *Stage) roomClass(m bus.Message) {
	e, err := event.Decode(m.Value)
	if err != nil || e.Type != event.TypeSessionStarted {
		return
	}
	var p event.SessionStarted
	if e.DecodePayload(&p) != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.Metadata["private"] == "true" {
		s.private[e.Room] = true
	} else {
		delete(s.private, e.Room)
	}
}

// startFollowing finds where each partition of topic holds the records
// of the last since (the state is rebuilt from there) and where it ends
// now.
func (s *Stage) startFollowing(ctx context.Context, topic string, since time.Duration) (from, end map[int]int64, err error) {
	ranges, err := s.cfg.Log.Offsets(ctx, topic)
	if err != nil {
		return nil, nil, fmt.Errorf("rebroadcast: offsets of %s: %w", topic, err)
	}
	from, end = map[int]int64{}, map[int]int64{}
	at := s.cfg.Now().Add(-since)
	for p, r := range ranges {
		off, err := s.cfg.Log.OffsetAt(ctx, topic, p, at)
		if err != nil {
			return nil, nil, fmt.Errorf("rebroadcast: rebuild position of %s/%d: %w", topic, p, err)
		}
		from[p], end[p] = min(max(off, r.First), r.End), r.End
	}
	return from, end, nil
}

// follow hands one partition's records to f.fn until ctx ends, starting
// again after a failed fetch; it calls caughtUp once it has passed end.
func (s *Stage) follow(ctx context.Context, f follower, partition int, from, end int64, caughtUp func()) {
	topic, fn := f.topic, f.fn
	next, reached := from, from >= end
	fp := topic == s.cfg.Topics.Fingerprints
	for ctx.Err() == nil {
		err := s.cfg.Log.Follow(ctx, topic, partition, next, func(m bus.Message) error {
			next = m.Offset + 1
			fn(m)
			if fp {
				s.posMu.Lock()
				s.fpNext[partition] = next
				s.posMu.Unlock()
			}
			if !reached && next >= end {
				reached = true
				caughtUp()
			}
			return nil
		})
		if ctx.Err() != nil {
			return
		}
		wait := time.Second
		if unreadable(err) {
			// Refused: nothing to wait for at start-up; asked again
			// now and then, in case the ACLs are fixed.
			wait = 30 * time.Second
			if !reached {
				reached = true
				caughtUp()
			}
		}
		s.log.Warn("following failed; again later", "topic", topic, "partition", partition, "error", err, "again_in", wait)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}

// indexRecord adds another instance's record to the index. A bad record
// is logged and skipped: it is nobody's audio.
func (s *Stage) indexRecord(m bus.Message) {
	r, err := DecodeRecord(m.Value)
	if err != nil {
		s.m.recordsSkipped.Inc()
		s.log.Warn("fingerprint record skipped", "partition", m.Partition, "offset", m.Offset, "error", err)
		return
	}
	if r.Origin == s.cfg.Instance {
		return // indexed when it was extracted
	}
	lms, err := unpackLandmarks(r.Landmarks, s.perm)
	if err != nil {
		s.m.recordsSkipped.Inc()
		s.log.Warn("fingerprint record skipped", "partition", m.Partition, "offset", m.Offset, "error", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.erasedAt(r.Room, r.Speaker, r.StartMS+int64(r.Frame)*fingerprint.FrameMS) {
		s.m.recordsSkipped.Inc()
		return // erased after this audio was heard: never indexed again
	}
	name := r.name()
	rt, ok := s.remote[name]
	if ok && r.Seq <= rt.lastSeq {
		return // a redelivered chunk's record
	}
	if !ok || !s.idx.Known(name) {
		id := s.idx.AddTrack(fingerprint.TrackInfo{Track: name, Room: r.Room, Speaker: r.Speaker, StartMS: r.StartMS, Private: r.Private})
		rt = &remoteTrack{id: id, lastSeq: -1, rec: Record{Track: r.Track, Start: r.Start, Room: r.Room, Session: r.Session, Speaker: r.Speaker, StartMS: r.StartMS}}
		s.remote[name] = rt
		s.idents[name] = rt.rec
	}
	if r.Seq != rt.lastSeq+1 && rt.lastSeq >= 0 {
		// Records lost between instances: matching goes on with what came.
		s.log.Warn("fingerprint records missing", "track_records_skipped", r.Seq-rt.lastSeq-1, "partition", m.Partition, "offset", m.Offset)
	}
	rt.lastSeq = r.Seq
	s.idx.AddLevels(rt.id, levelsOf(r.Levels))
	if err := s.idx.AddLandmarks(rt.id, lms); err != nil {
		s.log.Warn("fingerprint record not indexed", "error", err)
		return
	}
	s.m.indexedRemote.Add(float64(len(lms)))
}

// handle takes one audio chunk: decode, extract, index, publish the
// record, and queue its landmarks for matching (the chunk is acknowledged
// after that).
func (s *Stage) handle(ctx context.Context, d *bus.Delivery) {
	e, err := event.Decode(d.Value)
	if err == nil && (e.Type != event.TypeAudioChunk || e.Timeline == nil) {
		err = fmt.Errorf("%w: %s on the audio topic is not an audio chunk", errBadChunk, e.Type)
	}
	var (
		p    event.AudioChunk
		data event.AudioChunkData
	)
	if err == nil {
		err = e.DecodePayload(&p)
	}
	if err == nil && p.Codec != "" && p.Codec != "opus" {
		err = fmt.Errorf("%w: codec %q", errBadChunk, p.Codec)
	}
	if err == nil {
		err = e.Open(ctx, s.cfg.Keys, &data)
	}
	if errors.Is(err, event.ErrKeyDestroyed) {
		s.m.erasedChunks.Inc()
		d.Ack() // the speaker was erased: nothing of theirs is fingerprinted
		return
	}
	if err != nil {
		s.deadLetter(ctx, d, err)
		return
	}
	rec, q, derr := s.extract(e, &p, &data, d)
	if rec != nil {
		if err := s.publish(ctx, rec); err != nil {
			// Not acked: redelivered after a restart or rebalance.
			s.log.Error("fingerprint record not produced", "error", err)
			return
		}
		s.m.published.Add(float64(len(rec.Landmarks) / 8))
	}
	if derr != nil {
		// The audio that decoded is used; the chunk is kept for people to
		// look at.
		s.m.decodeErrors.Inc()
		s.deadLetter(ctx, d, derr)
		if q != nil {
			q.d = nil
		}
	}
	if q == nil {
		if derr == nil {
			d.Ack()
		}
		return
	}
	s.mu.Lock()
	s.queue = append(s.queue, q)
	s.mu.Unlock()
}

// extract decodes a chunk into its track's extractor and indexes the
// result. It returns the record to publish (nil: nothing new) and the
// query to match later.
func (s *Stage) extract(e *event.Envelope, p *event.AudioChunk, data *event.AudioChunkData, d *bus.Delivery) (*Record, *query, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	if s.erasedAt(e.Room, e.Speaker, e.Timeline.Origin.Add(event.SamplesToDuration(e.Timeline.FirstSample)).UnixMilli()) {
		// Erased, its key still cached here: not fingerprinted.
		s.m.erasedChunks.Inc()
		return nil, nil, nil
	}
	t := s.local[e.Timeline.Track]
	if t == nil {
		if err := check(e.Timeline, data); err != nil {
			return nil, nil, err
		}
		dec, err := newTrackDecoder()
		if err != nil {
			return nil, nil, err
		}
		t = &localTrack{dec: dec, ext: fingerprint.NewExtractor()}
		s.local[e.Timeline.Track] = t
	}
	t.used = now
	var derr error
	t.pcm, derr = t.dec.decode(e.Timeline, data, t.pcm[:0])
	if errors.Is(derr, errBadChunk) {
		return nil, nil, derr
	}
	s.m.chunks.Inc()
	if t.matcher != nil && !s.idx.Known(t.rec.name()) {
		t.matcher = nil // expired after a long silence: registered afresh
	}
	if t.matcher == nil {
		if t.dec.first < 0 {
			return nil, nil, derr // nothing decoded yet
		}
		start := t.dec.first * ratio
		seq := t.rec.Seq
		private := s.cfg.Private != nil && s.cfg.Private(e.Room)
		t.rec = Record{V: recordVersion, Origin: s.cfg.Instance, Track: e.Timeline.Track, Start: start,
			Room: e.Room, Session: e.Session, Speaker: e.Speaker,
			StartMS: e.Timeline.Origin.Add(event.SamplesToDuration(start)).UnixMilli(), Private: private, Seq: seq}
		s.idents[t.rec.name()] = t.rec
		t.id = s.idx.AddTrack(fingerprint.TrackInfo{Track: t.rec.name(), Room: e.Room, Speaker: e.Speaker, StartMS: t.rec.StartMS, Private: private})
		m, err := fingerprint.NewMatcher(s.mcfg, s.idx, t.id)
		if err != nil {
			return nil, nil, err
		}
		t.matcher = m
	}
	frame := t.ext.Frames()
	t.pairs, t.levels = t.ext.Push(t.pcm, t.pairs[:0], t.levels[:0])
	if p.Final {
		t.pairs = t.ext.Flush(t.pairs)
	}
	if len(t.pairs) == 0 && len(t.levels) == 0 && !p.Final {
		return nil, nil, derr // a redelivered chunk: nothing new
	}
	name := t.rec.name()
	h := s.held[name]
	if h == nil {
		h = &extent{pair: -1}
		s.held[name] = h
	}
	if skip := int(h.levels - frame); skip < len(t.levels) {
		s.idx.AddLevels(t.id, t.levels[max(skip, 0):])
		h.levels = frame + int32(len(t.levels))
	}
	fresh := t.pairs
	for len(fresh) > 0 && fresh[0].T <= h.pair {
		fresh = fresh[1:]
	}
	if err := s.idx.Add(t.id, fresh); err != nil {
		return nil, nil, err
	}
	s.m.indexedLocal.Add(float64(len(fresh)))
	if len(fresh) > 0 {
		h.pair = fresh[len(fresh)-1].T
	}
	lms := fingerprint.Landmarks(t.pairs, nil)
	rec := t.rec
	rec.Frame, rec.Levels, rec.Landmarks = frame, levelBytes(t.levels), packLandmarks(lms, s.perm)
	t.rec.Seq++
	q := &query{due: now.Add(s.cfg.QueryDelay), track: t, pairs: slices.Clone(t.pairs), final: p.Final, d: d}
	if p.Final {
		_ = t.dec.Close()
		delete(s.local, e.Timeline.Track)
	}
	return &rec, q, derr
}

// tick matches the queries that are due, expires the index and closes
// idle tracks, until ctx ends.
func (s *Stage) tick(ctx context.Context) {
	tk := time.NewTicker(100 * time.Millisecond)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		s.matchDue(ctx)
	}
}

// matchDue runs the due queries in arrival order, produces their alerts
// and acknowledges their chunks.
func (s *Stage) matchDue(ctx context.Context) {
	now := s.cfg.Now()
	s.mu.Lock()
	n := 0
	for n < len(s.queue) && !s.queue[n].due.After(now) {
		n++
	}
	due := slices.Clone(s.queue[:n])
	s.queue = slices.Delete(s.queue, 0, n)
	var found []fingerprint.Match
	for _, q := range due {
		found = append(found, q.track.matcher.Push(q.pairs)...)
		if q.final {
			found = append(found, q.track.matcher.Flush()...)
		}
	}
	s.m.matches.Add(float64(len(found)))
	msgs, ids, ps := s.alerts(ctx, found)
	s.housekeep(now)
	s.mu.Unlock()
	if len(msgs) > 0 {
		s.storeClips(ctx) // evidence before the alert that points to it
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		err := s.cfg.Sender.Produce(pctx, msgs...)
		cancel()
		if err != nil {
			// Not acked: the chunks come again after a restart or a
			// rebalance, and the same alerts get the same IDs.
			s.log.Error("rebroadcast alerts not produced", "error", err)
			return
		}
		for i, id := range ids {
			s.raised.Add(id)
			s.m.alerted(ps[i])
		}
	}
	for _, q := range due {
		if q.d != nil {
			q.d.Ack()
		}
	}
}

// housekeep expires the index (every 10 s), keeps it under MaxLandmarks
// and closes idle tracks. Under s.mu.
func (s *Stage) housekeep(now time.Time) {
	if now.Sub(s.lastExp) < 10*time.Second {
		return
	}
	s.lastExp = now
	nowMS := now.UnixMilli()
	s.idx.Expire(nowMS)
	// Past the memory bound, the window shrinks a minute at a time.
	for shift := int64(60_000); s.idx.Len() > s.cfg.MaxLandmarks && shift <= s.cfg.Window.Milliseconds(); shift += 60_000 {
		s.idx.Expire(nowMS + shift)
	}
	for id, t := range s.local {
		if now.Sub(t.used) > s.cfg.IdleTrack {
			_ = t.dec.Close()
			delete(s.local, id)
		}
	}
	s.forgetDropped()
	s.expireErasures(nowMS)
}

func (s *Stage) deadLetter(ctx context.Context, d *bus.Delivery, reason error) {
	s.log.Warn("audio chunk dead-lettered", "partition", d.Partition, "offset", d.Offset, "reason", reason)
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := bus.DeadLetter(dctx, s.cfg.Sender, s.cfg.Topics.DeadLetter, d.Message, reason.Error()); err != nil {
		s.log.Error("dead letter failed; the chunk will be redelivered", "error", err)
		return
	}
	s.m.deadLetters.Inc()
	d.Ack()
}

// publish writes one fingerprint record to the fingerprints topic, keyed
// by its track; it finishes even when ctx is cancelled (shutdown), within
// 30 s.
func (s *Stage) publish(ctx context.Context, rec *Record) error {
	b, err := rec.marshal()
	if err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	return s.cfg.Sender.Produce(pctx, bus.Message{Topic: s.cfg.Topics.Fingerprints, Key: []byte(rec.Track), Value: b})
}
