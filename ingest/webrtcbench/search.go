package webrtcbench

// Step is one tried load of a search and whether it stayed gap-free.
type Step struct {
	Tracks int
	OK     bool
}

// SearchCapacity finds the highest gap-free load, in multiples of unit
// tracks: it doubles from first until a load fails (or halves until one
// passes), then bisects between the highest passing and the lowest
// failing load until they are within an eighth of each other. It tries
// at most maxSteps loads, none above maxTracks, and no new one once more
// returns false. It returns the highest load that passed (0: none) and
// every step.
func SearchCapacity(first, unit, maxTracks, maxSteps int, try func(tracks int) bool, more func() bool) (int, []Step) {
	var steps []Step
	lo, hi := 0, 0 // highest passing, lowest failing (0: none yet)
	t := first
	for len(steps) < maxSteps && (len(steps) == 0 || more()) {
		ok := try(t)
		steps = append(steps, Step{t, ok})
		if ok {
			lo = t
		} else {
			hi = t
		}
		switch {
		case hi == 0:
			t *= 2
			if t > maxTracks {
				return lo, steps
			}
		case lo == 0:
			t = t / 2 / unit * unit
			if t < unit {
				return lo, steps
			}
		default:
			if hi-lo <= max(unit, lo/8) {
				return lo, steps
			}
			t = (lo + hi) / 2 / unit * unit
		}
	}
	return lo, steps
}
