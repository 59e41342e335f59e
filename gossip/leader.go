package gossip

import (
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Leadership: at most one member plans load-aware placement. The leader is
// not elected by messages but derived from what every member already agrees
// on, the membership schedule: at instant t it is the member, among those
// that own keys at t (active, or leaving before their announced end) and are
// alive in memberlist, that started first (Meta.Started), the smaller name
// breaking a tie. Every member computes the same answer from the same
// gossip, so no campaign round, lock service or extra dependency is needed,
// and it works with static, DNS and Consul joins alike.
//
//   - Campaign is joining: an agent becomes eligible at the instant it owns
//     keys. A younger agent never takes over from an older one, so a join
//     does not change the leader.
//   - Resign is leaving: a leaving agent is eligible until the instant it
//     announced (Meta.Until), so its successor takes over at that instant,
//     on every member at once, a handoff lead after the announcement; a
//     member gone from memberlist before then (a restart grace) resigns when
//     its leave is gossiped.
//   - A crashed leader stops being eligible when failure detection declares
//     it dead: the next oldest member leads from the rebuild that follows.
//   - In a partition each side has its own leader, the oldest on its side.

// Leader is who plans placement, as this node sees it.
type Leader struct {
	// Name is the leader's node name; "" when no member is eligible (this
	// node has not joined, or every member is leaving).
	Name string
	// Started is the leader's process start.
	Started time.Time
	// Since is when it became leader: the announced instant for a planned
	// change (a leave), otherwise when this node first saw it lead (a crash,
	// or the node's own start).
	Since time.Time
	// Self is true when this node leads.
	Self bool
}

// candidate is a member's eligibility to lead: [from, to) as in span.
type candidate struct {
	name     string
	started  time.Time
	from, to time.Time
}

// leadership is the input of the leader function and its last answer.
type leadership struct {
	cands  []candidate
	leader Leader
}

// candidatesOf returns the members that may lead at some instant: alive
// members that own keys (see spanOf) with a known start time.
func candidatesOf(peers []Peer) []candidate {
	var cs []candidate
	for _, p := range peers {
		sp, ok := spanOf(p)
		if !ok || p.Started.IsZero() {
			continue
		}
		// Peers learn start times in milliseconds: compare those, this
		// node's own included, or two members could disagree.
		started := fromUnixMilli(unixMilli(p.Started))
		cs = append(cs, candidate{name: p.Name, started: started, from: sp.from, to: sp.to})
	}
	return cs
}

// leaderAt returns the candidate that leads at t, or false.
func leaderAt(cs []candidate, t time.Time) (candidate, bool) {
	var best candidate
	found := false
	for _, c := range cs {
		if !covers(span{from: c.from, to: c.to}, t, false) {
			continue
		}
		if !found || c.started.Before(best.started) || c.started.Equal(best.started) && c.name < best.name {
			best, found = c, true
		}
	}
	return best, found
}

// leaderSince returns the latest instant at or before now at which the
// leader function, over cs as known now, switched to name: the announced
// instant of a planned change. It is zero when name has led since ever as
// far as cs tells (a crash removes the dead member from cs altogether).
func leaderSince(cs []candidate, name string, now time.Time) time.Time {
	var points []time.Time
	for _, c := range cs {
		for _, t := range []time.Time{c.from, c.to} {
			if !t.IsZero() && !t.After(now) {
				points = append(points, t)
			}
		}
	}
	slices.SortFunc(points, func(a, b time.Time) int { return b.Compare(a) })
	for _, p := range points {
		if l, ok := leaderAt(cs, p.Add(-time.Nanosecond)); !ok || l.name != name {
			return p
		}
	}
	return time.Time{}
}

func hasCandidate(cs []candidate, name string) bool {
	return slices.ContainsFunc(cs, func(c candidate) bool { return c.name == name })
}

// updateLeader recomputes the leader from peers at now and reports whether
// it changed. Called from rebuild.
func (n *Node) updateLeader(peers []Peer, now time.Time) bool {
	cs := candidatesOf(peers)
	prev := n.lead.Load()
	next := &leadership{cands: cs}
	if c, ok := leaderAt(cs, now); ok {
		next.leader = Leader{Name: c.name, Started: c.started, Self: c.name == n.cfg.Name}
		switch {
		case prev != nil && prev.leader.Name == c.name:
			next.leader.Since = prev.leader.Since
		case prev == nil || prev.leader.Name == "" || hasCandidate(cs, prev.leader.Name):
			// A planned change (the previous leader is still gossiping, its
			// announced end passed) or this node's first view: the instant
			// the schedule says.
			next.leader.Since = leaderSince(cs, c.name, now)
		}
		if next.leader.Since.IsZero() {
			// The previous leader vanished (a crash, a leave before its end)
			// or nothing tells: from now.
			next.leader.Since = now
		}
	}
	n.lead.Store(next)
	changed := prev == nil || prev.leader.Name != next.leader.Name
	if changed && next.leader.Name != "" {
		n.leaderChanges.Inc()
		n.logger.Info("cluster leader", "leader", next.leader.Name, "since", next.leader.Since, "self", next.leader.Self)
	}
	return changed
}

// Leader returns the member that plans placement now, as this node sees it.
func (n *Node) Leader() Leader {
	l := n.lead.Load()
	if l == nil {
		return Leader{}
	}
	return l.leader
}

// IsLeader reports whether this node leads now.
func (n *Node) IsLeader() bool { return n.Leader().Self }

// registerLeader registers the leader gauges and the change counter.
func (n *Node) registerLeader(reg prometheus.Registerer) error {
	if reg == nil {
		reg = prometheus.NewRegistry() // not exported anywhere
	}
	n.leaderChanges = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "shoal_cluster_leader_changes_total",
		Help: "Times the member that plans placement changed, as this agent saw it.",
	})
	for _, c := range []prometheus.Collector{n.leaderChanges, newLeaderCollector(n)} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register leader metrics: %w", err)
		}
	}
	return nil
}

// leaderCollector exports the leader gauges.
type leaderCollector struct {
	n              *Node
	leader, isSelf *prometheus.Desc
}

func newLeaderCollector(n *Node) *leaderCollector {
	return &leaderCollector{
		n: n,
		leader: prometheus.NewDesc("shoal_cluster_leader",
			"1 labelled with the member that plans placement as this agent sees it (the oldest member owning targets); absent without one.", []string{"leader"}, nil),
		isSelf: prometheus.NewDesc("shoal_cluster_is_leader",
			"1 if this agent plans placement, 0 otherwise.", nil, nil),
	}
}

func (c *leaderCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.leader
	ch <- c.isSelf
}

func (c *leaderCollector) Collect(ch chan<- prometheus.Metric) {
	l := c.n.Leader()
	if l.Name != "" {
		ch <- prometheus.MustNewConstMetric(c.leader, prometheus.GaugeValue, 1, l.Name)
	}
	self := 0.0
	if l.Self {
		self = 1
	}
	ch <- prometheus.MustNewConstMetric(c.isSelf, prometheus.GaugeValue, self)
}
