package gossip

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-dev/shoal/gossip/ring/placement"
)

// Load-aware plans in the schedule. The leader (leader.go) computes a plan
// (package placement) and publishes it with a version one above the newest
// it knows and the instant it takes effect, a handoff lead ahead; every
// member advertises the newest plan it holds (Meta.Plan), fetches a newer
// one it sees advertised from a peer that holds it (the agent does, over
// HTTP) and installs it. The schedule places keys by the plan in force at
// each instant, so a plan change switches owners at one announced instant on
// every member, exactly like a join or a leave, and the fenced handoff
// applies. The plan's digest is part of the placement digest members
// advertise, so shoal_cluster_peers_agree covers it.
//
// A plan outlives its leader: a new leader starts from the newest plan
// rather than from rendezvous, so a crash of the leader moves only the
// targets the dead member scraped. Targets a plan does not know (discovered
// since) and overrides to members that left are placed by rendezvous.

// Placement modes (--cluster.placement).
const (
	// PlacementHash places every target by rendezvous hashing only: no
	// plan is made, fetched or applied.
	PlacementHash = "hash"
	// PlacementLoad applies the leader's plans on top of rendezvous.
	PlacementLoad = "load"
)

// MaxPlanVersion bounds a plan's version, so that the next one (one above)
// never wraps and every version is exact in JSON's doubles. A leader
// publishes at most one plan per planning round (seconds): 2^53 plans take
// longer than any cluster lives.
const MaxPlanVersion = 1<<53 - 1

// PlanRef identifies a plan as members advertise it.
type PlanRef struct {
	// Version orders plans: each plan is one above the newest its leader
	// knew. 0 means no plan.
	Version uint64
	// Digest is the plan's placement.Plan.Digest.
	Digest uint64
	// At is when the plan takes effect.
	At time.Time
}

// Equal reports whether r and o are the same plan at the same instant.
func (r PlanRef) Equal(o PlanRef) bool {
	return r.Version == o.Version && r.Digest == o.Digest && r.At.Equal(o.At)
}

// newer reports whether r is to replace o: the higher version, then (two
// leaders on two sides of a partition) the later instant, then the larger
// digest, so that every member picks the same.
func (r PlanRef) newer(o PlanRef) bool {
	if c := cmp.Compare(r.Version, o.Version); c != 0 {
		return c > 0
	}
	if c := r.At.Compare(o.At); c != 0 {
		return c > 0
	}
	return r.Digest > o.Digest
}

// PlanRecord is a plan with its version, the instant it takes effect and
// the leader that made it.
type PlanRecord struct {
	Version uint64
	At      time.Time
	Leader  string
	Plan    *placement.Plan
}

// Ref returns the record's reference.
func (r PlanRecord) Ref() PlanRef {
	return PlanRef{Version: r.Version, Digest: r.Plan.Digest(), At: r.At}
}

// Errors of PublishPlan and InstallPlan.
var (
	ErrPlacementHash = errors.New("load-aware placement is off (--cluster.placement=hash)")
	ErrNotLeader     = errors.New("this node does not lead")
	ErrPlanOld       = errors.New("plan is not newer than the one held")
)

// planFetchSlack is added to the handoff lead of a plan: unlike a join or a
// leave, which every member learns from gossip alone, a plan must also be
// fetched (one HTTP request) before the new owners can start their scrape
// loops ahead of the instant.
const planFetchSlack = time.Second

// PublishPlan makes p the cluster's next plan: version one above the newest
// this node holds, taking effect a handoff lead (plus planFetchSlack) from
// now. Only the leader publishes. It returns the record published.
func (n *Node) PublishPlan(p *placement.Plan) (PlanRecord, error) {
	if n.placementMode() == PlacementHash {
		return PlanRecord{}, ErrPlacementHash
	}
	if !n.IsLeader() {
		return PlanRecord{}, ErrNotLeader
	}
	n.planMu.Lock()
	var v uint64
	if len(n.plans) > 0 {
		v = n.plans[len(n.plans)-1].Version
	}
	lead := n.cfg.HandoffLead
	if lead > 0 {
		lead += planFetchSlack
	}
	if v >= MaxPlanVersion {
		n.planMu.Unlock()
		return PlanRecord{}, fmt.Errorf("plan version %d is the last one allowed (%d)", v, uint64(MaxPlanVersion))
	}
	rec := PlanRecord{Version: v + 1, At: fromUnixMilli(unixMilli(n.now().Add(lead))), Leader: n.cfg.Name, Plan: p}
	n.plans = append(n.plans, rec)
	n.planMu.Unlock()
	n.logger.Info("plan published", "version", rec.Version, "at", rec.At, "overrides", p.Len(),
		"digest", fmt.Sprintf("%016x", p.Digest()))
	n.rebuild()
	n.signal() // the event loop re-arms its timer for the plan's instant
	n.readvertise()
	return rec, nil
}

// InstallPlan installs a plan fetched from a peer. It must be newer than the
// newest this node holds (ErrPlanOld otherwise), and its instant at most a
// handoff lead plus ClaimSlack ahead.
func (n *Node) InstallPlan(rec PlanRecord) error {
	if n.placementMode() == PlacementHash {
		return ErrPlacementHash
	}
	if rec.Version == 0 || rec.Version > MaxPlanVersion || rec.Plan == nil {
		return fmt.Errorf("plan version must be in [1, %d] and the plan present, got version %d", uint64(MaxPlanVersion), rec.Version)
	}
	rec.At = fromUnixMilli(unixMilli(rec.At))
	if rec.At.IsZero() {
		return fmt.Errorf("plan %d has no instant", rec.Version)
	}
	if limit := n.cfg.HandoffLead + planFetchSlack + ClaimSlack; rec.At.Sub(n.now()) > limit {
		return fmt.Errorf("plan %d takes effect %s ahead, at most %s is allowed", rec.Version, rec.At.Sub(n.now()).Round(time.Second), limit)
	}
	n.planMu.Lock()
	if len(n.plans) > 0 && !rec.Ref().newer(n.plans[len(n.plans)-1].Ref()) {
		n.planMu.Unlock()
		return ErrPlanOld
	}
	n.plans = append(n.plans, rec)
	n.planMu.Unlock()
	ahead := rec.At.Sub(n.now())
	if ahead < n.cfg.HandoffLead && n.State() == StateActive {
		// It took longer than planFetchSlack to learn of and fetch it: the
		// targets it brings here may start after their first owned slot.
		n.logger.Warn("plan installed late: less than a handoff lead before its instant, a target it moves here may miss a slot",
			"version", rec.Version, "leader", rec.Leader, "at", rec.At, "ahead", ahead.Round(time.Millisecond), "handoff_lead", n.cfg.HandoffLead)
	} else {
		n.logger.Info("plan installed", "version", rec.Version, "leader", rec.Leader, "at", rec.At, "ahead", ahead.Round(time.Millisecond), "overrides", rec.Plan.Len())
	}
	n.rebuild()
	n.signal() // the event loop re-arms its timer for the plan's instant
	n.readvertise()
	return nil
}

// Plan returns the newest plan this node holds (it may take effect ahead);
// false without one.
func (n *Node) Plan() (PlanRecord, bool) {
	n.planMu.Lock()
	defer n.planMu.Unlock()
	if len(n.plans) == 0 {
		return PlanRecord{}, false
	}
	return n.plans[len(n.plans)-1], true
}

// planRef is the newest plan's reference, zero without one.
func (n *Node) planRef() PlanRef {
	if r, ok := n.Plan(); ok {
		return r.Ref()
	}
	return PlanRef{}
}

// PlanStatus is what this node knows of the cluster's plans.
type PlanStatus struct {
	// Mode is --cluster.placement.
	Mode string
	// Held is the newest plan this node holds; zero without one.
	Held PlanRef
	// Wanted is the newest plan a peer advertises when it is newer than
	// Held, with the peers that advertise it (the leader first); zero when
	// this node is current.
	Wanted PlanRef
	From   []Peer
}

// Current reports whether the node holds the newest plan any peer
// advertises.
func (s PlanStatus) Current() bool { return s.Wanted.Version == 0 }

// PlanStatus compares the plan this node holds with those its peers
// advertise.
func (n *Node) PlanStatus() PlanStatus {
	st := PlanStatus{Mode: n.placementMode(), Held: n.planRef()}
	if st.Mode == PlacementHash {
		return st
	}
	leader := n.Leader().Name
	for _, p := range *n.peers.Load() {
		if p.Self || p.State == 0 || p.Plan.Version == 0 || !p.Plan.newer(st.Held) {
			continue
		}
		switch {
		case st.Wanted.Version == 0 || p.Plan.newer(st.Wanted):
			st.Wanted, st.From = p.Plan, []Peer{p}
		case p.Plan.Equal(st.Wanted):
			st.From = append(st.From, p)
		}
	}
	slices.SortStableFunc(st.From, func(a, b Peer) int {
		switch {
		case a.Name == leader:
			return -1
		case b.Name == leader:
			return 1
		}
		return 0
	})
	return st
}

func (n *Node) placementMode() string {
	if n.cfg.Placement == "" {
		return PlacementLoad
	}
	return n.cfg.Placement
}

// samePlans tells whether two sorted peer lists advertise the same plans.
func samePlans(a, b []Peer) bool {
	return slices.EqualFunc(a, b, func(x, y Peer) bool { return x.Name == y.Name && x.Plan.Equal(y.Plan) })
}

// planSpans returns the plans for the schedule at now, and forgets those
// replaced more than scheduleHistory ago. Without plans, or with placement
// off, nil.
func (n *Node) planSpans(now time.Time) []planSpan {
	n.planMu.Lock()
	defer n.planMu.Unlock()
	horizon := now.Add(-scheduleHistory)
	// Keep the newest plan and every plan in force after the horizon.
	first := 0
	for i := 1; i < len(n.plans); i++ {
		if !n.plans[i].At.After(horizon) {
			first = i
		}
	}
	n.plans = slices.Delete(n.plans, 0, first)
	out := make([]planSpan, 0, len(n.plans))
	var last time.Time
	for _, r := range n.plans {
		// A plan never takes effect before the one it replaces.
		from := r.At
		if from.Before(last) {
			from = last
		}
		last = from
		out = append(out, planSpan{from: from, plan: r.Plan})
	}
	return out
}

// planCollector exports the plan gauges.
type planCollector struct {
	n                         *Node
	version, current, planned *prometheus.Desc
}

func (n *Node) registerPlan(reg prometheus.Registerer) error {
	c := &planCollector{
		n: n,
		version: prometheus.NewDesc("shoal_cluster_plan_version",
			"Version of the newest load-aware placement plan this agent holds (0: none, placement by rendezvous).", nil, nil),
		current: prometheus.NewDesc("shoal_cluster_plan_current",
			"1 if this agent holds the newest plan its peers advertise, 0 if it cannot read it yet (it then places by the plan it holds).", nil, nil),
		planned: prometheus.NewDesc("shoal_cluster_plan_overrides",
			"Targets the plan in force now places off their rendezvous owner.", nil, nil),
	}
	if reg == nil {
		return nil
	}
	if err := reg.Register(c); err != nil {
		return fmt.Errorf("register plan metrics: %w", err)
	}
	return nil
}

func (c *planCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.version
	ch <- c.current
	ch <- c.planned
}

func (c *planCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.n.PlanStatus()
	ch <- prometheus.MustNewConstMetric(c.version, prometheus.GaugeValue, float64(st.Held.Version))
	current := 0.0
	if st.Current() {
		current = 1
	}
	ch <- prometheus.MustNewConstMetric(c.current, prometheus.GaugeValue, current)
	ch <- prometheus.MustNewConstMetric(c.planned, prometheus.GaugeValue, float64(c.n.sched.Load().PlacementAt(c.n.now()).Plan().Len()))
}
