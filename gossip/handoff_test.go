package gossip

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shoal-dev/shoal/gossip/ring"
)

func TestHandedOverFrom(t *testing.T) {
	f := newViewFixture(t)
	before, during, after := ring.MustNew(ring.Names("a", "b")...), ring.MustNew(ring.Names("a", "b", "c")...), ring.MustNew(ring.Names("b", "c")...)
	within := 6 * time.Second
	var moved int
	for key := range uint64(300) {
		for _, self := range []string{"a", "b", "c"} {
			v := newView(f.sched, self, 1, f.now)
			// Slots with no change in the window: nothing was handed over.
			for _, slot := range []time.Time{f.now, f.join.Add(-time.Second), f.join.Add(within + time.Millisecond)} {
				from, _ := v.HandedOverFrom(key, slot, within)
				require.Empty(t, from, "key %d slot %s", key, slot)
			}
			for _, tc := range []struct {
				slot     time.Time
				at       time.Time
				old, now *ring.Ring
			}{
				{f.join, f.join, before, during},                                // the change lands on the slot
				{f.join.Add(within - time.Millisecond), f.join, before, during}, // the loop started late
				{f.leave.Add(time.Second), f.leave, during, after},
			} {
				oldOwner, newOwner := tc.old.Owners(nil, key, 1)[0], tc.now.Owners(nil, key, 1)[0]
				from, at := v.HandedOverFrom(key, tc.slot, within)
				if newOwner != self {
					continue // the fence only asks for slots this node owns
				}
				if oldOwner == self || oldOwner == newOwner {
					require.Empty(t, from, "key %d self %s: it owned the key before", key, self)
					continue
				}
				moved++
				require.Equal(t, oldOwner, from, "key %d self %s slot %s", key, self, tc.slot)
				require.True(t, at.Equal(tc.at), "key %d: the change instant, got %s", key, at)
			}
			from, _ := newView(f.sched, self, 2, f.now).HandedOverFrom(key, f.join, within)
			require.Empty(t, from, "several owners per key: no single predecessor")
		}
	}
	require.Positive(t, moved, "some keys must move to their new owner at the join and the leave")
}

// A key that changed owner at the join and not at the leave is named with
// the join, even for a slot after the leave.
func TestHandedOverFromLooksPastUnrelatedChanges(t *testing.T) {
	f := newViewFixture(t)
	before, during, after := ring.MustNew(ring.Names("a", "b")...), ring.MustNew(ring.Names("a", "b", "c")...), ring.MustNew(ring.Names("b", "c")...)
	found := false
	for key := range uint64(1000) {
		b, d, a := before.Owners(nil, key, 1)[0], during.Owners(nil, key, 1)[0], after.Owners(nil, key, 1)[0]
		if d != "c" || b == "c" || a != "c" {
			continue
		}
		found = true
		from, at := newView(f.sched, "c", 1, f.now).HandedOverFrom(key, f.leave.Add(time.Second), time.Minute)
		require.Equal(t, b, from)
		require.True(t, at.Equal(f.join))
	}
	require.True(t, found)
}

func TestHandedOverFromDoesNotAllocate(t *testing.T) {
	f := newViewFixture(t)
	v := newView(f.sched, "c", 1, f.now)
	allocs := testing.AllocsPerRun(100, func() {
		for key := range uint64(50) {
			_, _ = v.HandedOverFrom(key, f.leave, time.Minute)
		}
	})
	require.Zero(t, allocs)
}

// A crash rebuilds the ring without the dead member since ever; the node
// still names it as the previous owner of its keys for a while.
func TestNodeHandedOverFromNamesACrashedMember(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	both := mustSchedule([]span{{member: ring.Member{Name: "a"}}, {member: ring.Member{Name: "b"}}}, now.Add(-time.Minute))
	alone := mustSchedule([]span{{member: ring.Member{Name: "b"}}}, now)
	n := &Node{cfg: Config{Name: "b", ReplicationFactor: 1}}
	n.sched.Store(alone)
	n.rememberReplaced(both, alone, now)
	within := 6 * time.Second
	var named int
	for key := range uint64(200) {
		owner := both.At(now).Owners(nil, key, 1)[0]
		from, at := n.HandedOverFrom(key, now.Add(time.Second), within)
		if owner == "a" {
			named++
			require.Equal(t, "a", from, "key %d", key)
			require.True(t, at.Equal(now))
		} else {
			require.Empty(t, from, "key %d: b owned it before", key)
		}
		from, _ = n.HandedOverFrom(key, now.Add(within+time.Second), within)
		require.Empty(t, from, "key %d: past the window", key)
	}
	require.Positive(t, named)

	// Rebuilds that change nothing are not remembered over it; history is bounded.
	for i := range 2 * maxReplaced {
		n.rememberReplaced(alone, alone, now.Add(time.Duration(i)*time.Millisecond))
	}
	require.Len(t, *n.replaced.Load(), maxReplaced)
}
