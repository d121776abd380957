package bus

import (
	"encoding/binary"
	"testing"
)

func TestOffsetTracker(t *testing.T) {
	type step struct {
		add  []int64 // fetched, in order
		done []int64 // acknowledged, in this order
	}
	tests := []struct {
		name       string
		steps      []step
		wantCommit int64
		wantOK     bool
		wantOpen   int
	}{
		{name: "nothing fetched", wantOK: false},
		{name: "fetched, nothing done", steps: []step{{add: []int64{5, 6, 7}}}, wantCommit: 5, wantOK: true, wantOpen: 3},
		{name: "all done in order", steps: []step{{add: []int64{0, 1, 2}, done: []int64{0, 1, 2}}}, wantCommit: 3, wantOK: true},
		{name: "all done in reverse", steps: []step{{add: []int64{0, 1, 2}, done: []int64{2, 1, 0}}}, wantCommit: 3, wantOK: true},
		{name: "gap holds the commit", steps: []step{{add: []int64{0, 1, 2, 3, 4}, done: []int64{0, 1, 3, 4}}}, wantCommit: 2, wantOK: true, wantOpen: 1},
		{name: "oldest unfinished holds everything", steps: []step{{add: []int64{10, 11, 12}, done: []int64{11, 12}}}, wantCommit: 10, wantOK: true, wantOpen: 1},
		{name: "offset gaps from compaction", steps: []step{{add: []int64{3, 7, 20}, done: []int64{3, 20}}}, wantCommit: 7, wantOK: true, wantOpen: 1},
		{name: "gap then filled", steps: []step{{add: []int64{3, 7, 20}, done: []int64{3, 20}}, {done: []int64{7}}}, wantCommit: 21, wantOK: true},
		{name: "duplicate and unknown acks are ignored", steps: []step{{add: []int64{0, 1, 2}, done: []int64{1, 1, 9, 0}}}, wantCommit: 2, wantOK: true, wantOpen: 1},
		{name: "more fetched after a drained prefix", steps: []step{{add: []int64{0, 1}, done: []int64{0, 1}}, {add: []int64{2, 3}, done: []int64{3}}}, wantCommit: 2, wantOK: true, wantOpen: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tr offsetTracker
			for _, s := range tt.steps {
				for _, o := range s.add {
					if err := tr.add(o); err != nil {
						t.Fatalf("add(%d): %v", o, err)
					}
				}
				for _, o := range s.done {
					tr.done(o)
				}
			}
			got, ok := tr.commitOffset()
			if ok != tt.wantOK || (ok && got != tt.wantCommit) {
				t.Errorf("commitOffset() = %d, %v; want %d, %v", got, ok, tt.wantCommit, tt.wantOK)
			}
			if tr.unfinished() != tt.wantOpen {
				t.Errorf("unfinished() = %d; want %d", tr.unfinished(), tt.wantOpen)
			}
		})
	}
}

func TestOffsetTrackerRejectsBackwards(t *testing.T) {
	var tr offsetTracker
	if err := tr.add(5); err != nil {
		t.Fatal(err)
	}
	for _, o := range []int64{5, 4, -1} {
		if err := tr.add(o); err == nil {
			t.Errorf("add(%d) after 5 succeeded; want an error", o)
		}
	}
}

func TestOffsetTrackerDoneReportsChange(t *testing.T) {
	var tr offsetTracker
	_ = tr.add(1)
	if !tr.done(1) {
		t.Error("first done(1) = false; want true")
	}
	if tr.done(1) {
		t.Error("second done(1) = true; want false")
	}
	if tr.done(2) {
		t.Error("done(2) of a never-fetched offset = true; want false")
	}
}

// TestOffsetTrackerLongRun drives enough records through the tracker to
// exercise the compaction of the finished prefix.
func TestOffsetTrackerLongRun(t *testing.T) {
	var tr offsetTracker
	const n = 10_000
	for i := int64(0); i < n; i++ {
		if err := tr.add(i); err != nil {
			t.Fatal(err)
		}
		// Finish records two behind, in pairs out of order.
		if i%2 == 1 && i >= 3 {
			tr.done(i - 2)
			tr.done(i - 3)
		}
	}
	if got, _ := tr.commitOffset(); got != n-2 {
		t.Fatalf("commitOffset() = %d; want %d", got, n-2)
	}
	if len(tr.q)-tr.head != 2 || cap(tr.q) > 4*n {
		t.Fatalf("live entries %d (cap %d); want 2", len(tr.q)-tr.head, cap(tr.q))
	}
}

// FuzzOffsetTracker checks the tracker against a simple model: the commit
// offset is the lowest fetched-but-unfinished offset, or the highest fetched
// offset + 1 when none is unfinished.
func FuzzOffsetTracker(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5})
	f.Add([]byte{0x80, 0x81, 1, 0x82, 3, 0x80})
	f.Add([]byte{7, 7, 7, 0x87, 0x80, 0xff})
	f.Fuzz(func(t *testing.T, ops []byte) {
		var tr offsetTracker
		fetched := map[int64]bool{} // offset -> done
		var next, last int64 = 0, -1
		for i, op := range ops {
			if op&0x80 == 0 {
				// fetch: advance by a gap of op%8 (compaction leaves gaps)
				next += int64(op % 8)
				if err := tr.add(next); err != nil {
					t.Fatalf("op %d add(%d): %v", i, next, err)
				}
				fetched[next], last = false, next
				next++
			} else {
				// done: the k-th fetched offset, picked from the op and the position
				if len(fetched) == 0 {
					continue
				}
				k := int64(op&0x7f) + int64(binary.LittleEndian.Uint16([]byte{byte(i), byte(i >> 8)}))
				o := k % (last + 2) // sometimes never-fetched offsets, too
				wasOpen := false
				if d, ok := fetched[o]; ok && !d {
					wasOpen = true
					fetched[o] = true
				}
				if changed := tr.done(o); changed != wasOpen {
					t.Fatalf("op %d done(%d) = %v; model says %v", i, o, changed, wasOpen)
				}
			}
			want, wantOK := int64(0), last >= 0
			if wantOK {
				want = last + 1
				for o, d := range fetched {
					if !d && o < want {
						want = o
					}
				}
			}
			got, ok := tr.commitOffset()
			if ok != wantOK || got != want {
				t.Fatalf("after op %d: commitOffset() = %d, %v; model %d, %v", i, got, ok, want, wantOK)
			}
			open := 0
			for _, d := range fetched {
				if !d {
					open++
				}
			}
			if tr.unfinished() != open {
				t.Fatalf("after op %d: unfinished() = %d; model %d", i, tr.unfinished(), open)
			}
		}
	})
}
