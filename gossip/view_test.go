package gossip

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shoal-dev/shoal/gossip/ring"
)

// viewFixture is a cluster of a and b since ever; c joins at join and a
// leaves at leave.
type viewFixture struct {
	now, join, leave time.Time
	sched            *Schedule
}

func newViewFixture(t *testing.T) viewFixture {
	t.Helper()
	now := time.Unix(1_700_000_000, 0)
	f := viewFixture{now: now, join: now.Add(10 * time.Second), leave: now.Add(20 * time.Second)}
	s, err := newSchedule([]span{
		{member: ring.Member{Name: "a"}, to: f.leave},
		{member: ring.Member{Name: "b"}},
		{member: ring.Member{Name: "c"}, from: f.join},
	}, now)
	require.NoError(t, err)
	f.sched = s
	return f
}

func TestViewOwnersOverTime(t *testing.T) {
	f := newViewFixture(t)
	before, during, after := ring.MustNew(ring.Names("a", "b")...), ring.MustNew(ring.Names("a", "b", "c")...), ring.MustNew(ring.Names("b", "c")...)
	for _, tc := range []struct {
		name string
		at   time.Time
		want *ring.Ring
	}{
		{"since ever", time.Time{}, before},
		{"now", f.now, before},
		{"just before the join", f.join.Add(-time.Nanosecond), before},
		{"at the join", f.join, during},
		{"between", f.join.Add(5 * time.Second), during},
		{"at the leave", f.leave, after},
		{"long after", f.leave.Add(time.Hour), after},
	} {
		for _, rf := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s/rf=%d", tc.name, rf), func(t *testing.T) {
				for _, self := range []string{"a", "b", "c"} {
					v := newView(f.sched, self, rf, f.now)
					for key := range uint64(200) {
						want := tc.want.Owners(nil, key, rf)
						require.Equal(t, want, v.OwnersAt(nil, key, tc.at), "key %d", key)
						require.Equal(t, want, v.At(tc.at).Owners(nil, key), "key %d", key)
						require.Equal(t, slices.Contains(want, self), v.OwnsAt(key, tc.at), "key %d", key)
						require.Equal(t, slices.Contains(want, self), v.At(tc.at).Owns(key), "key %d", key)
						require.Equal(t, after.Owners(nil, key, rf), v.FinalOwners(nil, key), "key %d", key)
					}
					require.Equal(t, tc.want.Digest(), v.At(tc.at).Digest())
					require.Equal(t, tc.want.Len(), v.At(tc.at).Size())
					require.Equal(t, after.Digest(), v.At(tc.at).FinalDigest())
				}
			})
		}
	}
}

func TestViewChangesAhead(t *testing.T) {
	f := newViewFixture(t)
	v := newView(f.sched, "a", 1, f.now)
	require.Equal(t, []time.Time{f.join, f.leave}, v.Changes())
	for _, tc := range []struct {
		name string
		at   time.Time
		want []time.Time
	}{
		{"now", f.now, []time.Time{f.join, f.leave}},
		{"at the join", f.join, []time.Time{f.leave}},
		{"between", f.join.Add(time.Second), []time.Time{f.leave}},
		{"at the leave", f.leave, []time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ahead := v.At(tc.at).Ahead()
			require.Equal(t, tc.want, ahead)
			require.Equal(t, []time.Time{f.join, f.leave}, v.At(tc.at).Changes(), "the past changes stay")
		})
	}
	ahead := v.Ahead()
	ahead[0] = time.Time{}
	require.Equal(t, f.join, v.Ahead()[0], "Ahead returns a copy")
}

func TestViewMoved(t *testing.T) {
	f := newViewFixture(t)
	prev := newView(f.sched, "a", 1, f.now)
	for _, tc := range []struct {
		name     string
		cur      View
		from, to *ring.Ring
	}{
		{"nothing yet", prev.At(f.now.Add(time.Second)), ring.MustNew(ring.Names("a", "b")...), ring.MustNew(ring.Names("a", "b")...)},
		{"c joined", prev.At(f.join), ring.MustNew(ring.Names("a", "b")...), ring.MustNew(ring.Names("a", "b", "c")...)},
		{"c joined and a left", prev.At(f.leave), ring.MustNew(ring.Names("a", "b")...), ring.MustNew(ring.Names("b", "c")...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			moved := 0
			var from, to []string
			for key := range uint64(3000) {
				var ok bool
				from, to, ok = tc.cur.Moved(prev, key, from[:0], to[:0])
				require.Equal(t, tc.from.Owners(nil, key, 1), from)
				require.Equal(t, tc.to.Owners(nil, key, 1), to)
				require.Equal(t, !slices.Equal(from, to), ok)
				if ok {
					moved++
				}
			}
			if tc.from.Digest() == tc.to.Digest() {
				require.Zero(t, moved)
			} else {
				require.Positive(t, moved)
			}
		})
	}
}

func TestViewSame(t *testing.T) {
	f := newViewFixture(t)
	v := newView(f.sched, "a", 1, f.now)
	other, err := newSchedule([]span{{member: ring.Member{Name: "a"}}, {member: ring.Member{Name: "b"}}}, f.now)
	require.NoError(t, err)
	for _, tc := range []struct {
		name string
		a, b View
		want bool
	}{
		{"itself", v, v, true},
		{"later, no change passed", v.At(f.now.Add(time.Second)), v, true},
		{"a change passed", v.At(f.join), v, false},
		{"another schedule, same placement now", newView(other, "a", 1, f.now), v, false},
		{"another replication factor", newView(f.sched, "a", 2, f.now), v, false},
		{"zero views", View{}, View{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, tc.a.Same(tc.b))
		})
	}
}

func TestViewZeroOwnsNothing(t *testing.T) {
	var v View
	require.False(t, v.Owns(1))
	require.False(t, v.OwnsAt(1, time.Now()))
	require.Empty(t, v.Owners(nil, 1))
	require.Empty(t, v.FinalOwners(nil, 1))
	require.Empty(t, v.Changes())
	require.Empty(t, v.Ahead())
	require.Zero(t, v.Size())
}

func TestNodeViewDoesNotAllocate(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Name, cfg.BindAddr = "a", "127.0.0.1:0"
	n, err := New(cfg, nil, nil)
	require.NoError(t, err)
	n.sched.Store(newViewFixture(t).sched)
	now := time.Now()
	owners := make([]string, 0, 4)
	allocs := testing.AllocsPerRun(100, func() {
		v := n.View()
		_ = v.OwnsAt(42, now)
		_ = v.Owners(owners[:0], 42)
		_ = n.OwnsAt(42, now)
	})
	require.Zero(t, allocs)
	require.Equal(t, "a", n.View().Self())
	require.Equal(t, 1, n.View().ReplicationFactor())
}

func TestNewStaticView(t *testing.T) {
	at := time.Unix(1_700_000_000, 0)
	v, err := NewStaticView("b", 2, at, ring.Names("a", "b", "c"))
	require.NoError(t, err)
	r := ring.MustNew(ring.Names("a", "b", "c")...)
	require.Equal(t, r.Digest(), v.Digest())
	require.Equal(t, r.Digest(), v.FinalDigest())
	require.Equal(t, at, v.Time())
	require.Empty(t, v.Changes())
	for key := range uint64(50) {
		require.Equal(t, r.Owners(nil, key, 2), v.Owners(nil, key))
		require.Equal(t, r.IsOwner(key, 2, "b"), v.Owns(key))
	}
	_, err = NewStaticView("a", 1, at, []ring.Member{{Name: "a", Weight: -1}})
	require.ErrorContains(t, err, "weight must be")
}
