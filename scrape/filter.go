package scrape

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	promscrape "github.com/prometheus/prometheus/scrape"
)

// DefaultMinReshardInterval is the default for FilterOptions.MinReshardInterval.
// A rolling restart of N agents produces about 2N membership events within
// seconds; one re-split per second keeps scrape pools from churning while
// still moving targets well within one typical scrape interval.
const DefaultMinReshardInterval = time.Second

// FilterOptions configures a Filter.
type FilterOptions struct {
	// Owner decides which keys this agent owns. Required.
	Owner Owner
	// NodeName is the value of the replica label. Required when ReplicaLabel is set.
	NodeName string
	// ReplicaLabel, when set, is added with the value NodeName to every owned
	// target, so a backend can deduplicate the R replicas of a series. It must
	// not start with "__": Prometheus strips such labels from scraped series.
	ReplicaLabel string
	// MinReshardInterval is the least time between two filter passes; bursts of
	// Notify and discovery updates inside it coalesce into one pass. Zero means
	// DefaultMinReshardInterval.
	MinReshardInterval time.Duration
}

// activeTargets is the part of Prometheus' scrape manager the Filter needs to
// hand targets over to peers without staleness markers.
type activeTargets interface {
	TargetsActive() map[string][]*promscrape.Target
	DisableEndOfRunStalenessMarkers(job string, targets []*promscrape.Target)
}

// Filter passes on, per job and per target group, only the targets this agent
// owns. Every group is forwarded, even when it ends up empty, so the scrape
// manager stops loops of targets that moved to a peer.
//
// Filter is safe for concurrent use; Run must be called once.
type Filter struct {
	logger       *slog.Logger
	owner        Owner
	nodeName     string
	replicaLabel model.LabelName
	minInterval  time.Duration
	metrics      *filterMetrics

	// scraper, when set, gets end-of-run staleness markers disabled for targets
	// that move to a peer. Manager sets it before Run.
	scraper activeTargets

	trigger chan struct{} // capacity 1: a pass is wanted
	frozen  atomic.Bool

	mtx       sync.Mutex // guards the fields below
	configs   map[string]*config.ScrapeConfig
	snapshot  map[string][]*targetgroup.Group // last discovery update, read-only
	decisions map[uint64]bool                 // key -> owned, as of the last pass
	stats     Stats
}

// NewFilter validates opts and registers the filter's metrics with reg. It
// starts nothing.
func NewFilter(opts FilterOptions, logger *slog.Logger, reg prometheus.Registerer) (*Filter, error) {
	if opts.Owner == nil {
		return nil, errors.New("filter owner is required")
	}
	if opts.MinReshardInterval < 0 {
		return nil, fmt.Errorf("min reshard interval must not be negative, got %s", opts.MinReshardInterval)
	}
	if opts.MinReshardInterval == 0 {
		opts.MinReshardInterval = DefaultMinReshardInterval
	}
	if err := validateReplicaLabel(opts.ReplicaLabel, opts.NodeName); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	metrics, err := newFilterMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &Filter{
		logger:       logger.With("component", "filter"),
		owner:        opts.Owner,
		nodeName:     opts.NodeName,
		replicaLabel: model.LabelName(opts.ReplicaLabel),
		minInterval:  opts.MinReshardInterval,
		metrics:      metrics,
		trigger:      make(chan struct{}, 1),
		configs:      map[string]*config.ScrapeConfig{},
	}, nil
}

func validateReplicaLabel(name, node string) error {
	switch {
	case name == "":
		return nil
	case strings.HasPrefix(name, model.ReservedLabelPrefix):
		return fmt.Errorf("replica label must not start with %q because Prometheus drops such target labels from series, got %q; put it in global.external_labels instead", model.ReservedLabelPrefix, name)
	case !model.LegacyValidation.IsValidLabelName(name):
		// Legacy names work with every remote-write backend.
		return fmt.Errorf("replica label must match [a-zA-Z_][a-zA-Z0-9_]*, got %q", name)
	case node == "":
		return fmt.Errorf("node name is required when replica label %q is set", name)
	}
	return nil
}

// ApplyConfig replaces the scrape configs used to relabel targets and compute
// their keys, and re-filters the last snapshot. Call it with the same config,
// and before, the scrape manager's ApplyConfig.
func (f *Filter) ApplyConfig(cfg *config.Config) error {
	scfgs, err := cfg.GetScrapeConfigs()
	if err != nil {
		return fmt.Errorf("get scrape configs: %w", err)
	}
	configs := make(map[string]*config.ScrapeConfig, len(scfgs))
	for _, sc := range scfgs {
		configs[sc.JobName] = sc
	}
	f.mtx.Lock()
	f.configs = configs
	f.mtx.Unlock()
	f.poke()
	return nil
}

// Notify asks for a re-filter of the last snapshot because ownership may have
// changed. It never blocks; calls in a burst coalesce. It does nothing after
// Freeze.
func (f *Filter) Notify() {
	if f.frozen.Load() {
		return
	}
	f.poke()
}

func (f *Filter) poke() {
	select {
	case f.trigger <- struct{}{}:
	default:
	}
}

// Freeze pins every target's ownership to its last decision. The agent calls
// it when it starts leaving, so that it does not re-filter itself to zero
// targets (writing staleness markers) while peers take over. Discovery updates
// still pass through; targets first seen after Freeze are not owned.
func (f *Filter) Freeze() {
	f.frozen.Store(true)
}

// Run reads discovery snapshots from in and sends the filtered ones to out
// until ctx is cancelled; then it returns nil. A closed in stops new snapshots
// but not re-filters. Sends to out block, so its reader must keep reading.
func (f *Filter) Run(ctx context.Context, in <-chan map[string][]*targetgroup.Group, out chan<- map[string][]*targetgroup.Group) error {
	timer := time.NewTimer(f.minInterval)
	timer.Stop()
	defer timer.Stop()

	var (
		pending bool // a pass is wanted
		waiting bool // timer is armed for the rate limit
		last    time.Time
	)
	for {
		select {
		case <-ctx.Done():
			return nil
		case tsets, ok := <-in:
			if !ok {
				in = nil
				continue
			}
			f.mtx.Lock()
			f.snapshot = tsets
			f.mtx.Unlock()
			pending = true
		case <-f.trigger:
			pending = true
		case <-timer.C:
			waiting = false
		}
		if !pending || waiting {
			continue
		}
		if wait := f.minInterval - time.Since(last); wait > 0 {
			timer.Reset(wait)
			waiting = true
			continue
		}
		pending = false
		res, ok := f.pass()
		if !ok {
			continue // nothing discovered yet: the first snapshot goes at once
		}
		last = time.Now()
		select {
		case out <- res:
		case <-ctx.Done():
			return nil
		}
	}
}

// pass splits the last snapshot by ownership. It returns false when there is
// no snapshot yet.
func (f *Filter) pass() (map[string][]*targetgroup.Group, bool) {
	f.mtx.Lock()
	defer f.mtx.Unlock()
	if f.snapshot == nil {
		return nil, false
	}

	frozen := f.frozen.Load()
	ready := !frozen && f.owner.Ready()
	k := newKeyer()
	decisions := make(map[uint64]bool, len(f.decisions))
	movedOut := map[string]map[uint64]struct{}{}
	var movedIn, owned int

	res := make(map[string][]*targetgroup.Group, len(f.snapshot))
	for job, groups := range f.snapshot {
		cfg := f.configs[job]
		if cfg == nil {
			// Discovery can run ahead of a reload; ApplyConfig re-filters.
			f.logger.Debug("no scrape config for discovered job", "job", job)
		}
		kept := make([]*targetgroup.Group, 0, len(groups))
		for _, g := range groups {
			if g == nil {
				continue
			}
			og := &targetgroup.Group{Source: g.Source, Labels: g.Labels}
			kept = append(kept, og)
			if cfg == nil {
				continue
			}
			for _, t := range g.Targets {
				key, _, _, ok, err := k.key(cfg, t, g.Labels)
				if !ok {
					if err != nil {
						f.logger.Debug("skipping invalid target", "job", job, "err", err)
					}
					continue
				}
				own, seen := decisions[key]
				if !seen {
					prev, had := f.decisions[key]
					if frozen {
						own = had && prev
					} else {
						own = ready && f.owner.Owns(key)
					}
					decisions[key] = own
					switch {
					case own:
						owned++
						if had && !prev {
							movedIn++
						}
					case had && prev:
						if movedOut[job] == nil {
							movedOut[job] = map[uint64]struct{}{}
						}
						movedOut[job][key] = struct{}{}
					}
				}
				if own {
					og.Targets = append(og.Targets, f.withReplica(t))
				}
			}
		}
		res[job] = kept
	}

	// Targets discovery removed are not in decisions and keep their normal
	// staleness markers; only those still discovered but now owned by a peer
	// are handed over silently. The peer's first scrape continues the series.
	f.disableStaleness(k, movedOut)

	f.decisions = decisions
	nMovedOut := 0
	for _, keys := range movedOut {
		nMovedOut += len(keys)
	}
	f.stats.Discovered = len(decisions)
	f.stats.Owned = owned
	f.stats.MovedIn += uint64(movedIn)
	f.stats.MovedOut += uint64(nMovedOut)
	f.stats.Reshards++
	f.metrics.observe(len(decisions), owned, movedIn, nMovedOut)
	if movedIn > 0 || nMovedOut > 0 {
		f.logger.Info("targets moved", "in", movedIn, "out", nMovedOut, "owned", owned, "discovered", len(decisions))
	}
	return res, true
}

// disableStaleness turns off end-of-run staleness markers for the scrape
// loops of targets that moved to a peer, before the scrape manager sees the
// snapshot without them. A target the manager has not started yet needs
// nothing: it will never run here.
//
// The flag is sticky on the loop. If a target moves out and back within one
// scrape-manager reload interval its loop is never stopped, and it would end
// later without staleness markers; the peer that owns it then writes them.
func (f *Filter) disableStaleness(k *keyer, movedOut map[string]map[uint64]struct{}) {
	if f.scraper == nil || len(movedOut) == 0 {
		return
	}
	active := f.scraper.TargetsActive()
	for job, keys := range movedOut {
		var targets []*promscrape.Target
		for _, t := range active[job] {
			if _, ok := keys[k.sum(job, t.URL().String())]; ok {
				targets = append(targets, t)
			}
		}
		f.scraper.DisableEndOfRunStalenessMarkers(job, targets)
	}
}

func (f *Filter) withReplica(t model.LabelSet) model.LabelSet {
	if f.replicaLabel == "" {
		return t
	}
	c := t.Clone()
	c[f.replicaLabel] = model.LabelValue(f.nodeName)
	return c
}
