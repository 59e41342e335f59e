package e2e

import (
	"context"
	"fmt"
	"time"

	"github.com/shoal-dev/shoal/gossip"
)

// SettleTimeout bounds how long load-aware placement may take to settle
// after the cluster converged: the leader reads loads every 5 s, an agent
// must stay above the bound for the hold (20 s) before it plans, and a plan
// takes effect a handoff lead plus a second later (6 s); the rest is
// headroom for a loaded 2-core machine.
const SettleTimeout = 2 * time.Minute

// settlePoll is how often WaitSettled asks: the leader judges the balance
// every 5 s.
const settlePoll = 500 * time.Millisecond

// Settling is what WaitSettled saw: the plan in force once placement
// settled (Version 0: none, rendezvous places every target) and the
// leader's imbalance then.
type Settling struct {
	Leader    string
	Version   uint64
	At        time.Time // the plan's instant
	Imbalance float64
	Took      time.Duration
}

// String formats s as key=value pairs.
func (s Settling) String() string {
	return fmt.Sprintf("leader=%s plan_version=%d imbalance=%.3f settle_s=%.1f", s.Leader, s.Version, s.Imbalance, s.Took.Seconds())
}

// WaitSettled waits until load-aware placement has nothing left to do, then
// until the cluster has converged (WaitConverged), and returns the
// ownership. Placement has settled when every agent holds the same plan
// (or none), in force, and the leader's latest judgement of the balance,
// made after its measurement covered every target in want, is within the
// bound or found no placement that does better: the planner then keeps the plan (hysteresis) while sizes and
// members stay. Agents with --cluster.placement=hash have settled at once.
func WaitSettled(ctx context.Context, agents []*Agent, want []string) (Ownership, Settling, error) {
	began := time.Now()
	var (
		// covered is the leader's judgement when its measurement first
		// covered want; a later one counts. Both are the leader's clock,
		// which may be skewed (--debug.clock-offset).
		covered time.Time
		st      Settling
	)
	err := Poll(ctx, SettleTimeout, settlePoll, func(ctx context.Context) error {
		var (
			lead     *Placement
			plan     *PlanInfo
			planFrom string
			load     bool
		)
		for _, a := range agents {
			pl, err := a.Placement(ctx)
			if err != nil {
				return err
			}
			if pl.Mode != gossip.PlacementLoad {
				continue
			}
			if !pl.Current {
				return fmt.Errorf("%s lacks the newest plan: %s", a.Name, pl.FetchError)
			}
			if pl.Plan != nil && !pl.Plan.InForce {
				return fmt.Errorf("%s: plan %d takes effect at %s", a.Name, pl.Plan.Version, pl.Plan.At.Format(time.RFC3339Nano))
			}
			if load && !samePlan(plan, pl.Plan) {
				return fmt.Errorf("%s holds plan %s, %s holds %s", a.Name, planString(pl.Plan), planFrom, planString(plan))
			}
			load, plan, planFrom = true, pl.Plan, a.Name
			if pl.Leader.Self {
				lead = &pl
			}
		}
		if !load {
			return nil
		}
		if lead == nil {
			return fmt.Errorf("no agent says it leads")
		}
		measured := 0
		for _, m := range lead.Members {
			measured += m.Targets
		}
		if measured < len(want) || lead.Measured.IsZero() {
			covered = time.Time{}
			return fmt.Errorf("leader %s has measured %d of %d targets", lead.Leader.Leader, measured, len(want))
		}
		if covered.IsZero() {
			covered = lead.Measured
		}
		if !lead.Measured.After(covered) {
			return fmt.Errorf("leader %s has not judged the balance since it measured every target", lead.Leader.Leader)
		}
		if !lead.Within && !lead.NoBetter {
			return fmt.Errorf("leader %s measures imbalance %.3f, above the bound %.2f: a plan is due", lead.Leader.Leader, lead.Imbalance, 1+lead.Bound)
		}
		st = Settling{Leader: lead.Leader.Leader, Imbalance: lead.Imbalance}
		if plan != nil {
			st.Version, st.At = plan.Version, plan.At
		}
		return nil
	})
	if err != nil {
		return nil, Settling{}, fmt.Errorf("placement did not settle: %w", err)
	}
	own, err := WaitConverged(ctx, agents, want)
	st.Took = time.Since(began)
	return own, st, err
}

func samePlan(a, b *PlanInfo) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Version == b.Version && a.Digest == b.Digest && a.At.Equal(b.At)
}

func planString(p *PlanInfo) string {
	if p == nil {
		return "none"
	}
	return fmt.Sprintf("%d (%s)", p.Version, p.Digest)
}
