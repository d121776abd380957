package transcribe

import (
	"bytes"
	"context"
	"math"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/earshot/earshot/bus"
	"github.com/earshot/earshot/event"
	"github.com/earshot/earshot/internal/bustest"
	"github.com/earshot/earshot/internal/opusenc"
	"github.com/earshot/earshot/internal/speakerbot"
	"github.com/earshot/earshot/storage"
)

// Test signals. Rates are explicit in the names: 16 kHz for the segmenter,
// 48 kHz for the encoder.

var testOrigin = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func testTimeline(first, last int64) event.Timeline {
	return event.Timeline{Track: "trk_test", FirstSample: first, LastSample: last, Origin: testOrigin, Anchor: event.AnchorArrival}
}

// voiced is a speech-like signal at rate: a 120 Hz voice with harmonics
// falling 6 dB per octave, modulated into 4 syllables a second. amp is the
// peak amplitude.
func voiced(rate int, d time.Duration, amp float64) []float32 {
	n := int(int64(d) * int64(rate) / int64(time.Second))
	x := make([]float32, n)
	for i := range x {
		t := float64(i) / float64(rate)
		var v float64
		for h := 1; h*120 < 3800; h++ {
			v += math.Sin(2*math.Pi*120*float64(h)*t+float64(h)) / float64(h)
		}
		env := 0.55 + 0.45*math.Sin(2*math.Pi*4*t)
		x[i] = float32(amp * 0.5 * env * v)
	}
	return x
}

func silence(rate int, d time.Duration) []float32 {
	return make([]float32, int64(d)*int64(rate)/int64(time.Second))
}

// noise returns white, pink or brown noise with the given RMS.
func noise(kind string, rate int, d time.Duration, rms float64, seed uint64) []float32 {
	n := int(int64(d) * int64(rate) / int64(time.Second))
	r := rand.New(rand.NewPCG(seed, 1))
	x := make([]float64, n)
	var b0, b1, b2, brown float64
	for i := range x {
		w := r.NormFloat64()
		switch kind {
		case "pink": // Paul Kellet's economy filter
			b0 = 0.99765*b0 + w*0.0990460
			b1 = 0.96300*b1 + w*0.2965164
			b2 = 0.57000*b2 + w*1.0526913
			x[i] = b0 + b1 + b2 + w*0.1848
		case "brown":
			brown = 0.998*brown + w
			x[i] = brown
		default:
			x[i] = w
		}
	}
	var s float64
	for _, v := range x {
		s += v * v
	}
	g := rms / math.Sqrt(s/float64(n))
	out := make([]float32, n)
	for i, v := range x {
		out[i] = float32(v * g)
	}
	return out
}

func concat(parts ...[]float32) []float32 {
	var out []float32
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func add(a, b []float32) []float32 {
	out := append([]float32(nil), a...)
	for i := range min(len(a), len(b)) {
		out[i] += b[i]
	}
	return out
}

func scale(x []float32, db float64) []float32 {
	g := float32(math.Pow(10, db/20))
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = v * g
	}
	return out
}

type chunk struct {
	tl   event.Timeline
	data event.AudioChunkData
}

// chunks splits 20 ms packets starting at timeline sample first into chunks
// of per packets, as the recorder does.
func chunks(first int64, packets [][]byte, per int) []chunk {
	var out []chunk
	for i := 0; i < len(packets); i += per {
		j := min(i+per, len(packets))
		c := chunk{tl: testTimeline(first+int64(i)*960, first+int64(j)*960-1)}
		for k := i; k < j; k++ {
			c.data.Packets = append(c.data.Packets, packets[k])
			c.data.Offsets = append(c.data.Offsets, int64(k-i)*960)
		}
		out = append(out, c)
	}
	return out
}

func encode(t testing.TB, pcm48 []float32) [][]byte {
	t.Helper()
	enc, err := opusenc.New(32000, true)
	if err != nil {
		t.Fatal(err)
	}
	p, err := enc.Encode(pcm48)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// foxPackets returns the packets of testdata/fox.opus: espeak-ng's en-us
// voice saying "The quick brown fox jumps over the lazy dog.", with 1 s of
// silence before and after, made with
//
//	espeak-ng -v en-us -w fox.wav "The quick brown fox jumps over the lazy dog."
//	sox fox.wav -r 48000 fox48.wav pad 1 1
//	opusenc --bitrate 32 fox48.wav fox.opus
func foxPackets(t testing.TB) [][]byte {
	t.Helper()
	pk, _ := OggPackets(t, "testdata/fox.opus")
	return pk
}

// OggPackets reads an Ogg/Opus file of 20 ms packets (as WebRTC senders
// and internal/speech make them) and returns the packets and the pre-skip.
// It is exported for this package's external tests.
func OggPackets(t testing.TB, path string) ([][]byte, int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	file, err := speakerbot.ReadOpusFile(f)
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]byte, len(file.Packets))
	for i, p := range file.Packets {
		if p.Samples != 960 {
			t.Fatalf("%s has a %d-sample packet; the tests assume 20 ms", path, p.Samples)
		}
		out[i] = p.Data
	}
	return out, file.PreSkip()
}

// decodeAll decodes chunks with a fresh TrackDecoder and returns the
// concatenated audio and its timeline start.
func decodeAll(t testing.TB, cs []chunk) PCM {
	t.Helper()
	d, err := NewTrackDecoder(DecoderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var all PCM
	for i, c := range cs {
		p, err := d.Decode(c.tl, c.data)
		if err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
		if i == 0 {
			all.Start = p.Start
		} else if want := all.Start + int64(len(all.Samples))*Ratio; p.Start != want {
			t.Fatalf("chunk %d starts at %d, want %d (continuous)", i, p.Start, want)
		}
		all.Samples = append(all.Samples, p.Samples...)
	}
	return all
}

// foxSession is a stored session of one track, trk_a in room r1_room,
// whose segments each hold the fox clip (two sentences), on consecutive
// timeline ranges as ingest stores them (each segment's 312 pre-skip
// samples overlap the previous one).
type foxSession struct {
	store  *storage.Local
	keys   []string // segment keys in timeline order
	ogg    []byte
	n      int64 // samples of one segment's clip
	origin time.Time
}

// newFoxSession names the segment keys of session; nothing is stored yet.
func newFoxSession(t testing.TB, session string, segments int) *foxSession {
	t.Helper()
	store, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ogg, err := os.ReadFile("testdata/fox.opus")
	if err != nil {
		t.Fatal(err)
	}
	f := &foxSession{store: store, ogg: ogg, n: int64(len(foxPackets(t))) * 960, origin: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	for i := range int64(segments) {
		f.keys = append(f.keys, event.SegmentKey("r1_room", session, event.Timeline{Track: "trk_a", FirstSample: i*f.n - i*312, LastSample: (i+1)*f.n - (i+1)*312 - 1}))
	}
	return f
}

// put stores data under key with the timeline metadata ingest gives.
func (f *foxSession) put(t testing.TB, key string, data []byte) {
	t.Helper()
	md := map[string]string{"origin": f.origin.Format(time.RFC3339Nano), "anchor": "arrival"}
	if _, err := f.store.Put(context.Background(), key, bytes.NewReader(data), int64(len(data)), storage.PutOptions{Metadata: md}); err != nil {
		t.Fatal(err)
	}
}

// putSegments stores the clip under the given segment keys.
func (f *foxSession) putSegments(t testing.TB, keys ...string) {
	t.Helper()
	for _, k := range keys {
		f.put(t, k, f.ogg)
	}
}

// replayEvents replays a stored session of r1_room with eng (Batch as
// given) and returns the stats and the transcript events it produced.
func replayEvents(t testing.TB, store SegmentStore, eng Engine, session string, batch time.Duration) (ReplayStats, []*event.Envelope) {
	t.Helper()
	out := &bustest.Capture{}
	st, err := Replay(context.Background(), ReplayConfig{Store: store, Engine: eng, Sender: out, Producer: event.Producer{Name: "t"},
		Keys: testKeys, Language: "en", Batch: batch}, "r1_room", session)
	if err != nil {
		t.Fatal(err)
	}
	return st, envelopes(t, out.Topic(event.TopicTranscripts))
}

// envelopes decodes records.
func envelopes(t testing.TB, ms []bus.Message) []*event.Envelope {
	t.Helper()
	var out []*event.Envelope
	for _, m := range ms {
		e, err := event.Decode(m.Value)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}
