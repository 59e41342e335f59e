package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/config"
	"go.yaml.in/yaml/v2"

	"github.com/shoal-dev/shoal/gossip"
	"github.com/shoal-dev/shoal/scrape"
)

// Agreement on what is discovered.
//
// Ownership depends on membership only, so an agent that discovers less than
// its peers (a Consul token that cannot read a service, a truncated config)
// would silently drop the targets the ring gives it. Every agent therefore
// advertises digests of its scrape configuration and of its discovered
// targets (gossip.Discovery), fetches the target lists of peers whose digest
// differs from its own (/api/v1/cluster/discovery), and places a target as
// the ring does except that it skips a member that does not see it: a member
// is blind to a target at instant t when the target was missing from its
// discovery at t or a handoff lead before t (the targets it discovered, as
// it advertised them with the instant they changed). So:
//
//   - a member that stops seeing a target stops scraping it at once (it
//     is gone from its discovery) and the next member in the target's
//     ranking that sees it takes it over as soon as it learns of the change;
//   - a member that starts seeing a target again takes it back a handoff
//     lead after it announced so, the instant the stand-in stops: no
//     duplicate;
//   - a target nobody saw newTargetWindow ago (a new target) has no
//     stand-in: its ring owner scrapes it as soon as it discovers it.
//     Agents discover a new target seconds apart (Prometheus' discovery
//     manager passes updates on every 5 s), and a member that discovered it
//     a lead before the owner would stand in until a lead after the owner's
//     discovery: the target would go owner, stand-in, owner within seconds,
//     scraped twice at once around each change (a poison target then kills
//     both agents). The window is two leads (the end of a stand-in's wait is
//     itself known only a lead ahead) plus discoverySpread;
//
// Every member computes the same answer from the same advertised history; a
// peer's list that could not be fetched counts as seeing everything (a gap
// rather than a duplicate).

// discoveryHistory bounds how long a member's past discovery is kept: long
// enough to judge every slot a scrape may still be appending.
const discoveryHistory = 5 * time.Minute

// discoveryFetchEvery is how often peers whose digest differs are asked for
// their targets (only when the digest is new to us).
const discoveryFetchEvery = time.Second

// discoveryFetchTimeout bounds one fetch.
const discoveryFetchTimeout = 5 * time.Second

// discVersion is what a member discovered from an instant on.
type discVersion struct {
	from   time.Time
	digest uint64
}

// discoveryState is an immutable snapshot the ownership calls read.
type discoveryState struct {
	// history per member name, oldest first.
	history map[string][]discVersion
	// sets by target digest: this agent's own and the fetched ones.
	sets map[uint64]scrape.Discovered
	// latest is this agent's latest discovery.
	latest scrape.Discovered
	// divergent are the keys some member is or was blind to recently, which
	// this agent sees; every other key is placed by the ring alone.
	divergent map[uint64]struct{}
	// changes are the instants at which blindness begins or ends.
	changes []time.Time
}

// discovery tracks what every member discovers and places targets
// accordingly; it implements scrape.Owner and scrape.Predecessor over the
// gossip node.
type discovery struct {
	node   *gossip.Node
	self   string
	lead   time.Duration
	logger *slog.Logger
	client *http.Client
	poke   func() // re-run the filter: ownership may have changed

	state atomic.Pointer[discoveryState]

	mu      sync.Mutex
	config  uint64                       // digest of the effective scrape configs
	own     []discVersion                // this agent's history
	ownSets map[uint64]scrape.Discovered // this agent's sets by digest
	fetched map[uint64]scrape.Discovered // peers' sets by digest
	failed  map[string]string            // peer -> last fetch error
	wanted  chan struct{}                // capacity 1: a fetch round is wanted

	metrics discoveryMetrics
}

type discoveryMetrics struct {
	agree, configAgree prometheus.Gauge
	standIn            prometheus.Gauge
	fetchFailures      prometheus.Counter
}

func newDiscovery(node *gossip.Node, lead time.Duration, logger *slog.Logger, reg prometheus.Registerer) (*discovery, error) {
	d := &discovery{
		node: node, self: node.Name(), lead: lead, logger: logger.With("component", "discovery-agreement"),
		client:  newPeerClient(discoveryFetchTimeout),
		poke:    func() {},
		ownSets: map[uint64]scrape.Discovered{},
		fetched: map[uint64]scrape.Discovered{},
		failed:  map[string]string{},
		wanted:  make(chan struct{}, 1),
	}
	d.metrics = discoveryMetrics{
		agree: prometheus.NewGauge(prometheus.GaugeOpts{Name: "shoal_cluster_discovery_agree",
			Help: "1 when every active peer discovers the same targets as this agent (equal target digests), 0 when some differ (see /api/v1/cluster/members)."}),
		configAgree: prometheus.NewGauge(prometheus.GaugeOpts{Name: "shoal_cluster_config_agree",
			Help: "1 when every active peer advertises the same effective scrape configuration digest as this agent."}),
		standIn: prometheus.NewGauge(prometheus.GaugeOpts{Name: "shoal_discovery_stand_in_targets",
			Help: "Targets this agent scrapes in place of their ring owner, which does not discover them."}),
		fetchFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "shoal_discovery_fetch_failures_total",
			Help: "Failed requests for a peer's discovered targets (/api/v1/cluster/discovery)."}),
	}
	for _, c := range []prometheus.Collector{d.metrics.agree, d.metrics.configAgree, d.metrics.standIn, d.metrics.fetchFailures} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	d.metrics.agree.Set(1)
	d.metrics.configAgree.Set(1)
	d.state.Store(&discoveryState{})
	return d, nil
}

// OwnsAt implements scrape.Owner.
func (d *discovery) OwnsAt(key uint64, t time.Time) bool {
	st := d.state.Load()
	if _, ok := st.divergent[key]; !ok {
		return d.node.OwnsAt(key, t)
	}
	return d.ownsDivergent(st, key, t)
}

// Changes implements scrape.Owner.
func (d *discovery) Changes() []time.Time {
	return mergeChanges(d.node.Changes(), d.state.Load().changes)
}

// mergeChanges adds extra instants to base's, sorted and without repeats;
// base is reused.
func mergeChanges(base, extra []time.Time) []time.Time {
	if len(extra) == 0 {
		return base
	}
	out := append(base, extra...)
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return slices.CompactFunc(out, time.Time.Equal)
}

// HandedOverFrom implements scrape.Predecessor for the ring's handoffs.
func (d *discovery) HandedOverFrom(key uint64, slot time.Time, within time.Duration) (string, time.Time) {
	return d.node.HandedOverFrom(key, slot, within)
}

// ownsDivergent places a key some member is blind to.
func (d *discovery) ownsDivergent(st *discoveryState, key uint64, t time.Time) bool {
	return st.owns(d.node.Schedule().PlacementAt(t), d.node.ReplicationFactor(), d.self, key, t, d.lead)
}

// owns places key at t: the ring's ranking, skipping members blind to it;
// when every candidate is blind, the ring's own owners.
func (st *discoveryState) owns(r gossip.Placement, rf int, self string, key uint64, t time.Time, lead time.Duration) bool {
	var stack [16]string
	ranked := r.Owners(stack[:0], key, r.Len())
	if st.fresh(ranked, key, t, lead) {
		return r.IsOwner(key, rf, self)
	}
	n := 0
	for _, m := range ranked {
		if st.blind(m, key, t, lead) {
			continue
		}
		if m == self {
			return true
		}
		if n++; n == rf {
			return false
		}
	}
	if n > 0 {
		return false // fewer than rf members see it, and this one is blind
	}
	return r.IsOwner(key, rf, self)
}

// owners are the members that scrape key at t, best first: the ring's
// owners unless one is blind to it.
func (d *discovery) owners(key uint64, t time.Time) []string {
	st := d.state.Load()
	r := d.node.Schedule().PlacementAt(t)
	rf := d.node.ReplicationFactor()
	if _, ok := st.divergent[key]; !ok {
		return r.Owners(nil, key, rf)
	}
	ranked := r.Owners(nil, key, r.Len())
	if st.fresh(ranked, key, t, d.lead) {
		return ranked[:min(rf, len(ranked))]
	}
	var out []string
	for _, m := range ranked {
		if len(out) < rf && !st.blind(m, key, t, d.lead) {
			out = append(out, m)
		}
	}
	if len(out) == 0 {
		return r.Owners(nil, key, rf)
	}
	return out
}

// blind reports whether member m did not discover key at t or a lead before.
func (st *discoveryState) blind(m string, key uint64, t time.Time, lead time.Duration) bool {
	h := st.history[m]
	return st.lacks(h, key, t) || st.lacks(h, key, t.Add(-lead))
}

// discoverySpread is how far apart agents may discover a new target:
// Prometheus' discovery manager passes target updates on at most every 5 s,
// and service discovery itself refreshes on its own clock.
const discoverySpread = 10 * time.Second

// newTargetWindow is how long a target nobody discovered before stays with
// its ring owner (see fresh).
func newTargetWindow(lead time.Duration) time.Duration { return 2*lead + discoverySpread }

// fresh reports whether key is new at t: every member lacked it
// newTargetWindow before t. A member without a known list counts as having
// had it.
func (st *discoveryState) fresh(ranked []string, key uint64, t time.Time, lead time.Duration) bool {
	before := t.Add(-newTargetWindow(lead))
	for _, m := range ranked {
		if !st.lacks(st.history[m], key, before) {
			return false
		}
	}
	return len(ranked) > 0
}

// lacks reports whether the member's version at t is known and lacks key. A
// member without history before t is judged by its oldest version.
func (st *discoveryState) lacks(h []discVersion, key uint64, t time.Time) bool {
	if len(h) == 0 {
		return false
	}
	v := h[0]
	for _, x := range h[1:] {
		if x.from.After(t) {
			break
		}
		v = x
	}
	set, ok := st.sets[v.digest]
	return ok && !set.Has(key)
}

// setConfig records the digest of the effective scrape configuration.
func (d *discovery) setConfig(digest uint64) {
	d.mu.Lock()
	d.config = digest
	own := d.ownLatestLocked()
	d.mu.Unlock()
	d.advertise(own)
}

func (d *discovery) ownLatestLocked() discVersion {
	if len(d.own) == 0 {
		return discVersion{}
	}
	return d.own[len(d.own)-1]
}

func (d *discovery) advertise(v discVersion) {
	d.mu.Lock()
	cfg := d.config
	d.mu.Unlock()
	d.node.SetDiscovery(gossip.Discovery{Config: cfg, Targets: v.digest, Changed: v.from})
}

// resharded is called after every filter pass with what it found.
func (d *discovery) resharded(found scrape.Discovered) {
	if found == nil {
		return
	}
	digest := found.Digest()
	d.mu.Lock()
	latest := d.ownLatestLocked()
	if latest.digest == digest {
		d.mu.Unlock()
		return
	}
	// As gossip carries it: milliseconds.
	v := discVersion{from: time.UnixMilli(d.node.Now().UnixMilli()), digest: digest}
	d.own = append(d.own, v)
	d.ownSets[digest] = found
	d.mu.Unlock()
	d.advertise(v)
	d.update()
}

// want asks for a fetch round; it never blocks.
func (d *discovery) want() {
	select {
	case d.wanted <- struct{}{}:
	default:
	}
	d.update()
}

// run fetches the targets of peers whose digest is unknown here, until ctx
// ends.
func (d *discovery) run(ctx context.Context) error {
	tick := time.NewTicker(discoveryFetchEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-d.wanted:
		}
		d.fetchRound(ctx)
		d.update()
	}
}

func (d *discovery) fetchRound(ctx context.Context) {
	for _, p := range d.node.Peers() {
		if p.Self || p.HTTPAddr == "" || p.Discovery.Targets == 0 {
			continue
		}
		d.mu.Lock()
		_, own := d.ownSets[p.Discovery.Targets]
		_, have := d.fetched[p.Discovery.Targets]
		d.mu.Unlock()
		if own || have {
			continue
		}
		rep, err := d.fetch(ctx, p.HTTPAddr)
		d.mu.Lock()
		if err != nil {
			d.failed[p.Name] = err.Error()
			d.mu.Unlock()
			d.metrics.fetchFailures.Inc()
			d.logger.Debug("cannot read a peer's discovered targets", "peer", p.Name, "err", err)
			continue
		}
		delete(d.failed, p.Name)
		set, digest, err := rep.discovered()
		if err == nil {
			d.fetched[digest] = set
		}
		d.mu.Unlock()
		if err != nil {
			d.logger.Warn("a peer's discovered targets do not decode", "peer", p.Name, "err", err)
		}
	}
}

// DiscoveryReport is /api/v1/cluster/discovery: what this agent discovers.
type DiscoveryReport struct {
	Name    string `json:"name"`
	Config  string `json:"configDigest"`
	Targets string `json:"targetsDigest"`
	// Changed is when the targets last changed.
	Changed time.Time `json:"changed"`
	// Jobs maps each job to its targets' ownership keys (hexadecimal).
	Jobs map[string]DiscoveryJob `json:"jobs"`
}

// DiscoveryJob is one job's discovered targets.
type DiscoveryJob struct {
	Digest string   `json:"digest"`
	Keys   []string `json:"keys"`
}

func (r DiscoveryReport) discovered() (scrape.Discovered, uint64, error) {
	digest, err := strconv.ParseUint(r.Targets, 16, 64)
	if err != nil {
		return nil, 0, fmt.Errorf("targetsDigest %q: %w", r.Targets, err)
	}
	out := make(scrape.Discovered, len(r.Jobs))
	for job, j := range r.Jobs {
		keys := make([]uint64, len(j.Keys))
		for i, k := range j.Keys {
			if keys[i], err = strconv.ParseUint(k, 16, 64); err != nil {
				return nil, 0, fmt.Errorf("job %q: key %q: %w", job, k, err)
			}
		}
		out[job] = scrape.NewJobTargets(keys)
	}
	if got := out.Digest(); got != digest {
		return nil, 0, fmt.Errorf("targetsDigest is %016x, its keys give %016x", digest, got)
	}
	return out, digest, nil
}

func (d *discovery) report() DiscoveryReport {
	d.mu.Lock()
	v := d.ownLatestLocked()
	set := d.ownSets[v.digest]
	cfg := d.config
	d.mu.Unlock()
	r := DiscoveryReport{Name: d.self, Config: digestString(cfg), Targets: digestString(v.digest), Changed: v.from,
		Jobs: make(map[string]DiscoveryJob, len(set))}
	for job, j := range set {
		keys := make([]string, len(j.Keys))
		for i, k := range j.Keys {
			keys[i] = strconv.FormatUint(k, 16)
		}
		r.Jobs[job] = DiscoveryJob{Digest: digestString(j.Digest), Keys: keys}
	}
	return r
}

// maxDiscoveryReport bounds a peer's answer: 16 bytes and quotes per key,
// for a million targets.
const maxDiscoveryReport = 32 << 20

func (d *discovery) fetch(ctx context.Context, addr string) (DiscoveryReport, error) {
	var r DiscoveryReport
	ctx, cancel := context.WithTimeout(ctx, discoveryFetchTimeout)
	defer cancel()
	// addr is host:port, checked by gossip; only shoal's own path is added.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/api/v1/cluster/discovery", nil)
	if err != nil {
		return r, err
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return r, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return r, fmt.Errorf("GET /api/v1/cluster/discovery: %s", resp.Status)
	}
	var env struct {
		Data DiscoveryReport `json:"data"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxDiscoveryReport)).Decode(&env); err != nil {
		return r, fmt.Errorf("decode /api/v1/cluster/discovery: %w", err)
	}
	return env.Data, nil
}

// update rebuilds the state the ownership calls read from the members'
// advertised discovery, and pokes the filter when it changed.
func (d *discovery) update() {
	now := d.node.Now()
	peers := d.node.Peers()
	d.mu.Lock()
	d.own = pruneHistory(d.own, now)
	st := &discoveryState{history: map[string][]discVersion{}, sets: map[uint64]scrape.Discovered{}}
	for _, v := range d.own {
		if s, ok := d.ownSets[v.digest]; ok {
			st.sets[v.digest] = s
		}
	}
	for dg := range d.ownSets {
		if _, ok := st.sets[dg]; !ok && len(d.own) > 0 {
			delete(d.ownSets, dg)
		}
	}
	st.latest = d.ownSets[d.ownLatestLocked().digest]
	st.history[d.self] = slices.Clone(d.own)
	prev := d.state.Load()
	live := map[uint64]bool{}
	for _, p := range peers {
		if p.Self || p.Discovery.Targets == 0 {
			continue
		}
		h := slices.Clone(prev.history[p.Name])
		v := discVersion{from: p.Discovery.Changed, digest: p.Discovery.Targets}
		if len(h) == 0 || h[len(h)-1].digest != v.digest {
			h = append(h, v)
		}
		h = pruneHistory(h, now)
		st.history[p.Name] = h
		for _, x := range h {
			live[x.digest] = true
			if s, ok := d.fetched[x.digest]; ok {
				st.sets[x.digest] = s
			}
		}
	}
	for dg := range d.fetched {
		if !live[dg] {
			delete(d.fetched, dg)
		}
	}
	d.mu.Unlock()

	// The keys this agent sees that some member is or was blind to.
	st.divergent = map[uint64]struct{}{}
	var changes []time.Time
	own := st.history[d.self]
	for name, h := range st.history {
		for _, v := range h {
			if name != d.self || len(h) > 1 {
				changes = append(changes, v.from, v.from.Add(d.lead), v.from.Add(newTargetWindow(d.lead)))
			}
			set, ok := st.sets[v.digest]
			if !ok {
				continue
			}
			// Against this agent's own recent lists only, and only where they
			// differ: agreeing members cost nothing here.
			for _, ov := range own {
				mine, ok := st.sets[ov.digest]
				if !ok || ov.digest == v.digest {
					continue
				}
				for job, j := range mine {
					other := set[job]
					for _, k := range j.Keys {
						if !other.Has(k) {
							st.divergent[k] = struct{}{}
						}
					}
				}
			}
		}
	}
	slices.SortFunc(changes, func(a, b time.Time) int { return a.Compare(b) })
	st.changes = slices.CompactFunc(changes, time.Time.Equal)
	d.state.Store(st)
	d.observe(st, peers)
	if !sameState(prev, st) {
		d.poke()
	}
}

// pruneHistory drops versions that no slot still to be judged can fall in:
// all but the last one that started before now-discoveryHistory.
func pruneHistory(h []discVersion, now time.Time) []discVersion {
	cut := now.Add(-discoveryHistory)
	i := 0
	for i+1 < len(h) && !h[i+1].from.After(cut) {
		i++
	}
	return h[i:]
}

func sameState(a, b *discoveryState) bool {
	if len(a.divergent) != len(b.divergent) || !slices.EqualFunc(a.changes, b.changes, time.Time.Equal) {
		return false
	}
	for k := range a.divergent {
		if _, ok := b.divergent[k]; !ok {
			return false
		}
	}
	for m, h := range b.history {
		if !slices.Equal(a.history[m], h) {
			return false
		}
	}
	return len(a.sets) == len(b.sets)
}

// Difference is a peer that discovers something else than this agent.
type Difference struct {
	Member string `json:"member"`
	// Jobs are the jobs whose targets differ, with how many targets the
	// peer and this agent see; empty while the peer's list is unknown.
	Jobs []JobDifference `json:"jobs"`
	// Config is true when the peer's scrape configuration differs, Targets
	// when its discovered targets do.
	Config  bool `json:"config"`
	Targets bool `json:"targets"`
	// Error is why the peer's list could not be read, if it could not.
	Error string `json:"error,omitempty"`
}

// JobDifference is one job two agents see differently.
type JobDifference struct {
	Job   string `json:"job"`
	Peer  int    `json:"peer"`
	Local int    `json:"local"`
}

// differences compares every active peer's discovery with this agent's.
func (d *discovery) differences(peers []gossip.Peer) []Difference {
	d.mu.Lock()
	defer d.mu.Unlock()
	own := d.ownLatestLocked()
	mine := d.ownSets[own.digest]
	var out []Difference
	for _, p := range peers {
		if p.Self || p.State != gossip.StateActive || p.Discovery.Targets == 0 || own.digest == 0 {
			continue
		}
		cfgDiffers := p.Discovery.Config != 0 && d.config != 0 && p.Discovery.Config != d.config
		if p.Discovery.Targets == own.digest && !cfgDiffers {
			continue
		}
		diff := Difference{Member: p.Name, Config: cfgDiffers, Targets: p.Discovery.Targets != own.digest,
			Jobs: []JobDifference{}, Error: d.failed[p.Name]}
		if p.Discovery.Targets != own.digest {
			theirs, ok := d.fetched[p.Discovery.Targets]
			if !ok {
				theirs, ok = d.ownSets[p.Discovery.Targets]
			}
			if ok {
				diff.Jobs = jobDifferences(theirs, mine)
			}
		}
		out = append(out, diff)
	}
	return out
}

func jobDifferences(theirs, mine scrape.Discovered) []JobDifference {
	jobs := map[string]bool{}
	for j := range theirs {
		jobs[j] = true
	}
	for j := range mine {
		jobs[j] = true
	}
	var out []JobDifference
	for j := range jobs {
		t, m := theirs[j], mine[j]
		if t.Digest != m.Digest || len(t.Keys) != len(m.Keys) {
			out = append(out, JobDifference{Job: j, Peer: len(t.Keys), Local: len(m.Keys)})
		}
	}
	slices.SortFunc(out, func(a, b JobDifference) int { return strings.Compare(a.Job, b.Job) })
	return out
}

// peersDiscovering lists, for every job some active peer discovers targets
// for, those peers, sorted; peers whose list is not known yet are left out.
func (d *discovery) peersDiscovering(peers []gossip.Peer) map[string][]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string][]string{}
	for _, p := range peers {
		if p.Self || p.State != gossip.StateActive || p.Discovery.Targets == 0 {
			continue
		}
		set, ok := d.fetched[p.Discovery.Targets]
		if !ok {
			set, ok = d.ownSets[p.Discovery.Targets]
		}
		if !ok {
			continue
		}
		for job, jt := range set {
			if len(jt.Keys) > 0 {
				out[job] = append(out[job], p.Name)
			}
		}
	}
	for _, names := range out {
		slices.Sort(names)
	}
	return out
}

// droppedJobs are the jobs peers discover targets for that scfgs, a
// configuration about to be applied, does not have: applying it makes
// this agent scrape none of them, and not ready while peers still do.
func (d *discovery) droppedJobs(peers []gossip.Peer, scfgs []*config.ScrapeConfig) map[string][]string {
	seen := d.peersDiscovering(peers)
	for _, sc := range scfgs {
		delete(seen, sc.JobName)
	}
	return seen
}

// blindJobs are the jobs for which this agent discovers no target while an
// active peer discovers some: such an agent is not ready.
func (d *discovery) blindJobs() []string {
	var out []string
	for _, diff := range d.differences(d.node.Peers()) {
		for _, j := range diff.Jobs {
			if j.Local == 0 && j.Peer > 0 && !slices.Contains(out, j.Job) {
				out = append(out, j.Job)
			}
		}
	}
	slices.Sort(out)
	return out
}

// notReadyReason explains blindJobs, or is "".
func (d *discovery) notReadyReason() string {
	jobs := d.blindJobs()
	if len(jobs) == 0 {
		return ""
	}
	return fmt.Sprintf("service discovery finds no target for job(s) %s that peers discover (check this agent's discovery credentials, e.g. its Consul ACL token, and its config); peers scrape them meanwhile",
		strings.Join(jobs, ", "))
}

// observe sets the agreement metrics.
func (d *discovery) observe(st *discoveryState, peers []gossip.Peer) {
	diffs := d.differences(peers)
	agree, cfgAgree := 1.0, 1.0
	for _, x := range diffs {
		if x.Config {
			cfgAgree = 0
		}
		if x.Targets {
			agree = 0
		}
	}
	d.metrics.agree.Set(agree)
	d.metrics.configAgree.Set(cfgAgree)
	standIn := 0
	now := d.node.Now()
	if st.latest != nil {
		for k := range st.divergent {
			if d.ownsDivergent(st, k, now) && !d.node.OwnsAt(k, now) {
				standIn++
			}
		}
	}
	d.metrics.standIn.Set(float64(standIn))
}

// configDigest digests the effective scrape configurations (defaults
// applied; Prometheus marshals secrets as <secret>). 0 only if they cannot
// be marshalled, which counts as unknown.
func configDigest(scfgs []*config.ScrapeConfig) uint64 {
	b, err := yaml.Marshal(scfgs)
	if err != nil {
		return 0
	}
	return xxhash.Sum64(b) | 1
}

func (w *webServer) apiDiscovery(rw http.ResponseWriter, _ *http.Request) {
	writeJSON(rw, w.a.discAgree.report())
}
