package agent

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	promscrape "github.com/prometheus/prometheus/scrape"

	"github.com/shoal-dev/shoal/gossip"
	"github.com/shoal-dev/shoal/scrape"
)

// apiResponse is Prometheus' API envelope.
type apiResponse struct {
	Status string `json:"status"`
	Data   any    `json:"data,omitempty"`
	Error  string `json:"error,omitempty"`
}

func writeJSON(rw http.ResponseWriter, data any) {
	rw.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(rw)
	_ = enc.Encode(apiResponse{Status: "success", Data: data})
}

// apiTarget is one target in Prometheus' /api/v1/targets shape.
type apiTarget struct {
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
}

type apiTargets struct {
	ActiveTargets  []apiTarget `json:"activeTargets"`
	DroppedTargets []any       `json:"droppedTargets"`
}

// apiTargets answers like Prometheus' /api/v1/targets, with this agent's
// (owned) targets only.
func (w *webServer) apiTargets(rw http.ResponseWriter, r *http.Request) {
	state := r.URL.Query().Get("state")
	out := apiTargets{ActiveTargets: []apiTarget{}, DroppedTargets: []any{}}
	if state == "" || state == "any" || state == "active" {
		out.ActiveTargets = w.a.activeTargets()
	}
	writeJSON(rw, out)
}

func (a *Agent) activeTargets() []apiTarget {
	res := []apiTarget{}
	lb := labels.NewBuilder(labels.EmptyLabels())
	for pool, ts := range a.scraper.TargetsActive() {
		for _, t := range ts {
			lastErr := ""
			if err := t.LastError(); err != nil {
				lastErr = err.Error()
			}
			u := t.URL().String()
			res = append(res, apiTarget{
				DiscoveredLabels:   discoveredLabels(t, lb),
				Labels:             t.Labels(lb),
				ScrapePool:         pool,
				ScrapeURL:          u,
				GlobalURL:          u,
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

// discoveredLabels are t's labels before relabeling as discovery found them:
// without the key the filter carries to the fence, which is shoal's.
func discoveredLabels(t *promscrape.Target, lb *labels.Builder) labels.Labels {
	return labels.NewBuilder(t.DiscoveredLabels(lb)).Del(scrape.KeyLabel).Labels()
}

// apiMember is one member in /api/v1/cluster/members.
type apiMember struct {
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
}

type apiMembers struct {
	Self      string      `json:"self"`
	Digest    string      `json:"digest"`
	Agree     bool        `json:"agree"`
	Disagree  []string    `json:"disagree"`
	RingSize  int         `json:"ringSize"`
	Replicas  int         `json:"replicationFactor"`
	Members   []apiMember `json:"members"`
	Generated time.Time   `json:"generated"`
}

func digestString(d uint64) string { return fmt.Sprintf("%016x", d) }

// clusterMembers is what /api/v1/cluster/members and the page show, as of
// view v.
func (a *Agent) clusterMembers(v gossip.View) apiMembers {
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
	out := apiMembers{
		Self:      v.Self(),
		Digest:    digestString(v.Digest()),
		Agree:     agree,
		Disagree:  differ,
		RingSize:  v.Size(),
		Replicas:  v.ReplicationFactor(),
		Members:   make([]apiMember, 0, len(peers)),
		Generated: time.Now(),
	}
	if out.Disagree == nil {
		out.Disagree = []string{}
	}
	for _, p := range peers {
		out.Members = append(out.Members, apiMember{
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

// apiClusterTarget is one discovered target with its owners.
type apiClusterTarget struct {
	Job    string            `json:"job"`
	URL    string            `json:"url"`
	Key    string            `json:"key"`
	Owners []string          `json:"owners"`
	Labels map[string]string `json:"labels"`
}

type apiClusterTargets struct {
	Digest  string             `json:"digest"`
	Jobs    map[string]int     `json:"jobs"`
	Targets []apiClusterTarget `json:"targets"`
}

// clusterTargets lists every discovered target (optionally of one job) with
// its owners in the local ownership view. After convergence every agent
// returns the same list and digest.
func (a *Agent) clusterTargets(job string) apiClusterTargets {
	v := a.node.View()
	out := apiClusterTargets{Digest: digestString(v.Digest()), Jobs: map[string]int{}, Targets: []apiClusterTarget{}}
	for _, t := range a.scraper.Filter().Targets() {
		out.Jobs[t.Job]++
		if job != "" && t.Job != job {
			continue
		}
		lbls := map[string]string{}
		t.Labels.Range(func(l labels.Label) {
			if len(l.Name) < 2 || l.Name[:2] != "__" {
				lbls[l.Name] = l.Value
			}
		})
		owners := v.Owners(nil, t.Key)
		if owners == nil {
			owners = []string{}
		}
		out.Targets = append(out.Targets, apiClusterTarget{
			Job: t.Job, URL: t.URL, Key: digestString(t.Key), Owners: owners, Labels: lbls,
		})
	}
	return out
}

func (w *webServer) apiClusterTargets(rw http.ResponseWriter, r *http.Request) {
	writeJSON(rw, w.a.clusterTargets(r.URL.Query().Get("job")))
}

func (w *webServer) apiMoves(rw http.ResponseWriter, _ *http.Request) {
	moves, total := w.a.moves.recent(moveLogSize)
	writeJSON(rw, map[string]any{"total": total, "moves": moves})
}

// apiSelf is this agent's own figures, which peers' pages fetch.
type apiSelf struct {
	Name         string    `json:"name"`
	Ready        bool      `json:"ready"`
	OwnedTargets int       `json:"ownedTargets"`
	Discovered   int       `json:"discoveredTargets"`
	ActiveSeries int64     `json:"activeSeries"`
	Gossip       apiGossip `json:"gossip"`
}

// apiGossip is how an agent's gossip is protected. Encrypts is the
// fingerprint (first 8 hex digits of the SHA-256) of the key that encrypts,
// so that a rotation can be checked across the fleet without showing a key.
type apiGossip struct {
	Encrypted bool   `json:"encrypted"`
	Insecure  bool   `json:"insecure"`
	Keys      int    `json:"keys"`
	Encrypts  string `json:"encryptsWith,omitempty"`
}

func (a *Agent) self() apiSelf {
	st := a.scraper.Filter().Stats()
	return apiSelf{
		Name:         a.node.Name(),
		Ready:        a.Ready(),
		OwnedTargets: st.Owned,
		Discovered:   st.Discovered,
		ActiveSeries: a.activeSeries(),
		Gossip:       apiGossip(newPageGossip(a.node.Security())),
	}
}

func (w *webServer) apiSelf(rw http.ResponseWriter, _ *http.Request) {
	writeJSON(rw, w.a.self())
}

// activeSeries reads the agent WAL's active series gauge from the registry.
func (a *Agent) activeSeries() int64 {
	mfs, err := a.reg.Gather()
	if err != nil {
		return -1
	}
	for _, mf := range mfs {
		if mf.GetName() == "prometheus_agent_active_series" && len(mf.GetMetric()) > 0 {
			return int64(mf.GetMetric()[0].GetGauge().GetValue())
		}
	}
	return 0
}

func (a *Agent) notReadyReason() string {
	select {
	case <-a.stopping:
		return "shutting down"
	default:
	}
	if !a.node.Ready() {
		return a.node.NotReadyReason()
	}
	return "waiting for the first service discovery sync"
}
