package cluster

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/e2e"
	"github.com/earshot/earshot/internal/speakerbot"
	"github.com/earshot/earshot/internal/speech"
	"github.com/earshot/earshot/internal/testbed"
	"github.com/earshot/earshot/storage"
	"github.com/earshot/earshot/storage/crypt"
)

// The chunk feeder is a transcription load that scales on two cores:
// pre-rendered speech (filler lines with pauses of about twice their
// length, so a third of the audio is speech, as the speaker bots talk) is
// cut into the live chunks ingest makes (240 ms, 12 Opus packets, sealed
// under the run's keys) and produced to earshot.audio in real time, one
// chunk per track every 240 ms, as the admin principal. It stands in for
// ingest (WebRTC, Janus, the bots): what it leaves out is their CPU, which
// two cores could not carry at the loads the transcription search needs.
// Its rooms are not the harness's Janus rooms, so the fault checks'
// readers (Events) never see its transcripts.

// chunkPackets is 240 ms of 20 ms packets: ingest's shipped chunk.
const chunkPackets = 12

type feedClip struct {
	packets [][]byte
	speech  []bool // per packet: inside a speech cue
}

// Feeder produces live audio chunks of virtual tracks.
type Feeder struct {
	h     *Harness
	clips []feedClip
	prod  *bus.Producer
	room  string // a pseudonym of no Janus room
	keys  event.Keys
	// SpeechShare is the share of the clips' audio that is speech.
	SpeechShare float64
}

// NewFeeder renders the feeder's clips.
func (h *Harness) NewFeeder() *Feeder {
	t := h.t
	t.Helper()
	tools := e2e.SpeechTools(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := filepath.Join(h.dir, "feed")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	f := &Feeder{h: h, room: h.Pseud.Room("feed-" + e2e.RandHex(6))}
	var speechN, allN int
	for c := range 4 {
		var items []speech.Item
		for k := range 3 {
			text := filler[(c*3+k)%len(filler)]
			// A pause of about twice the line (espeak-ng speaks about
			// 14 characters a second).
			items = append(items, speech.Item{Kind: speech.KindSpeech, Text: text},
				speech.Item{Kind: speech.KindPause, DurMS: 2 * 1000 * len(text) / 14})
		}
		clip, err := tools.Synthesize(ctx, items, filepath.Join(dir, fmt.Sprintf("c%d.opus", c)))
		if err != nil {
			t.Fatalf("render feeder clip %d: %v", c, err)
		}
		fc := feedClip{packets: opusPackets(t, clip.Path)}
		fc.speech = make([]bool, len(fc.packets))
		for _, cue := range clip.Cues {
			if cue.Kind != speech.KindSpeech {
				continue
			}
			for i := cue.StartMS / 20; i < cue.EndMS/20 && int(i) < len(fc.speech); i++ {
				fc.speech[i] = true
			}
		}
		for _, s := range fc.speech {
			if s {
				speechN++
			}
		}
		allN += len(fc.packets)
		f.clips = append(f.clips, fc)
	}
	f.SpeechShare = float64(speechN) / float64(allN)
	// Its own keyring, caching data keys as ingest's does (the harness's
	// reads every key from storage, which at a chunk per track every
	// 240 ms would load versitygw, not the stage measured).
	kek, err := crypt.LoadLocalKEK(filepath.Join(h.dir, "secrets", "kek.key"), false)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := storage.NewS3(ctx, h.S3)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := crypt.NewKeyring(crypt.KeyringConfig{KEK: kek, Store: raw})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kr.Close() })
	f.keys = kr
	if f.prod, err = bus.NewProducer(bus.ProducerConfig{Cluster: h.Admin, ClientID: "earshot-cluster-feeder"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.prod.Close() })
	return f
}

func opusPackets(t testing.TB, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	file, err := speakerbot.ReadOpusFile(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	out := make([][]byte, 0, len(file.Packets))
	for _, p := range file.Packets {
		if p.Samples != 960 {
			t.Fatalf("%s has a %d-sample packet; 20 ms expected", path, p.Samples)
		}
		out = append(out, p.Data)
	}
	return out
}

// Feed is a running feed: Tracks virtual tracks at all times, each
// looping one clip from its own offset. A track lives 60 to 160 chunks
// (14 to 38 s; the first ones a random part of that, so that ends are
// spread from the start), then ends with a final chunk and a new speaker
// takes its place: the worker settles a track's speech again when it ends
// (the settled pass), so the pass's engine work falls inside a short
// measuring window instead of after it, as it would with tracks that
// outlive the window and never reach a batch of 25 s of speech.
type Feed struct {
	Tracks  int
	Started time.Time
	cancel  context.CancelFunc
	done    chan struct{}
	// speechPackets and chunks count what was produced.
	speechPackets, chunks atomic.Int64
	errMu                 sync.Mutex
	err                   error
}

type feedTrack struct {
	id, speaker, session string
	clip                 *feedClip
	pos                  int // next packet of the clip
	seq                  int64
	sample               int64 // timeline sample of the next packet
	origin               time.Time
	left                 int // chunks until it ends
}

// Track lifetimes, in chunks.
const minTrackChunks, maxTrackChunks = 60, 160

// newTrack starts virtual track n of a feed, living between lo and
// maxTrackChunks chunks.
func (f *Feeder) newTrack(run string, n, lo int) *feedTrack {
	session := event.SessionID(f.room, time.Now().UnixNano())
	sp := f.h.Pseud.Person("feed-" + run + "-" + strconv.Itoa(n))
	c := &f.clips[n%len(f.clips)]
	return &feedTrack{id: event.TrackID(session, sp, 0), speaker: sp, session: session, clip: c,
		pos:    (int(randN(uint64(len(c.packets)))) / chunkPackets) * chunkPackets,
		origin: time.Now().UTC(), left: lo + int(randN(uint64(maxTrackChunks-lo+1)))}
}

// Start produces chunks of tracks virtual tracks until Stop.
func (f *Feeder) Start(tracks int) *Feed {
	ctx, cancel := context.WithCancel(context.Background())
	fd := &Feed{Tracks: tracks, Started: time.Now(), cancel: cancel, done: make(chan struct{})}
	run := e2e.RandHex(6)
	var ts []*feedTrack
	for i := range tracks {
		ts = append(ts, f.newTrack(run, i, 1))
	}
	made := tracks
	go func() {
		defer close(fd.done)
		tick := time.NewTicker(chunkPackets * 20 * time.Millisecond)
		defer tick.Stop()
		for {
			stop := false
			select {
			case <-ctx.Done():
				stop = true
			case <-tick.C:
			}
			msgs := make([]bus.Message, 0, len(ts))
			for i, tr := range ts {
				tr.left--
				final := stop || tr.left <= 0
				m, sp, err := f.chunk(tr, final)
				if err != nil {
					fd.fail(err)
					return
				}
				msgs = append(msgs, m)
				fd.speechPackets.Add(int64(sp))
				if final && !stop {
					ts[i] = f.newTrack(run, made, minTrackChunks)
					made++
				}
			}
			pctx, pcancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := f.prod.Produce(pctx, msgs...)
			pcancel()
			if err != nil {
				fd.fail(fmt.Errorf("produce %d chunks: %w", len(msgs), err))
				return
			}
			fd.chunks.Add(int64(len(msgs)))
			if stop {
				return
			}
		}
	}()
	return fd
}

// chunk makes the next chunk of tr; sp counts its packets of speech.
func (f *Feeder) chunk(tr *feedTrack, final bool) (m bus.Message, sp int, err error) {
	var data event.AudioChunkData
	for k := range chunkPackets {
		if tr.pos >= len(tr.clip.packets) {
			tr.pos = 0
		}
		data.Packets = append(data.Packets, tr.clip.packets[tr.pos])
		data.Offsets = append(data.Offsets, int64(k)*960)
		if tr.clip.speech[tr.pos] {
			sp++
		}
		tr.pos++
	}
	tl := event.Timeline{Track: tr.id, FirstSample: tr.sample, LastSample: tr.sample + chunkPackets*960 - 1, Origin: tr.origin, Anchor: event.AnchorRTCP}
	e, err := event.New(event.TypeAudioChunk, event.Producer{Name: "earshot-cluster-feeder"}, nil, f.room, tr.session, tr.speaker, &tl,
		event.AudioChunk{Codec: "opus", Channels: 1, Seq: tr.seq, Frames: chunkPackets, Final: final})
	if err != nil {
		return m, 0, err
	}
	tr.seq++
	tr.sample += chunkPackets * 960
	now := time.Now()
	e.Hops.Recorded, e.Hops.Chunked = event.Stamp(now), event.Stamp(now)
	if err := e.Seal(context.Background(), f.keys, data); err != nil {
		return m, 0, fmt.Errorf("seal a chunk: %w", err)
	}
	v, err := e.Marshal()
	if err != nil {
		return m, 0, err
	}
	return bus.Message{Topic: event.TopicAudio, Key: []byte(tr.id), Value: v}, sp, nil
}

func (fd *Feed) fail(err error) {
	fd.errMu.Lock()
	defer fd.errMu.Unlock()
	if fd.err == nil {
		fd.err = err
	}
}

// Err is why the feed stopped early (nil while it runs as asked).
func (fd *Feed) Err() error {
	fd.errMu.Lock()
	defer fd.errMu.Unlock()
	return fd.err
}

// SpeechSeconds is the speech produced so far.
func (fd *Feed) SpeechSeconds() float64 { return float64(fd.speechPackets.Load()) * 0.02 }

// Chunks is the number of chunks produced so far.
func (fd *Feed) Chunks() int64 { return fd.chunks.Load() }

// Stop ends every track with a final chunk and waits for the feed.
func (fd *Feed) Stop() error {
	fd.cancel()
	<-fd.done
	return fd.Err()
}

// --- Process figures --------------------------------------------------------------

// procCPU is a process's user+system CPU time, all threads, from
// /proc/<pid>/stat.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces: the fields after it start after
	// the last ')', with the state (field 3); utime and stime are 14, 15.
	rest := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(rest) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, b)
	}
	ut, err1 := strconv.ParseInt(rest[11], 10, 64)
	st, err2 := strconv.ParseInt(rest[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, b)
	}
	// USER_HZ is 100 on every Linux the test bed runs on.
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

// whisperPID is the test bed's Whisper fixture: the transcription stage's
// engine, whose CPU the stage's capacity counts.
func whisperPID(t testing.TB) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testbed.Dir(), "whisper.pid"))
	if err != nil {
		t.Fatalf("the Whisper fixture's pid: %v", err)
	}
	f := strings.Fields(string(b))
	pid := 0
	if len(f) > 0 {
		pid, _ = strconv.Atoi(f[0])
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); pid <= 0 || err != nil {
		t.Fatalf("the Whisper fixture (pid file %q) is not running", b)
	}
	return pid
}

// PID is the process's id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }
