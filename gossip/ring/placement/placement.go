// Package placement computes a load-aware plan on top of the rendezvous ring:
// which targets must leave their rendezvous (HRW) owner so that every member
// carries at most a bound above its weighted fair share of series.
//
// The ring balances target counts; one agent that draws a few huge targets
// runs hot while others idle. The plan starts from the ring and overrides only
// what must move, in the spirit of bounded-load consistent hashing (Mirrokni,
// Thorup and Zadimoghaddam, "Consistent Hashing with Bounded Loads", 2018):
// every member gets a capacity of (1+ε) times its fair share. Unlike the
// paper's online insertion, where a key that finds its first choice full
// walks on to the next, the planner sees every target with its size at once:
// it keeps every target where it is (rendezvous, or the previous plan) and
// moves only the excess of the members above the bound, each shed target
// going back where it was before a join, else to its rendezvous owner, else to
// the member whose room it fits best (best fit keeps large rooms for large
// targets); swaps settle what no single move can.
//
// A plan is a short list of overrides (key -> member) plus the digest of the
// ring it was computed for. Targets the plan does not mention are placed by
// plain rendezvous, so a plan only needs to be carried for the few targets it
// moves, and a target discovered after the plan was made still has an owner.
//
// Hysteresis: given the previous plan, Compute keeps it unchanged while every
// member is within Config.Bound of its fair share. When it must replan, only
// the members above the bound shed, down to Config.Fill (below the bound),
// and receivers are filled to their fair share first and to Fill at most, so
// that ordinary fluctuation of sizes after a replan does not trigger the next
// one. "Above the bound for a while" is the caller's to judge (Evaluate).
//
// Targets larger than a fair share (oversized): such a target cannot be
// balanced. It sits alone on the member rendezvous gives it (or the member it
// sat alone on in the previous plan), and that member takes no other target.
// The fair share of the remaining members is then recomputed without the
// oversized targets and their members, repeatedly, largest target first
// ("water filling"): with S the series of the targets that are not oversized
// and W the weight of the members that hold no oversized target, a member of
// weight w has fair share w·S/W and capacity (1+ε)·w·S/W, and a target is
// oversized when its series exceed the fair share of the member it would sit
// on. When two oversized targets have the same rendezvous owner, the larger
// keeps it and the smaller sits alone on the next member of its rendezvous
// order. Oversized targets are listed in the plan even on their rendezvous
// owner, so that a join does not move them to the newcomer. A member holding
// a single target is never above the bound: a target cannot be split.
//
// The package is pure (standard library, xxhash and the ring) and
// deterministic: the same members, targets and previous plan give the same
// plan, whatever their order, on every process. Sizes are rounded to whole
// series and summed as integers so that no floating-point order matters.
//
// What it does not do: elect the member that computes plans, measure or
// gossip sizes, or decide when a plan takes effect. Those belong to the
// caller; see the README ("Load-aware placement (planner only)").
package placement

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"

	"github.com/shoal-dev/shoal/gossip/ring"
)

// Target is one scrape target as the planner sees it.
type Target struct {
	// Key is the target's ring key, ring.Key(job + "\x00" + URL).
	Key uint64
	// Series is the target's smoothed size in series: finite, at least 0 and
	// at most MaxSeries. It is rounded to a whole number.
	Series float64
}

// MaxSeries bounds one target's size so that sums over a fleet stay exact in
// 64-bit integers; the largest real exporters are a few million series.
const MaxSeries = 1e9

// Defaults for Config. The bound is the bar (max/mean ≤ 1.10). A
// replan fills members to 3 % above their share: the 7 % left below the bound
// absorb a ±10 % change of every target's size on agents holding tens of
// targets or more, and after a join the old members, whose fair share shrank,
// stay mostly below the bound. Measured over 20 seeds in the simulation (0.05
// let noise trigger replans at 30 targets per agent; 0.02 packed worse).
const (
	DefaultBound = 0.10
	DefaultFill  = 0.03
)

// Config tunes the planner.
type Config struct {
	// Bound is how far above its fair share a member may go before a new plan
	// is made: 0.10 means 110 % of the fair share. In (0, 1].
	Bound float64
	// Fill is how far above its fair share a new plan fills a member when it
	// moves targets onto or off it. In (0, Bound].
	Fill float64
}

// DefaultConfig returns the default bound and fill.
func DefaultConfig() Config { return Config{Bound: DefaultBound, Fill: DefaultFill} }

// Validate reports the first invalid field.
func (c Config) Validate() error {
	if math.IsNaN(c.Bound) || c.Bound <= 0 || c.Bound > 1 {
		return fmt.Errorf("placement bound must be in (0, 1], got %v", c.Bound)
	}
	if math.IsNaN(c.Fill) || c.Fill <= 0 || c.Fill > c.Bound {
		return fmt.Errorf("placement fill must be in (0, bound %v], got %v", c.Bound, c.Fill)
	}
	return nil
}

// ErrNoMembers is returned when a plan is asked for an empty member set.
var ErrNoMembers = errors.New("no members to place targets on")

// Result is what Compute returns.
type Result struct {
	// Plan is the plan to use: Input.Previous itself when it is still within
	// the bound, a new plan otherwise. Never nil when the error is nil.
	Plan *Plan
	// Changed reports whether Plan differs from the previous plan (its Digest
	// differs); always true without a previous plan.
	Changed bool
	// Before is the load of the previous plan applied to the current members
	// and sizes (plain rendezvous without a previous plan); After is the load
	// of Plan.
	Before, After Stats
	// MovedSeries and MovedTargets count what Plan places on another member
	// than the previous plan applied to the current members: the cost of the
	// plan change itself, on top of what the membership change moves by
	// rendezvous (a target shed back by a newcomer counts here, although it
	// returns to where it was).
	MovedSeries  int64
	MovedTargets int
}

// Input is what a plan is computed from.
type Input struct {
	// Members are the members to place targets on, with their weights.
	Members []ring.Member
	// Targets are the targets with their current smoothed sizes. Keys must
	// be unique.
	Targets []Target
	// Previous is the plan in force, nil for none.
	Previous *Plan
	// PreviousMembers are the members Previous was computed for, when known
	// (the planner that made it keeps them; a plan received from a peer does
	// not carry them). With them, a target that a newcomer takes by
	// rendezvous and must shed again goes back to the member it came from
	// without moving. Their ring digest must be Previous.RingDigest(). Ignored
	// without Previous.
	PreviousMembers []ring.Member
}

// Compute returns the plan for in. Members and targets may come in any
// order; the result depends on their contents only.
//
// The previous plan may have been computed for other members (a join or
// leave since): its overrides to members that are gone are ignored, and the
// others stay where they are unless they must move. Compute returns Previous
// itself when it was computed for the same members and every member is still
// within the bound; when it was computed for other members and every member
// is within the bound, the new plan places every target where Previous does.
//
// Compute does not retain its input; it allocates O(targets).
func Compute(cfg Config, in Input) (Result, error) {
	p, err := newProblem(cfg, in.Members, in.Targets)
	if err != nil {
		return Result{}, err
	}
	prev := in.Previous
	carry := p.carry(prev)
	before := p.stats(carry)
	res := Result{Before: before}
	sameRing := prev != nil && prev.ringDigest == p.ring.Digest()
	if sameRing && before.Within {
		res.Plan, res.After = prev, before
		return res, nil
	}
	var origin []int32
	if prev != nil && !sameRing && in.PreviousMembers != nil {
		if origin, err = p.origin(carry, prev, in.PreviousMembers); err != nil {
			return Result{}, err
		}
	}
	// Within the bound but computed for other members: keep every target where
	// it is and only record the plan for the current members. Otherwise set the
	// oversized targets alone and bring the members above the bound down.
	assign := slices.Clone(carry)
	sh := p.share(assign, !before.Within)
	if !before.Within {
		p.rebalance(assign, sh, prev == nil, origin)
	}
	res.Plan = p.plan(assign, sh)
	res.After = p.stats(assign)
	res.Changed = prev == nil || res.Plan.Digest() != prev.Digest()
	for i := range assign {
		if assign[i] != carry[i] {
			res.MovedSeries += p.sizes[i]
			res.MovedTargets++
		}
	}
	return res, nil
}

// Evaluate returns the load of plan (nil: plain rendezvous) applied to
// members and targets, without computing anything new: what a page shows and
// what a caller watches to replan only after the bound has been exceeded for
// a while.
func Evaluate(cfg Config, members []ring.Member, targets []Target, plan *Plan) (Stats, error) {
	p, err := newProblem(cfg, members, targets)
	if err != nil {
		return Stats{}, err
	}
	return p.stats(p.carry(plan)), nil
}

// problem is one planning run: members and targets, validated and sorted.
type problem struct {
	cfg     Config
	ring    *ring.Ring
	names   []string // sorted; a member is its index here
	index   map[string]int32
	weights []float64
	keys    []uint64 // sorted, unique
	sizes   []int64  // rounded series, parallel to keys
	hrw     []int32  // rendezvous owner, parallel to keys
}

func newProblem(cfg Config, members []ring.Member, targets []Target) (*problem, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r, err := ring.New(members)
	if err != nil {
		return nil, fmt.Errorf("build ring: %w", err)
	}
	if r.Len() == 0 {
		return nil, ErrNoMembers
	}
	p := &problem{cfg: cfg, ring: r, names: r.Members()}
	p.index = make(map[string]int32, len(p.names))
	for i, n := range p.names {
		p.index[n] = int32(i)
	}
	p.weights = make([]float64, len(p.names))
	for _, m := range members {
		w := m.Weight
		if w == 0 {
			w = 1
		}
		p.weights[p.index[m.Name]] = w
	}
	for i, t := range targets {
		if math.IsNaN(t.Series) || t.Series < 0 || t.Series > MaxSeries {
			return nil, fmt.Errorf("target %d (key %#x): series must be in [0, %g], got %v", i, t.Key, float64(MaxSeries), t.Series)
		}
	}
	ts := sortByKey(targets)
	p.keys = make([]uint64, len(ts))
	p.sizes = make([]int64, len(ts))
	p.hrw = make([]int32, len(ts))
	for i, t := range ts {
		if i > 0 && t.Key == ts[i-1].Key {
			return nil, fmt.Errorf("target key %#x: listed twice", t.Key)
		}
		p.keys[i] = t.Key
		p.sizes[i] = int64(math.Round(t.Series))
	}
	p.rendezvous()
	return p, nil
}

// parallelMin is the number of targets from which rendezvous owners are
// computed on every CPU: a hash per target and member, the planner's largest
// cost (100,000 targets on 100 agents: ten million hashes).
const parallelMin = 8192

// rendezvous fills p.hrw. Each owner depends on its key alone, so the
// result is the same however the work is split.
func (p *problem) rendezvous() {
	// The ring's members are sorted like p.names: its index is ours.
	fill := func(lo, hi int) {
		for i := lo; i < hi; i++ {
			p.hrw[i] = int32(p.ring.OwnerIndex(p.keys[i]))
		}
	}
	workers := min(runtime.GOMAXPROCS(0), len(p.keys)/(parallelMin/2))
	if workers < 2 {
		fill(0, len(p.keys))
		return
	}
	var wg sync.WaitGroup
	chunk := (len(p.keys) + workers - 1) / workers
	for lo := 0; lo < len(p.keys); lo += chunk {
		wg.Go(func() { fill(lo, min(lo+chunk, len(p.keys))) })
	}
	wg.Wait()
}

// carry is prev applied to the current members: each target on its override
// member when that member is still there, on its rendezvous owner otherwise.
func (p *problem) carry(prev *Plan) []int32 {
	a := slices.Clone(p.hrw)
	if prev == nil || len(prev.overrides) == 0 {
		return a
	}
	// Resolve the plan's member table once instead of one map lookup per target.
	local := make([]int32, len(prev.members))
	for i, n := range prev.members {
		if m, ok := p.index[n]; ok {
			local[i] = m
		} else {
			local[i] = -1
		}
	}
	// Both lists are sorted by key: merge them.
	j := 0
	for _, o := range prev.overrides {
		for j < len(p.keys) && p.keys[j] < o.key {
			j++
		}
		if j == len(p.keys) {
			break
		}
		if p.keys[j] == o.key && local[o.member] >= 0 {
			a[j] = local[o.member]
		}
	}
	return a
}

// origin returns, for each target, the member it is on under the previous
// plan and members when that member is still here, or -1 when it left. Only
// the targets that rendezvous gives to a newcomer need the previous ring: any
// other target's carry member is where it was (rendezvous never moves a key
// between two members that both stay).
func (p *problem) origin(carry []int32, prev *Plan, members []ring.Member) ([]int32, error) {
	old, err := ring.New(members)
	if err != nil {
		return nil, fmt.Errorf("previous members: %w", err)
	}
	if old.Digest() != prev.ringDigest {
		return nil, fmt.Errorf("previous members: ring digest %#x does not match the previous plan's %#x", old.Digest(), prev.ringDigest)
	}
	isNew := make([]bool, len(p.names))
	for m, n := range p.names {
		isNew[m] = !old.Has(n)
	}
	origin := slices.Clone(carry)
	for i, m := range carry {
		if !isNew[m] {
			continue
		}
		origin[i] = -1
		if o, ok := prev.Owner(old, p.keys[i]); ok {
			if j, ok := p.index[o]; ok {
				origin[i] = j
			}
		}
	}
	return origin, nil
}

// sortByKey returns a copy of ts sorted by key, stably. A planner that keeps its
// targets sorted (the agent's does) pays for the copy only; otherwise a
// radix sort on the key's bytes, which for 100,000 targets takes a tenth of
// the comparison sort's time (it was the planner's largest cost after
// rendezvous itself). Passes over a byte that every key shares are skipped.
func sortByKey(ts []Target) []Target {
	out := slices.Clone(ts)
	byKey := func(a, b Target) int { return cmp.Compare(a.Key, b.Key) }
	if slices.IsSortedFunc(out, byKey) {
		return out
	}
	if len(out) < radixMin {
		slices.SortStableFunc(out, byKey)
		return out
	}
	buf := make([]Target, len(out))
	src, dst := out, buf
	for shift := uint(0); shift < 64; shift += 8 {
		var count [256]int
		for _, t := range src {
			count[byte(t.Key>>shift)]++
		}
		if count[byte(src[0].Key>>shift)] == len(src) {
			continue // every key has this byte
		}
		pos := 0
		for i, c := range count {
			count[i] = pos
			pos += c
		}
		for _, t := range src {
			d := byte(t.Key >> shift)
			dst[count[d]] = t
			count[d]++
		}
		src, dst = dst, src
	}
	return src
}

// radixMin is the length from which sortByKey sorts by radix: below it the
// eight passes cost more than comparisons.
const radixMin = 512
