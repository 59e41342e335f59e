package scrape

import (
	"fmt"
	"sort"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
)

// Stats summarises the Filter's last pass and its history.
type Stats struct {
	// Discovered counts distinct keys (job and scrape URL) after relabeling.
	Discovered int
	// Owned counts the discovered keys this agent scrapes.
	Owned int
	// MovedIn and MovedOut count keys whose owner changed to or from this
	// agent while they stayed discovered, since the Filter was created.
	MovedIn, MovedOut uint64
	// Reshards counts filter passes.
	Reshards uint64
}

// Stats returns a snapshot of the filter's counters.
func (f *Filter) Stats() Stats {
	f.mtx.Lock()
	defer f.mtx.Unlock()
	return f.stats
}

// TargetInfo describes one discovered target and its ownership key.
type TargetInfo struct {
	Job string
	// URL is the scrape URL after relabeling.
	URL string
	// Labels are the target labels after relabeling, the internal "__" ones
	// included, as Prometheus computes them.
	Labels labels.Labels
	// Key is the ownership key; every agent computes the same one.
	Key uint64
	// Owned reports this agent's decision at the last pass.
	Owned bool
}

// Targets returns every target of the last snapshot that survives relabeling,
// sorted by job and URL, so the agent can show who owns what. It recomputes
// labels on each call rather than keeping them for every non-owned target.
func (f *Filter) Targets() []TargetInfo {
	f.mtx.Lock()
	defer f.mtx.Unlock()
	k := newKeyer()
	var res []TargetInfo
	for job, groups := range f.snapshot {
		cfg := f.configs[job]
		if cfg == nil {
			continue
		}
		for _, g := range groups {
			if g == nil {
				continue
			}
			for _, t := range g.Targets {
				key, url, lset, ok, _ := k.key(cfg, t, g.Labels)
				if !ok {
					continue
				}
				res = append(res, TargetInfo{Job: job, URL: url, Labels: lset, Key: key, Owned: f.decisions[key]})
			}
		}
	}
	sort.Slice(res, func(i, j int) bool {
		if res[i].Job != res[j].Job {
			return res[i].Job < res[j].Job
		}
		return res[i].URL < res[j].URL
	})
	return res
}

type filterMetrics struct {
	discovered prometheus.Gauge
	owned      prometheus.Gauge
	movedIn    prometheus.Counter
	movedOut   prometheus.Counter
	reshards   prometheus.Counter
}

func newFilterMetrics(reg prometheus.Registerer) (*filterMetrics, error) {
	moved := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shoal_targets_moved_total",
		Help: "Targets whose owner changed to (in) or from (out) this agent while they stayed discovered.",
	}, []string{"direction"})
	m := &filterMetrics{
		discovered: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "shoal_targets_discovered",
			Help: "Distinct targets (job and scrape URL) discovered after relabeling, across the cluster.",
		}),
		owned: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "shoal_targets_owned",
			Help: "Discovered targets this agent scrapes.",
		}),
		movedIn:  moved.WithLabelValues("in"),
		movedOut: moved.WithLabelValues("out"),
		reshards: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_targets_reshards_total",
			Help: "Passes splitting the discovered targets by ownership.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.discovered, m.owned, moved, m.reshards} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register filter metrics: %w", err)
		}
	}
	return m, nil
}

func (m *filterMetrics) observe(discovered, owned, movedIn, movedOut int) {
	m.discovered.Set(float64(discovered))
	m.owned.Set(float64(owned))
	m.movedIn.Add(float64(movedIn))
	m.movedOut.Add(float64(movedOut))
	m.reshards.Inc()
}
