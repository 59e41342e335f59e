package agent

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shoal-dev/shoal/gossip"
	"github.com/shoal-dev/shoal/gossip/ring"
	"github.com/shoal-dev/shoal/gossip/ring/placement"
	"github.com/shoal-dev/shoal/internal/farm"
)

// skewedFarm starts a farm of big (1,000-series) and small (100-series)
// targets and returns the addresses to scrape so that rendezvous hashing
// over the agents names overloads one agent: every big target that agent
// owns, and every small one.
func skewedFarm(t *testing.T, job string, names []string) []string {
	t.Helper()
	f, err := farm.Start(context.Background(), farm.Config{Targets: 40, Sizes: []int{1000, 100, 100, 100}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.Close() })
	r := ring.MustNew(ring.Names(names...)...)
	bigs := map[string][]string{}
	var small []string
	for i, tg := range f.Targets() {
		if i%4 != 0 {
			small = append(small, tg.Addr)
			continue
		}
		o, _ := r.Owner(ring.Key(job + "\x00http://" + tg.Addr + "/metrics"))
		bigs[o] = append(bigs[o], tg.Addr)
	}
	hot := names[0]
	for _, n := range names {
		if len(bigs[n]) > len(bigs[hot]) {
			hot = n
		}
	}
	require.GreaterOrEqual(t, len(bigs[hot]), 2)
	return append(bigs[hot], small...)
}

// loadImbalance is max/mean of the series the agents report scraping.
func loadImbalance(agents []*testAgent) (float64, error) {
	var total, hi float64
	for _, a := range agents {
		var r LoadReport
		if err := a.getJSON("/api/v1/cluster/load", &r); err != nil {
			return 0, err
		}
		total += r.Series
		hi = max(hi, r.Series)
	}
	if total == 0 {
		return 0, fmt.Errorf("no load reported")
	}
	return hi / (total / float64(len(agents))), nil
}

// TestLoadAwarePlacement: three agents over targets that rendezvous places
// badly. The oldest agent leads, reads the others' loads, replans after the
// hold, and every agent applies the plan: each target has one owner, the
// agents agree on the placement digest (which covers the plan), the loads
// they report are within 10 % of the mean, and the API and the page say
// which targets the plan placed and why.
func TestLoadAwarePlacement(t *testing.T) {
	t.Parallel()
	names := []string{"agent-0", "agent-1", "agent-2"}
	addrs := skewedFarm(t, "farm", names)
	agents := startCluster(t, 3, staticConfig(map[string][]string{"farm": addrs}), func(_ int, o *Options) {
		o.Gossip.Placement = gossip.PlacementLoad
		o.Placement.Hold = 2 * time.Second
		o.Placement.round = 500 * time.Millisecond
		o.Gossip.HandoffLead = time.Second
	})

	for _, a := range agents {
		var l LeaderInfo
		require.NoError(t, a.getJSON("/api/v1/cluster/leader", &l))
		require.Equal(t, "agent-0", l.Leader, a.name)
		require.Equal(t, a.name == "agent-0", l.Self)
		require.False(t, l.Since.IsZero())
	}
	require.Equal(t, 1.0, agents[0].metric("shoal_cluster_is_leader"))
	require.Equal(t, 0.0, agents[1].metric("shoal_cluster_is_leader"))

	// Before any plan: rendezvous, well above the bound.
	require.Eventually(t, func() bool {
		im, err := loadImbalance(agents)
		return err == nil && im > 1.3
	}, convergeTimeout, pollInterval)

	require.Eventually(t, func() bool {
		for _, a := range agents {
			if a.metric("shoal_cluster_plan_version") < 1 || a.metric("shoal_cluster_plan_current") != 1 {
				return false
			}
		}
		return true
	}, convergeTimeout, pollInterval, "every agent holds the plan")
	waitAgreement(t, agents, 3)
	var im float64
	require.Eventually(t, func() bool {
		var err error
		im, err = loadImbalance(agents)
		return err == nil && im <= 1.10
	}, convergeTimeout, pollInterval, "balanced by series")
	t.Logf("max/mean series per agent under the plan: %.3f", im)

	// A follower shows the leader's measurement and the plan.
	var pl Placement
	require.NoError(t, agents[2].getJSON("/api/v1/cluster/placement", &pl))
	require.Equal(t, gossip.PlacementLoad, pl.Mode)
	require.Equal(t, "agent-0", pl.LoadBy)
	require.NotNil(t, pl.Plan)
	require.True(t, pl.Current)
	require.LessOrEqual(t, pl.Imbalance, 1.10)
	require.Len(t, pl.Members, 3)
	require.NotEmpty(t, pl.Overrides)
	for _, o := range pl.Overrides {
		require.NotEqual(t, o.Member, o.Rendezvous)
		require.Equal(t, "balance", o.Reason)
		require.Equal(t, "farm", o.Job)
		require.Positive(t, o.Series)
	}

	// Each target's series, and what placed it.
	ct, err := agents[0].clusterTargets()
	require.NoError(t, err)
	planned := 0
	for _, tg := range ct.Targets {
		require.Positive(t, tg.Series, tg.URL)
		if tg.PlacedBy == "plan" {
			planned++
		} else {
			require.Equal(t, "hash", tg.PlacedBy)
		}
	}
	require.Equal(t, len(pl.Overrides), planned)

	// The plan over HTTP, as followers fetch it.
	var doc PlanDoc
	require.NoError(t, agents[1].getJSON("/api/v1/cluster/plan", &doc))
	rec, err := doc.record()
	require.NoError(t, err)
	require.Equal(t, pl.Plan.Version, rec.Version)

	// Moves say the plan moved them.
	var mv Moves
	require.NoError(t, agents[0].getJSON("/api/v1/cluster/moves", &mv))
	require.True(t, slices.ContainsFunc(mv.Moves, func(m Move) bool { return m.Reason == "load-aware plan: balance" }))

	_, page := agents[1].get("/")
	for _, want := range []string{"Placement", "agent-0", "max/mean", fmt.Sprintf("plan %d", pl.Plan.Version), "balance"} {
		require.Contains(t, page, want)
	}
	require.True(t, strings.Contains(page, "<svg"))
}

// TestHashPlacementMakesNoPlan: with --cluster.placement=hash nothing is
// planned, however unbalanced.
func TestHashPlacementMakesNoPlan(t *testing.T) {
	t.Parallel()
	names := []string{"agent-0", "agent-1"}
	addrs := skewedFarm(t, "farm", names)
	agents := startCluster(t, 2, staticConfig(map[string][]string{"farm": addrs}), func(_ int, o *Options) {
		o.Gossip.Placement = gossip.PlacementHash
		o.Placement.Hold = 0
		o.Placement.round = 200 * time.Millisecond
	})
	require.Eventually(t, func() bool {
		im, err := loadImbalance(agents)
		return err == nil && im > 1.2
	}, convergeTimeout, pollInterval)
	time.Sleep(2 * time.Second)
	for _, a := range agents {
		require.Equal(t, 0.0, a.metric("shoal_cluster_plan_version"))
		var pl Placement
		require.NoError(t, a.getJSON("/api/v1/cluster/placement", &pl))
		require.Equal(t, gossip.PlacementHash, pl.Mode)
		require.Nil(t, pl.Plan)
		ct, err := a.clusterTargets()
		require.NoError(t, err)
		require.False(t, slices.ContainsFunc(ct.Targets, func(t ClusterTarget) bool { return t.PlacedBy == "plan" }))
	}
}

// TestUnavoidableImbalanceMakesNoPlan: three equal targets on two agents
// that rendezvous places 2/1 are above the bound (2 over a fair share of
// 1.5: 1.33), but no move does better. The leader says so and publishes
// no plan: a plan identical to rendezvous would change nothing on any
// agent but still be fetched, installed and advertised by every one.
func TestUnavoidableImbalanceMakesNoPlan(t *testing.T) {
	t.Parallel()
	names := []string{"agent-0", "agent-1"}
	f, err := farm.Start(context.Background(), farm.Config{Targets: 8, Series: 20})
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.Close() })
	r := ring.MustNew(ring.Names(names...)...)
	by := map[string][]string{}
	for _, tg := range f.Targets() {
		o, _ := r.Owner(ring.Key("farm\x00http://" + tg.Addr + "/metrics"))
		by[o] = append(by[o], tg.Addr)
	}
	require.Len(t, by, 2, "rendezvous put all 8 targets on one agent")
	two, one := by[names[0]], by[names[1]]
	if len(two) < 2 {
		two, one = one, two
	}
	require.GreaterOrEqual(t, len(two), 2)
	addrs := append(slices.Clone(two[:2]), one[0])
	agents := startCluster(t, 2, staticConfig(map[string][]string{"farm": addrs}), func(_ int, o *Options) {
		o.Placement.Hold = 0
		o.Placement.round = 200 * time.Millisecond
		o.Gossip.HandoffLead = time.Second
	})
	var pl Placement
	require.Eventually(t, func() bool {
		if err := agents[0].getJSON("/api/v1/cluster/placement", &pl); err != nil || !pl.Leader.Self {
			return false
		}
		n := 0
		for _, m := range pl.Members {
			n += m.Targets
		}
		return n == 3 && !pl.Within
	}, convergeTimeout, pollInterval, "the leader measures the three targets above the bound")
	require.InDelta(t, 4.0/3, pl.Imbalance, 0.01)
	// Ten rounds and more after the hold.
	time.Sleep(3 * time.Second)
	for _, a := range agents {
		require.Equal(t, 0.0, a.metric("shoal_cluster_plan_version"), a.name)
		require.Equal(t, 0.0, a.metric("shoal_cluster_plans_published_total"), a.name)
		code, _ := a.get("/api/v1/cluster/plan")
		require.Equal(t, http.StatusNotFound, code, a.name)
	}
	// The leader says there is nothing to do, on the API and the page.
	require.NoError(t, agents[0].getJSON("/api/v1/cluster/placement", &pl))
	require.False(t, pl.Within)
	require.True(t, pl.NoBetter, "above the bound and no placement does better: %+v", pl)
	code, page := agents[0].get("/")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, page, "the best these sizes allow")
}

func TestPlacementConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg PlacementConfig
		err string
	}{
		{DefaultPlacementConfig(), ""},
		{PlacementConfig{Bound: 0}, "--cluster.placement-bound must be above 0 and at most 1, got 0"},
		{PlacementConfig{Bound: 1.5}, "--cluster.placement-bound must be above 0 and at most 1, got 1.5"},
		{PlacementConfig{Bound: 0.1, Hold: -time.Second}, "--cluster.placement-hold must not be negative, got -1s"},
	} {
		err := tc.cfg.Validate()
		if tc.err == "" {
			require.NoError(t, err)
			continue
		}
		require.EqualError(t, err, tc.err)
	}
	o := DefaultOptions("x")
	o.Gossip.Placement = "least-loaded"
	require.ErrorContains(t, o.Validate(), `--cluster.placement must be load or hash, got "least-loaded"`)
}

// TestPlanDocAndLoadReportReject: what a peer sends is checked before use.
func TestPlanDocAndLoadReportReject(t *testing.T) {
	members := ring.Names("a", "b")
	res, err := placement.Compute(placement.DefaultConfig(), placement.Input{Members: members, Targets: []placement.Target{
		{Key: 1, Series: 100}, {Key: 2, Series: 100}, {Key: 3, Series: 100}, {Key: 4, Series: 5000},
	}})
	require.NoError(t, err)
	doc := planDoc(gossip.PlanRecord{Version: 3, At: time.UnixMilli(1_700_000_000_000), Leader: "a", Plan: res.Plan})
	rec, err := doc.record()
	require.NoError(t, err)
	require.Equal(t, res.Plan.Digest(), rec.Plan.Digest())
	require.Equal(t, uint64(3), rec.Version)

	bad := doc
	bad.Digest = "0000000000000001"
	_, err = bad.record()
	require.ErrorContains(t, err, "plan digest is 0000000000000001, its encoding gives "+doc.Digest)
	bad = doc
	bad.Encoding = "!"
	_, err = bad.record()
	require.ErrorContains(t, err, "plan encoding")
	bad = doc
	bad.Encoding = "AAAA"
	_, err = bad.record()
	require.ErrorIs(t, err, placement.ErrEncoding)

	now := time.Now()
	_, err = LoadReport{Name: "a", Targets: []TargetLoad{{Key: "xyz"}}}.samples(now)
	require.ErrorContains(t, err, `target key "xyz"`)
	_, err = LoadReport{Name: "a", Targets: []TargetLoad{{Key: "1", Series: -1}}}.samples(now)
	require.ErrorContains(t, err, "target 1: series must be in [0, 1e+09] and samples/s not negative, got -1 and 0")
	ss, err := LoadReport{Name: "a", Targets: []TargetLoad{{Key: "ff", Series: 10, SamplesPerSecond: 1}}}.samples(now)
	require.NoError(t, err)
	require.Equal(t, uint64(0xff), ss[0].key)
}
