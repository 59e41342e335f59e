package scrape

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	promscrape "github.com/prometheus/prometheus/scrape"

	"github.com/shoal-dev/shoal/internal/redact"
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
	// OnReshard, when set, is called on Run's goroutine after every pass (and
	// after every poke while nothing is discovered yet), once the result has
	// been handed to the scrape manager. It lets the caller follow ownership
	// changes off the gossip goroutine, reading the current view and Targets.
	// The next pass waits for it, so it must return promptly.
	OnReshard func()
	// Clock is the agent's clock, against which announced ownership
	// changes are judged (the Owner's instants are by it). Nil: the system
	// clock.
	Clock func() time.Time
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
	onReshard    func()
	now          func() time.Time
	metrics      *filterMetrics

	// scraper, when set, gets end-of-run staleness markers disabled for targets
	// that move to a peer. Manager sets it before Run.
	scraper activeTargets

	trigger chan struct{} // capacity 1: a pass is wanted

	mtx       sync.Mutex // guards the fields below
	configs   map[string]*config.ScrapeConfig
	snapshot  map[string][]*targetgroup.Group // last discovery update, read-only
	decisions map[uint64]bool                 // key -> owned, as of the last pass
	keys      keyCache                        // keys of snapshot's targets under configs; nil: none yet
	found     Discovered                      // what the last pass saw, read-only
	stats     Stats
	// nextPass is when the result of the last pass expires: the earliest
	// instant at which a scheduled ownership change lets a loop go.
	nextPass time.Time
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
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	return &Filter{
		now:          opts.Clock,
		logger:       logger.With("component", "filter"),
		owner:        opts.Owner,
		nodeName:     opts.NodeName,
		replicaLabel: model.LabelName(opts.ReplicaLabel),
		minInterval:  opts.MinReshardInterval,
		onReshard:    opts.OnReshard,
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
	f.keys = nil
	f.mtx.Unlock()
	f.poke()
	return nil
}

// Notify asks for a re-filter of the last snapshot because ownership may have
// changed. It never blocks; calls in a burst coalesce.
func (f *Filter) Notify() {
	f.poke()
}

func (f *Filter) poke() {
	select {
	case f.trigger <- struct{}{}:
	default:
	}
}

// Run reads discovery snapshots from in and sends the filtered ones to out
// until ctx is cancelled; then it returns nil. A closed in stops new snapshots
// but not re-filters. Sends to out block, so its reader must keep reading.
func (f *Filter) Run(ctx context.Context, in <-chan map[string][]*targetgroup.Group, out chan<- map[string][]*targetgroup.Group) error {
	timer := time.NewTimer(f.minInterval)
	timer.Stop()
	defer timer.Stop()
	// expiry fires when the last pass's result expires (a scheduled
	// ownership change has passed and a loop may go).
	expiry := time.NewTimer(time.Hour)
	expiry.Stop()
	defer expiry.Stop()

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
			f.keys = nil
			f.mtx.Unlock()
			pending = true
		case <-f.trigger:
			pending = true
		case <-expiry.C:
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
			f.resharded()
			continue // nothing discovered yet: the first snapshot goes at once
		}
		last = time.Now()
		if next := f.expires(); !next.IsZero() {
			expiry.Reset(next.Sub(f.now()))
		}
		select {
		case out <- res:
		case <-ctx.Done():
			return nil
		}
		f.resharded()
	}
}

func (f *Filter) resharded() {
	if f.onReshard != nil {
		f.onReshard()
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

	now := f.now()
	changes := f.owner.Changes()
	var maxTimeout time.Duration
	aheads := map[time.Duration]bool{}
	k := newKeyer()
	decisions := make(map[uint64]bool, len(f.decisions))
	movedOut := map[string]map[uint64]struct{}{}
	var movedIn, owned int
	var named []string // the first few moves, for the log
	found := make(Discovered, len(f.snapshot))
	if f.keys == nil {
		f.keys = keyCache{}
	}

	res := make(map[string][]*targetgroup.Group, len(f.snapshot))
	for job, groups := range f.snapshot {
		var jobKeys []uint64
		cfg := f.configs[job]
		if cfg != nil {
			maxTimeout = max(maxTimeout, time.Duration(cfg.ScrapeTimeout))
			aheads[startAhead(cfg)] = true
		}
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
			ref := groupRef{job: job, group: g}
			keys, cached := f.keys[ref]
			if !cached || len(keys) != len(g.Targets) {
				keys = make([]cachedKey, len(g.Targets))
				for i, t := range g.Targets {
					key, _, _, ok, err := k.key(cfg, t, g.Labels)
					if err != nil {
						f.logger.Debug("skipping invalid target", "job", job, "err", err)
					}
					keys[i] = cachedKey{key: key, ok: ok}
				}
				f.keys[ref] = keys
			}
			for i, t := range g.Targets {
				key, ok := keys[i].key, keys[i].ok
				if !ok {
					continue
				}
				jobKeys = append(jobKeys, key)
				own, seen := decisions[key]
				if !seen {
					prev, had := f.decisions[key]
					own = f.runs(key, now, startAhead(cfg), time.Duration(cfg.ScrapeTimeout), changes)
					decisions[key] = own
					switch {
					case own:
						owned++
						if had && !prev {
							movedIn++
							named = nameMoved(named, "in", job, t)
						}
					case had && prev:
						named = nameMoved(named, "out", job, t)
						if movedOut[job] == nil {
							movedOut[job] = map[uint64]struct{}{}
						}
						movedOut[job][key] = struct{}{}
					}
				}
				if own {
					og.Targets = append(og.Targets, f.carry(t, key))
				}
			}
		}
		res[job] = kept
		if cfg != nil {
			found[job] = NewJobTargets(jobKeys)
		}
	}
	f.found = found

	// Targets discovery removed are not in decisions and keep their normal
	// staleness markers; only those still discovered but now owned by a peer
	// are handed over silently. The peer's first scrape continues the series.
	f.disableStaleness(k, movedOut)

	f.decisions = decisions
	// The decisions expire when a loop must start ahead of a change or may
	// stop after one.
	f.nextPass = time.Time{}
	for _, c := range changes {
		wakes := []time.Time{c.Add(maxTimeout)}
		for a := range aheads {
			wakes = append(wakes, c.Add(-a))
		}
		for _, w := range wakes {
			if w.After(now) && (f.nextPass.IsZero() || w.Before(f.nextPass)) {
				f.nextPass = w
			}
		}
	}
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
		f.logger.Info("targets moved", "in", movedIn, "out", nMovedOut, "owned", owned, "discovered", len(decisions), "first", named)
	}
	return res, true
}

// movesNamed is how many moves one "targets moved" log line names.
const movesNamed = 4

// nameMoved appends "in job address" to named while it is short; an
// address's password is masked.
func nameMoved(named []string, dir, job string, t model.LabelSet) []string {
	if len(named) >= movesNamed {
		return named
	}
	return append(named, dir+" "+job+" "+redact.Address(string(t[model.AddressLabel])))
}

// startAheadSlack covers the time from a filter pass to a running scrape
// loop: the scrape manager's reload interval and its sync.
const startAheadSlack = 3 * time.Second

// startAhead is how long before an announced change a loop for a target the
// change brings here starts: its first scrape then falls on the last slot
// before the change (the fence discards it) and its next on the first owned
// slot. Starting earlier would only scrape the target twice for longer.
func startAhead(cfg *config.ScrapeConfig) time.Duration {
	return time.Duration(cfg.ScrapeInterval) + startAheadSlack
}

// runs reports whether this agent runs a scrape loop for key now: when it
// owns the key now, owned it within the last scrape timeout (a scrape of its
// last slot may still be in flight), or owns it after a change announced
// within ahead (the loop must be running before the first owned slot). The
// fence drops what such a loop scrapes outside ownership.
func (f *Filter) runs(key uint64, now time.Time, ahead, timeout time.Duration, changes []time.Time) bool {
	if f.owner.OwnsAt(key, now) {
		return true
	}
	for _, c := range changes {
		if c.After(now) && c.Sub(now) <= ahead && f.owner.OwnsAt(key, c) {
			return true
		}
		// Owned just before a recent change: keep the loop until its last
		// scrape has finished.
		if !c.After(now) && now.Sub(c) < timeout && f.owner.OwnsAt(key, c.Add(-time.Nanosecond)) {
			return true
		}
	}
	return false
}

// Discovered returns what the last pass found per job, keyed by job name; nil
// before the first pass. It is read-only.
func (f *Filter) Discovered() Discovered {
	f.mtx.Lock()
	defer f.mtx.Unlock()
	return f.found
}

// expires returns when the last pass's decisions expire, or the zero time.
func (f *Filter) expires() time.Time {
	f.mtx.Lock()
	defer f.mtx.Unlock()
	return f.nextPass
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
			if _, ok := keys[targetKey(t, k)]; ok {
				targets = append(targets, t)
			}
		}
		f.scraper.DisableEndOfRunStalenessMarkers(job, targets)
	}
}

// carry returns a copy of the owned target t with its key in KeyLabel, for
// the fence, and the replica label when one is configured. Discovery's label
// sets are shared with it and never modified.
func (f *Filter) carry(t model.LabelSet, key uint64) model.LabelSet {
	c := make(model.LabelSet, len(t)+2)
	maps.Copy(c, t)
	c[KeyLabel] = formatKey(key)
	if f.replicaLabel != "" {
		c[f.replicaLabel] = model.LabelValue(f.nodeName)
	}
	return c
}
