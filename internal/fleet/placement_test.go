package fleet

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/e2e"
)

// placementSizes are the farm targets' series for the load-aware placement
// scenarios, repeated over the targets: one in ten is large (1,200 series,
// a third of an agent's fair share with 4 agents), the rest 50-250, so that
// rendezvous, which balances counts, leaves some agent well above the mean.
var placementSizes = []int{1200, 150, 50, 200, 100, 250, 80, 120, 60, 180}

// placementBound is the bar: max/mean series per agent.
const placementBound = 1.10

// balanceWithin is how soon after a fleet change the imbalance must be
// within placementBound again: the change's handoff lead, a load round,
// --cluster.placement-hold and the plan's own lead, with room to spare.
const balanceWithin = time.Minute

// loadPlacement names load-aware placement, the default, so that these
// scenarios measure it whatever the default.
var loadPlacement = []string{"--cluster.placement=load"}

// TestFleetPlacement runs the load-aware placement scenarios (-fleet.long;
// about 5 minutes). Targets of unequal sizes on three agents: the leader
// (the oldest agent) replans and every agent follows; a fourth agent joins;
// then the leader is killed and the next oldest takes over. After each
// event the agents' own load reports are within 10 % of the mean within a
// minute; the planned events (the join and every plan change) are fenced
// like any handoff.
func TestFleetPlacement(t *testing.T) {
	p := currentPlan()
	p.Sizes = placementSizes
	p.FirstPlanInWindow = true // the first plan is one of the measured events
	planned := []figure{bigGaps, duplicates, rcvOutOfOrderSamples, rcv400, staleMarkers}
	runScenarios(t, p, []scenario{
		// Planned events only: the first plan, a join, the replan after it.
		// No gap over one interval (GapTargets), none of the planned bars.
		{name: "placement-join", run: placementJoin, long: true, none: planned, args: loadPlacement,
			check: func(t *testing.T, r Row, _ plan) {
				if r.GapTargets != 0 {
					t.Errorf("%s: %d targets missed a slot, want none (%s)", r.Scenario, r.GapTargets, r.KeyValues())
				}
			}},
		// The leader crashes: its targets are scraped again within failure
		// detection plus an interval, as in "kill"; the next oldest agent
		// leads within detection + 1 s and rebalances.
		{name: "placement-leader-kill", run: placementLeaderKill, long: true, none: []figure{duplicates, staleMarkers}, args: loadPlacement,
			maxGap: func(p plan) time.Duration { return maxDetection + 2*p.Interval }},
	})
}

// placementJoin waits for the first plan to balance three agents, then adds
// a fourth and waits for the balance again.
func placementJoin(ctx context.Context, f *Fleet, p plan) error {
	if err := f.waitBalanced(ctx, "three agents", f.begin); err != nil {
		return err
	}
	joined := time.Now()
	if _, err := f.Step(ctx, "add an agent", func() error { _, err := f.Add(ctx); return err }); err != nil {
		return err
	}
	if err := f.waitBalanced(ctx, "a fourth agent joined", joined); err != nil {
		return err
	}
	f.Settle(p.Settle)
	return nil
}

// placementLeaderKill balances four agents, kills the leader and checks that
// the next oldest leads within detection + 1 s and rebalances.
func placementLeaderKill(ctx context.Context, f *Fleet, p plan) error {
	joined := time.Now()
	if _, err := f.Step(ctx, "add an agent", func() error { _, err := f.Add(ctx); return err }); err != nil {
		return err
	}
	if err := f.waitBalanced(ctx, "four agents", joined); err != nil {
		return err
	}
	l, err := f.Agents[0].Leader(ctx)
	if err != nil {
		return err
	}
	m, err := f.Agents[0].Members(ctx)
	if err != nil {
		return err
	}
	// The successor is the oldest survivor, as gossip tells their starts.
	var victim *e2e.Agent
	for _, a := range f.Agents {
		if a.Name == l.Leader {
			victim = a
		}
	}
	if victim == nil {
		return fmt.Errorf("leader %q is not one of the agents", l.Leader)
	}
	var want string
	var oldest time.Time
	for _, mem := range m.Members {
		started := mem.Started.Truncate(time.Millisecond)
		if mem.Name == victim.Name || mem.State != "active" {
			continue
		}
		if want == "" || started.Before(oldest) || started.Equal(oldest) && mem.Name < want {
			want, oldest = mem.Name, started
		}
	}
	killed := time.Now()
	f.Mark("kill the leader " + victim.Name)
	if err := f.Kill(victim); err != nil {
		return err
	}
	var led time.Duration
	err = e2e.Poll(ctx, maxDetection+5*time.Second, 20*time.Millisecond, func(ctx context.Context) error {
		for _, a := range f.Agents {
			l, err := a.Leader(ctx)
			if err != nil {
				return err
			}
			if l.Leader != want {
				return fmt.Errorf("%s names leader %q, want %q", a.Name, l.Leader, want)
			}
		}
		led = time.Since(killed)
		return nil
	})
	if err != nil {
		return fmt.Errorf("new leader after killing %s: %w", victim.Name, err)
	}
	f.logf("fleet: %s: %s leads %.1fs after %s was killed (failure detection is up to %s)", f.Name, want, led.Seconds(), victim.Name, maxDetection)
	if led > maxDetection+time.Second {
		return fmt.Errorf("new leader after %s, over failure detection (%s) + 1s", led, maxDetection)
	}
	if _, err := f.Step(ctx, "survivors agree", func() error { return nil }); err != nil {
		return err
	}
	if err := f.waitBalanced(ctx, "the leader was killed", killed); err != nil {
		return err
	}
	f.Settle(p.Settle)
	return nil
}

// waitBalanced waits until the series the running agents report (their own
// /api/v1/cluster/load, not the leader's account) are within
// placementBound of the mean, at most balanceWithin after since (the
// event), and logs how long it took and the plan in force.
func (f *Fleet) waitBalanced(ctx context.Context, after string, since time.Time) error {
	var last float64
	err := e2e.Poll(ctx, time.Until(since.Add(balanceWithin)), 500*time.Millisecond, func(ctx context.Context) error {
		var total, hi float64
		for _, a := range f.Agents {
			r, err := a.Load(ctx)
			if err != nil {
				return err
			}
			total += r.Series
			hi = max(hi, r.Series)
		}
		if total == 0 {
			return fmt.Errorf("no agent reports any load")
		}
		last = hi / (total / float64(len(f.Agents)))
		if last > placementBound {
			return fmt.Errorf("max/mean series per agent %.3f, above %.2f", last, placementBound)
		}
		return f.agree(ctx)
	})
	if err != nil {
		return fmt.Errorf("%s: balance after %s: %w", f.Name, after, err)
	}
	pl, err := f.Agents[0].Placement(ctx)
	if err != nil {
		return err
	}
	version := uint64(0)
	if pl.Plan != nil {
		version = pl.Plan.Version
	}
	f.Mark(fmt.Sprintf("balanced (%s)", after))
	f.logf("fleet: %s: after %s, max/mean series %.3f within %.1fs (plan %d, %d overrides, leader %s)",
		f.Name, after, last, time.Since(since).Seconds(), version, len(pl.Overrides), pl.Leader.Leader)
	return nil
}
