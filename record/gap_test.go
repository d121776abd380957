package record

import (
	"testing"
	"time"
)

// TestOnGapReportsCauses: the gap callback names each filled stretch and
// its cause, and the stretches add up to Stats.Gaps.
func TestOnGapReportsCauses(t *testing.T) {
	var spans []GapSpan
	tr, err := NewTrack(TrackConfig{
		Track: "trk_gap", Chunks: &discardChunks{}, Segments: discardSegments{},
		OnGap: func(g GapSpan) { spans = append(spans, g) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	// Packets 0-4, 5-6 lost, 7-9; then a 2 s pause with no packet (mute).
	for i := 0; i < 10; i++ {
		if i == 5 || i == 6 {
			continue
		}
		if err := tr.Push(pkt(uint16(i), uint32(i*960), audio20), at(i*20)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tr.Tick(at(400)); err != nil { // past the loss deadline
		t.Fatal(err)
	}
	if err := tr.Tick(at(2200)); err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	var sum Gaps
	for _, g := range spans {
		n := g.LastSample - g.FirstSample + 1
		switch g.Cause {
		case GapLoss:
			sum.Loss += n
		case GapSilence:
			sum.Silence += n
		case GapMute:
			sum.Mute += n
		default:
			t.Errorf("span %+v: unknown cause", g)
		}
	}
	st := tr.Stats()
	if sum != st.Gaps {
		t.Errorf("spans add up to %+v, Stats.Gaps is %+v", sum, st.Gaps)
	}
	if len(spans) == 0 || spans[0].Cause != GapLoss || spans[0].FirstSample != 5*960 || spans[0].LastSample != 7*960-1 {
		t.Errorf("first span %+v, want the loss of packets 5-6 (samples %d-%d)", spans, 5*960, 7*960-1)
	}
	if st.Gaps.Mute == 0 {
		t.Errorf("no mute counted across a 2 s pause: %+v", st.Gaps)
	}
}
