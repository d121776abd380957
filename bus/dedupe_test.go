package bus

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

func TestDedupe(t *testing.T) {
	d := NewDedupe(3)
	steps := []struct {
		op   string // "add" or "seen"
		id   string
		want bool
	}{
		{"seen", "a", false},
		{"add", "a", true},
		{"add", "a", false},
		{"seen", "a", true},
		{"add", "b", true},
		{"add", "c", true},
		{"seen", "a", true}, // refreshes a: b is now the oldest
		{"add", "d", true},  // evicts b
		{"seen", "b", false},
		{"seen", "a", true},
		{"seen", "c", true},
		{"seen", "d", true},
	}
	for i, s := range steps {
		var got bool
		switch s.op {
		case "add":
			got = d.Add(s.id)
		case "seen":
			got = d.Seen(s.id)
		}
		if got != s.want {
			t.Fatalf("step %d: %s(%q) = %v; want %v", i, s.op, s.id, got, s.want)
		}
	}
	if d.Len() != 3 {
		t.Fatalf("Len() = %d; want the capacity 3", d.Len())
	}
}

func TestDedupeDefaultCapacity(t *testing.T) {
	d := NewDedupe(0)
	for i := range DefaultDedupeCapacity + 10 {
		d.Add(fmt.Sprint(i))
	}
	if d.Len() != DefaultDedupeCapacity {
		t.Fatalf("Len() = %d; want %d", d.Len(), DefaultDedupeCapacity)
	}
}

// TestDedupeConcurrentAdd checks that of many goroutines adding the same IDs,
// exactly one wins each ID.
func TestDedupeConcurrentAdd(t *testing.T) {
	const ids, workers = 500, 8
	d := NewDedupe(ids)
	var wins [ids]atomic.Int32
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ids {
				if d.Add(fmt.Sprintf("ev-%d", i)) {
					wins[i].Add(1)
				}
			}
		}()
	}
	wg.Wait()
	for i := range wins {
		if n := wins[i].Load(); n != 1 {
			t.Fatalf("ID %d added as new %d times; want exactly once", i, n)
		}
	}
}
