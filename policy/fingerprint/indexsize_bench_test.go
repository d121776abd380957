package fingerprint

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/earshot/earshot/internal/speech/speechtest"
	"github.com/earshot/earshot/record/opus"
)

// indexSizes are the index sizes measured: live tracks, each holding a
// 30-minute window at a 30 % talk share.
var indexSizes = []int{100, 500, 1000, 2000, 5000, 10000}

const (
	// sizeExcerpts is how many 20 s excerpts are replayed at each size
	// (under three degradations each).
	sizeExcerpts     = 5
	sizeWindowFrames = 30 * 60 * 1000 / FrameMS
	// speakerShifts is how many speaker variations (speed hypotheses from
	// 0.8 to 1.25) the pool's landmarks are hashed under.
	speakerShifts = 24
)

// landmarkPool is real landmarks of varied speech: four espeak-ng voices
// at different speeds and pitches, each pair hashed under speakerShifts
// speaker variations (a voice higher or lower, speaking faster or slower,
// moves every anchor frequency and distance), so that thousands of
// synthetic tracks spread over the hash space the way many speakers do,
// not as copies of one recording.
type landmarkPool struct {
	t      []int32                 // anchor frame of each pair, ascending
	hashes [][speakerShifts]uint32 // hash+1 under each variation; 0: none
	levels []int8
	first  []int32 // index of the first pair at or after each frame
}

func newLandmarkPool(b *testing.B, s *speechtest.Studio) *landmarkPool {
	voices := [][]string{
		{"-v", "en-us", "-s", "165", "-p", "45"},
		{"-v", "en-gb+f3", "-s", "180", "-p", "60"},
		{"-v", "en-gb-scotland+m3", "-s", "150", "-p", "35"},
		{"-v", "en-029+f2", "-s", "190", "-p", "70"},
	}
	p := &landmarkPool{}
	var base int32
	raw := make([]byte, 2*SampleRate)
	buf := make([]float32, SampleRate)
	for i, v := range voices {
		// About ten minutes of speech per voice, text not used anywhere else.
		r := voicePipeAs(b, s, b.Context(), fmt.Sprintf("pool%d", i), s.Text(uint64(300+i), 1600), v...)
		e := NewExtractor()
		var pairs []Pair
		var levels []int8
		for {
			n, err := io.ReadFull(r, raw)
			for k := range n / 2 {
				buf[k] = float32(int16(binary.LittleEndian.Uint16(raw[2*k:]))) / 32768
			}
			pairs, levels = e.Push(buf[:n/2], pairs, levels)
			if err != nil {
				break
			}
		}
		pairs = e.Flush(pairs)
		slices.SortStableFunc(pairs, func(a, c Pair) int { return int(a.T - c.T) })
		for _, pr := range pairs {
			var hs [speakerShifts]uint32
			for k := range speakerShifts {
				r := math.Exp(math.Log(0.8) + float64(k)*(math.Log(1.25)-math.Log(0.8))/(speakerShifts-1))
				if h, ok := Hash(pr, r); ok {
					hs[k] = h + 1
				}
			}
			p.t = append(p.t, base+pr.T)
			p.hashes = append(p.hashes, hs)
		}
		p.levels = append(p.levels, levels...)
		base = int32(len(p.levels))
	}
	p.first = make([]int32, len(p.levels)+1)
	k := 0
	for f := range p.first {
		for k < len(p.t) && p.t[k] < int32(f) {
			k++
		}
		p.first[f] = int32(k)
	}
	return p
}

// track lays out one synthetic 30-minute track: utterances of 1–4 s cut
// from the pool at random, each under one speaker variation, with pauses
// that keep the talk share at 30 %.
func (p *landmarkPool) track(r *rand.Rand, lms []Landmark, levels []int8) ([]Landmark, []int8) {
	lms, levels = lms[:0], levels[:0]
	for len(levels) < sizeWindowFrames {
		n := 1000/FrameMS + r.IntN(3000/FrameMS)
		start := r.IntN(len(p.levels) - n)
		shift := r.IntN(speakerShifts)
		t0 := int32(len(levels))
		for i := p.first[start]; i < p.first[start+n]; i++ {
			if h := p.hashes[i][shift]; h != 0 {
				lms = append(lms, Landmark{Hash: h - 1, T: t0 + p.t[i] - int32(start)})
			}
		}
		levels = append(levels, p.levels[start:start+n]...)
		gap := n * 7 / 3 * (75 + r.IntN(51)) / 100
		for range gap {
			levels = append(levels, -128)
		}
	}
	return lms, levels
}

// memAvailable is the kernel's estimate of memory available to new work,
// in bytes (0 when unknown).
func memAvailable() int64 {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemAvailable:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// sizeResult is what one index size measured.
type sizeResult struct {
	tracks      int
	landmarks   int
	bytes       int64
	addNs       float64 // CPU per indexed landmark
	sweepS      float64 // CPU of one expiry sweep
	matchMs     float64 // matching CPU per second of live track
	skipped     float64 // share of the query's lookups skipped by MaxSlot
	recall      float64 // of the replays
	upkeepShare float64 // of a core: indexing every track's landmarks and the sweeps
}

// BenchmarkFingerprintIndexSize measures the single replicated index at
// 100, 1,000, 5,000 and 10,000 live tracks, each a 30-minute window at a
// 30 % talk share, built from real landmarks of varied speech (see
// landmarkPool). At each size: the index's memory; the CPU of indexing a
// landmark and of one expiry sweep, which every instance pays for every
// live track (the part of the work that more instances do not divide);
// the matching CPU per second of a live track (a minute of other speech,
// Opus 32 kbit/s, 240 ms chunks, decoding and extraction left out); the
// share of its lookups skipped because a slot holds more than MaxSlot
// landmarks; and the recall of five 20 s excerpts indexed at the start and
// replayed re-encoded at 12 kbit/s, through a loudspeaker and microphone,
// and 3 % fast (15 replays, the recall test's degradations and
// thresholds).
//
// It reports fingerprint_index_max_live_tracks: the largest measured size
// at which the replays' recall is at least 0.9 and the index's upkeep
// (indexing all tracks' landmarks as they arrive, a sweep every 10 s)
// takes at most half a core, leaving the rest to match the instance's
// own tracks; it is a lower bound when the largest size passes, and a size
// this machine has no memory for is logged as not filled and not counted.
// fingerprint_match_ms_per_track_s_at_10k and fingerprint_index_gb_at_10k
// are reported only when 10,000 tracks were filled. Left out: Kafka
// (reading other instances' records), decoding and extraction (in
// fingerprint_tracks_per_core), the Go runtime's own overhead beyond the
// index's slices, and real speakers' variety, which the pool's four
// synthetic voices under 24 variations only approximate.
func BenchmarkFingerprintIndexSize(b *testing.B) {
	s := speechtest.New(b)
	pool := newLandmarkPool(b, s)
	b.Logf("pool: %d pairs, %.0f s of audio, 4 voices × %d variations", len(pool.t), float64(len(pool.levels))*FrameMS/1000, speakerShifts)

	// The query: a minute of other speech at 30 % talk, as a browser sends it.
	packets := talkTrack(b, s)
	dec, err := opus.NewDecoder()
	if err != nil {
		b.Fatal(err)
	}
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	idx, err := NewIndex(IndexConfig{Window: time.Hour})
	if err != nil {
		b.Fatal(err)
	}

	qe := NewExtractor()
	var queryChunks [][]Pair
	var queryLevels []int8
	pcm := make([]float32, opus.MaxPacketSamples*12)
	querySeconds := 0.0
	for i := 0; i < len(packets); i += 12 {
		k := 0
		for _, pkt := range packets[i:min(i+12, len(packets))] {
			d, err := dec.Decode(pkt, pcm[k:k+opus.MaxPacketSamples])
			if err != nil {
				b.Fatal(err)
			}
			k += d
		}
		querySeconds += float64(k) / SampleRate
		var ps []Pair
		var ls []int8
		ps, ls = qe.Push(pcm[:k], ps, ls)
		queryChunks = append(queryChunks, ps)
		queryLevels = append(queryLevels, ls...)
	}
	queryChunks = append(queryChunks, qe.Flush(nil))
	dec.Close()

	// Excerpts indexed as sent at 32 kbit/s, replayed under three of the
	// recall test's degradations.
	type replay struct {
		pairs  []Pair
		levels []int8
		track  string
	}
	var replays []replay
	for i := range sizeExcerpts {
		track := fmt.Sprintf("excerpt%d", i)
		clip := s.Say(s.Text(uint64(404+i), 60), track)
		clip = s.Sox(clip, track+"-20s", "trim", "0", "20")
		op, ol := fingerprintAll(s.Opus(clip, 32))
		id := idx.AddTrack(TrackInfo{Track: track, Room: "excerpt-room-" + track})
		idx.AddLevels(id, ol)
		if err := idx.Add(id, op); err != nil {
			b.Fatal(err)
		}
		for _, d := range degradations() {
			switch d.name {
			case "opus-12k", "loudspeaker-mic", "speed+3%":
				name := fmt.Sprintf("%s-%s", track, d.name)
				cp, cl := fingerprintAll(s.Opus(d.apply(s, clip, name), d.kbps))
				replays = append(replays, replay{pairs: cp, levels: cl, track: track})
			}
		}
	}

	rng := rand.New(rand.NewPCG(20, 11))
	var lms []Landmark
	var levels []int8
	var results []sizeResult
	filled := 0
	var addCPU time.Duration
	query := 0
	for _, size := range indexSizes {
		if filled > 0 {
			perTrack := float64(idx.Bytes()) / float64(filled)
			need := int64(perTrack * float64(size-filled) * 1.3)
			if avail := memAvailable(); avail > 0 && need+2<<30 > avail {
				b.Logf("%d tracks: not filled: needs about %.1f GB more, %.1f GB available", size, float64(need)/1e9, float64(avail)/1e9)
				break
			}
		}
		for ; filled < size; filled++ {
			lms, levels = pool.track(rng, lms, levels)
			id := idx.AddTrack(TrackInfo{Track: fmt.Sprintf("t%d", filled), Room: fmt.Sprintf("r%d", filled)})
			c0 := cpuTime()
			idx.AddLevels(id, levels)
			if err := idx.AddLandmarks(id, lms); err != nil {
				b.Fatal(err)
			}
			addCPU += cpuTime() - c0
		}
		res := sizeResult{tracks: size, landmarks: idx.Len(), bytes: idx.Bytes()}
		res.addNs = float64(addCPU.Nanoseconds()) / float64(idx.Len())
		c0 := cpuTime()
		idx.Expire(sizeWindowFrames * FrameMS) // nothing is old enough: a steady state's sweep, less its removals
		res.sweepS = (cpuTime() - c0).Seconds()

		// Matching: the query minute, three times, each as a new track.
		var matchCPU time.Duration
		const runs = 3
		for range runs {
			query++
			id := idx.AddTrack(TrackInfo{Track: fmt.Sprintf("q%d", query), Room: "query-room"})
			idx.AddLevels(id, queryLevels)
			m, err := NewMatcher(DefaultMatcherConfig(), idx, id)
			if err != nil {
				b.Fatal(err)
			}
			c0 := cpuTime()
			for _, ch := range queryChunks {
				m.Push(ch)
			}
			m.Flush()
			matchCPU += cpuTime() - c0
			if n := len(m.Matches()); n != 0 {
				b.Logf("%d tracks: the query (other speech) matched %d times", size, n)
			}
			idx.EraseRoom("query-room")
		}
		res.matchMs = matchCPU.Seconds() * 1000 / runs / querySeconds
		cfg := DefaultMatcherConfig()
		lookups, skipped := 0, 0
		for _, ch := range queryChunks {
			for _, p := range ch {
				for _, r := range cfg.Speeds {
					if h, ok := Hash(p, r); ok {
						lookups++
						if len(idx.slots[h]) > cfg.MaxSlot {
							skipped++
						}
					}
				}
			}
		}
		res.skipped = float64(skipped) / float64(max(lookups, 1))

		found := 0
		for _, rp := range replays {
			query++
			cid := idx.AddTrack(TrackInfo{Track: fmt.Sprintf("copy%d", query), Room: "copy-room"})
			idx.AddLevels(cid, rp.levels)
			m, err := NewMatcher(cfg, idx, cid)
			if err != nil {
				b.Fatal(err)
			}
			m.Push(rp.pairs)
			m.Flush()
			for _, mt := range m.Matches() {
				if mt.Ref.Track == rp.track {
					found++
					break
				}
			}
			idx.EraseRoom("copy-room")
		}
		res.recall = float64(found) / float64(len(replays))

		lmPerTrackS := float64(res.landmarks) / float64(size) / (sizeWindowFrames * FrameMS / 1000)
		res.upkeepShare = float64(size)*lmPerTrackS*res.addNs/1e9 + res.sweepS/10
		b.Logf("%d tracks: %d landmarks (%.0f per track-second), %.2f GB; index %.0f ns/landmark, sweep %.2f s, upkeep %.3f of a core; match %.2f ms per track-second (one core: %.0f tracks); lookups skipped %.1f %%; replays found %.2f",
			size, res.landmarks, lmPerTrackS, float64(res.bytes)/1e9, res.addNs, res.sweepS, res.upkeepShare, res.matchMs, (1-min(res.upkeepShare, 1))*1000/res.matchMs, 100*res.skipped, res.recall)
		results = append(results, res)
	}
	for b.Loop() {
	}
	maxTracks := 0
	for _, r := range results {
		if r.recall >= 0.9 && r.upkeepShare <= 0.5 {
			maxTracks = r.tracks
		}
		if r.tracks == 10000 {
			b.ReportMetric(r.matchMs, "fingerprint_match_ms_per_track_s_at_10k")
			b.ReportMetric(float64(r.bytes)/1e9, "fingerprint_index_gb_at_10k")
		}
	}
	b.ReportMetric(float64(maxTracks), "fingerprint_index_max_live_tracks")
}
