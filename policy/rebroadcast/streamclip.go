package rebroadcast

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/earshot/earshot/policy/fingerprint"
	"github.com/earshot/earshot/storage"
	"github.com/earshot/earshot/storage/crypt"
)

// StreamClipPrefix starts the object keys of outside streams' clips:
// evidence/rebroadcast/<alert>/stream.wav. evidence/ is a protected
// prefix: the store encrypts it under the alert room's speaker key.
const StreamClipPrefix = "evidence/rebroadcast/"

// StreamClipKey is the object key of an alert's stream clip: one per
// alert, so an instance that raises the same alert again finds it stored.
func StreamClipKey(alertID string) string { return StreamClipPrefix + alertID + "/stream.wav" }

// streamClipContext is the audio kept before and after the matched span.
const streamClipContext = time.Second

// Clip is where an alert's copy audio is kept when the copy is an outside
// stream (whose audio Earshot does not record): a 16 kHz mono 16-bit WAV
// of the matched span with a second either side, as far as the rolling
// buffer held it.
type Clip struct {
	Key        string `json:"key"`
	SampleRate int    `json:"sample_rate"`
	// FirstSample and LastSample place the clip on the copy span's 48 kHz
	// timeline (inclusive).
	FirstSample int64     `json:"first_sample"`
	LastSample  int64     `json:"last_sample"`
	Start       time.Time `json:"start"`
	SHA256      string    `json:"sha256"`
}

// clipRing is the last seconds of one outside stream connection's decoded
// audio, as 16-bit samples: bounded whatever the stream's length.
type clipRing struct {
	track string // the index track of the connection
	buf   []int16
	total int64 // samples written since the connection began
}

func newClipRing(track string, d time.Duration) *clipRing {
	return &clipRing{track: track, buf: make([]int16, int(d.Seconds()*fingerprint.SampleRate))}
}

func (r *clipRing) write(pcm []float32) {
	n := int64(len(r.buf))
	if n == 0 {
		return
	}
	for _, v := range pcm {
		r.buf[r.total%n] = int16(math.Round(float64(max(-1, min(v, 32767.0/32768))) * 32768))
		r.total++
	}
}

// span returns samples [from, to) of the connection, clipped to what the
// ring still holds, and the first one's number.
func (r *clipRing) span(from, to int64) ([]int16, int64) {
	n := int64(len(r.buf))
	from, to = max(from, r.total-n, 0), min(to, r.total)
	if from >= to {
		return nil, from
	}
	out := make([]int16, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, r.buf[i%n])
	}
	return out, from
}

// wavBytes encodes 16 kHz mono 16-bit samples as a WAV file.
func wavBytes(x []int16) []byte {
	var b bytes.Buffer
	data := uint32(2 * len(x))
	b.WriteString("RIFF")
	_ = binary.Write(&b, binary.LittleEndian, 36+data)
	b.WriteString("WAVEfmt ")
	for _, v := range []any{uint32(16), uint16(1), uint16(1), uint32(fingerprint.SampleRate),
		uint32(2 * fingerprint.SampleRate), uint16(2), uint16(16)} {
		_ = binary.Write(&b, binary.LittleEndian, v)
	}
	b.WriteString("data")
	_ = binary.Write(&b, binary.LittleEndian, data)
	_ = binary.Write(&b, binary.LittleEndian, x)
	return b.Bytes()
}

// ReadWAV decodes what StreamClip stores: 16-bit mono WAV samples as
// floats, and their rate.
func ReadWAV(b []byte) ([]float32, int, error) {
	if len(b) < 44 || string(b[:4]) != "RIFF" || string(b[8:16]) != "WAVEfmt " || string(b[36:40]) != "data" {
		return nil, 0, errors.New("rebroadcast: not a 16-bit mono WAV")
	}
	if binary.LittleEndian.Uint16(b[20:]) != 1 || binary.LittleEndian.Uint16(b[22:]) != 1 || binary.LittleEndian.Uint16(b[34:]) != 16 {
		return nil, 0, errors.New("rebroadcast: not a 16-bit mono PCM WAV")
	}
	rate := int(binary.LittleEndian.Uint32(b[24:]))
	n := min(int(binary.LittleEndian.Uint32(b[40:])), len(b)-44) / 2
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(int16(binary.LittleEndian.Uint16(b[44+2*i:]))) / 32768
	}
	return out, rate, nil
}

// pendingClip is a clip to store before its alert is produced.
type pendingClip struct {
	key  string
	data []byte
	md   map[string]string
}

// streamClip cuts the stream's side of a match from its connection's
// ring (under s.mu) and queues it for storing; nil when no store is
// configured or the ring no longer holds the span.
func (s *Stage) streamClip(alertID string, room Span, ext Record, frames [2]int32, ms [2]int64) *Clip {
	if s.cfg.Evidence == nil {
		return nil
	}
	var ring *clipRing
	for _, r := range s.rings {
		if r.track == ext.name() {
			ring = r
		}
	}
	if ring == nil {
		return nil
	}
	ctxSamples := int64(streamClipContext.Seconds() * fingerprint.SampleRate)
	from := int64(frames[0])*fingerprint.Hop - ctxSamples
	to := int64(frames[1]+1)*fingerprint.Hop + ctxSamples
	x, first := ring.span(from, to)
	if len(x) == 0 {
		return nil
	}
	data := wavBytes(x)
	sum := sha256.Sum256(data)
	key := StreamClipKey(alertID)
	s.clips = append(s.clips, pendingClip{key: key, data: data,
		md: map[string]string{crypt.MetaRoom: room.Room, crypt.MetaSession: room.Session, crypt.MetaSpeaker: room.Speaker}})
	startMS := ms[0] + (first-int64(frames[0])*fingerprint.Hop)*1000/fingerprint.SampleRate
	return &Clip{Key: key, SampleRate: fingerprint.SampleRate, FirstSample: ext.Start + first*ratio,
		LastSample: ext.Start + (first+int64(len(x)))*ratio - 1, Start: time.UnixMilli(startMS).UTC(), SHA256: hex.EncodeToString(sum[:])}
}

// storeClips stores the clips of the alerts about to be produced (outside
// s.mu). A clip stored before (the same alert raised again) is kept. A
// clip that cannot be stored is logged; its alert goes out all the same:
// the room's clip and the spans are the evidence that remains.
func (s *Stage) storeClips(ctx context.Context) {
	s.mu.Lock()
	clips := s.clips
	s.clips = nil
	s.mu.Unlock()
	for _, c := range clips {
		var err error
		for try := range 3 {
			pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
			_, err = s.cfg.Evidence.Put(pctx, c.key, bytes.NewReader(c.data), int64(len(c.data)),
				storage.PutOptions{ContentType: "audio/wav", Metadata: c.md, IfAbsent: true})
			cancel()
			if err == nil || errors.Is(err, storage.ErrExists) {
				err = nil
				break
			}
			time.Sleep(time.Duration(try+1) * 500 * time.Millisecond)
		}
		if err != nil {
			s.log.Error("outside stream's clip not stored", "key", c.key, "error", err)
			continue
		}
		s.log.Info("outside stream's clip stored", "key", c.key, "bytes", len(c.data))
	}
}

// checkEvidenceStore refuses a store that would keep clips in the clear.
func checkEvidenceStore(p storage.Putter) error {
	if pr, ok := p.(interface{ Protects(string) bool }); ok && pr.Protects(StreamClipPrefix) {
		return nil
	}
	return fmt.Errorf("evidence store does not encrypt %s (use a crypt.Store)", StreamClipPrefix)
}
