package placement

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shoal-dev/shoal/gossip/ring"
)

// The benchmarks time the planner against plain rendezvous assignment of the
// same targets in the same run (the machine is shared: absolute times are
// noisy, the ratio less so). The target is ≤ 100 ms for 100,000 targets on
// 100 agents.
//
// Run with: go test -run '^$' -bench 'Plan|Replan' -benchtime 10x ./gossip/ring/placement/
// and:      go test -run '^$' -bench Owner ./gossip/ring/placement/

// hrwAssign is the peer: the rendezvous owner of every target and the load
// per member, what an agent computes without a plan.
func hrwAssign(members []ring.Member, targets []Target) map[string]float64 {
	r := ring.MustNew(members...)
	load := make(map[string]float64, len(members))
	for _, t := range targets {
		o, _ := r.Owner(t.Key)
		load[o] += t.Series
	}
	return load
}

// BenchmarkPlan is a plan from scratch: rendezvous far above the bound.
func BenchmarkPlan(b *testing.B) {
	for _, sc := range []scenario{{100000, 100}, {300, 10}} {
		b.Run(fmt.Sprintf("targets=%d/members=%d", sc.targets, sc.members), func(b *testing.B) {
			members := memberNames("agent", sc.members)
			targets := heavyTailed(sc.targets, 1)
			var res Result
			var planT, hrwT time.Duration
			for b.Loop() {
				start := time.Now()
				var err error
				res, err = Compute(DefaultConfig(), Input{Members: members, Targets: targets})
				require.NoError(b, err)
				planT += time.Since(start)
				start = time.Now()
				_ = hrwAssign(members, targets)
				hrwT += time.Since(start)
			}
			report(b, planT, hrwT)
			b.ReportMetric(float64(res.Plan.Len()), "overrides")
			b.ReportMetric(float64(res.Plan.Size()), "plan-bytes")
			b.ReportMetric(res.Before.MaxMean, "hrw-max/mean")
			b.ReportMetric(res.After.MaxMean, "plan-max/mean")
		})
	}
}

// BenchmarkReplan is what the planner costs after a join (a replan with the
// previous plan and members) and on every size update that moves nothing
// (the hysteresis check, ±10 % noise).
func BenchmarkReplan(b *testing.B) {
	members := memberNames("agent", 100)
	targets := heavyTailed(100000, 1)
	first, err := Compute(DefaultConfig(), Input{Members: members, Targets: targets})
	require.NoError(b, err)
	grown := append(slices.Clone(members), ring.Member{Name: "newcomer"})
	rng := rand.New(rand.NewPCG(1, 2))
	noisy := slices.Clone(targets)
	for i := range noisy {
		noisy[i].Series *= 0.9 + 0.2*rng.Float64()
	}
	for _, tc := range []struct {
		name string
		in   Input
	}{
		{"join", Input{Members: grown, Targets: targets, Previous: first.Plan, PreviousMembers: members}},
		{"noise", Input{Members: members, Targets: noisy, Previous: first.Plan, PreviousMembers: members}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var res Result
			var planT, hrwT time.Duration
			for b.Loop() {
				start := time.Now()
				res, err = Compute(DefaultConfig(), tc.in)
				require.NoError(b, err)
				planT += time.Since(start)
				start = time.Now()
				_ = hrwAssign(tc.in.Members, tc.in.Targets)
				hrwT += time.Since(start)
			}
			report(b, planT, hrwT)
			// Against the previous plan on the previous members: a join counts
			// what the newcomer takes by rendezvous too.
			mv := moved(tc.in.Targets, first.Plan, ring.MustNew(members...), res.Plan, ring.MustNew(tc.in.Members...))
			b.ReportMetric(float64(mv)/res.After.FairPerWeight, "moved/fair")
			b.ReportMetric(float64(res.Plan.Size()), "plan-bytes")
		})
	}
}

func report(b *testing.B, planT, hrwT time.Duration) {
	n := float64(b.N)
	b.ReportMetric(float64(planT.Microseconds())/1000/n, "plan-ms")
	b.ReportMetric(float64(hrwT.Microseconds())/1000/n, "hrw-ms")
	b.ReportMetric(float64(planT)/float64(hrwT), "ratio-vs-hrw")
}

// BenchmarkOwner is the per-key lookup with a plan (binary search over the
// overrides, then rendezvous) against rendezvous alone.
func BenchmarkOwner(b *testing.B) {
	members := memberNames("agent", 100)
	r := ring.MustNew(members...)
	res, err := Compute(DefaultConfig(), Input{Members: members, Targets: heavyTailed(100000, 1)})
	require.NoError(b, err)
	b.Run("rendezvous", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			_, _ = r.Owner(uint64(i))
		}
	})
	b.Run("plan", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			_, _ = res.Plan.Owner(r, uint64(i))
		}
	})
}
