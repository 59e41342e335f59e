package gossip

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shoal-dev/shoal/gossip/ring"
	"github.com/shoal-dev/shoal/gossip/ring/placement"
)

// planMoving returns a plan on members that moves keys 1..n off their
// rendezvous owner: every target is tiny but key 1..n are on one member,
// heavy enough to overload it.
func planMoving(t *testing.T, members []ring.Member, keys []uint64, sizes []float64) *placement.Plan {
	t.Helper()
	ts := make([]placement.Target, len(keys))
	for i, k := range keys {
		ts[i] = placement.Target{Key: k, Series: sizes[i]}
	}
	res, err := placement.Compute(placement.DefaultConfig(), placement.Input{Members: members, Targets: ts})
	require.NoError(t, err)
	require.Positive(t, res.Plan.Len())
	return res.Plan
}

// unbalanced returns keys whose sizes overload their rendezvous owners on r.
func unbalanced(r *ring.Ring, n int) ([]uint64, []float64) {
	keys := make([]uint64, n)
	sizes := make([]float64, n)
	for i := range keys {
		keys[i] = ring.Key(string(rune('a'+i%26)) + string(rune('A'+i/26)))
		sizes[i] = 100
		if o, _ := r.Owner(keys[i]); o == r.Members()[0] {
			sizes[i] = 1000
		}
	}
	return keys, sizes
}

// planFor returns n unbalanced keys on r's members and a plan that moves
// some of them.
func planFor(t *testing.T, r *ring.Ring, n int) ([]uint64, *placement.Plan) {
	var members []ring.Member
	for _, m := range r.Members() {
		members = append(members, ring.Member{Name: m})
	}
	keys, sizes := unbalanced(r, n)
	return keys, planMoving(t, members, keys, sizes)
}

func TestScheduleSwitchesPlanAtItsInstant(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	members := []ring.Member{{Name: "a"}, {Name: "b"}, {Name: "c"}}
	r := ring.MustNew(members...)
	keys, sizes := unbalanced(r, 60)
	p := planMoving(t, members, keys, sizes)
	spans := []span{{member: members[0]}, {member: members[1]}, {member: members[2]}}
	at := now.Add(5 * time.Second)
	s, err := newPlannedSchedule(spans, []planSpan{{from: at, plan: p}}, now)
	require.NoError(t, err)
	require.Equal(t, []time.Time{at}, s.Changes())
	require.Nil(t, s.PlacementAt(now).Plan())
	require.Equal(t, r.Digest(), s.PlacementAt(now).Digest(), "without a plan the digest is the ring's")
	require.Same(t, p, s.PlacementAt(at).Plan())
	require.NotEqual(t, r.Digest(), s.FinalPlacement().Digest())
	moved := 0
	for _, o := range p.Overrides() {
		before := s.PlacementAt(at.Add(-time.Millisecond)).Owners(nil, o.Key, 1)[0]
		after := s.PlacementAt(at).Owners(nil, o.Key, 1)[0]
		require.Equal(t, o.Member, after)
		if before != after {
			moved++
			require.True(t, s.PlacementAt(at).Planned(o.Key))
			// The fenced handoff names the previous owner at the plan's instant.
			from, when := newView(s, after, 1, at).HandedOverFrom(o.Key, at.Add(time.Second), 10*time.Second)
			require.Equal(t, before, from)
			require.Equal(t, at, when)
		}
	}
	require.Positive(t, moved)

	// Once the plan is older than the history it holds since ever.
	later, err := newPlannedSchedule(spans, []planSpan{{from: at, plan: p}}, at.Add(scheduleHistory+time.Second))
	require.NoError(t, err)
	require.Empty(t, later.Changes())
	require.Same(t, p, later.PlacementAt(time.Time{}).Plan())
}

func TestPlanRefOrder(t *testing.T) {
	t0 := time.UnixMilli(1_700_000_000_000)
	a := PlanRef{Version: 2, At: t0, Digest: 5}
	require.True(t, a.newer(PlanRef{}))
	require.True(t, a.newer(PlanRef{Version: 1, At: t0.Add(time.Hour), Digest: 9}))
	require.True(t, a.newer(PlanRef{Version: 2, At: t0.Add(-time.Second), Digest: 9}))
	require.True(t, a.newer(PlanRef{Version: 2, At: t0, Digest: 4}))
	require.False(t, a.newer(a))
}

func TestMetaCarriesPlan(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	m := Meta{State: StateActive, Weight: 1, Plan: PlanRef{Version: 7, Digest: 0xabcdef, At: now.Add(5 * time.Second)}}
	b, err := encodeMeta(m)
	require.NoError(t, err)
	got, err := decodeMeta(b, now, 5*time.Second)
	require.NoError(t, err)
	require.Equal(t, m.Plan, got.Plan)

	m.Plan.At = now.Add(time.Hour)
	b, err = encodeMeta(m)
	require.NoError(t, err)
	_, err = decodeMeta(b, now, 5*time.Second)
	require.ErrorContains(t, err, "plan instant is 1h0m0s ahead, at most 1m6s is allowed")
}

// TestPlanCarriedAndAgreed: the leader publishes, the others install what
// it advertises (the agent fetches it over HTTP; here it is handed over),
// every member switches at the plan's instant, and agreement covers the
// plan: a member that lacks it differs.
func TestPlanCarriedAndAgreed(t *testing.T) {
	lead := 2 * time.Second
	nodes := startCluster(t, 3, func(c *Config) { c.HandoffLead, c.Placement = lead, PlacementLoad })
	waitLeader(t, nodes, "node-00", 10*time.Second)
	r := nodes[0].Ring()
	keys, p := planFor(t, r, 90)

	_, err := nodes[1].PublishPlan(p)
	require.ErrorIs(t, err, ErrNotLeader)
	rec, err := nodes[0].PublishPlan(p)
	require.NoError(t, err)
	require.Equal(t, uint64(1), rec.Version)

	// node-01 and node-02 see a newer plan advertised by the leader.
	for _, n := range nodes[1:] {
		require.Eventually(t, func() bool {
			st := n.PlanStatus()
			return st.Wanted.Equal(rec.Ref()) && len(st.From) == 1 && st.From[0].Name == "node-00"
		}, 10*time.Second, 5*time.Millisecond)
		ok, differ := n.Agreement()
		require.False(t, ok)
		require.Equal(t, []string{"node-00"}, differ)
	}
	// Observers are poked when the plan's instant passes, as for a join.
	var pokedAfter atomic.Bool
	nodes[1].Observe(ObserverFunc(func() {
		if !time.Now().Before(rec.At) {
			pokedAfter.Store(true)
		}
	}))
	require.NoError(t, nodes[1].InstallPlan(rec))
	require.ErrorIs(t, nodes[1].InstallPlan(rec), ErrPlanOld)
	require.Eventually(t, func() bool {
		ok, differ := nodes[0].Agreement()
		return !ok && len(differ) == 1 && differ[0] == "node-02"
	}, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, nodes[2].InstallPlan(rec))
	waitConverged(t, nodes, 3, 10*time.Second)
	for _, n := range nodes {
		require.True(t, n.PlanStatus().Current())
	}

	// Before the instant rendezvous places every key; from it on, the plan.
	for _, n := range nodes {
		v := n.View()
		for _, o := range p.Overrides() {
			require.Equal(t, o.Member, v.OwnersAt(nil, o.Key, rec.At)[0])
			h, _ := r.Owner(o.Key)
			require.Equal(t, h, v.OwnersAt(nil, o.Key, rec.At.Add(-time.Millisecond))[0])
		}
	}
	// Exactly one owner per key at every instant, on every member alike.
	for _, at := range []time.Time{rec.At.Add(-time.Millisecond), rec.At} {
		for _, k := range keys {
			owners := 0
			for _, n := range nodes {
				if n.OwnsAt(k, at) {
					owners++
				}
			}
			require.Equal(t, 1, owners)
		}
	}

	require.Eventually(t, pokedAfter.Load, time.Until(rec.At)+5*time.Second, 5*time.Millisecond)

	// A member that places by hash only ignores plans.
	hash := startNode(t, "z-hash", []string{nodes[0].Addr()}, func(c *Config) { c.Placement = PlacementHash })
	require.ErrorIs(t, hash.InstallPlan(rec), ErrPlacementHash)
	require.True(t, hash.PlanStatus().Current())
}

// TestPlanAdvertisementPokesOnlyPlanObservers: when a peer advertises a new
// plan and nothing else changes, the plan observers (the planner, which
// fetches it) are poked and the others (the scrape filter, whose passes are
// rate-limited) are not; the install, which changes the schedule, pokes
// both.
func TestPlanAdvertisementPokesOnlyPlanObservers(t *testing.T) {
	nodes := startCluster(t, 2, func(c *Config) { c.HandoffLead, c.Placement = time.Second, PlacementLoad })
	waitLeader(t, nodes, "node-00", 10*time.Second)
	_, p := planFor(t, nodes[0].Ring(), 60)

	var plain, plans atomic.Int64
	nodes[1].Observe(ObserverFunc(func() { plain.Add(1) }))
	nodes[1].ObservePlans(ObserverFunc(func() { plans.Add(1) }))
	time.Sleep(200 * time.Millisecond) // let the cluster settle
	plainBefore, plansBefore := plain.Load(), plans.Load()

	rec, err := nodes[0].PublishPlan(p)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return nodes[1].PlanStatus().Wanted.Equal(rec.Ref()) }, 10*time.Second, 5*time.Millisecond)
	require.Eventually(t, func() bool { return plans.Load() > plansBefore }, 5*time.Second, 5*time.Millisecond, "the planner is poked")
	time.Sleep(100 * time.Millisecond)
	require.Equal(t, plainBefore, plain.Load(), "the other observers are not poked by the advertisement alone")

	require.NoError(t, nodes[1].InstallPlan(rec))
	require.Eventually(t, func() bool { return plain.Load() > plainBefore }, 5*time.Second, 5*time.Millisecond, "the install pokes everyone")
}
