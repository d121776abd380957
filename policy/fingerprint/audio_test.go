package fingerprint

import (
	"syscall"
	"testing"
	"time"
)

// fingerprintAll runs one track's samples through an extractor in chunks
// of 240 ms (the pipeline's live chunk) and returns pairs and levels.
func fingerprintAll(x []float32) ([]Pair, []int8) {
	return fingerprintIn(x, SampleRate*240/1000)
}

// fingerprintIn is fingerprintAll with chunks of the given length.
func fingerprintIn(x []float32, chunk int) ([]Pair, []int8) {
	e := NewExtractor()
	var pairs []Pair
	var levels []int8
	for i := 0; i < len(x); i += chunk {
		pairs, levels = e.Push(x[i:min(i+chunk, len(x))], pairs, levels)
	}
	return e.Flush(pairs), levels
}

// stream feeds one track through an extractor and matcher in 240 ms
// chunks, indexing its pairs as it goes when index is set, as the live
// stage does, and returns every match the matcher holds at the end.
func stream(t testing.TB, cfg MatcherConfig, idx *Index, info TrackInfo, x []float32, index bool) []Match {
	t.Helper()
	id := idx.AddTrack(info)
	m, err := NewMatcher(cfg, idx, id)
	if err != nil {
		t.Fatal(err)
	}
	e := NewExtractor()
	const chunk = SampleRate * 240 / 1000
	var pairs []Pair
	var levels []int8
	feed := func() {
		idx.AddLevels(id, levels)
		m.Push(pairs)
		if index {
			if err := idx.Add(id, pairs); err != nil {
				t.Fatal(err)
			}
		}
		pairs, levels = pairs[:0], levels[:0]
	}
	for i := 0; i < len(x); i += chunk {
		pairs, levels = e.Push(x[i:min(i+chunk, len(x))], pairs, levels)
		feed()
	}
	pairs = e.Flush(pairs)
	feed()
	m.Flush()
	return m.Matches()
}

// cpuTime is this process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
