package placement

import (
	"cmp"
	"slices"
)

// rebalance moves targets so that the members above Bound (with fresh, every
// member above Fill) come down to Fill above their fair share, moving as few
// series as it can from assign; members between Fill and Bound keep what they
// have, which is the hysteresis. In order:
//
//  1. the targets sharing a member with an oversized target leave it;
//  2. after a join, a newcomer above its fair share gives targets back to
//     the members they came from (giveBack), which moves nothing;
//  3. while a member must shed, the most loaded one sheds one target (pick)
//     to where it naturally belongs (natural) or else to the member whose
//     room it fits best (place); when no member can take any of its targets
//     without becoming hotter than it, it swaps one for a smaller target of
//     a member with room (swap).
//
// A target moves at most once, so this ends after at most one move per target.
func (p *problem) rebalance(assign []int32, sh share, fresh bool, origin []int32) {
	n := len(p.names)
	b := balancer{p: p, assign: assign, holder: sh.holder, capacity: make([]int64, n), load: make([]int64, n), shed: make([]bool, n), origin: origin, bound: make([]int64, n), fair: make([]int64, n)}
	for m, w := range p.weights {
		if !sh.holder[m] {
			b.capacity[m] = sh.capacity(w, p.cfg.Fill)
			b.bound[m] = sh.capacity(w, p.cfg.Bound)
			b.fair[m] = sh.capacity(w, 0)
		}
	}
	for i, m := range assign {
		b.load[m] += p.sizes[i]
	}
	for m := range p.weights {
		b.shed[m] = b.load[m] > b.capacity[m] && (fresh || b.load[m] > b.bound[m])
	}
	held := make([][]int, n)
	for i, m := range assign {
		if !sh.over[i] {
			held[m] = append(held[m], i)
		}
	}

	// An oversized target sits alone: the others on its member leave first.
	var displaced []int
	for m, ts := range held {
		if sh.holder[m] {
			displaced = append(displaced, ts...)
			held[m] = nil
		}
	}
	slices.SortFunc(displaced, p.largestFirst)
	for _, t := range displaced {
		b.move(t, b.place(t, b.assign[t]))
	}

	b.giveBack(held, sh)

	sorted := make([]bool, n)
	stuck := make([]bool, n)
	for {
		m := -1
		for c := range b.load {
			if b.shed[c] && !stuck[c] && !sh.holder[c] && b.load[c] > b.capacity[c] && (m < 0 || b.fill(c) > b.fill(m)) {
				m = c
			}
		}
		if m < 0 {
			return
		}
		if !sorted[m] {
			slices.SortFunc(held[m], p.smallestFirst)
			sorted[m] = true
		}
		ts := held[m]
		if len(ts) == 0 {
			stuck[m] = true
			continue
		}
		j, to := b.pick(int32(m), ts)
		t := ts[j]
		if to == int32(m) || float64(b.load[to]+p.sizes[t])/float64(max(b.capacity[to], 1)) >= b.fill(m) {
			// Moving it would only make another member the hottest: swap a
			// target with a smaller one of a member that has some room.
			if !b.swap(m, held, sorted) {
				stuck[m] = true
			}
			continue
		}
		held[m] = slices.Delete(ts, j, j+1)
		b.move(t, to)
	}
}

// swap exchanges a target of member m (above capacity) with a smaller target
// of a member with room, the other member staying within capacity: the swap
// that removes m's whole excess while moving the fewest series, else the one
// that removes the most. Both targets then stay where they go. It reports
// false when no swap lowers m's load.
func (b *balancer) swap(m int, held [][]int, sorted []bool) bool {
	sizes := b.p.sizes
	over := b.load[m] - b.capacity[m]
	bestA, bestB, bestC := -1, -1, -1
	var bestGain, bestCost int64
	better := func(gain, cost int64) bool {
		switch full, bestFull := gain >= over, bestGain >= over; {
		case bestA < 0 || full != bestFull:
			return bestA < 0 || full
		case full:
			return cost < bestCost
		default:
			return gain > bestGain || gain == bestGain && cost < bestCost
		}
	}
	for c := range b.load {
		room := b.capacity[c] - b.load[c]
		if c == m || b.holder[c] || room <= 0 || len(held[c]) == 0 {
			continue
		}
		if !sorted[c] {
			slices.SortFunc(held[c], b.p.smallestFirst)
			sorted[c] = true
		}
		for ai, a := range held[m] {
			// The smallest target of c that keeps c within its room: the largest
			// gain for m, and the fewest series moved.
			bi, _ := slices.BinarySearchFunc(held[c], sizes[a]-room, func(t int, v int64) int { return cmp.Compare(sizes[t], v) })
			if bi == len(held[c]) || sizes[held[c][bi]] >= sizes[a] {
				continue
			}
			gain, cost := sizes[a]-sizes[held[c][bi]], sizes[a]+sizes[held[c][bi]]
			if better(gain, cost) {
				bestA, bestB, bestC, bestGain, bestCost = ai, bi, c, gain, cost
			}
		}
	}
	if bestA < 0 {
		return false
	}
	a, t := held[m][bestA], held[bestC][bestB]
	held[m] = slices.Delete(held[m], bestA, bestA+1)
	held[bestC] = slices.Delete(held[bestC], bestB, bestB+1)
	b.move(a, int32(bestC))
	b.move(t, int32(m))
	return true
}

// giveBack runs after a membership change: a newcomer above its fair share
// gives back targets it took by rendezvous to the members they were on, while
// those have room up to Fill. Each one it gives back is a move saved: the
// members above the bound then shed onto whoever has room, the newcomer
// included, and a target a newcomer keeps moves.
func (b *balancer) giveBack(held [][]int, sh share) {
	if b.origin == nil {
		return
	}
	sizes := b.p.sizes
	for m, ts := range held {
		fair := int64(sh.fair(b.p.weights[m]))
		var back []int
		for _, t := range ts {
			if o := b.origin[t]; o >= 0 && o != int32(m) {
				back = append(back, t)
			}
		}
		slices.SortFunc(back, b.p.smallestFirst)
		for b.load[m] > fair && len(back) > 0 {
			over := b.load[m] - fair
			j := -1
			for i, t := range back {
				if o := b.origin[t]; b.load[o]+sizes[t] <= b.capacity[o] && !b.holder[o] {
					j = i
					if sizes[t] >= over {
						break
					}
				}
			}
			if j < 0 {
				break
			}
			t := back[j]
			back = slices.Delete(back, j, j+1)
			held[m] = slices.DeleteFunc(held[m], func(x int) bool { return x == t })
			b.move(t, b.origin[t])
		}
	}
}

// balancer is the state of one rebalance.
type balancer struct {
	p              *problem
	assign         []int32
	holder         []bool
	capacity, load []int64
	// shed marks the members that must come down to capacity: those above
	// the bound at the start and those a fallback placement pushed over.
	shed []bool
	// origin is where each target was before the membership changed, -1 if
	// its member left; nil when unknown. bound is each member's capacity at
	// Bound.
	origin []int32
	bound  []int64
	fair   []int64 // each member's fair share, rounded down
}

func (b *balancer) fill(m int) float64 {
	return float64(b.load[m]) / float64(max(b.capacity[m], 1))
}

// room returns the most room any member other than except has.
func (b *balancer) room(except int32) int64 {
	var best int64
	for m := range b.load {
		if int32(m) != except && !b.holder[m] {
			best = max(best, b.capacity[m]-b.load[m])
		}
	}
	return best
}

// pick returns the index in ts (member m's targets, sorted smallest first) of
// the next target to shed and where it goes. Targets that can go where they
// naturally belong (see natural) come first. Among the candidates: the
// smallest that covers the excess alone, else the largest. Few targets move
// (the plan stays short) and the member lands just under its capacity (few
// series move). Without a natural move, the candidates are the targets that
// fit on the roomiest member (all of them if none fits), placed by place.
func (b *balancer) pick(m int32, ts []int) (int, int32) {
	sizes := b.p.sizes
	over := b.load[m] - b.capacity[m]
	best, bestTo := -1, int32(-1)
	for j, t := range ts {
		to := b.natural(t, m)
		if to < 0 {
			continue
		}
		best, bestTo = j, to
		if sizes[t] >= over {
			break
		}
	}
	if best >= 0 {
		return best, bestTo
	}
	room := b.room(m)
	fit, _ := slices.BinarySearchFunc(ts, room+1, func(t int, v int64) int { return cmp.Compare(sizes[t], v) })
	if fit == 0 {
		fit = len(ts)
	}
	j, _ := slices.BinarySearchFunc(ts[:fit], over, func(t int, v int64) int { return cmp.Compare(sizes[t], v) })
	if j == fit {
		j = fit - 1
	}
	return j, b.place(ts[j], m)
}

// move takes target t off its member and puts it on member to.
func (b *balancer) move(t int, to int32) {
	b.load[b.assign[t]] -= b.p.sizes[t]
	b.assign[t] = to
	b.load[to] += b.p.sizes[t]
	if b.load[to] > b.capacity[to] {
		b.shed[to] = true
	}
}

// natural returns where target t leaving member from belongs, if that member
// has room, or -1:
//
//  1. the member it was on before the membership changed (origin), up to
//     Bound: a newcomer sheds a target it took by rendezvous back to where
//     it was, which moves nothing;
//  2. its rendezvous owner, up to Fill: the override disappears and the plan
//     gets shorter.
//
// Members holding an oversized target take nothing.
func (b *balancer) natural(t int, from int32) int32 {
	z := b.p.sizes[t]
	if b.origin != nil {
		if o := b.origin[t]; o >= 0 && o != from && !b.holder[o] && b.load[o]+z <= b.bound[o] {
			return o
		}
	}
	if home := b.p.hrw[t]; home != from && !b.holder[home] && b.load[home]+z <= b.capacity[home] {
		return home
	}
	return -1
}

// place returns the member for target t leaving member from: where it
// naturally belongs if that has room, otherwise the member it leaves least
// loaded (relative to capacity), which sends the excess to the members
// furthest below their share, a newcomer first. The result may be above
// capacity (nobody has room) or from itself (nobody else can take it).
func (b *balancer) place(t int, from int32) int32 {
	if m := b.natural(t, from); m >= 0 {
		return m
	}
	z := b.p.sizes[t]
	fair, fit := int32(-1), int32(-1)
	var fairRoom, fitRoom int64
	best, bestR := from, 0.0
	for m := range b.load {
		if b.holder[m] || int32(m) == from {
			continue
		}
		if room := b.fair[m] - b.load[m] - z; room >= 0 && (fair < 0 || room < fairRoom) {
			fair, fairRoom = int32(m), room
		}
		if room := b.capacity[m] - b.load[m] - z; room >= 0 && (fit < 0 || room < fitRoom) {
			fit, fitRoom = int32(m), room
		}
		r := float64(b.load[m]+z) / float64(max(b.capacity[m], 1))
		if best == from || r < bestR {
			best, bestR = int32(m), r
		}
	}
	switch {
	case fair >= 0:
		return fair
	case fit >= 0:
		return fit
	}
	return best
}

// largestFirst orders targets by size descending, then by key.
func (p *problem) largestFirst(a, b int) int {
	if c := cmp.Compare(p.sizes[b], p.sizes[a]); c != 0 {
		return c
	}
	return cmp.Compare(p.keys[a], p.keys[b])
}

// smallestFirst orders targets by size ascending, then by key.
func (p *problem) smallestFirst(a, b int) int {
	if c := cmp.Compare(p.sizes[a], p.sizes[b]); c != 0 {
		return c
	}
	return cmp.Compare(p.keys[a], p.keys[b])
}

// plan records assign as overrides of the rendezvous placement, plus every
// oversized target (even on its rendezvous owner) so that it keeps its member
// when the membership changes.
func (p *problem) plan(assign []int32, sh share) *Plan {
	var os []Override
	for i, m := range assign {
		var why Reason
		switch {
		case sh.over[i]:
			why = ReasonOversized
		case m == p.hrw[i]:
			continue
		case sh.holder[p.hrw[i]]:
			why = ReasonDisplaced
		default:
			why = ReasonBalance
		}
		os = append(os, Override{Key: p.keys[i], Member: p.names[m], Reason: why})
	}
	return newPlan(p.ring.Digest(), os)
}
