package placement

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/stretchr/testify/require"

	"github.com/shoal-dev/shoal/gossip/ring"
)

// The simulation compares three placements of the same targets on the same
// members, in one run:
//
//   - rendezvous: plain HRW (gossip/ring), what shoal does without a plan;
//   - tokenring: consistent hashing with 512 tokens per member, as Grafana
//     Alloy's ckit does (implemented below for the comparison);
//   - plan: this package, computed from rendezvous without a previous plan.
//
// Sizes are heavy-tailed as in issue 12: 5 % of targets at 20,000 series, the
// rest uniform in 100-2,000.
//
// Print the table with: go test -run TestSimulation -v ./gossip/ring/placement/

type scenario struct{ targets, members int }

var scenarios = []scenario{{300, 3}, {300, 10}, {300, 100}, {100000, 100}}

// bigShare and bigSeries: 5 % of targets at 20,000 series.
const (
	bigShare  = 0.05
	bigSeries = 20000
)

// heavyTailed returns n targets with realistic keys (job + URL, as the
// ownership filter computes them) and heavy-tailed sizes.
func heavyTailed(n int, seed uint64) []Target {
	rng := rand.New(rand.NewPCG(seed, 12))
	ts := make([]Target, n)
	for i := range ts {
		ts[i].Key = ring.Key(fmt.Sprintf("node\x00http://10.%d.%d.%d:9100/metrics", seed%256, i/250, i%250))
		if rng.Float64() < bigShare {
			ts[i].Series = bigSeries
		} else {
			ts[i].Series = float64(100 + rng.IntN(1901))
		}
	}
	return ts
}

func memberNames(prefix string, n int) []ring.Member {
	ms := make([]ring.Member, n)
	for i := range ms {
		ms[i] = ring.Member{Name: fmt.Sprintf("%s-%d", prefix, i)}
	}
	return ms
}

// maxMean returns max/mean series per weight for owner applied to targets.
func maxMean(members []ring.Member, targets []Target, owner func(uint64) string) float64 {
	load := map[string]float64{}
	total, weight := 0.0, 0.0
	for _, t := range targets {
		load[owner(t.Key)] += t.Series
		total += t.Series
	}
	hi := 0.0
	for _, m := range members {
		w := m.Weight
		if w == 0 {
			w = 1
		}
		weight += w
		hi = max(hi, load[m.Name]/w)
	}
	return hi / (total / weight)
}

// tokenRing is consistent hashing with virtual nodes, the comparison peer.
type tokenRing struct {
	tokens []uint64
	owner  map[uint64]string
}

func newTokenRing(members []ring.Member, perMember int) *tokenRing {
	t := &tokenRing{owner: map[uint64]string{}}
	for _, m := range members {
		for i := 0; i < perMember; i++ {
			tok := xxhash.Sum64String(fmt.Sprintf("%s-%d", m.Name, i))
			t.tokens = append(t.tokens, tok)
			t.owner[tok] = m.Name
		}
	}
	slices.Sort(t.tokens)
	return t
}

func (t *tokenRing) get(key uint64) string {
	k := xxhash.Sum64(le(key)) // keys are already hashes; rehash like ckit does
	i := sort.Search(len(t.tokens), func(i int) bool { return t.tokens[i] >= k })
	if i == len(t.tokens) {
		i = 0
	}
	return t.owner[t.tokens[i]]
}

func le(k uint64) []byte {
	b := make([]byte, 8)
	for i := range b {
		b[i] = byte(k >> (8 * i))
	}
	return b
}

// row is one scenario run with one seed.
type row struct {
	scenario
	seed          uint64
	fair, fairBar float64 // plain fair share; fair share after oversized targets
	oversized     int
	hrw, token    float64 // max/mean series per agent
	plan, planBar float64 // max/mean; max series/fair of the agents under the bound
	within        bool
	overrides     int
	bytes         int
	join          float64 // series moved when one agent joins / its fair share
	noise         int64   // series moved by ±10 % on every size
	noiseChanged  bool
}

func simulate(t testing.TB, sc scenario, seed uint64) row {
	cfg := DefaultConfig()
	members := memberNames("agent", sc.members)
	targets := heavyTailed(sc.targets, seed)
	r := ring.MustNew(members...)
	tr := newTokenRing(members, 512)

	res, err := Compute(cfg, Input{Members: members, Targets: targets})
	require.NoError(t, err)
	plan := res.Plan
	out := row{scenario: sc, seed: seed, oversized: res.After.Oversized, within: res.After.Within, overrides: plan.Len(), bytes: plan.Size()}
	out.fair = float64(res.After.Series) / float64(sc.members)
	out.fairBar = res.After.FairPerWeight
	out.hrw = maxMean(members, targets, func(k uint64) string { o, _ := r.Owner(k); return o })
	out.token = maxMean(members, targets, tr.get)
	out.plan = maxMean(members, targets, func(k uint64) string { o, _ := plan.Owner(r, k); return o })
	require.InDelta(t, res.After.MaxMean, out.plan, 1e-9, "Stats agree with an independent count")
	out.planBar = res.After.Imbalance

	// A newcomer joins: what moves from the plan on the old members to the
	// new plan on the new members, over the newcomer's fair share.
	grown := append(slices.Clone(members), ring.Member{Name: "newcomer"})
	jr, err := Compute(cfg, Input{Members: grown, Targets: targets, Previous: plan, PreviousMembers: members})
	require.NoError(t, err)
	out.join = float64(moved(targets, plan, r, jr.Plan, ring.MustNew(grown...))) / jr.After.FairPerWeight

	// ±10 % on every target's size.
	rng := rand.New(rand.NewPCG(seed, 99))
	noisy := slices.Clone(targets)
	for i := range noisy {
		noisy[i].Series *= 0.9 + 0.2*rng.Float64()
	}
	nr, err := Compute(cfg, Input{Members: members, Targets: noisy, Previous: plan, PreviousMembers: members})
	require.NoError(t, err)
	out.noiseChanged = nr.Changed
	out.noise = moved(targets, plan, r, nr.Plan, r)
	return out
}

// moved returns the series whose owner differs between plan a on ring ra and
// plan b on ring rb.
func moved(targets []Target, a *Plan, ra *ring.Ring, b *Plan, rb *ring.Ring) int64 {
	var n int64
	for _, t := range targets {
		x, _ := a.Owner(ra, t.Key)
		y, _ := b.Owner(rb, t.Key)
		if x != y {
			n += int64(t.Series)
		}
	}
	return n
}

// simSeeds is how many seeds each scenario runs with for the bars.
func simSeeds(sc scenario) uint64 {
	if sc.targets > 1000 {
		return 3
	}
	return 10
}

// TestSimulation checks the bars of issue 12 on every scenario and seed and
// prints the table (seed 1, and the worst seed for the bars):
//
//   - the plan's max/mean ≤ 1.10 wherever no target exceeds the fair share,
//     and below rendezvous and the token ring;
//   - a join moves ≤ 1.3x the newcomer's fair share;
//   - ±10 % on every size moves nothing where agents hold tens of targets.
//     With about 3 targets per agent (300 on 100) one agent's load moves by
//     several percent and a replan may follow: bounded here at 2 % of the
//     series.
func TestSimulation(t *testing.T) {
	var b strings.Builder
	fmt.Fprintf(&b, "%-15s %9s %9s %4s %10s %9s %6s %6s %9s %6s %9s %9s\n",
		"targets/agents", "fair", "fair*", "over", "rendezvous", "tokenring", "plan", "plan*", "overrides", "bytes", "join/fair", "noise")
	for _, sc := range scenarios {
		if testing.Short() && sc.targets > 1000 {
			continue
		}
		var worst row
		for seed := uint64(1); seed <= simSeeds(sc); seed++ {
			rw := simulate(t, sc, seed)
			name := fmt.Sprintf("%d/%d seed %d", sc.targets, sc.members, seed)
			if rw.oversized == 0 {
				require.True(t, rw.within, name)
				require.LessOrEqual(t, rw.plan, 1+DefaultBound, name)
			} else {
				require.LessOrEqual(t, rw.planBar, 1+DefaultBound+0.05, name)
			}
			require.Less(t, rw.plan, rw.hrw, name)
			require.Less(t, rw.plan, rw.token, name)
			require.LessOrEqual(t, rw.join, 1.3, name)
			if sc.targets/sc.members >= 3*3 {
				require.Zero(t, rw.noise, name)
				require.False(t, rw.noiseChanged, name)
			} else {
				require.LessOrEqual(t, float64(rw.noise), 0.02*rw.fair*float64(sc.members), name)
			}
			if seed == 1 {
				fmt.Fprintln(&b, rw.line(name))
			}
			worst.plan, worst.planBar = max(worst.plan, rw.plan), max(worst.planBar, rw.planBar)
			worst.join, worst.noise = max(worst.join, rw.join), max(worst.noise, rw.noise)
		}
		fmt.Fprintf(&b, "%-15s %9s %9s %4s %10s %9s %6.3f %6.3f %9s %6s %9.2f %9d\n",
			fmt.Sprintf("  worst of %d", simSeeds(sc)), "", "", "", "", "", worst.plan, worst.planBar, "", "", worst.join, worst.noise)
	}
	t.Log("max/mean series per agent; plan* is max series/fair share over the agents under the bound\n" +
		"(fair* excludes the targets larger than a fair share, which sit alone); join/fair is the series\n" +
		"moved when an agent joins over its fair share; noise the series moved by ±10 % on every size\n\n" + b.String())
}

func (rw row) line(name string) string {
	return fmt.Sprintf("%-15s %9.0f %9.0f %4d %10.3f %9.3f %6.3f %6.3f %9d %6d %9.2f %9d",
		name, rw.fair, rw.fairBar, rw.oversized, rw.hrw, rw.token, rw.plan, rw.planBar, rw.overrides, rw.bytes, rw.join, rw.noise)
}
