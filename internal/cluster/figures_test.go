package cluster

import (
	"math"
	"testing"
)

func TestParseVmRSS(t *testing.T) {
	tests := []struct {
		name, status string
		want         float64
		wantErr      bool
	}{
		{"kernel layout", "Name:\tearshot\nVmPeak:\t  900 kB\nVmRSS:\t   51200 kB\nRssAnon:\t 40000 kB\n", 51200 * 1024, false},
		{"no VmRSS (a kernel thread)", "Name:\tkthreadd\nState:\tS\n", 0, true},
		{"unit other than kB", "VmRSS:\t 5 MB\n", 0, true},
		{"not a number", "VmRSS:\t x kB\n", 0, true},
		{"negative", "VmRSS:\t -5 kB\n", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseVmRSS(tc.status)
			if (err != nil) != tc.wantErr || (err == nil && got != tc.want) {
				t.Fatalf("parseVmRSS = %v, %v; want %v (error %v)", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func FuzzParseVmRSS(f *testing.F) {
	f.Add("VmRSS:\t 12 kB\n")
	f.Add("VmRSS:")
	f.Add("VmRSS: 1 2 kB")
	f.Fuzz(func(t *testing.T, s string) {
		v, err := parseVmRSS(s)
		if err == nil && (v < 0 || math.IsNaN(v)) {
			t.Fatalf("parseVmRSS(%q) = %v without an error", s, v)
		}
	})
}

// TestGrowthMeasures: the soak's growth (medians of the first and last
// thirds) ignores a round's spikes but sees a steady climb, and the
// capacity search's lag slope is the fitted rate.
func TestGrowthMeasures(t *testing.T) {
	tests := []struct {
		name        string
		xs          []float64
		first, last float64
	}{
		{"flat with spikes", []float64{100, 140, 100, 100, 150, 100, 100, 100, 160}, 100, 100},
		{"climbing", []float64{100, 101, 102, 110, 111, 112, 120, 121, 122}, 101, 121},
		{"even third", []float64{1, 3, 5, 5, 5, 5}, 2, 5},
		{"one sample", []float64{7}, 7, 7},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, l := thirds(tc.xs)
			if f != tc.first || l != tc.last {
				t.Fatalf("thirds = %v, %v; want %v, %v", f, l, tc.first, tc.last)
			}
		})
	}
	slopes := []struct {
		name   string
		xs, ys []float64
		want   float64
	}{
		{"line", []float64{0, 2, 4, 6}, []float64{10, 16, 22, 28}, 3},
		{"flat noise", []float64{0, 1, 2, 3}, []float64{5, 7, 5, 7}, 0.4},
		{"one point", []float64{1}, []float64{3}, 0},
		{"same x", []float64{1, 1}, []float64{3, 4}, 0},
	}
	for _, tc := range slopes {
		t.Run("slope "+tc.name, func(t *testing.T) {
			if got := slope(tc.xs, tc.ys); math.Abs(got-tc.want) > 1e-9 {
				t.Fatalf("slope = %v, want %v", got, tc.want)
			}
		})
	}
}
