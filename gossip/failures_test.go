package gossip

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestFailuresRecordWhatTheDeadOwned: a member killed without leaving is
// recorded, on every survivor, with the keys it owned when it died and with
// its agreement on the ring; one that leaves gracefully is not.
func TestFailuresRecordWhatTheDeadOwned(t *testing.T) {
	nodes := startCluster(t, 4, nil)
	owned := map[uint64]bool{}
	for k := range uint64(400) {
		owned[k] = nodes[3].Owns(k)
	}
	nodes[3].kill()
	waitConverged(t, nodes[:3], 3, 30*time.Second)
	for _, n := range nodes[:3] {
		fs := n.Failures()
		require.Len(t, fs, 1, n.Name())
		f := fs[0]
		require.Equal(t, "node-03", f.Member)
		require.True(t, f.Agreed, "the dead member advertised the same ring")
		for k, was := range owned {
			require.Equal(t, was, f.Owned(k), "key %d on %s", k, n.Name())
		}
		require.NotZero(t, n.FailuresVersion())
	}

	// A graceful leave is no failure.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := nodes[2].AnnounceLeaving(ctx, time.Now())
	require.NoError(t, err)
	require.NoError(t, nodes[2].stop())
	require.Eventually(t, func() bool { return len(nodes[0].Peers()) == 2 }, 10*time.Second, 10*time.Millisecond)
	require.Len(t, nodes[0].Failures(), 1)
}

// TestQuarantinesAreGossiped: what a node sets is advertised to its peers,
// including one that joins later.
func TestQuarantinesAreGossiped(t *testing.T) {
	nodes := startCluster(t, 2, nil)
	qs := []Quarantine{{Key: 0xabc, Until: time.Now().Add(time.Minute), Level: 2}}
	nodes[0].SetQuarantines(qs)
	late := startNode(t, "node-late", []string{nodes[0].Addr()}, nil)
	for _, n := range []*testNode{nodes[1], late} {
		require.Eventually(t, func() bool {
			for _, p := range n.Peers() {
				if p.Name == "node-00" && len(p.Quarantines) == 1 {
					q := p.Quarantines[0]
					return q.Key == 0xabc && q.Level == 2 && q.Until.Unix() == qs[0].Until.Unix()
				}
			}
			return false
		}, 10*time.Second, 10*time.Millisecond, n.Name())
	}
	nodes[0].SetQuarantines(nil)
	require.Eventually(t, func() bool {
		for _, p := range late.Peers() {
			if p.Name == "node-00" {
				return len(p.Quarantines) == 0
			}
		}
		return false
	}, 10*time.Second, 10*time.Millisecond)
}
