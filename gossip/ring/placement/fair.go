package placement

import (
	"cmp"
	"math"
	"slices"
)

// share is the outcome of setting oversized targets aside (water filling).
type share struct {
	// q is the fair share of a member of weight 1 once oversized targets and
	// the members holding them are set aside.
	q float64
	// over marks oversized targets, parallel to problem.keys.
	over []bool
	// holder marks members that hold an oversized target.
	holder []bool
	count  int
}

// fair returns the member's fair share in series.
func (s share) fair(w float64) float64 { return s.q * w }

// capacity is the most series a member of weight w may hold at slack (Bound
// or Fill), rounded down to whole series so that every later comparison is
// between integers.
func (s share) capacity(w, slack float64) int64 {
	return int64(math.Floor((1 + slack) * s.q * w))
}

// share sets oversized targets aside, largest first: a target is oversized
// when its series exceed the fair share of the member it sits on, the fair
// share being recomputed without the oversized targets found so far and the
// members holding them.
//
// With move false a target's member is assign[t]. With move true the planner
// chooses it: assign[t] unless that member already holds a larger oversized
// target, else the best member in the target's rendezvous order that holds
// none; assign is updated.
func (p *problem) share(assign []int32, move bool) share {
	s := share{over: make([]bool, len(p.keys)), holder: make([]bool, len(p.names))}
	var total int64
	for _, z := range p.sizes {
		total += z
	}
	weight, wmin := 0.0, math.Inf(1)
	for _, w := range p.weights {
		weight += w
		wmin = min(wmin, w)
	}
	if total == 0 {
		return s
	}
	// A target can only be oversized if it is larger than the final q times the
	// smallest weight. q only falls as targets are set aside, so sweep the
	// candidates above a threshold and widen the threshold until the sweep's
	// final q no longer admits new candidates. One or two passes in practice;
	// the result is that of a single sweep over every target.
	threshold := float64(total) / weight * wmin
	for {
		cand := make([]int, 0, 16)
		for i, z := range p.sizes {
			if float64(z) > threshold {
				cand = append(cand, i)
			}
		}
		slices.SortFunc(cand, func(a, b int) int {
			if c := cmp.Compare(p.sizes[b], p.sizes[a]); c != 0 {
				return c
			}
			return cmp.Compare(p.keys[a], p.keys[b])
		})
		trial := slices.Clone(assign)
		over := make([]bool, len(p.keys))
		holder := make([]bool, len(p.names))
		restS, restW, count := total, weight, 0
		for _, t := range cand {
			m := trial[t]
			if move && holder[m] {
				m = p.firstFree(t, holder)
				if m < 0 {
					continue
				}
			}
			q := float64(restS) / restW
			if !(float64(p.sizes[t]) > q*p.weights[m]) || restW <= 0 {
				continue
			}
			over[t] = true
			count++
			restS -= p.sizes[t]
			if !holder[m] {
				holder[m] = true
				restW -= p.weights[m]
			}
			trial[t] = m
		}
		q := 0.0
		if restW > 0 {
			q = float64(restS) / restW
		}
		if q*wmin >= threshold || count == 0 {
			if move {
				copy(assign, trial)
			}
			s.q, s.over, s.holder, s.count = q, over, holder, count
			return s
		}
		threshold = q * wmin
	}
}

// firstFree returns the best member for target t, in its rendezvous order,
// that is not marked in taken, or -1.
func (p *problem) firstFree(t int, taken []bool) int32 {
	var buf [8]string
	for _, n := range []int{len(buf), len(p.names)} {
		for _, name := range p.ring.Owners(buf[:0], p.keys[t], n) {
			if m := p.index[name]; !taken[m] {
				return m
			}
		}
		if n >= len(p.names) {
			break
		}
	}
	return -1
}
