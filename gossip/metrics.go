package gossip

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type metrics struct {
	joins, leaves, failures, conflicts, ringChanges prometheus.Counter
	clockOut                                        prometheus.Counter
	refused, joinAttempts                           *prometheus.CounterVec
}

// collector exports gauges computed from the node's state at scrape time.
type collector struct {
	n                                         *Node
	peers, health, ringMembers, agree, ringID *prometheus.Desc
	keys, insecure                            *prometheus.Desc
	peerOffset, peerUncertainty               *prometheus.Desc
	clockOffset, clockBound, clockInBound     *prometheus.Desc
}

func newMetrics(n *Node, reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		reg = prometheus.NewRegistry() // not exported anywhere
	}
	f := promauto.With(reg)
	m := &metrics{
		joins: f.NewCounter(prometheus.CounterOpts{
			Name: "shoal_cluster_node_joins_total",
			Help: "Members seen joining (or coming back alive), other than this node.",
		}),
		leaves: f.NewCounter(prometheus.CounterOpts{
			Name: "shoal_cluster_node_leaves_total",
			Help: "Members that left the cluster gracefully.",
		}),
		failures: f.NewCounter(prometheus.CounterOpts{
			Name: "shoal_cluster_node_failures_total",
			Help: "Members declared dead by failure detection.",
		}),
		conflicts: f.NewCounter(prometheus.CounterOpts{
			Name: "shoal_cluster_name_conflicts_total",
			Help: "Times two members claimed the same node name.",
		}),
		ringChanges: f.NewCounter(prometheus.CounterOpts{
			Name: "shoal_cluster_ring_changes_total",
			Help: "Times the set of active members, and so the ring, changed.",
		}),
		refused: f.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_cluster_peer_meta_rejected_total",
			Help: "Gossip messages whose member metadata was refused (the member is kept out of the ring), by reason: format, http_address, weight, instant.",
		}, []string{"reason"}),
	}
	m.clockOut = f.NewCounter(prometheus.CounterOpts{
		Name: "shoal_cluster_clock_out_of_bound_total",
		Help: "Times this agent found its clock further from the cluster's than --cluster.max-clock-offset.",
	})
	m.joinAttempts = f.NewCounterVec(prometheus.CounterOpts{
		Name: "shoal_cluster_join_attempts_total",
		Help: "Rounds of the initial join, by result: joined (a peer accepted this agent), refused (a peer answered and refused it), unanswered (no peer answered).",
	}, []string{"result"})
	for _, r := range []string{joinJoined, joinRefused, joinUnanswered} {
		m.joinAttempts.WithLabelValues(r)
	}
	for _, r := range []string{reasonFormat, reasonAddress, reasonWeight, reasonInstant, reasonQuarantine} {
		m.refused.WithLabelValues(r)
	}
	c := &collector{
		n: n,
		peers: prometheus.NewDesc("shoal_cluster_peers",
			"Alive members by announced state, this node included (unknown: unreadable metadata).", []string{"state"}, nil),
		health: prometheus.NewDesc("shoal_cluster_health_score",
			"memberlist's awareness health score (0 is healthy; higher means this node is slow to answer probes).", nil, nil),
		ringMembers: prometheus.NewDesc("shoal_cluster_ring_members",
			"Members in the ring (active members).", nil, nil),
		agree: prometheus.NewDesc("shoal_cluster_peers_agree",
			"1 if every alive peer advertises the same ring digest as this node.", nil, nil),
		ringID: prometheus.NewDesc("shoal_cluster_ring_info",
			"Digest of the member set this node places targets on; equal digests mean equal placement.", []string{"digest"}, nil),
		keys: prometheus.NewDesc("shoal_cluster_gossip_keys",
			"Keys in the gossip keyring (--cluster.secret-key-file); 0 means gossip is neither encrypted nor authenticated.", nil, nil),
		insecure: prometheus.NewDesc("shoal_cluster_gossip_insecure",
			"1 if this agent gossips without a key because --cluster.insecure was given.", nil, nil),
		peerOffset: prometheus.NewDesc("shoal_cluster_peer_clock_offset_seconds",
			"Estimated clock offset of each measured peer: its clock minus this agent's (median of recent gossip probes).", []string{"peer"}, nil),
		peerUncertainty: prometheus.NewDesc("shoal_cluster_peer_clock_uncertainty_seconds",
			"Bound on the error of shoal_cluster_peer_clock_offset_seconds: half the probes' round trip (median).", []string{"peer"}, nil),
		clockOffset: prometheus.NewDesc("shoal_cluster_clock_offset_seconds",
			"This agent's clock minus the cluster's (the median of the active peers' clocks); 0 until measured.", nil, nil),
		clockBound: prometheus.NewDesc("shoal_cluster_clock_offset_bound_seconds",
			"--cluster.max-clock-offset, resolved against the shortest scrape interval.", nil, nil),
		clockInBound: prometheus.NewDesc("shoal_cluster_clock_in_bound",
			"1 if this agent's clock is within --cluster.max-clock-offset of the cluster's (or not measured yet); an agent out of bound takes no targets over.", nil, nil),
	}
	if err := reg.Register(c); err != nil {
		return nil, fmt.Errorf("register gossip metrics: %w", err)
	}
	return m, nil
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.peers
	ch <- c.health
	ch <- c.ringMembers
	ch <- c.agree
	ch <- c.ringID
	ch <- c.keys
	ch <- c.insecure
	ch <- c.peerOffset
	ch <- c.peerUncertainty
	ch <- c.clockOffset
	ch <- c.clockBound
	ch <- c.clockInBound
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	counts := map[string]int{"joining": 0, "active": 0, "leaving": 0, "unknown": 0}
	for _, p := range *c.n.peers.Load() {
		counts[p.State.String()]++
	}
	for st, v := range counts {
		ch <- prometheus.MustNewConstMetric(c.peers, prometheus.GaugeValue, float64(v), st)
	}
	c.n.mu.Lock()
	ml := c.n.ml
	c.n.mu.Unlock()
	if ml != nil {
		ch <- prometheus.MustNewConstMetric(c.health, prometheus.GaugeValue, float64(ml.GetHealthScore()))
	}
	r := c.n.Ring()
	ch <- prometheus.MustNewConstMetric(c.ringMembers, prometheus.GaugeValue, float64(r.Len()))
	agree := 0.0
	if ok, _ := c.n.Agreement(); ok {
		agree = 1
	}
	ch <- prometheus.MustNewConstMetric(c.agree, prometheus.GaugeValue, agree)
	ch <- prometheus.MustNewConstMetric(c.ringID, prometheus.GaugeValue, 1, fmt.Sprintf("%016x", c.n.Schedule().Final().Digest()))
	sec := c.n.Security()
	ch <- prometheus.MustNewConstMetric(c.keys, prometheus.GaugeValue, float64(sec.Keys))
	insecure := 0.0
	if sec.Insecure {
		insecure = 1
	}
	ch <- prometheus.MustNewConstMetric(c.insecure, prometheus.GaugeValue, insecure)
	peers := c.n.Peers()
	for _, p := range peers {
		if p.Self || p.ClockSamples == 0 {
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.peerOffset, prometheus.GaugeValue, p.ClockOffset.Seconds(), p.Name)
		ch <- prometheus.MustNewConstMetric(c.peerUncertainty, prometheus.GaugeValue, p.ClockUncertainty.Seconds(), p.Name)
	}
	st := c.n.clockStatus(peers)
	ch <- prometheus.MustNewConstMetric(c.clockOffset, prometheus.GaugeValue, st.Offset.Seconds())
	ch <- prometheus.MustNewConstMetric(c.clockBound, prometheus.GaugeValue, st.Bound.Seconds())
	inBound := 0.0
	if st.InBound {
		inBound = 1
	}
	ch <- prometheus.MustNewConstMetric(c.clockInBound, prometheus.GaugeValue, inBound)
}
