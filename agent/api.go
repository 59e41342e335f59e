package agent

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	promscrape "github.com/prometheus/prometheus/scrape"

	"github.com/shoal-dev/shoal/gossip"
	"github.com/shoal-dev/shoal/internal/redact"
	"github.com/shoal-dev/shoal/scrape"
)

// The types below are the JSON of shoal's API: the server writes them and
// clients (internal/e2e, the page's fetch of peers' figures) decode them.

// Response is Prometheus' API envelope.
type Response struct {
	Status string `json:"status"`
	Data   any    `json:"data,omitempty"`
	Error  string `json:"error,omitempty"`
}

func writeJSON(rw http.ResponseWriter, data any) {
	rw.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(rw)
	_ = enc.Encode(Response{Status: "success", Data: data})
}

// Target is one target this agent scrapes, in Prometheus' /api/v1/targets
// shape. Unless --web.show-scrape-params is set, the values of its URL's
// query parameters (the config's params, such as ?token=) and of its
// __param_* labels are masked, here and in LastError; URL passwords are
// always masked. Key is the ownership key, computed from the real URL, the
// same on every agent.
type Target struct {
	DiscoveredLabels   labels.Labels           `json:"discoveredLabels"`
	Labels             labels.Labels           `json:"labels"`
	ScrapePool         string                  `json:"scrapePool"`
	ScrapeURL          string                  `json:"scrapeUrl"`
	GlobalURL          string                  `json:"globalUrl"`
	LastError          string                  `json:"lastError"`
	LastScrape         time.Time               `json:"lastScrape"`
	LastScrapeDuration float64                 `json:"lastScrapeDuration"`
	Health             promscrape.TargetHealth `json:"health"`
	ScrapeInterval     string                  `json:"scrapeInterval"`
	ScrapeTimeout      string                  `json:"scrapeTimeout"`
	Key                string                  `json:"key"`
}

// Instance returns the target's instance label.
func (t Target) Instance() string { return t.Labels.Get("instance") }

// Targets is /api/v1/targets: this agent's targets; it drops none.
type Targets struct {
	ActiveTargets  []Target `json:"activeTargets"`
	DroppedTargets []any    `json:"droppedTargets"`
}

// apiTargets answers like Prometheus' /api/v1/targets, with this agent's
// (owned) targets only.
func (w *webServer) apiTargets(rw http.ResponseWriter, r *http.Request) {
	state := r.URL.Query().Get("state")
	out := Targets{ActiveTargets: []Target{}, DroppedTargets: []any{}}
	if state == "" || state == "any" || state == "active" {
		out.ActiveTargets = w.a.activeTargets()
	}
	writeJSON(rw, out)
}

func (a *Agent) activeTargets() []Target {
	res := []Target{}
	lb := labels.NewBuilder(labels.EmptyLabels())
	for pool, ts := range a.scraper.TargetsActive() {
		for _, t := range ts {
			lastErr := ""
			if err := t.LastError(); err != nil {
				lastErr = a.showURL(err.Error())
			}
			u := a.showURL(t.URL().String())
			dl, key := discoveredLabels(t, lb)
			res = append(res, Target{
				DiscoveredLabels:   a.showLabels(dl),
				Labels:             a.showLabels(t.Labels(lb)),
				ScrapePool:         pool,
				ScrapeURL:          u,
				GlobalURL:          u,
				Key:                key,
				LastError:          lastErr,
				LastScrape:         t.LastScrape(),
				LastScrapeDuration: t.LastScrapeDuration().Seconds(),
				Health:             t.Health(),
				ScrapeInterval:     t.GetValue("__scrape_interval__"),
				ScrapeTimeout:      t.GetValue("__scrape_timeout__"),
			})
		}
	}
	sort.Slice(res, func(i, j int) bool {
		if res[i].ScrapePool != res[j].ScrapePool {
			return res[i].ScrapePool < res[j].ScrapePool
		}
		return res[i].ScrapeURL < res[j].ScrapeURL
	})
	return res
}

// discoveredLabels are t's labels before relabeling as discovery found them,
// without the ownership key the filter carries to the fence in them, which
// is shoal's and returned apart.
func discoveredLabels(t *promscrape.Target, lb *labels.Builder) (labels.Labels, string) {
	dl := t.DiscoveredLabels(lb)
	return labels.NewBuilder(dl).Del(scrape.KeyLabel).Labels(), dl.Get(scrape.KeyLabel)
}

// Member is one member in /api/v1/cluster/members.
type Member struct {
	Name         string    `json:"name"`
	Addr         string    `json:"addr"`
	State        string    `json:"state"`
	Self         bool      `json:"self"`
	HTTPAddr     string    `json:"httpAddr"`
	Version      string    `json:"version"`
	Digest       string    `json:"digest"`
	Started      time.Time `json:"started"`
	OwnedTargets int       `json:"ownedTargets"`
	Agrees       bool      `json:"agrees"`
	// ClockOffsetSeconds is the member's clock minus this agent's, with
	// ClockUncertaintySeconds its error bound, from ClockSamples recent
	// gossip probes; all 0 for this agent and for a member not measured yet.
	ClockOffsetSeconds      float64 `json:"clockOffsetSeconds"`
	ClockUncertaintySeconds float64 `json:"clockUncertaintySeconds"`
	ClockSamples            int     `json:"clockSamples"`
	// ConfigDigest and TargetsDigest are what the member advertises it
	// scrapes from ("" before its first discovery).
	ConfigDigest  string `json:"configDigest"`
	TargetsDigest string `json:"targetsDigest"`
}

// Clock is how an agent's clock compares with the cluster's (the median of
// its active peers' clocks): OffsetSeconds is its clock minus the
// cluster's. InBound is false when the offset exceeds BoundSeconds
// (--cluster.max-clock-offset); Reason then says what to do.
type Clock struct {
	OffsetSeconds      float64 `json:"offsetSeconds"`
	UncertaintySeconds float64 `json:"uncertaintySeconds"`
	BoundSeconds       float64 `json:"boundSeconds"`
	MeasuredPeers      int     `json:"measuredPeers"`
	InBound            bool    `json:"inBound"`
	Reason             string  `json:"reason,omitempty"`
}

func newClock(st gossip.ClockStatus) Clock {
	return Clock{
		OffsetSeconds: st.Offset.Seconds(), UncertaintySeconds: st.Uncertainty.Seconds(), BoundSeconds: st.Bound.Seconds(),
		MeasuredPeers: st.Measured, InBound: st.InBound, Reason: st.Reason(),
	}
}

// Members is /api/v1/cluster/members: an agent's view of the cluster.
type Members struct {
	Self     string   `json:"self"`
	Digest   string   `json:"digest"`
	Agree    bool     `json:"agree"`
	Disagree []string `json:"disagree"`
	RingSize int      `json:"ringSize"`
	Replicas int      `json:"replicationFactor"`
	Members  []Member `json:"members"`
	Clock    Clock    `json:"clock"`
	// DiscoveryAgree is false when an active peer discovers other targets
	// or has another scrape configuration; Discovery names them.
	DiscoveryAgree bool         `json:"discoveryAgree"`
	Discovery      []Difference `json:"discoveryDifferences"`
	Generated      time.Time    `json:"generated"`
}

// Active returns the names of the active members, sorted.
func (m Members) Active() []string {
	var out []string
	for _, mem := range m.Members {
		if mem.State == gossip.StateActive.String() {
			out = append(out, mem.Name)
		}
	}
	slices.Sort(out)
	return out
}

// Owned returns how many targets the members own in all, by their
// OwnedTargets.
func (m Members) Owned() int {
	n := 0
	for _, mem := range m.Members {
		n += mem.OwnedTargets
	}
	return n
}

func digestString(d uint64) string { return fmt.Sprintf("%016x", d) }

// optionalDigest is digestString, or "" for 0 (unknown).
func optionalDigest(d uint64) string {
	if d == 0 {
		return ""
	}
	return digestString(d)
}

// clusterMembers is what /api/v1/cluster/members and the page show, as of
// view v.
func (a *Agent) clusterMembers(v gossip.View) Members {
	peers := a.node.Peers()
	agree, differ := a.node.Agreement()
	owned := map[string]int{}
	var owners []string
	for _, t := range a.scraper.Filter().Targets() {
		owners = v.Owners(owners[:0], t.Key)
		for _, o := range owners {
			owned[o]++
		}
	}
	out := Members{
		Self:      v.Self(),
		Digest:    digestString(v.Digest()),
		Agree:     agree,
		Disagree:  differ,
		RingSize:  v.Size(),
		Replicas:  v.ReplicationFactor(),
		Members:   make([]Member, 0, len(peers)),
		Clock:     newClock(a.node.ClockStatus()),
		Generated: a.node.Now(),
		Discovery: a.discAgree.differences(peers),
	}
	if out.Disagree == nil {
		out.Disagree = []string{}
	}
	if out.Discovery == nil {
		out.Discovery = []Difference{}
	}
	out.DiscoveryAgree = len(out.Discovery) == 0
	for _, p := range peers {
		out.Members = append(out.Members, Member{
			Name:         p.Name,
			Addr:         p.Addr,
			State:        stateString(p.State),
			Self:         p.Self,
			HTTPAddr:     p.HTTPAddr,
			Version:      p.Version,
			Digest:       digestString(p.Digest),
			Started:      p.Started,
			OwnedTargets: owned[p.Name],
			Agrees:       p.Digest == v.Digest(),

			ClockOffsetSeconds:      p.ClockOffset.Seconds(),
			ClockUncertaintySeconds: p.ClockUncertainty.Seconds(),
			ClockSamples:            p.ClockSamples,
			ConfigDigest:            optionalDigest(p.Discovery.Config),
			TargetsDigest:           optionalDigest(p.Discovery.Targets),
		})
	}
	return out
}

func stateString(s gossip.State) string {
	if s == 0 {
		return "unknown"
	}
	return s.String()
}

func (w *webServer) apiMembers(rw http.ResponseWriter, _ *http.Request) {
	writeJSON(rw, w.a.clusterMembers(w.a.node.View()))
}

// ClusterTarget is one discovered target with its owners. URL and Labels
// are masked as Target's are; Key is computed from the real URL.
type ClusterTarget struct {
	Job    string            `json:"job"`
	URL    string            `json:"url"`
	Key    string            `json:"key"`
	Owners []string          `json:"owners"`
	Labels map[string]string `json:"labels"`
	// RingOwners, when set, are the ring's owners, which do not discover
	// the target: Owners scrape it in their place.
	RingOwners []string `json:"ringOwners,omitempty"`
	// Series is the target's smoothed size as the leader (or, on another
	// agent, the agent itself when it scrapes the target) measured it; 0
	// when not measured.
	Series float64 `json:"series"`
	// PlacedBy is "plan" when the load-aware plan moves the target off its
	// rendezvous owner, "hash" when rendezvous hashing places it.
	PlacedBy string `json:"placedBy"`
	// QuarantinedUntil, when set, is when the target's hold in quarantine
	// ends: until then no agent scrapes it (Owners is empty).
	QuarantinedUntil *time.Time `json:"quarantinedUntil,omitempty"`
}

// ClusterTargets is /api/v1/cluster/targets: where an agent places every
// discovered target.
type ClusterTargets struct {
	Digest  string          `json:"digest"`
	Jobs    map[string]int  `json:"jobs"`
	Targets []ClusterTarget `json:"targets"`
}

// Owners maps each target's instance label to its owners.
func (c ClusterTargets) Owners() map[string][]string {
	out := make(map[string][]string, len(c.Targets))
	for _, t := range c.Targets {
		out[t.Labels["instance"]] = t.Owners
	}
	return out
}

// clusterTargets lists every discovered target (optionally of one job) with
// its owners in the local ownership view. After convergence every agent
// returns the same list and digest.
func (a *Agent) clusterTargets(job string) ClusterTargets {
	v := a.node.View()
	pl := v.Placement()
	own := map[uint64]float64{}
	for _, l := range a.scraper.Loads() {
		own[l.Key] = l.Series
	}
	out := ClusterTargets{Digest: digestString(v.Digest()), Jobs: map[string]int{}, Targets: []ClusterTarget{}}
	for _, t := range a.scraper.Filter().Targets() {
		out.Jobs[t.Job]++
		if job != "" && t.Job != job {
			continue
		}
		lbls := map[string]string{}
		t.Labels.Range(func(l labels.Label) {
			if len(l.Name) < 2 || l.Name[:2] != "__" {
				lbls[l.Name] = a.showLabel(l.Name, l.Value)
			}
		})
		ringOwners := v.Owners(nil, t.Key)
		owners := a.discAgree.owners(t.Key, v.Time())
		if owners == nil {
			owners = []string{}
		}
		ct := ClusterTarget{Job: t.Job, URL: a.showURL(t.URL), Key: digestString(t.Key), Owners: owners, Labels: lbls, PlacedBy: "hash"}
		if pl.Planned(t.Key) {
			ct.PlacedBy = "plan"
		}
		if s, ok := a.planner.size(t.Key); ok {
			ct.Series = s.series
		} else {
			ct.Series = own[t.Key]
		}
		if until, held := a.quar.heldUntil(t.Key, v.Time()); held {
			ct.Owners, ct.QuarantinedUntil = []string{}, &until
			owners = nil
		}
		if !slices.Equal(owners, ringOwners) {
			// A stand-in: the ring's owner does not discover the target.
			ct.RingOwners = ringOwners
		}
		out.Targets = append(out.Targets, ct)
	}
	return out
}

func (w *webServer) apiClusterTargets(rw http.ResponseWriter, r *http.Request) {
	writeJSON(rw, w.a.clusterTargets(r.URL.Query().Get("job")))
}

// Quarantine is /api/v1/cluster/quarantine: the targets held now, the
// longest hold first, and the settings that decide.
type Quarantine struct {
	Enabled    bool                `json:"enabled"`
	Window     string              `json:"window"`
	Backoff    string              `json:"backoff"`
	MaxBackoff string              `json:"maxBackoff"`
	Targets    []QuarantinedTarget `json:"targets"`
}

func (a *Agent) quarantine() Quarantine {
	c := a.opts.Quarantine
	out := Quarantine{Enabled: c.enabled(), Window: c.Window.String(), Backoff: c.Backoff.String(), MaxBackoff: c.MaxBackoff.String(),
		Targets: a.quar.quarantined()}
	if out.Targets == nil {
		out.Targets = []QuarantinedTarget{}
	}
	return out
}

func (w *webServer) apiQuarantine(rw http.ResponseWriter, _ *http.Request) {
	writeJSON(rw, w.a.quarantine())
}

// Moves is /api/v1/cluster/moves: the recent ownership moves, newest
// first, with URLs masked as Target's are, and how many were ever recorded.
type Moves struct {
	Total uint64 `json:"total"`
	Moves []Move `json:"moves"`
}

func (w *webServer) apiMoves(rw http.ResponseWriter, _ *http.Request) {
	moves, total := w.a.moves.recent(moveLogSize)
	for i := range moves {
		moves[i].URL = w.a.showURL(moves[i].URL)
	}
	writeJSON(rw, Moves{Total: total, Moves: moves})
}

// Self is /api/v1/cluster/self: an agent's own figures, which peers' pages
// fetch.
type Self struct {
	Name         string         `json:"name"`
	Ready        bool           `json:"ready"`
	OwnedTargets int            `json:"ownedTargets"`
	Discovered   int            `json:"discoveredTargets"`
	ActiveSeries int64          `json:"activeSeries"`
	Gossip       GossipSecurity `json:"gossip"`
	// Consul is the agent's own Consul registration; absent without
	// --consul.register.
	Consul *ConsulRegistration `json:"consulRegistration,omitempty"`
}

// ConsulRegistration is how the agent's registration in Consul fares.
// Failing is true after a failed attempt, until one succeeds; Reason is one
// of shoal_consul_registration_failures_total's and Error Consul's answer.
type ConsulRegistration struct {
	Service      string    `json:"service"`
	OK           bool      `json:"ok"`
	Failing      bool      `json:"failing"`
	LastSuccess  time.Time `json:"lastSuccess"`
	Failures     int       `json:"failures"`
	FailingSince time.Time `json:"failingSince"`
	Reason       string    `json:"reason,omitempty"`
	Error        string    `json:"error,omitempty"`
}

// consulRegistration is the registration's status; nil without one.
func (a *Agent) consulRegistration() *ConsulRegistration {
	if a.regist == nil {
		return nil
	}
	st := a.regist.Status()
	return &ConsulRegistration{
		Service: st.Service, OK: st.OK, Failing: st.Failures > 0, LastSuccess: st.LastSuccess,
		Failures: st.Failures, FailingSince: st.FailingSince, Reason: st.Reason, Error: redact.String(st.LastError),
	}
}

// GossipSecurity is how an agent's gossip is protected. Encrypts is the
// fingerprint (first 8 hex digits of the SHA-256) of the key that encrypts,
// so that a rotation can be checked across the fleet without showing a key.
type GossipSecurity struct {
	Encrypted bool   `json:"encrypted"`
	Insecure  bool   `json:"insecure"`
	Keys      int    `json:"keys"`
	Encrypts  string `json:"encryptsWith,omitempty"`
}

func (a *Agent) self() Self {
	st := a.scraper.Filter().Stats()
	return Self{
		Name:         a.node.Name(),
		Ready:        a.Ready(),
		OwnedTargets: st.Owned,
		Discovered:   st.Discovered,
		ActiveSeries: a.activeSeries(),
		Gossip:       GossipSecurity(newPageGossip(a.node.Security())),
		Consul:       a.consulRegistration(),
	}
}

func (w *webServer) apiSelf(rw http.ResponseWriter, _ *http.Request) {
	writeJSON(rw, w.a.self())
}

// activeSeries is the number of series in the delivery queue's series
// cache: those scraped in the last minutes.
func (a *Agent) activeSeries() int64 { return int64(a.store.d.Series()) }

func (a *Agent) notReadyReason() string {
	select {
	case <-a.stopping:
		return "shutting down"
	default:
	}
	if !a.node.Ready() {
		return a.node.NotReadyReason()
	}
	if st := a.node.ClockStatus(); !st.InBound {
		return st.Reason()
	}
	if err := a.store.Health(); err != nil {
		return err.Error()
	}
	if r := a.discAgree.notReadyReason(); r != "" {
		return r
	}
	return "waiting for the first service discovery sync"
}
