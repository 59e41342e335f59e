package e2e

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shoal-dev/shoal/gossip/ring"
)

// planQuiet is how long TestPlanHandoff watches the cluster after the plan
// took effect: beyond the hold (20 s) and two load rounds (5 s), so that a
// replan of the balanced placement would have happened.
const planQuiet = 35 * time.Second

// overBoundPrefix returns an agent name prefix for which rendezvous
// hashing places the instances on n agents named "<prefix>-<i>" above the
// default bound (110 % of the mean count): the cluster must then plan. It
// computes the ring only to choose the names; the test checks what the
// agents report.
func overBoundPrefix(t *testing.T, instances []string, n int) (string, map[string]int) {
	t.Helper()
	limit := int(1.10 * float64(len(instances)) / float64(n))
	for i := range 200 {
		prefix := fmt.Sprintf("plan%d", i)
		var names []string
		for j := range n {
			names = append(names, fmt.Sprintf("%s-%d", prefix, j))
		}
		r := ring.MustNew(ring.Names(names...)...)
		count := map[string]int{}
		for _, inst := range instances {
			o, _ := r.Owner(ring.Key(DefaultJob + "\x00http://" + inst + "/metrics"))
			count[o]++
		}
		if slices.Max(slices.Collect(maps.Values(count))) > limit {
			return prefix, count
		}
	}
	t.Fatalf("no agent names among 200 for which rendezvous places %d targets on %d agents above %d", len(instances), n, limit)
	return "", nil
}

// TestPlanHandoff starts three agents with the default placement (load)
// over 25 equal targets that rendezvous places above the bound (agent names
// chosen so: e.g. 10/8/7 targets, max/mean 1.20). The leader plans once it
// has measured them for the hold; read back from the receiver, from
// convergence until 35 s after the plan took effect:
//   - the plan balances the counts within the bound (9/8/8: 1.08) and the
//     agents report the targets it moved as placed by the plan;
//   - a moved target is written by its old owner up to the plan's instant
//     and by its new owner after it, with no gap, no lost counter value and
//     no duplicate; every other target by its one owner throughout;
//   - nothing else moves and no second plan is made (hysteresis: 1.08 is
//     within the bound).
func TestPlanHandoff(t *testing.T) {
	t.Parallel()
	env := startEnv(t, EnvOptions{Targets: 30, Unhealthy: 5})
	healthy := env.Instances(true)
	require.Len(t, healthy, 25)
	prefix, hashCount := overBoundPrefix(t, healthy, 3)
	ctx := t.Context()
	agents, err := env.StartCluster(ctx, 3, prefix, nil)
	require.NoError(t, err)
	before, err := WaitConverged(ctx, agents, healthy)
	require.NoError(t, err)
	converged := time.Now()
	iv := env.PromConfig().Interval()
	// What the agents place before any plan is rendezvous, above the bound.
	ct, err := agents[0].ClusterTargets(ctx)
	require.NoError(t, err)
	beforeCount := map[string]int{}
	for _, tg := range ct.Targets {
		if tg.PlacedBy == "hash" && len(tg.Owners) == 1 {
			beforeCount[tg.Owners[0]]++
		}
	}
	if pl, err := agents[0].Placement(ctx); err == nil && pl.Plan != nil {
		// The plan came before convergence was seen: the counts above are
		// the plan's, the handoff cannot be observed from the start.
		t.Logf("a plan (version %d) was in force at convergence already", pl.Plan.Version)
	} else {
		require.Equal(t, hashCount, beforeCount, "before the plan the agents place by rendezvous")
	}

	after, settled, err := WaitSettled(ctx, agents, healthy)
	require.NoError(t, err)
	require.Equal(t, uint64(1), settled.Version, "one plan balances equal targets: %s", settled)
	require.LessOrEqual(t, settled.Imbalance, 1.10)
	counts := map[string]int{}
	for a, insts := range after.Of() {
		counts[a] = len(insts)
	}
	require.LessOrEqual(t, slices.Max(slices.Collect(maps.Values(counts))), 9, "counts under the plan: %v", counts)

	// The targets the plan moved, as the agents report them.
	ct, err = agents[0].ClusterTargets(ctx)
	require.NoError(t, err)
	planned := map[string]bool{}
	for _, tg := range ct.Targets {
		if tg.PlacedBy == "plan" {
			planned[tg.Labels["instance"]] = true
		}
	}
	var moved []string
	for _, inst := range healthy {
		if !slices.Equal(before[inst], after[inst]) {
			moved = append(moved, inst)
			require.True(t, planned[inst], "%s moved from %v to %v but is not placed by the plan", inst, before[inst], after[inst])
		}
	}
	require.NotEmpty(t, moved, "the plan moved nothing")

	// Hysteresis: the balanced placement stays, and no other plan comes.
	sleepUntil(settled.At.Add(planQuiet))
	still, err := Converged(ctx, agents, healthy)
	require.NoError(t, err, "the cluster changed after the plan")
	require.Equal(t, after, still, "ownership changed after the plan")
	for _, a := range agents {
		pl, err := a.Placement(ctx)
		require.NoError(t, err)
		require.NotNil(t, pl.Plan, a.Name)
		require.Equal(t, settled.Version, pl.Plan.Version, "%s: a second plan", a.Name)
	}

	end := time.Now()
	_, err = WaitIngested(ctx, env.Receiver, counterSelector, healthy, end)
	require.NoError(t, err)
	w := Window{Start: converged.Add(iv), End: end, Interval: iv}
	counter, err := Collect(ctx, env.Receiver, counterSelector, w.Start.Add(-3*iv), w.End)
	require.NoError(t, err)
	stats := AnalyzeAll(counter, healthy, w, true)
	fenced := 0
	for _, st := range stats {
		inst := st.Instance
		require.Zero(t, st.Gaps, "%s: gaps: %+v", inst, st)
		require.Zero(t, st.Missing, "%s: counter values lost: %+v", inst, st)
		require.Zero(t, st.Duplicates(), "%s: duplicates: %+v", inst, st)
		fenced += st.Fenced
		if !slices.Contains(moved, inst) {
			require.Equal(t, after[inst], st.Agents, "%s: written by %v", inst, st.Agents)
			continue
		}
		from, to := before[inst][0], after[inst][0]
		require.ElementsMatch(t, []string{from, to}, st.Agents, "%s: written by %v, moved from %s to %s", inst, st.Agents, from, to)
		for _, s := range counter[inst] {
			if !s.T.After(w.Start) {
				continue // the baseline: owners while the agents joined
			}
			switch s.Agent {
			case from:
				require.True(t, s.T.Before(settled.At.Add(iv)), "%s: %s wrote at %v, after the plan's instant %v", inst, from, s.T, settled.At)
			case to:
				require.True(t, s.T.After(settled.At.Add(-iv)), "%s: %s wrote at %v, before the plan's instant %v", inst, to, s.T, settled.At)
			}
		}
	}
	t.Logf("E2E test=plan_handoff agents=%d targets=%d interval_s=%g hash=%v plan=%v moved=%d plan_after_convergence_s=%.1f %s window_s=%.1f fenced=%d %s",
		len(agents), len(healthy), iv.Seconds(), hashCount, counts, len(moved), settled.At.Sub(converged).Seconds(), settled,
		w.End.Sub(w.Start).Seconds(), fenced, Summarize(stats))
}
