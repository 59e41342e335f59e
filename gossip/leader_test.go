package gossip

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

func TestLeaderAt(t *testing.T) {
	t0 := time.UnixMilli(1_700_000_000_000)
	cs := []candidate{
		{name: "b", started: t0},
		{name: "a", started: t0}, // same start: the smaller name leads
		{name: "old", started: t0.Add(-time.Hour), from: t0.Add(10 * time.Second)},      // oldest, owns keys later
		{name: "leaving", started: t0.Add(-2 * time.Hour), to: t0.Add(5 * time.Second)}, // oldest until it leaves
	}
	for _, tc := range []struct {
		at   time.Time
		want string
	}{
		{t0, "leaving"},
		{t0.Add(5 * time.Second), "a"}, // its end is exclusive
		{t0.Add(10 * time.Second), "old"},
	} {
		c, ok := leaderAt(cs, tc.at)
		require.True(t, ok)
		require.Equal(t, tc.want, c.name, tc.at)
	}
	_, ok := leaderAt(nil, t0)
	require.False(t, ok)

	// The successor of a leaving leader leads from the announced end; the
	// oldest member of a cluster without changes since ever.
	require.Equal(t, t0.Add(5*time.Second), leaderSince(cs, "a", t0.Add(7*time.Second)))
	require.True(t, leaderSince(cs[:2], "a", t0).IsZero())
}

// leaderFast shortens failure detection so a crash is noticed in a second
// or two.
func leaderFast(c *Config) {
	c.Timers.ProbeInterval = 200 * time.Millisecond
	c.Timers.ProbeTimeout = 100 * time.Millisecond
	c.Timers.SuspicionMult = 2
	c.Timers.GossipInterval = 50 * time.Millisecond
}

// waitLeader waits until every node names want as leader, and returns when
// the last of them did.
func waitLeader(t *testing.T, nodes []*testNode, want string, timeout time.Duration) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, n := range nodes {
			l := n.Leader()
			if l.Name != want || l.Self != (n.Name() == want) {
				return false
			}
		}
		return true
	}, timeout, 5*time.Millisecond, "leader %s", want)
}

func TestLeaderIsOldestAndStableOnJoin(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	waitLeader(t, nodes, "node-00", 10*time.Second)
	since := nodes[0].Leader().Since
	require.False(t, since.IsZero())

	// A younger member joining changes nothing.
	late := startNode(t, "a-late", []string{nodes[0].Addr()}, nil)
	nodes = append(nodes, late)
	waitConverged(t, nodes, 4, 30*time.Second)
	waitLeader(t, nodes, "node-00", 10*time.Second)
	require.Equal(t, since, nodes[0].Leader().Since)
	require.Equal(t, 1.0, testutil.ToFloat64(nodes[0].leaderChanges))
}

func TestLeaderResignsAtTheLeaveInstant(t *testing.T) {
	lead := 2 * time.Second
	nodes := startCluster(t, 3, func(c *Config) { c.HandoffLead = lead })
	waitLeader(t, nodes, "node-00", 10*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	until, err := nodes[0].AnnounceLeaving(ctx, time.Now().Add(lead))
	require.NoError(t, err)
	// Until the announced instant the leaving member still leads; from it
	// on, the next oldest does, on every member at once.
	if time.Until(until) > 300*time.Millisecond {
		for _, n := range nodes {
			require.Equal(t, "node-00", n.Leader().Name, n.Name())
		}
	}
	waitLeader(t, nodes, "node-01", time.Until(until)+time.Second)
	for _, n := range nodes {
		require.Equal(t, until, n.Leader().Since, n.Name())
	}
}

func TestLeaderReplacedAfterCrash(t *testing.T) {
	nodes := startCluster(t, 3, leaderFast)
	waitLeader(t, nodes, "node-00", 10*time.Second)
	nodes[0].kill()
	killed := time.Now()
	// Failure detection declares it dead (shoal_cluster_node_failures_total);
	// the successor must lead within a second of that on every survivor.
	var detected, led [2]time.Time
	require.Eventually(t, func() bool {
		for i, n := range nodes[1:] {
			if detected[i].IsZero() && testutil.ToFloat64(n.metrics.failures) == 1 {
				detected[i] = time.Now()
			}
			if led[i].IsZero() && n.Leader().Name == "node-01" {
				led[i] = time.Now()
			}
		}
		return !detected[0].IsZero() && !detected[1].IsZero() && !led[0].IsZero() && !led[1].IsZero()
	}, 20*time.Second, time.Millisecond)
	for i := range led {
		t.Logf("%s: crash detected after %s, new leader %s after detection", nodes[i+1].Name(),
			detected[i].Sub(killed).Round(time.Millisecond), led[i].Sub(detected[i]).Round(time.Millisecond))
		require.Less(t, led[i].Sub(detected[i]), time.Second, "within failure detection + 1 s")
		require.False(t, nodes[i+1].Leader().Since.Before(killed))
	}
	require.True(t, nodes[1].IsLeader())
	require.False(t, nodes[2].IsLeader())
}
