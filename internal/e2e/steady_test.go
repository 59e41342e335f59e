package e2e

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Selectors of the farm job's series at the receiver.
const (
	upSelector      = `up{job="farm"}`
	counterSelector = `farm_scrapes_total{job="farm"}`
	anySelector     = `{job="farm"}`
)

// measuredIntervals is the length of a measured window in scrape intervals.
const measuredIntervals = 10

// sleepUntil lets time pass for a measured window.
func sleepUntil(t time.Time) { time.Sleep(time.Until(t)) }

// TestSteadyState measures a converged cluster: three agents, 30 targets in
// Consul of which 5 fail their health check. Over ten scrape intervals after
// convergence, read back from the receiver:
//   - every healthy target has one `up` sample per interval (the window's
//     expected count, give or take one at its edges), all 1;
//   - one agent scrapes each target: its farm_scrapes_total samples come
//     from a single agent (the external label AgentLabel), the one that
//     lists it in /api/v1/targets, are one interval apart (no gap, no two
//     scrapes in one interval) and rise by exactly 1 (no scrape by anyone
//     else in between, none lost);
//   - the agents' /api/v1/targets are disjoint and their union is the 25
//     healthy targets, before and after the window;
//   - unhealthy targets have no sample at all, from the start of the test.
func TestSteadyState(t *testing.T) {
	t.Parallel()
	begin := time.Now()
	c := startConverged(t, 3, "steady", nil)
	converged := c.at.Sub(begin)
	unhealthy := c.env.Instances(false)
	require.Len(t, c.healthy, 25)

	// One interval for loops started by the last re-shard to tick.
	w := Window{Start: time.Now().Add(c.iv), Interval: c.iv}
	w.End = w.Start.Add(measuredIntervals * c.iv)
	sleepUntil(w.End)
	after, err := Converged(t.Context(), c.agents, c.healthy)
	require.NoError(t, err, "the cluster changed during the window")
	require.Equal(t, c.own, after, "ownership changed during the window")
	ingest, err := WaitIngested(t.Context(), c.env.Receiver, counterSelector, c.healthy, w.End)
	require.NoError(t, err)

	ctx := t.Context()
	up, err := Collect(ctx, c.env.Receiver, upSelector, w.Start, w.End)
	require.NoError(t, err)
	counter, err := Collect(ctx, c.env.Receiver, counterSelector, w.Start, w.End)
	require.NoError(t, err)

	upStats := AnalyzeAll(up, c.healthy, w, false)
	stats := AnalyzeAll(counter, c.healthy, w, true)
	for i, st := range stats {
		inst := st.Instance
		require.InDelta(t, w.Expected(), upStats[i].Samples, 1, "%s: up samples in %d intervals", inst, measuredIntervals)
		for _, s := range up[inst] {
			require.Equal(t, 1.0, s.V, "%s: up at %v", inst, s.T)
		}
		require.Equal(t, c.own[inst], st.Agents, "%s: samples written by %v, but /api/v1/targets says %v", inst, st.Agents, c.own[inst])
		require.Zero(t, st.Duplicates(), "%s: duplicate scrapes: %+v", inst, st)
		require.Zero(t, st.Missing, "%s: counter values missing: %+v", inst, st)
		require.Zero(t, st.Gaps, "%s: gaps: %+v", inst, st)
	}

	all, err := Collect(ctx, c.env.Receiver, anySelector, begin, time.Now())
	require.NoError(t, err)
	unhealthySamples := 0
	for _, inst := range unhealthy {
		unhealthySamples += len(all[inst])
	}
	require.Zero(t, unhealthySamples, "unhealthy targets were scraped")

	sum := Summarize(stats)
	t.Logf("E2E test=steady_state agents=%d healthy=%d unhealthy=%d interval_s=%g window_s=%g converge_s=%.1f ingest_wait_s=%.1f ownership=%q up_samples=%d expected_per_target=%d %s unhealthy_samples=%d",
		len(c.agents), len(c.healthy), len(unhealthy), c.iv.Seconds(), w.End.Sub(w.Start).Seconds(), converged.Seconds(), ingest.Seconds(),
		c.own.String(), Summarize(upStats).Samples, w.Expected(), sum, unhealthySamples)
}

// instancesOf returns the instances the named agent scrapes.
func instancesOf(own Ownership, agent string) []string {
	var out []string
	for inst, by := range own {
		if slices.Contains(by, agent) {
			out = append(out, inst)
		}
	}
	slices.Sort(out)
	return out
}

// mostLoaded returns the agent that owns the most instances in own.
func mostLoaded(own Ownership, agents []*Agent) *Agent {
	best, bestN := agents[0], -1
	for _, a := range agents {
		if n := len(instancesOf(own, a.Name)); n > bestN {
			best, bestN = a, n
		}
	}
	return best
}

// others returns agents without the one named.
func others(agents []*Agent, name string) []*Agent {
	return slices.DeleteFunc(slices.Clone(agents), func(a *Agent) bool { return a.Name == name })
}
