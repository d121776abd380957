package janus_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media/oggwriter"

	"github.com/earshot/earshot/ingest/janus"
	"github.com/earshot/earshot/internal/speakerbot"
	"github.com/earshot/earshot/internal/testbed"
)

const (
	testRoom   = 1234 // VideoRoom
	testBridge = 2345 // AudioBridge
)

// newClient returns a client for the test bed's Janus. With
// EARSHOT_JANUS_CAPTURE=<dir>, every event Janus sends is also written
// there, one file each (how testdata/events was made).
func newClient(t *testing.T) (*janus.Client, testbed.JanusEndpoint) {
	t.Helper()
	ep := testbed.JanusServer(t)
	cfg := janus.Config{URL: ep.URL, LocalAddr: ep.HostAddr}
	if dir := os.Getenv("EARSHOT_JANUS_CAPTURE"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		cfg.HTTPClient = &http.Client{Transport: &captureTransport{rt: http.DefaultTransport, dir: dir, prefix: t.Name()}}
	}
	c, err := janus.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, ep
}

func newSession(t *testing.T, ctx context.Context, c *janus.Client) *janus.Session {
	t.Helper()
	s, err := c.CreateSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close session: %v", err)
		}
	})
	return s
}

func TestJanusInfo(t *testing.T) {
	c, _ := newClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.VersionString == "" || info.SessionTimeout < 60 {
		t.Errorf("info: version %q, session timeout %d", info.VersionString, info.SessionTimeout)
	}
	for _, p := range []string{janus.PluginVideoRoom, janus.PluginAudioBridge} {
		if _, ok := info.Plugins[p]; !ok {
			t.Errorf("plugin %s not loaded; plugins: %v", p, keys(info.Plugins))
		}
	}
}

// TestRoomDiscovery covers the synchronous VideoRoom and AudioBridge
// requests and the typed plugin errors.
func TestRoomDiscovery(t *testing.T) {
	c, _ := newClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := newSession(t, ctx, c)

	vr, err := janus.AttachVideoRoom(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	rooms, err := vr.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range rooms {
		found = found || r.Room == janus.NumID(testRoom) && strings.Contains(r.AudioCodec, "opus")
	}
	if !found {
		t.Errorf("room %d with opus not listed: %+v", testRoom, rooms)
	}
	if ok, err := vr.Exists(ctx, janus.NumID(testRoom)); err != nil || !ok {
		t.Errorf("exists(%d) = %v, %v", testRoom, ok, err)
	}
	if _, err := vr.ListParticipants(ctx, janus.NumID(testRoom)); err != nil {
		t.Errorf("listparticipants: %v", err)
	}
	_, err = vr.ListParticipants(ctx, janus.NumID(987654321))
	var pe *janus.PluginError
	if !errors.As(err, &pe) || pe.Code != janus.VideoRoomErrNoSuchRoom {
		t.Errorf("listparticipants of a missing room: %v, want plugin error %d", err, janus.VideoRoomErrNoSuchRoom)
	}

	ab, err := janus.AttachAudioBridge(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	arooms, err := ab.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(arooms) == 0 {
		t.Fatal("no AudioBridge rooms listed")
	}
	joined, err := ab.Join(ctx, janus.AudioBridgeJoin{Room: arooms[0].Room, Display: "earshot-test-listener", Muted: true})
	if err != nil {
		t.Fatal(err)
	}
	parts, err := ab.ListParticipants(ctx, arooms[0].Room)
	if err != nil {
		t.Fatal(err)
	}
	var me *janus.AudioParticipant
	for i := range parts {
		if parts[i].ID == joined.ID {
			me = &parts[i]
		}
	}
	if me == nil || !me.Muted {
		t.Errorf("our muted listener %v not among participants %+v", joined.ID, parts)
	}
	if err := ab.Leave(ctx); err != nil {
		t.Errorf("leave: %v", err)
	}
	if err := ab.Detach(ctx); err != nil {
		t.Errorf("detach: %v", err)
	}
	if err := ab.Detach(ctx); err != nil {
		t.Errorf("second detach: %v", err)
	}
}

// joinAsWatcher sets up a test in room 1234: a session with a participant
// that never publishes but sees publishers come and go (as the recorder's
// visible bot does), and the pion API for peers on the test bed's veth.
func joinAsWatcher(t *testing.T) (context.Context, *janus.Client, testbed.JanusEndpoint, *webrtc.API, *janus.Session, *janus.VideoRoom, *janus.VideoRoomEvent) {
	t.Helper()
	c, ep := newClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	api, err := janus.NewAPI(janus.WebRTCConfig{Interface: ep.HostIface})
	if err != nil {
		t.Fatal(err)
	}
	s := newSession(t, ctx, c)
	watcher, err := janus.AttachVideoRoom(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	joined, err := watcher.Join(ctx, janus.PublisherJoin{Room: janus.NumID(testRoom), Display: "earshot-test-listener"})
	if err != nil {
		t.Fatal(err)
	}
	return ctx, c, ep, api, s, watcher, joined
}

// received collects what a subscriber got on one track.
type received struct {
	mu      sync.Mutex
	track   *janus.RemoteTrack
	codec   webrtc.RTPCodecParameters
	packets []rtp.Packet
	ogg     string
	done    chan struct{}
}

func (r *received) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.packets)
}

// recordTrack reads a track until it ends, keeping the packets and writing
// them to an Ogg file.
func recordTrack(t *testing.T, tr *janus.RemoteTrack, dir string) *received {
	r := &received{track: tr, codec: tr.Track.Codec(), done: make(chan struct{})}
	r.ogg = filepath.Join(dir, fmt.Sprintf("feed-%s-mid-%s.ogg", tr.Feed(), tr.Mid))
	go func() {
		defer close(r.done)
		w, err := oggwriter.New(r.ogg, 48000, 2)
		if err != nil {
			t.Errorf("ogg writer: %v", err)
			return
		}
		defer w.Close()
		for {
			pkt, _, err := tr.Track.ReadRTP()
			if err != nil {
				return
			}
			r.mu.Lock()
			r.packets = append(r.packets, *pkt)
			r.mu.Unlock()
			if err := w.WriteRTP(pkt); err != nil {
				t.Errorf("ogg write: %v", err)
			}
		}
	}()
	// Sender reports go through RTCP: drain it so the interceptors see it.
	go func() {
		for {
			if _, _, err := tr.Receiver.ReadRTCP(); err != nil {
				return
			}
		}
	}()
	return r
}

// tracks gathers the tracks a subscriber delivers, by feed.
type tracks struct {
	t   *testing.T
	dir string
	mu  sync.Mutex
	by  map[janus.ID]*received
	new chan janus.ID
}

func newTracks(t *testing.T) *tracks {
	return &tracks{t: t, dir: t.TempDir(), by: map[janus.ID]*received{}, new: make(chan janus.ID, 16)}
}

func (ts *tracks) onTrack(tr *janus.RemoteTrack) {
	r := recordTrack(ts.t, tr, ts.dir)
	ts.mu.Lock()
	ts.by[tr.Feed()] = r
	ts.mu.Unlock()
	ts.new <- tr.Feed()
}

func (ts *tracks) waitFor(t *testing.T, feed janus.ID, within time.Duration) *received {
	t.Helper()
	deadline := time.After(within)
	for {
		ts.mu.Lock()
		r := ts.by[feed]
		ts.mu.Unlock()
		if r != nil {
			return r
		}
		select {
		case <-ts.new:
		case <-deadline:
			t.Fatalf("no track from feed %s within %s", feed, within)
		}
	}
}

// bot runs a speaker bot in the background.
type bot struct {
	log  testbed.SyncBuffer
	err  chan error
	file *speakerbot.OpusFile
}

func startBot(t *testing.T, ctx context.Context, ep testbed.JanusEndpoint, display, file string, leadIn time.Duration) *bot {
	t.Helper()
	b := &bot{err: make(chan error, 1)}
	sb, err := speakerbot.New(speakerbot.Config{
		JanusURL: ep.URL, LocalAddr: ep.HostAddr, Interface: ep.HostIface, Room: janus.NumID(testRoom), Display: display,
		File: file, Log: &b.log, LeadIn: leadIn,
	})
	if err != nil {
		t.Fatal(err)
	}
	b.file = sb.File()
	go func() { b.err <- sb.Run(ctx) }()
	t.Cleanup(func() { _ = sb.Close() })
	return b
}

func (b *bot) entries(t *testing.T) []speakerbot.LogEntry {
	t.Helper()
	var out []speakerbot.LogEntry
	dec := json.NewDecoder(bytes.NewReader(b.log.Bytes()))
	for dec.More() {
		var e speakerbot.LogEntry
		if err := dec.Decode(&e); err != nil {
			t.Fatalf("publish log: %v", err)
		}
		out = append(out, e)
	}
	return out
}

// waitPublisher watches a participant handle's room notifications until a
// publisher with the display name is active.
func waitPublisher(t *testing.T, joined *janus.VideoRoomEvent, vr *janus.VideoRoom, display string, within time.Duration) janus.ID {
	t.Helper()
	for _, p := range joined.Publishers {
		if p.Display == display {
			return p.ID
		}
	}
	deadline := time.After(within)
	for {
		select {
		case ev, ok := <-vr.Events():
			if !ok {
				t.Fatal("participant handle closed")
			}
			e, err := ev.VideoRoom()
			if err != nil {
				continue
			}
			for _, p := range e.Publishers {
				if p.Display == display {
					if len(p.Streams) == 0 || p.Streams[0].Type != "audio" || p.Streams[0].Codec != "opus" {
						t.Errorf("publisher streams %+v, want one opus audio stream", p.Streams)
					}
					return p.ID
				}
			}
		case <-deadline:
			t.Fatalf("publisher %q did not appear within %s", display, within)
		}
	}
}

func uniqueName(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// TestSpeakerBotReachesSubscriber is the spine's Must-show: a speaker bot
// publishes an Ogg/Opus file into room 1234 and a pion subscriber built on
// this package receives its audio, which decodes.
func TestSpeakerBotReachesSubscriber(t *testing.T) {
	ctx, _, ep, api, s, watcher, joined := joinAsWatcher(t)

	display := uniqueName("speaker")
	b := startBot(t, ctx, ep, display, "testdata/speech.opus", 3*time.Second)
	feed := waitPublisher(t, joined, watcher, display, 30*time.Second)

	got := newTracks(t)
	sub, err := janus.Subscribe(ctx, s, janus.SubscriberConfig{
		API: api, Room: janus.NumID(testRoom), PrivateID: joined.PrivateID,
		Streams: []janus.StreamRef{{Feed: feed}}, OnTrack: got.onTrack,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	r := got.waitFor(t, feed, 30*time.Second)

	select {
	case err := <-b.err:
		if err != nil {
			t.Fatalf("speaker bot: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("speaker bot did not finish")
	}
	waitQuiet(r, 2*time.Second)
	if err := sub.Close(); err != nil {
		t.Errorf("close subscriber: %v", err)
	}
	<-r.done

	// The track is the bot's, with its display name, in Opus.
	if r.track.Stream.FeedDisplay != display || r.track.Stream.Type != "audio" {
		t.Errorf("stream %+v, want audio from %q", r.track.Stream, display)
	}
	if !strings.EqualFold(r.codec.MimeType, webrtc.MimeTypeOpus) {
		t.Errorf("codec %s, want opus", r.codec.MimeType)
	}
	entries := b.entries(t)
	if len(entries) < 3 || entries[0].Event != "start" || entries[0].FeedID != feed || entries[len(entries)-1].Event != "end" {
		t.Fatalf("publish log %+v: want start (feed %s) ... end", entries, feed)
	}
	cues := 0
	for _, e := range entries {
		if e.Event == "cue" {
			cues++
		}
	}
	if cues != 2 {
		t.Errorf("publish log has %d cue lines, want 2 (speech, tone)", cues)
	}

	// The lead-in gave us time to subscribe: (nearly) every packet arrives,
	// in order, with the negotiated Opus payload type. The veth drops
	// nothing, so sequence numbers are consecutive.
	sent := len(b.file.Packets)
	n := len(r.packets)
	if n < sent*9/10 || n > sent {
		t.Fatalf("received %d packets, the bot sent %d", n, sent)
	}
	for i, p := range r.packets {
		if p.PayloadType != uint8(r.codec.PayloadType) {
			t.Fatalf("packet %d payload type %d, negotiated %d", i, p.PayloadType, r.codec.PayloadType)
		}
		if i > 0 && p.SequenceNumber != r.packets[i-1].SequenceNumber+1 {
			t.Fatalf("packet %d: sequence %d after %d", i, p.SequenceNumber, r.packets[i-1].SequenceNumber)
		}
	}

	// The received audio decodes to about its length and is not silence.
	samples := decode(t, r.ogg)
	want := float64(n*960-3840) / 48000 // oggwriter's pre-skip is 3840
	if got := float64(len(samples)/2) / 48000; math.Abs(got-want) > 0.1 {
		t.Errorf("decoded %.3fs, want %.3fs", got, want)
	}
	if rms := rmsOf(samples); rms < 100 {
		t.Errorf("decoded audio RMS %.1f: silence", rms)
	}
}

// TestSubscriberRenegotiates changes a running subscription as speakers
// come and go, as the issue-3 recorder does: a speaker added with Update,
// one that unpublishes (Janus renegotiates by itself) and one that leaves
// without unpublishing (Janus 1.1 does not: the subscriber removes it).
func TestSubscriberRenegotiates(t *testing.T) {
	ctx, c, ep, api, s, watcher, joined := joinAsWatcher(t)

	nameA, nameB, nameC := uniqueName("speaker-a"), uniqueName("speaker-b"), uniqueName("speaker-c")
	botA := startBot(t, ctx, ep, nameA, "testdata/speech.opus", time.Second)
	feedA := waitPublisher(t, joined, watcher, nameA, 30*time.Second)
	got := newTracks(t)
	sub, err := janus.Subscribe(ctx, s, janus.SubscriberConfig{
		API: api, Room: janus.NumID(testRoom), PrivateID: joined.PrivateID,
		Streams: []janus.StreamRef{{Feed: feedA}}, OnTrack: got.onTrack,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ra := got.waitFor(t, feedA, 30*time.Second)

	// B is added to the running subscription before it starts talking.
	botB := startBot(t, ctx, ep, nameB, "testdata/speech.opus", 3*time.Second)
	feedB := waitPublisher(t, joined, watcher, nameB, 30*time.Second)
	if err := sub.Update(ctx, []janus.StreamRef{{Feed: feedB}}, nil); err != nil {
		t.Fatal(err)
	}
	waitLayout(t, sub, "A and B", func(st map[janus.ID]bool) bool { return st[feedA] && st[feedB] })

	// C joins, is added, and leaves without unpublishing.
	pubC, err := janus.Publish(ctx, newSession(t, ctx, c), janus.PublisherConfig{API: api, Room: janus.NumID(testRoom), Display: nameC})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := pubC.Close(); err != nil {
			t.Errorf("close publisher C after it left: %v", err)
		}
	}()
	feedC := pubC.FeedID()
	if err := sub.Update(ctx, []janus.StreamRef{{Feed: feedC}}, nil); err != nil {
		t.Fatal(err)
	}
	waitLayout(t, sub, "C added", func(st map[janus.ID]bool) bool { return st[feedC] })
	if err := pubC.VideoRoom().Leave(ctx); err != nil {
		t.Fatal(err)
	}
	waitLeaving(t, watcher, feedC, 30*time.Second)
	if err := sub.RemoveFeeds(ctx, feedC); err != nil {
		t.Fatal(err)
	}
	waitLayout(t, sub, "C removed", func(st map[janus.ID]bool) bool { return !st[feedC] && st[feedB] })

	// A's bot ends (unpublish, leave): Janus renegotiates on its own, A's
	// track ends, B keeps its m-line.
	if err := <-botA.err; err != nil {
		t.Fatalf("bot A: %v", err)
	}
	waitLayout(t, sub, "A gone", func(st map[janus.ID]bool) bool { return !st[feedA] && st[feedB] })
	select {
	case <-ra.done:
	case <-time.After(30 * time.Second):
		t.Fatal("A's track did not end after the renegotiation")
	}
	if n := ra.count(); n == 0 {
		t.Error("no packets from A")
	}

	// B, which talked through all of that, arrived whole.
	rb := got.waitFor(t, feedB, 30*time.Second)
	if err := <-botB.err; err != nil {
		t.Fatalf("bot B: %v", err)
	}
	waitQuiet(rb, 2*time.Second)
	if n, sent := rb.count(), len(botB.file.Packets); n < sent*9/10 {
		t.Errorf("B: received %d of %d packets", n, sent)
	}
	if rb.track.Mid == ra.track.Mid {
		t.Errorf("A and B share mid %s", ra.track.Mid)
	}
}

// active returns the feeds with an active m-line in the layout.
func active(sub *janus.Subscriber) map[janus.ID]bool {
	out := map[janus.ID]bool{}
	for _, st := range sub.Streams() {
		if !st.Feed.IsZero() && (st.Active == nil || *st.Active) {
			out[st.Feed] = true
		}
	}
	return out
}

// waitLayout waits until the subscription's active feeds satisfy ok:
// Janus may postpone a renegotiation ("updating") past Update's return.
func waitLayout(t *testing.T, sub *janus.Subscriber, what string, ok func(map[janus.ID]bool) bool) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for !ok(active(sub)) {
		select {
		case <-deadline:
			t.Fatalf("layout never showed %s: %+v", what, sub.Streams())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitLeaving waits for the room to announce that feed left.
func waitLeaving(t *testing.T, vr *janus.VideoRoom, feed janus.ID, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case ev, ok := <-vr.Events():
			if !ok {
				t.Fatal("participant handle closed")
			}
			if e, err := ev.VideoRoom(); err == nil && (e.Leaving != nil && *e.Leaving == feed || e.Unpublished != nil && *e.Unpublished == feed) {
				return
			}
		case <-deadline:
			t.Fatalf("feed %s did not leave within %s", feed, within)
		}
	}
}

// TestAudioBridgeMixReachesListener joins an AudioBridge room as a muted
// listener (how the recorder records a mixed room) and checks that what a
// talker sends reaches it in the mix.
func TestAudioBridgeMixReachesListener(t *testing.T) {
	c, ep := newClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	api, err := janus.NewAPI(janus.WebRTCConfig{Interface: ep.HostIface})
	if err != nil {
		t.Fatal(err)
	}
	got := newTracks(t)
	listener, err := janus.JoinAudioBridge(ctx, newSession(t, ctx, c), janus.AudioBridgeConfig{
		API: api, Room: janus.NumID(testBridge), Display: "earshot-test-listener", OnTrack: got.onTrack,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	talker, err := janus.JoinAudioBridge(ctx, newSession(t, ctx, c), janus.AudioBridgeConfig{
		API: api, Room: janus.NumID(testBridge), Display: uniqueName("talker"), Send: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer talker.Close()

	parts, err := talker.AudioBridge().ListParticipants(ctx, janus.NumID(testBridge))
	if err != nil {
		t.Fatal(err)
	}
	muted := map[janus.ID]bool{}
	for _, p := range parts {
		muted[p.ID] = p.Muted
	}
	if m, ok := muted[listener.ID()]; !ok || !m {
		t.Errorf("listener %s not muted among %+v", listener.ID(), parts)
	}
	if m, ok := muted[talker.ID()]; !ok || m {
		t.Errorf("talker %s muted or absent among %+v", talker.ID(), parts)
	}

	f, err := os.Open("testdata/speech.opus")
	if err != nil {
		t.Fatal(err)
	}
	file, err := speakerbot.ReadOpusFile(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i, pk := range file.Packets {
		time.Sleep(time.Until(start.Add(time.Duration(pk.Start) * time.Second / 48000)))
		if err := talker.WriteRTP(&rtp.Packet{
			Header:  rtp.Header{Version: 2, SequenceNumber: uint16(i), Timestamp: uint32(pk.Start), Marker: i == 0},
			Payload: pk.Data,
		}); err != nil {
			t.Fatal(err)
		}
	}
	r := got.waitFor(t, janus.ID{}, 30*time.Second)
	// The mixer sends for as long as we listen: give the last of the
	// talker's audio a moment to come through, then hang up.
	time.Sleep(time.Second)
	if err := listener.Close(); err != nil {
		t.Errorf("close listener: %v", err)
	}
	<-r.done
	if n := r.count(); n < len(file.Packets)/2 {
		t.Fatalf("listener received %d packets of mix for %d sent", n, len(file.Packets))
	}
	if rms := rmsOf(decode(t, r.ogg)); rms < 100 {
		t.Errorf("mix RMS %.1f: silence", rms)
	}
}

// waitQuiet returns once no packet has arrived for quiet.
func waitQuiet(r *received, quiet time.Duration) {
	last := -1
	for n := r.count(); n != last; n = r.count() {
		last = n
		time.Sleep(quiet)
	}
}

// decode runs opusdec and returns the 16-bit PCM samples (interleaved).
func decode(t *testing.T, ogg string) []int16 {
	t.Helper()
	if _, err := exec.LookPath("opusdec"); err != nil {
		msg := "opusdec not installed (Debian opus-tools): run testbed/janus.sh install"
		if testbed.Enabled() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	wav := strings.TrimSuffix(ogg, ".ogg") + ".wav"
	out, err := exec.Command("opusdec", "--quiet", "--rate", "48000", ogg, wav).CombinedOutput()
	if err != nil {
		t.Fatalf("opusdec: %v: %s", err, out)
	}
	b, err := os.ReadFile(wav)
	if err != nil {
		t.Fatal(err)
	}
	pcm, err := wavData(b)
	if err != nil {
		t.Fatal(err)
	}
	samples := make([]int16, len(pcm)/2)
	for i := range samples {
		samples[i] = int16(binary.LittleEndian.Uint16(pcm[2*i:]))
	}
	return samples
}

// wavData returns the data chunk of a RIFF/WAVE file.
func wavData(b []byte) ([]byte, error) {
	if len(b) < 12 || string(b[:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return nil, errors.New("not a WAV file")
	}
	for off := 12; off+8 <= len(b); {
		id, size := string(b[off:off+4]), int(binary.LittleEndian.Uint32(b[off+4:]))
		off += 8
		if id == "data" {
			return b[off:min(off+size, len(b))], nil
		}
		off += size + size%2
	}
	return nil, errors.New("WAV file without data chunk")
}

func rmsOf(s []int16) float64 {
	var sum float64
	for _, v := range s {
		sum += float64(v) * float64(v)
	}
	return math.Sqrt(sum / float64(max(len(s), 1)))
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// captureTransport writes every event of long-poll replies to dir.
type captureTransport struct {
	rt     http.RoundTripper
	dir    string
	prefix string
	n      atomic.Int64
}

func (c *captureTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.rt.RoundTrip(req)
	if err != nil || req.Method != http.MethodGet && req.Method != http.MethodPost {
		return resp, err
	}
	body, rerr := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if rerr != nil {
		return resp, nil
	}
	events, _ := janus.ParseEvents(body)
	raws := []json.RawMessage{}
	if json.Unmarshal(body, &raws) != nil {
		raws = []json.RawMessage{body}
	}
	for i, raw := range raws {
		if i >= len(events) {
			break
		}
		name := fmt.Sprintf("%s-%04d-%s.json", strings.ReplaceAll(c.prefix, "/", "_"), c.n.Add(1), events[i].Kind)
		_ = os.WriteFile(filepath.Join(c.dir, name), raw, 0o644)
	}
	return resp, nil
}
