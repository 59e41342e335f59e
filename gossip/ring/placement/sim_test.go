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

// row is one line of the simulation table.
type row struct {
	scenario
	fair                        float64 // plain fair share, series
	oversized                   int
	hrw, token, plan, planBound float64
	overrides, bytes            int
	joinMoved, noiseMoved       float64 // join: moved / newcomer's fair share
	noiseChanged                bool
}

var simConfig = DefaultConfig()

func simulate(t testing.TB, sc scenario, seed uint64) row {
	cfg := simConfig
	members := memberNames("agent", sc.members)
	targets := heavyTailed(sc.targets, seed)
	r := ring.MustNew(members...)
	tr := newTokenRing(members, 512)

	res, err := Compute(cfg, Input{Members: members, Targets: targets})
	require.NoError(t, err)
	plan := res.Plan
	out := row{scenario: sc, oversized: res.After.Oversized, overrides: plan.Len(), bytes: plan.Size()}
	out.fair = float64(res.After.Series) / float64(sc.members)
	out.hrw = maxMean(members, targets, func(k uint64) string { o, _ := r.Owner(k); return o })
	out.token = maxMean(members, targets, tr.get)
	out.plan = maxMean(members, targets, func(k uint64) string { o, _ := plan.Owner(r, k); return o })
	out.planBound = res.After.Imbalance

	// A newcomer joins: what moves from the plan on the old members to the
	// new plan on the new members, over the newcomer's fair share.
	grown := append(slices.Clone(members), ring.Member{Name: "newcomer"})
	rg := ring.MustNew(grown...)
	jr, err := Compute(cfg, Input{Members: grown, Targets: targets, Previous: plan, PreviousMembers: members})
	require.NoError(t, err)
	var moved float64
	for _, tg := range targets {
		a, _ := plan.Owner(r, tg.Key)
		b, _ := jr.Plan.Owner(rg, tg.Key)
		if a != b {
			moved += tg.Series
		}
	}
	fairNew := jr.After.FairPerWeight
	out.joinMoved = moved / fairNew

	// ±10 % on every target's size.
	rng := rand.New(rand.NewPCG(seed, 99))
	noisy := slices.Clone(targets)
	for i := range noisy {
		noisy[i].Series *= 0.9 + 0.2*rng.Float64()
	}
	nr, err := Compute(cfg, Input{Members: members, Targets: noisy, Previous: plan, PreviousMembers: members})
	require.NoError(t, err)
	out.noiseChanged = nr.Changed
	for _, tg := range targets {
		a, _ := plan.Owner(r, tg.Key)
		b, _ := nr.Plan.Owner(r, tg.Key)
		if a != b {
			out.noiseMoved += tg.Series
		}
	}
	return out
}

func TestSimulation(t *testing.T) {
	var b strings.Builder
	fmt.Fprintf(&b, "%-16s %9s %5s %10s %9s %6s %7s %9s %6s %9s %9s\n",
		"targets/agents", "fair", "over", "rendezvous", "tokenring", "plan", "plan*", "overrides", "bytes", "join/fair", "noise")
	for _, sc := range scenarios {
		if testing.Short() && sc.targets > 1000 {
			continue
		}
		for _, seed := range []uint64{1, 2, 3} {
			rw := simulate(t, sc, seed)
			fmt.Fprintf(&b, "%-16s %9.0f %5d %10.3f %9.3f %6.3f %7.3f %9d %6d %9.2f %9.0f\n",
				fmt.Sprintf("%d/%d s%d", sc.targets, sc.members, seed), rw.fair, rw.oversized, rw.hrw, rw.token, rw.plan, rw.planBound,
				rw.overrides, rw.bytes, rw.joinMoved, rw.noiseMoved)
		}
	}
	t.Log("\n" + b.String())
}
