package rebroadcast

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/bustest"
	"github.com/earshot/earshot/internal/opusenc"
	"github.com/earshot/earshot/internal/speech/speechtest"
	"github.com/earshot/earshot/storage/crypt"
)

// say renders text with espeak-ng, applies sox effects, and returns
// 48 kHz mono samples.
func say(s *speechtest.Studio, name, text string, effects ...string) []float32 {
	return s.Samples(s.Say(text, name), 48000, effects...)
}

// room is one speaker's track in a test room.
type room struct {
	name, session, speaker, track string
	origin                        time.Time
}

// trackOn returns a track ID whose records land on partition p of the
// bed's topics: candidates are written to a probe topic of as many
// partitions and read back (the producer's partitioner decides).
func (b *bed) trackOn(prefix string, p int) string {
	b.t.Helper()
	if b.parts == nil {
		b.parts = map[string]int{}
		var msgs []bus.Message
		for i := range 64 {
			id := event.DeriveID(event.PrefixTrack, b.t.Name(), strconv.Itoa(i))
			msgs = append(msgs, bus.Message{Topic: b.probe, Key: []byte(id), Value: []byte{1}})
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := b.prod.Produce(ctx, msgs...); err != nil {
			b.t.Fatal(err)
		}
		for _, m := range b.read(b.probe) {
			b.parts[string(m.Key)] = m.Partition
		}
	}
	for id, part := range b.parts {
		if part == p {
			delete(b.parts, id)
			return id
		}
	}
	b.t.Fatal("no track ID left for the partition")
	return ""
}

// chunks encodes pcm (48 kHz) with Opus at kbps and cuts it into 1 s
// audio.chunk records sealed under keys, the way the recorder writes them.
func chunks(t *testing.T, keys *crypt.Memory, r room, pcm []float32, kbps int) []bus.Message {
	t.Helper()
	enc, err := opusenc.New(kbps*1000, true)
	if err != nil {
		t.Fatal(err)
	}
	pkts, err := enc.Encode(pcm)
	if err != nil {
		t.Fatal(err)
	}
	const per = 50 // 20 ms packets a chunk
	var out []bus.Message
	for seq := 0; seq*per < len(pkts); seq++ {
		part := pkts[seq*per : min((seq+1)*per, len(pkts))]
		first := int64(seq*per) * opusenc.FrameSamples
		tl := event.Timeline{Track: r.track, FirstSample: first, LastSample: first + int64(len(part))*opusenc.FrameSamples - 1, Origin: r.origin, Anchor: event.AnchorArrival}
		final := (seq+1)*per >= len(pkts)
		e, err := event.New(event.TypeAudioChunk, event.Producer{Name: "test"}, nil, r.name, r.session, r.speaker, &tl,
			event.AudioChunk{Codec: "opus", Channels: 1, Seq: int64(seq), Frames: len(part), Final: final})
		if err != nil {
			t.Fatal(err)
		}
		data := event.AudioChunkData{Packets: part}
		for i := range part {
			data.Offsets = append(data.Offsets, int64(i)*opusenc.FrameSamples)
		}
		if err := e.Seal(context.Background(), keys, data); err != nil {
			t.Fatal(err)
		}
		b, err := e.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, bus.Message{Topic: event.TopicAudio, Key: []byte(r.track), Value: b})
	}
	return out
}

// bed is a set of fresh topics on the test bed's Kafka and stages on them.
type bed struct {
	t                               *testing.T
	brokers                         bus.Cluster
	audio, fps, alerts, dead, group string
	probe, life, audit              string
	parts                           map[string]int
	prod                            *bus.Producer
	keys                            *crypt.Memory
	secret                          []byte
}

func newBed(t *testing.T, partitions int) *bed {
	brokers := bustest.Kafka(t)
	var nb [6]byte
	_, _ = rand.Read(nb[:])
	n := hex.EncodeToString(nb[:])
	b := &bed{t: t, brokers: brokers, audio: "t.rb.audio." + n, fps: "t.rb.fp." + n, alerts: "t.rb.alerts." + n, dead: "t.rb.dead." + n, probe: "t.rb.probe." + n, life: "t.rb.life." + n, audit: "t.rb.audit." + n,
		group: "t-rb-" + n, keys: crypt.NewMemory(), secret: bytes.Repeat([]byte{7}, 32)}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := bus.EnsureTopics(ctx, brokers,
		bus.TopicSpec{Name: b.audio, Partitions: partitions}, bus.TopicSpec{Name: b.fps, Partitions: partitions},
		bus.TopicSpec{Name: b.alerts, Partitions: 1}, bus.TopicSpec{Name: b.dead, Partitions: 1},
		bus.TopicSpec{Name: b.probe, Partitions: partitions}, bus.TopicSpec{Name: b.life, Partitions: partitions}, bus.TopicSpec{Name: b.audit, Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = bus.DeleteTopics(ctx, brokers, b.audio, b.fps, b.alerts, b.dead, b.probe, b.life, b.audit)
	})
	prod, err := bus.NewProducer(bus.ProducerConfig{Cluster: brokers})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = prod.Close() })
	b.prod = prod
	return b
}

// stage starts one instance of the stage, stopped when the test ends.
func (b *bed) stage() *Stage {
	b.t.Helper()
	st, _ := b.startStage(nil)
	return st
}

// startStage starts one instance of the stage (registering its metrics
// on reg when not nil) and returns it with a stop function; the test's
// end stops it too.
func (b *bed) startStage(reg prometheus.Registerer) (*Stage, func()) {
	b.t.Helper()
	cons, err := bus.NewConsumer(bus.ConsumerConfig{Cluster: b.brokers, GroupID: b.group, Topics: []string{b.audio},
		SessionTimeout: 6 * time.Second, HeartbeatInterval: time.Second, DrainTimeout: 3 * time.Second, RebalanceTimeout: 10 * time.Second})
	if err != nil {
		b.t.Fatal(err)
	}
	st, err := New(Config{Consumer: cons, Log: bus.LogReader{Cluster: b.brokers}, Sender: b.prod, Keys: b.keys,
		Producer: event.Producer{Name: "test"}, Secret: b.secret, Metrics: reg,
		Topics: Topics{Fingerprints: b.fps, Alerts: b.alerts, DeadLetter: b.dead, Lifecycle: b.life, Audit: b.audit}})
	if err != nil {
		b.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil && ctx.Err() == nil {
				b.t.Errorf("stage: %v", err)
			}
			_ = st.Close()
		})
	}
	b.t.Cleanup(stop)
	return st, stop
}

func (b *bed) produce(msgs ...bus.Message) {
	b.t.Helper()
	for i := range msgs {
		msgs[i].Topic = b.audio
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := b.prod.Produce(ctx, msgs...); err != nil {
		b.t.Fatal(err)
	}
}

func (b *bed) read(topic string) []bus.Message {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ms, err := bus.LogReader{Cluster: b.brokers}.ReadTopic(ctx, topic, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return ms
}

// origins maps each track to the instances whose records carry it.
func (b *bed) origins() map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, m := range b.read(b.fps) {
		r, err := DecodeRecord(m.Value)
		if err != nil {
			b.t.Fatalf("a record the stage wrote does not decode: %v", err)
		}
		if out[r.Track] == nil {
			out[r.Track] = map[string]bool{}
		}
		out[r.Track][r.Origin] = true
	}
	return out
}

func (b *bed) alertPayloads() ([]*event.Envelope, []AlertPayload) {
	b.t.Helper()
	var es []*event.Envelope
	var ps []AlertPayload
	for _, m := range b.read(b.alerts) {
		e, err := event.Decode(m.Value)
		if err != nil {
			b.t.Fatal(err)
		}
		var p AlertPayload
		if err := e.DecodePayload(&p); err != nil {
			b.t.Fatal(err)
		}
		if err := e.VerifySealed(context.Background(), b.keys); err != nil {
			b.t.Fatalf("alert not sealed under its speaker's key: %v", err)
		}
		es, ps = append(es, e), append(ps, p)
	}
	return es, ps
}

// waitFor polls cond for up to d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// fourGrams lists the word 4-grams of a text.
func fourGrams(text string) map[string]bool {
	ws := strings.Fields(strings.NewReplacer(".", " ").Replace(text))
	out := map[string]bool{}
	for i := 0; i+4 <= len(ws); i++ {
		out[strings.Join(ws[i:i+4], " ")] = true
	}
	return out
}

// sessionStarted writes r's session_started with the given private flag
// to the bed's lifecycle topic.
func (b *bed) sessionStarted(r room, private bool) {
	b.t.Helper()
	e, err := event.New(event.TypeSessionStarted, event.Producer{Name: "test"}, nil, r.name, r.session, "", nil,
		event.SessionStarted{Connector: "janus-videoroom", Metadata: map[string]string{"private": strconv.FormatBool(private)}})
	if err != nil {
		b.t.Fatal(err)
	}
	v, err := e.Marshal()
	if err != nil {
		b.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := b.prod.Produce(ctx, bus.Message{Topic: b.life, Key: []byte(r.name), Value: v}); err != nil {
		b.t.Fatal(err)
	}
}
