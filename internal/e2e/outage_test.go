package e2e

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// outage is how long the receiver or Consul is down.
const outage = 30 * time.Second

// TestReceiverOutage stops the remote-write receiver for 30 s under two
// agents. The agents keep scraping into their WALs and retry; once the
// receiver is back, every sample of the outage arrives: from three
// intervals before it to three after, each target's counter values are
// contiguous, one interval apart, from one agent. It reports how long the
// backlog took to arrive.
func TestReceiverOutage(t *testing.T) {
	t.Parallel()
	c := startConverged(t, 2, "rw", nil)
	stats, w := receiverOutage(t, c, "receiver_outage", outage, nil)
	after, err := Converged(t.Context(), c.agents, c.healthy)
	require.NoError(t, err, "the cluster changed during the outage")
	require.Equal(t, c.own, after, "ownership changed during the outage")
	for _, st := range stats {
		require.Zero(t, st.Missing, "%s: counter values lost in the outage: %+v", st.Instance, st)
		require.Zero(t, st.Gaps, "%s: scrapes missing in the outage: %+v", st.Instance, st)
		require.Zero(t, st.Duplicates(), "%s: duplicates: %+v", st.Instance, st)
		require.InDelta(t, w.Expected(), st.Samples, 1, "%s: samples in %v", st.Instance, w.End.Sub(w.Start))
	}
}

// TestConsulOutage stops Consul for 30 s under three agents that discover
// their targets in it and register themselves in it. Polled every scrape
// interval during the outage and for ten intervals after Consul is back
// (its -dev catalog is rebuilt from the agents' persisted registrations),
// every agent keeps placing the 25 targets on the same owners
// (/api/v1/cluster/targets) and keeps scraping exactly its own
// (/api/v1/targets). At the receiver, from three intervals before the
// outage to the end, no target has a gap above two intervals, a lost
// counter value or a duplicate.
func TestConsulOutage(t *testing.T) {
	t.Parallel()
	const service = "shoal-e2e"
	c := startConverged(t, 3, "consul", func(env *Env, o *AgentOptions) {
		o.ConsulAddress = env.Consul.Addr
		o.ConsulRegister = service
		o.Join = append(o.Join, "consul+"+service)
	})
	ctx := t.Context()
	ct, err := c.agents[0].ClusterTargets(ctx)
	require.NoError(t, err)
	placement := ct.Owners()
	sleepUntil(c.at.Add(3 * c.iv))

	var (
		polls   int
		changes []string
	)
	// observe compares every agent's placement and scraping with the ones
	// at convergence, once per interval until the deadline.
	observe := func(phase string, until time.Time) {
		for time.Now().Before(until) {
			polls++
			for _, diff := range ownershipChanges(ctx, c.agents, placement, c.own, c.healthy) {
				changes = append(changes, phase+": "+diff)
			}
			next := time.Now().Add(c.iv)
			if next.After(until) {
				next = until
			}
			sleepUntil(next)
		}
	}

	down := time.Now()
	require.NoError(t, c.env.StopConsul())
	observe("down", down.Add(outage))
	require.NoError(t, c.env.StartConsul())
	up := time.Now()
	observe("after", up.Add(measuredIntervals*c.iv))
	end := time.Now()
	require.Empty(t, changes, "ownership changed during or after the consul outage (%d polls)", polls)

	_, err = WaitIngested(t.Context(), c.env.Receiver, counterSelector, c.healthy, end)
	require.NoError(t, err)
	w := Window{Start: down.Add(-3 * c.iv), End: end, Interval: c.iv}
	counter, err := Collect(ctx, c.env.Receiver, counterSelector, w.Start, w.End)
	require.NoError(t, err)
	stats := AnalyzeAll(counter, c.healthy, w, true)
	for _, st := range stats {
		require.LessOrEqual(t, st.MaxGap, 2*c.iv, "%s: gap while consul was down or after: %+v", st.Instance, st)
		require.Zero(t, st.Missing, "%s: counter values lost: %+v", st.Instance, st)
		require.Zero(t, st.Duplicates(), "%s: duplicates: %+v", st.Instance, st)
		require.Equal(t, c.own[st.Instance], st.Agents, "%s: written by %v, owner %v", st.Instance, st.Agents, c.own[st.Instance])
	}
	t.Logf("E2E test=consul_outage agents=%d interval_s=%g outage_s=%.1f polls=%d owner_changes=%d window_s=%.1f %s",
		len(c.agents), c.iv.Seconds(), up.Sub(down).Seconds(), polls, len(changes), w.End.Sub(w.Start).Seconds(), Summarize(stats))
}

// ownershipChanges describes how each agent's placement and scraping differ
// from the ones given; an agent that does not answer is a change too.
func ownershipChanges(ctx context.Context, agents []*Agent, placement map[string][]string, own Ownership, want []string) []string {
	var out []string
	for _, a := range agents {
		ct, err := a.ClusterTargets(ctx)
		if err != nil {
			out = append(out, err.Error())
			continue
		}
		got := ct.Owners()
		if !maps.EqualFunc(got, placement, slices.Equal) {
			out = append(out, fmt.Sprintf("%s places %d targets differently: %v", a.Name, countDiff(got, placement), diffOwners(got, placement)))
		}
	}
	now, err := Scraping(ctx, agents)
	if err != nil {
		return append(out, err.Error())
	}
	if err := now.Check(want); err != nil {
		out = append(out, err.Error())
	} else if !maps.EqualFunc(now, own, slices.Equal) {
		out = append(out, fmt.Sprintf("scraping changed: %s, was %s", now, own))
	}
	return out
}

func countDiff(a, b map[string][]string) int {
	n := 0
	for k := range a {
		if !slices.Equal(a[k], b[k]) {
			n++
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			n++
		}
	}
	return n
}

// diffOwners lists up to three targets whose owners differ.
func diffOwners(got, want map[string][]string) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if !slices.Equal(got[k], want[k]) && len(out) < 3 {
			out = append(out, fmt.Sprintf("%s: %v, was %v", k, got[k], want[k]))
		}
	}
	return out
}
