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
	iv := 2 * time.Second
	var moved, checked int
	for key := range uint64(300) {
		for _, self := range []string{"a", "b", "c"} {
			v := newView(f.sched, self, 1, f.now)
			// Slots far from any change: nothing was handed over.
			require.Empty(t, v.HandedOverFrom(key, f.now, iv), "key %d", key)
			require.Empty(t, v.HandedOverFrom(key, f.join.Add(-time.Second), iv), "key %d: the slot before the join", key)
			require.Empty(t, v.HandedOverFrom(key, f.join.Add(iv+time.Millisecond), iv), "key %d: the second slot after the join", key)

			for _, tc := range []struct {
				slot     time.Time
				old, now *ring.Ring
			}{
				{f.join, before, during},                            // the change lands on the slot
				{f.join.Add(iv - time.Millisecond), before, during}, // the first slot after it
				{f.leave.Add(time.Second), during, after},
			} {
				checked++
				oldOwner, newOwner := tc.old.Owners(nil, key, 1)[0], tc.now.Owners(nil, key, 1)[0]
				// The answer does not depend on who owns the key now (the
				// fence only asks for slots this node owns).
				want := ""
				if oldOwner != self {
					want = oldOwner
				}
				if want != "" && newOwner == self {
					moved++
				}
				require.Equal(t, want, v.HandedOverFrom(key, tc.slot, iv), "key %d self %s slot %s", key, self, tc.slot)
			}
			require.Empty(t, newView(f.sched, self, 2, f.now).HandedOverFrom(key, f.join, iv), "several owners per key: no single predecessor")
		}
	}
	require.Positive(t, moved, "some keys must move at the join and the leave")
	require.Equal(t, 300*3*3, checked)
}

func TestHandedOverFromDoesNotAllocate(t *testing.T) {
	f := newViewFixture(t)
	v := newView(f.sched, "c", 1, f.now)
	allocs := testing.AllocsPerRun(100, func() {
		for key := range uint64(50) {
			_ = v.HandedOverFrom(key, f.join, 2*time.Second)
		}
	})
	require.Zero(t, allocs)
}
