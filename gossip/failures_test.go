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
	// What it was busy with travels with its last metadata.
	nodes[3].SetInFlight([]uint64{42})
	for _, n := range nodes[:3] {
		require.Eventually(t, func() bool {
			for _, p := range n.Peers() {
				if p.Name == "node-03" {
					return len(p.InFlight) == 1 && p.InFlight[0] == 42
				}
			}
			return false
		}, 10*time.Second, 10*time.Millisecond)
	}
	nodes[3].kill()
	waitConverged(t, nodes[:3], 3, 30*time.Second)
	for _, n := range nodes[:3] {
		fs := n.Failures()
		require.Len(t, fs, 1, n.Name())
		f := fs[0]
		require.Equal(t, "node-03", f.Member)
		require.True(t, f.Agreed, "the dead member advertised the same ring")
		require.Equal(t, []uint64{42}, f.InFlight)
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

// TestFailuresTogetherAgreeOnlyOnce: two members killed at the same moment
// (a partition, a lost host) never heard of each other's death. On the
// survivors the first failure noticed agreed on the ring; the second did
// not (it still advertised the ring with the first), so it strikes nothing
// that the ring gave it after the first failure.
func TestFailuresTogetherAgreeOnlyOnce(t *testing.T) {
	nodes := startCluster(t, 4, nil)
	done := make(chan struct{})
	go func() { nodes[3].kill(); close(done) }()
	nodes[2].kill()
	<-done
	waitConverged(t, nodes[:2], 2, 30*time.Second)
	for _, n := range nodes[:2] {
		require.Eventually(t, func() bool { return len(n.Failures()) == 2 }, 10*time.Second, 10*time.Millisecond)
		fs := n.Failures()
		require.True(t, fs[0].Agreed, "%s: the first failure noticed", n.Name())
		if !fs[1].Agreed {
			continue
		}
		// Both were noticed before either left the ring (one rebuild):
		// then the second failure's ring still holds the first member,
		// and no key moved between them on paper.
		for k := range uint64(400) {
			require.False(t, fs[0].Owned(k) && fs[1].Owned(k), "key %d owned by both dead members on %s", k, n.Name())
		}
	}
}
