package fingerprint

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/earshot/earshot/internal/speech/speechtest"
)

// excerpt is one original track (room A) and where its replay sits.
type excerpt struct {
	info TrackInfo
	wav  string // 48 kHz original as the speaker sent it
	pcm  []float32
}

// degradation turns the replayed part of an original into what room B's
// recorder hears. from/to are the seconds of the original replayed.
type degradation struct {
	name     string
	from, to float64
	kbps     int // Opus rate of room B's speaker
	apply    func(s *speechtest.Studio, in, name string) string
}

func degradations() []degradation {
	none := func(s *speechtest.Studio, in, name string) string { return in }
	return []degradation{
		{name: "opus-12k", from: 2, to: 22, kbps: 12, apply: none},
		{name: "gain-12dB", from: 2, to: 22, kbps: 32, apply: func(s *speechtest.Studio, in, name string) string {
			return s.Sox(in, name, "gain", "-12")
		}},
		{name: "loudspeaker-mic", from: 2, to: 22, kbps: 32, apply: func(s *speechtest.Studio, in, name string) string {
			// Band-pass 300–3400 Hz, a small room's reverb, then pink
			// noise 10 dB below the signal.
			wet := s.Sox(in, name+"-room", "sinc", "300-3400", "reverb", "40", "50", "60", "gain", "-n", "-3")
			return s.AddNoise(wet, name, 10)
		}},
		{name: "speed+3%", from: 2, to: 22, kbps: 32, apply: func(s *speechtest.Studio, in, name string) string {
			return s.Sox(in, name, "speed", "1.03")
		}},
		{name: "speed-3%", from: 2, to: 22, kbps: 32, apply: func(s *speechtest.Studio, in, name string) string {
			return s.Sox(in, name, "speed", "0.97")
		}},
		{name: "pitch+3%", from: 2, to: 22, kbps: 32, apply: func(s *speechtest.Studio, in, name string) string {
			return s.Sox(in, name, "pitch", "51") // 51 cents = 3 %, tempo kept
		}},
		{name: "mid-sentence", from: 7.37, to: 25, kbps: 32, apply: none},
		{name: "overlap-8s", from: 11.13, to: 19.13, kbps: 32, apply: none},
	}
}

const excerpts = 10

// TestRebroadcastRecall replays ten originals into another room under
// each degradation of the issue and checks that the matcher, with the
// shipped thresholds, names the right room and spans, calls it speech,
// and finds at least 90 % of all cases (each degradation's share is
// logged).
func TestRebroadcastRecall(t *testing.T) {
	found, total := measureRecall(t, false)
	recall := float64(found) / float64(total)
	t.Logf("recall over %d cases: %.3f", total, recall)
	if recall < 0.9 {
		t.Errorf("recall %.3f, want at least 0.9", recall)
	}
}

// TestRebroadcastRecallLoadedIndex is the recall test against an index
// that also holds the throughput benchmark's load (ten copies of an hour
// of the same voice, about 33 track-hours): common landmarks are then
// common enough for MaxSlot to skip some, and chance hits abound.
func TestRebroadcastRecallLoadedIndex(t *testing.T) {
	found, total := measureRecall(t, true)
	recall := float64(found) / float64(total)
	t.Logf("recall over %d cases against a loaded index: %.3f", total, recall)
	if recall < 0.9 {
		t.Errorf("recall %.3f, want at least 0.9", recall)
	}
}

// measureRecall runs every degradation on every excerpt and returns how
// many cases judge accepts; loaded adds loadIndex's hour of speech to the
// index first.
func measureRecall(tb testing.TB, loaded bool) (found, total int) {
	s := speechtest.New(tb)
	cfg := DefaultMatcherConfig()
	icfg := IndexConfig{}
	if loaded {
		// The load's hour sits before the originals on the clock.
		icfg.Window = 2 * time.Hour
	}
	idx, err := NewIndex(icfg)
	if err != nil {
		tb.Fatal(err)
	}
	if loaded {
		loadIndex(tb, s, idx)
	}
	var orig [excerpts]excerpt
	for i := range orig {
		name := fmt.Sprintf("orig%d", i)
		wav := s.Say(s.Text(uint64(100+i), 80), name)
		orig[i] = excerpt{wav: wav, pcm: s.Opus(wav, 32),
			info: TrackInfo{Track: name, Room: "room-a" + strconv.Itoa(i), Speaker: "sp-a" + strconv.Itoa(i), StartMS: 1_000_000}}
		if len(orig[i].pcm) < 26*SampleRate {
			tb.Fatalf("original %d is %.1f s, want at least 26 s", i, float64(len(orig[i].pcm))/SampleRate)
		}
		stream(tb, cfg, idx, orig[i].info, orig[i].pcm, true)
	}
	// Room B's own speech before and after the replay.
	before := s.Say(s.Text(900, 12), "before")
	after := s.Say(s.Text(901, 8), "after")
	beforeSec := float64(len(s.Samples(before, SampleRate))) / SampleRate
	for _, d := range degradations() {
		n, minHits, minConf := 0, 0, 0.0
		for i, o := range orig {
			name := fmt.Sprintf("%s-%d", d.name, i)
			part := s.Sox(o.wav, name+"-cut", "trim", fmt.Sprint(d.from), fmt.Sprint(d.to-d.from))
			b := s.Concat(name+"-b", before, d.apply(s, part, name+"-deg"), after)
			x := s.Opus(b, d.kbps)
			info := TrackInfo{Track: "b-" + name, Room: "room-b", Speaker: "sp-b", StartMS: 5_000_000}
			ms := stream(tb, cfg, idx, info, x, false)
			ok, why := judge(ms, o.info, d, beforeSec)
			if ok {
				n++
				m := ms[0]
				if n == 1 {
					minHits, minConf = m.Hits, m.Confidence
				}
				minHits, minConf = min(minHits, m.Hits), min(minConf, m.Confidence)
			}
			tb.Logf("%s #%d: %v %s", d.name, i, ok, why)
		}
		tb.Logf("%s: recall %d/%d, least hits %d, least confidence %.3f", d.name, n, excerpts, minHits, minConf)
		found += n
		total += excerpts
	}
	return found, total
}

// judge checks a replay's matches: exactly the right original, its
// replayed span (within 1.5 s at each end, or inside it), the replay's
// place in room B, and speech.
func judge(ms []Match, want TrackInfo, d degradation, beforeSec float64) (bool, string) {
	if len(ms) == 0 {
		return false, "no match"
	}
	var why string
	for _, m := range ms {
		if m.Ref.Track != want.Track {
			return false, fmt.Sprintf("matched %s (query %v ref %v, %d s, %d hits, conf %.3f, speed %.2f), want %s (a false alarm)",
				m.Ref.Track, m.QueryFrames, m.RefFrames, m.Seconds, m.Hits, m.Confidence, m.Speed, want.Track)
		}
	}
	m := ms[0]
	r, q := m.RefMS(), m.QueryMS()
	rFrom, rTo := float64(r[0]-want.StartMS)/1000, float64(r[1]-want.StartMS)/1000
	qFrom := float64(q[0]-m.Query.StartMS)/1000 - beforeSec
	why = fmt.Sprintf("ref %.1f–%.1f s (replayed %.1f–%.1f) query from %.1f s, %d s, %d hits, conf %.3f, speed %.2f, speech %v",
		rFrom, rTo, d.from, d.to, qFrom, m.Seconds, m.Hits, m.Confidence, m.Speed, m.Speech)
	const slack = 1.5
	if rFrom < d.from-slack || rTo > d.to+slack {
		return false, "span outside the replayed part: " + why
	}
	if qFrom < -slack || qFrom > (d.to-d.from) {
		return false, "query span outside the replay: " + why
	}
	if !m.Speech {
		return false, "not judged speech: " + why
	}
	return true, why
}
