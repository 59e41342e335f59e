package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// blindIntervals is how long the blind agent is watched, in intervals.
const blindIntervals = 20

// TestBlindDiscoveryLosesNothing: Consul's ACLs are on (default deny) and a
// third agent joins two others with a discovery config that has no token
// (and names the datacenter), so Consul answers its catalog queries with
// empty lists (200), as for a token without read access. The ring gives it a third of the targets; the agents
// that see them keep scraping them in its place: for twenty intervals after
// its start, read back from the receiver, no target has a gap or a
// duplicate. The blind agent is not ready and says which job it cannot see;
// its peers name it and the job in /api/v1/cluster/members.
func TestBlindDiscoveryLosesNothing(t *testing.T) {
	t.Parallel()
	env := startEnv(t, EnvOptions{Targets: 20, ConsulACLToken: "7c2d0b1e-5f4a-4c3b-9a8d-1e2f3a4b5c6d"})
	healthy := env.Instances(true)
	ctx := t.Context()
	seeing, err := env.StartCluster(ctx, 2, "seeing", nil)
	require.NoError(t, err)
	_, err = WaitConverged(ctx, seeing, healthy)
	require.NoError(t, err)
	iv := env.PromConfig().Interval()

	cfg := env.PromConfig()
	// With the datacenter given, discovery needs no agent:read and Consul
	// answers the catalog queries of the anonymous token with empty lists.
	cfg.ConsulToken, cfg.ConsulDatacenter = "", "dc1"
	blind, err := NewAgent(env.Group, AgentOptions{Name: "blind", Config: cfg,
		Join: []string{seeing[0].GossipAddr, seeing[1].GossipAddr}})
	require.NoError(t, err)
	require.NoError(t, blind.Launch())
	w := Window{Start: time.Now(), Interval: iv}
	w.End = w.Start.Add(blindIntervals * iv)

	// It becomes an active member: the ring gives it targets.
	require.NoError(t, Poll(ctx, ReadyTimeout, pollInterval, func(ctx context.Context) error {
		m, err := seeing[0].Members(ctx)
		if err != nil {
			return err
		}
		if len(m.Active()) != 3 {
			return fmt.Errorf("active members %v", m.Active())
		}
		for _, d := range m.Discovery {
			if d.Member == "blind" && len(d.Jobs) == 1 && d.Jobs[0].Job == "farm" && d.Jobs[0].Local == len(healthy) && d.Jobs[0].Peer == 0 {
				return nil
			}
		}
		return fmt.Errorf("discovery differences %+v", m.Discovery)
	}))
	require.NoError(t, Poll(ctx, ReadyTimeout, pollInterval, func(ctx context.Context) error {
		err := blind.Ready(ctx)
		if err == nil || !strings.Contains(err.Error(), "finds no target for job(s) farm that peers discover") {
			return fmt.Errorf("blind agent's readiness: %w", err)
		}
		return nil
	}))
	time.Sleep(time.Until(w.End))
	placed, err := seeing[0].ClusterTargets(ctx)
	require.NoError(t, err)
	ringShare := 0
	for _, ct := range placed.Targets {
		require.NotContains(t, ct.Owners, "blind", "%s", ct.URL)
		if slices.Contains(ct.RingOwners, "blind") {
			ringShare++
		}
	}
	m, err := seeing[1].Members(ctx)
	require.NoError(t, err)
	require.False(t, m.DiscoveryAgree)

	_, err = WaitIngested(ctx, env.Receiver, counterSelector, healthy, w.End)
	require.NoError(t, err)
	counter, err := Collect(ctx, env.Receiver, counterSelector, w.Start, w.End)
	require.NoError(t, err)
	stats := AnalyzeAll(counter, healthy, w, true)
	sum := Summarize(stats)
	t.Logf("E2E test=blind_discovery targets=%d ring_share_of_blind=%d intervals=%d %s", len(healthy), ringShare, blindIntervals, sum)
	for _, st := range stats {
		require.NotContains(t, st.Agents, "blind", "%s", st.Instance)
		require.Zero(t, st.Duplicates(), "%s: duplicate scrapes: %+v", st.Instance, st)
		require.Zero(t, st.Gaps, "%s: gaps: %+v", st.Instance, st)
	}
	require.Positive(t, ringShare, "the ring gave the blind agent nothing: the test proves nothing")
}
