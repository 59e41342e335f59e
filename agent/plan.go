package agent

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-dev/shoal/gossip"
	"github.com/shoal-dev/shoal/gossip/ring"
	"github.com/shoal-dev/shoal/gossip/ring/placement"
	"github.com/shoal-dev/shoal/internal/flagext"
)

// PlacementConfig tunes load-aware placement (--cluster.placement in
// gossip.Config switches it on or off).
type PlacementConfig struct {
	// Bound is how far above its fair share of series an agent may go
	// before the leader replans: 0.10 is 110 %.
	Bound float64
	// Hold is how long the imbalance must stay above the bound before the
	// leader replans (hysteresis).
	Hold time.Duration
	// round replaces planRound when positive (tests).
	round time.Duration
}

// Defaults of PlacementConfig. A 20 s hold rides out a target's brief spike
// (the sizes are smoothed over a minute already) and still rebalances
// within a minute of a join or a crash: a handoff lead, a load round, the
// hold and another lead.
const (
	DefaultPlacementHold = 20 * time.Second
	// planRound is how often the leader reads its peers' loads and judges
	// the balance; a follower checks for a newer plan as often, and at once
	// when a peer advertises one.
	planRound = 5 * time.Second
	// planFollowEvery bounds how long a follower that failed to fetch a plan
	// waits before it tries again.
	planFollowEvery = time.Second
	// loadStale drops a target's size when no member has reported it for
	// this long (it is gone, or every member that scraped it is).
	loadStale = 2 * time.Minute
	// planFetchTimeout bounds one request to a peer.
	planFetchTimeout = 2 * time.Second
	// maxPlanBody bounds a peer's plan: about 9 bytes per override, base64.
	maxPlanBody = 64 << 20
)

// DefaultPlacementConfig returns the defaults.
func DefaultPlacementConfig() PlacementConfig {
	return PlacementConfig{Bound: placement.DefaultBound, Hold: DefaultPlacementHold}
}

// RegisterFlags declares --cluster.placement-*.
func (c *PlacementConfig) RegisterFlags(app *kingpin.Application) {
	flagext.Float(app, "cluster.placement-bound", "With --cluster.placement=load: how far above its fair share of series (weighted by --cluster.weight) an agent may go before the leader moves targets off it, e.g. 0.1 for 110 %. Above 0, at most 1.", &c.Bound)
	flagext.Duration(app, "cluster.placement-hold", "With --cluster.placement=load: how long an agent must stay above the bound before the leader replans; shorter imbalances move nothing.", &c.Hold)
}

// Validate checks the bound and the hold.
func (c PlacementConfig) Validate() error {
	if !(c.Bound > 0 && c.Bound <= 1) {
		return fmt.Errorf("--cluster.placement-bound must be above 0 and at most 1, got %v", c.Bound)
	}
	if c.Hold < 0 {
		return fmt.Errorf("--cluster.placement-hold must not be negative, got %s", c.Hold)
	}
	return nil
}

// placement is the planner's configuration: the fill keeps the default's
// ratio to the bound.
func (c PlacementConfig) placement() placement.Config {
	return placement.Config{Bound: c.Bound, Fill: c.Bound * placement.DefaultFill / placement.DefaultBound}
}

// planner runs on every agent. The leader reads every member's load, keeps
// each target's latest size, and publishes a new plan once some member has
// been above the bound for Hold; every agent fetches the newest plan a peer
// advertises and installs it in its gossip node, where it takes effect at
// the announced instant.
type planner struct {
	node *gossip.Node
	cfg  PlacementConfig
	pcfg placement.Config
	own  func() LoadReport
	// discovered returns the keys this agent discovers: only those are
	// planned (a target gone from discovery keeps no share).
	discovered func() map[uint64]bool
	client     *http.Client
	logger     *slog.Logger
	wake       chan struct{} // capacity 1
	// round is how often the leader judges the balance (planRound).
	round time.Duration

	mu    sync.Mutex
	sizes map[uint64]loadSample
	// members are the members each plan this leader made was computed for,
	// by plan digest, for the next plan's PreviousMembers.
	members   map[uint64][]ring.Member
	overSince time.Time
	last      planSummary
	loadErrs  map[string]string
	fetchErr  string

	published, fetched, fetchFailures prometheus.Counter
}

// planSummary is the leader's latest judgement of the balance.
type planSummary struct {
	at        time.Time
	stats     placement.Stats
	computed  bool // stats are from this agent as leader
	overSince time.Time
	// noBetter: above the bound, and the last replanning found no placement
	// that does better (target sizes too coarse for the bound, e.g. 25 equal
	// targets on 4 agents are 7/6/6/6 at best, 1.12).
	noBetter bool
	// inputs are the ring digest and the number of targets judged.
	inputs [2]uint64
}

func newPlanner(node *gossip.Node, cfg PlacementConfig, own func() LoadReport, discovered func() map[uint64]bool, logger *slog.Logger, reg prometheus.Registerer) (*planner, error) {
	p := &planner{
		node: node, cfg: cfg, pcfg: cfg.placement(), own: own, discovered: discovered,
		client:   newPeerClient(planFetchTimeout),
		logger:   logger.With("component", "planner"),
		wake:     make(chan struct{}, 1),
		round:    planRound,
		sizes:    map[uint64]loadSample{},
		members:  map[uint64][]ring.Member{},
		loadErrs: map[string]string{},
		published: prometheus.NewCounter(prometheus.CounterOpts{Name: "shoal_cluster_plans_published_total",
			Help: "Load-aware plans this agent published as leader."}),
		fetched: prometheus.NewCounter(prometheus.CounterOpts{Name: "shoal_cluster_plans_fetched_total",
			Help: "Load-aware plans this agent fetched from a peer and installed."}),
		fetchFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "shoal_cluster_plan_fetch_failures_total",
			Help: "Failed requests for a peer's plan (/api/v1/cluster/plan) or load (/api/v1/cluster/load)."}),
	}
	if cfg.round > 0 {
		p.round = cfg.round
	}
	if err := p.pcfg.Validate(); err != nil {
		return nil, err
	}
	for _, c := range []prometheus.Collector{p.published, p.fetched, p.fetchFailures} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register planner metrics: %w", err)
		}
	}
	return p, nil
}

// Notify is the gossip observer: a peer may advertise a newer plan, or the
// leader changed. It never blocks.
func (p *planner) Notify() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// run follows and, while this agent leads, makes plans until ctx ends.
func (p *planner) run(ctx context.Context) error {
	if p.node.PlanStatus().Mode == gossip.PlacementHash {
		<-ctx.Done()
		return nil
	}
	follow := time.NewTicker(planFollowEvery)
	defer follow.Stop()
	var lastRound time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-follow.C:
		case <-p.wake:
		}
		p.follow(ctx)
		if now := time.Now(); now.Sub(lastRound) >= p.round {
			lastRound = now
			// A leader that is leaving makes no new plan: its successor
			// takes over at its announced instant.
			if p.node.IsLeader() && p.node.State() == gossip.StateActive {
				p.lead(ctx)
			}
		}
	}
}

// follow installs the newest plan a peer advertises, if this agent lacks it.
func (p *planner) follow(ctx context.Context) {
	st := p.node.PlanStatus()
	if st.Current() {
		p.setFetchErr("")
		return
	}
	var errs []error
	for _, peer := range st.From {
		if peer.HTTPAddr == "" {
			continue
		}
		rec, err := fetchPlan(ctx, p.client, peer.HTTPAddr)
		if err == nil && !rec.Ref().Equal(st.Wanted) {
			err = fmt.Errorf("it serves plan %d (%016x), it advertises %d (%016x)", rec.Version, rec.Plan.Digest(), st.Wanted.Version, st.Wanted.Digest)
		}
		if err == nil {
			err = p.node.InstallPlan(rec)
		}
		if err == nil || errors.Is(err, gossip.ErrPlanOld) {
			p.fetched.Inc()
			p.setFetchErr("")
			return
		}
		p.fetchFailures.Inc()
		errs = append(errs, fmt.Errorf("%s: %w", peer.Name, err))
	}
	err := errors.Join(errs...)
	if err == nil {
		err = errors.New("no peer that advertises it has an HTTP address")
	}
	p.setFetchErr(fmt.Sprintf("plan %d: %v", st.Wanted.Version, err))
	p.logger.Warn("cannot read the cluster's newest plan; placing by the plan held until then", "want", st.Wanted.Version, "held", st.Held.Version, "err", err)
}

func (p *planner) setFetchErr(s string) {
	p.mu.Lock()
	p.fetchErr = s
	p.mu.Unlock()
}

// lead reads the members' loads, judges the balance of the newest plan and
// replans when it has been out of bound for Hold.
func (p *planner) lead(ctx context.Context) {
	now := p.node.Now()
	p.collect(ctx, now)
	sched := p.node.Schedule()
	members := p.members4(sched.Final())
	if len(members) == 0 {
		return
	}
	targets := p.targets(now)
	prev, _ := p.node.Plan()
	stats, err := placement.Evaluate(p.pcfg, members, targets, prev.Plan)
	if err != nil {
		p.logger.Warn("cannot judge the balance", "err", err)
		return
	}
	p.mu.Lock()
	if stats.Within {
		p.overSince = time.Time{}
	} else if p.overSince.IsZero() {
		p.overSince = now
	}
	over := p.overSince
	// Until this round replans, an earlier round's finding stands for the
	// same members and targets.
	inputs := [2]uint64{sched.Final().Digest(), uint64(len(targets))}
	noBetter := !stats.Within && p.last.noBetter && p.last.inputs == inputs
	p.last = planSummary{at: now, stats: stats, computed: true, overSince: over, noBetter: noBetter, inputs: inputs}
	p.mu.Unlock()
	// Replan only once every announced change has taken effect and every
	// member agrees on the placement: the loads then describe it.
	if stats.Within || now.Sub(over) < p.cfg.Hold || len(p.node.View().Ahead()) > 0 {
		return
	}
	if ok, _ := p.node.Agreement(); !ok {
		return
	}
	p.mu.Lock()
	prevMembers := p.members[prev.Plan.Digest()]
	p.mu.Unlock()
	in := placement.Input{Members: members, Targets: targets, Previous: prev.Plan}
	if prev.Plan != nil && prevMembers != nil {
		if r, err := ring.New(prevMembers); err == nil && r.Digest() == prev.Plan.RingDigest() {
			in.PreviousMembers = prevMembers
		}
	}
	res, err := placement.Compute(p.pcfg, in)
	if err != nil {
		p.logger.Warn("planning failed", "err", err)
		return
	}
	if !res.Changed || (prev.Plan == nil && res.Plan.Len() == 0) {
		// No move does better (three equal targets on two agents stay 2/1).
		// A plan of no override would place every target as now, yet every
		// agent would fetch, install and advertise it.
		p.mu.Lock()
		if p.last.at.Equal(now) {
			p.last.noBetter = true
		}
		p.mu.Unlock()
		p.logger.Debug("above the bound, but no plan does better", "imbalance", res.Before.Imbalance)
		return
	}
	rec, err := p.node.PublishPlan(res.Plan)
	if err != nil {
		p.logger.Warn("publishing the plan failed", "err", err)
		return
	}
	p.published.Inc()
	p.mu.Lock()
	p.members[res.Plan.Digest()] = members
	for d := range p.members {
		if d != res.Plan.Digest() && d != prev.Plan.Digest() {
			delete(p.members, d)
		}
	}
	p.overSince = time.Time{}
	p.last = planSummary{at: now, stats: res.After, computed: true}
	p.mu.Unlock()
	p.logger.Info("replanned", "version", rec.Version, "at", rec.At, "imbalance_before", res.Before.Imbalance,
		"imbalance_after", res.After.Imbalance, "moved_targets", res.MovedTargets, "moved_series", res.MovedSeries)
}

// members4 returns the ring's members with the weights they advertise.
func (p *planner) members4(r *ring.Ring) []ring.Member {
	weights := map[string]float64{}
	for _, peer := range p.node.Peers() {
		weights[peer.Name] = peer.Weight
	}
	out := make([]ring.Member, 0, r.Len())
	for _, name := range r.Members() {
		out = append(out, ring.Member{Name: name, Weight: weights[name]})
	}
	return out
}

// collect reads this agent's load and every active peer's into sizes.
func (p *planner) collect(ctx context.Context, now time.Time) {
	reports := []LoadReport{p.own()}
	errs := map[string]string{}
	for _, peer := range p.node.Peers() {
		if peer.Self || peer.HTTPAddr == "" || peer.State != gossip.StateActive && peer.State != gossip.StateLeaving {
			continue
		}
		r, err := fetchLoad(ctx, p.client, peer.HTTPAddr)
		if err == nil && r.Name != peer.Name {
			err = fmt.Errorf("it reports the load of %q", r.Name)
		}
		if err != nil {
			p.fetchFailures.Inc()
			errs[peer.Name] = err.Error()
			continue
		}
		reports = append(reports, r)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.loadErrs = errs
	for _, r := range reports {
		ss, err := r.samples(now)
		if err != nil {
			p.loadErrs[r.Name] = err.Error()
			continue
		}
		for _, s := range ss {
			// During a handoff both owners may report a target: the newer
			// scrape wins.
			if old, ok := p.sizes[s.key]; ok && old.seen.Equal(now) && old.lastScrape.After(s.lastScrape) {
				continue
			}
			p.sizes[s.key] = s
		}
	}
	for k, s := range p.sizes {
		if now.Sub(s.seen) > loadStale {
			delete(p.sizes, k)
		}
	}
}

// targets returns the known sizes of the targets this agent discovers.
func (p *planner) targets(now time.Time) []placement.Target {
	found := p.discovered()
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]placement.Target, 0, len(p.sizes))
	for k, s := range p.sizes {
		if now.Sub(s.seen) <= loadStale && found[k] {
			out = append(out, placement.Target{Key: k, Series: s.series})
		}
	}
	slices.SortFunc(out, func(a, b placement.Target) int { return cmp.Compare(a.Key, b.Key) })
	return out
}

// size returns the latest known size of key: from the leader's account, or
// this agent's own measurement.
func (p *planner) size(key uint64) (loadSample, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.sizes[key]
	return s, ok
}

// PlanDoc is /api/v1/cluster/plan: the newest plan this agent holds, in
// the package's canonical encoding (base64) with its overrides spelled out.
type PlanDoc struct {
	Version    uint64         `json:"version"`
	At         time.Time      `json:"at"`
	Leader     string         `json:"leader"`
	Digest     string         `json:"digest"`
	RingDigest string         `json:"ringDigest"`
	Encoding   string         `json:"encoding"`
	Overrides  []PlanOverride `json:"overrides"`
}

// PlanOverride is one target the plan places off its rendezvous owner.
type PlanOverride struct {
	Key    string `json:"key"`
	Member string `json:"member"`
	Reason string `json:"reason"`
}

func planDoc(rec gossip.PlanRecord) PlanDoc {
	b, _ := rec.Plan.MarshalBinary()
	d := PlanDoc{Version: rec.Version, At: rec.At, Leader: rec.Leader, Digest: digestString(rec.Plan.Digest()),
		RingDigest: digestString(rec.Plan.RingDigest()), Encoding: base64.StdEncoding.EncodeToString(b), Overrides: []PlanOverride{}}
	for _, o := range rec.Plan.Overrides() {
		d.Overrides = append(d.Overrides, PlanOverride{Key: digestString(o.Key), Member: o.Member, Reason: o.Reason.String()})
	}
	return d
}

// record decodes the document into a plan record; the digest must match.
func (d PlanDoc) record() (gossip.PlanRecord, error) {
	b, err := base64.StdEncoding.DecodeString(d.Encoding)
	if err != nil {
		return gossip.PlanRecord{}, fmt.Errorf("plan encoding: %w", err)
	}
	p, err := placement.Decode(b)
	if err != nil {
		return gossip.PlanRecord{}, err
	}
	if got := digestString(p.Digest()); got != d.Digest {
		return gossip.PlanRecord{}, fmt.Errorf("plan digest is %s, its encoding gives %s", d.Digest, got)
	}
	return gossip.PlanRecord{Version: d.Version, At: d.At, Leader: d.Leader, Plan: p}, nil
}

func (w *webServer) apiPlan(rw http.ResponseWriter, _ *http.Request) {
	rec, ok := w.a.node.Plan()
	if !ok {
		rw.Header().Set("Content-Type", "application/json")
		rw.WriteHeader(http.StatusNotFound)
		_ = json.NewEncoder(rw).Encode(Response{Status: "error", Error: "no plan: targets are placed by rendezvous hashing"})
		return
	}
	writeJSON(rw, planDoc(rec))
}

// fetchPlan reads a peer's /api/v1/cluster/plan.
func fetchPlan(ctx context.Context, c *http.Client, addr string) (gossip.PlanRecord, error) {
	var env struct {
		Data PlanDoc `json:"data"`
	}
	if err := getPeerJSON(ctx, c, addr, "/api/v1/cluster/plan", maxPlanBody, &env); err != nil {
		return gossip.PlanRecord{}, err
	}
	return env.Data.record()
}
