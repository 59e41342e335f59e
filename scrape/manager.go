package scrape

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/labels"
	promscrape "github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/storage"
)

// This file holds every call into Prometheus' scrape manager: its signatures
// move between releases.

// DefaultDiscoveryReloadInterval is how often the scrape manager applies new
// target sets. Prometheus uses 5 s (--scrape.discovery-reload-interval); in a
// cluster that delay is added to every ownership move, because a target
// handed over or orphaned by a dead agent is not scraped before its new owner
// reloads. The Filter already rate-limits re-shards (MinReshardInterval), so
// 1 s costs at most one reload per second during churn and nothing otherwise.
const DefaultDiscoveryReloadInterval = time.Second

// Options configures a Manager.
type Options struct {
	// Owner decides which targets this agent scrapes. Required.
	Owner Owner
	// Discovered delivers discovery snapshots, usually sd.Discovery.SyncCh().
	// Required.
	Discovered <-chan map[string][]*targetgroup.Group
	// Config holds the flags' settings (the replica label).
	Config
	// NodeName, Config.ReplicaLabel, MinReshardInterval and OnReshard go to
	// the Filter (see FilterOptions).
	NodeName           string
	MinReshardInterval time.Duration
	OnReshard          func()
	// DiscoveryReloadInterval throttles how often the scrape manager applies
	// filtered snapshots. Zero means DefaultDiscoveryReloadInterval.
	DiscoveryReloadInterval time.Duration
	// AppendMetadata writes metric metadata to the WAL, which remote write
	// 2.0 sends along with samples.
	AppendMetadata bool
	// PhaseSeed, when set, replaces the host name in Prometheus' scrape
	// phase seed. Prometheus offsets each target's scrapes within the
	// interval by hash(target) XOR hash(host name + external labels), so a
	// target that moves to another agent is scraped at another phase: the
	// handoff then misses or doubles a sample. With one seed for the whole
	// cluster (its name) every agent scrapes a given target at the same
	// phase, and the new owner's first scrape lands on the slot after the
	// old owner's last. Load is still spread: the phase depends on the
	// target. External labels are left out of the seed, since they often
	// differ per agent (a replica or pod label) and would shift the phase
	// just as the host name does. Empty keeps Prometheus' seed (host name
	// and external labels).
	PhaseSeed string
	// Clock is the agent's clock, which the Owner's instants are by (see
	// FilterOptions.Clock). Nil: the system clock.
	Clock func() time.Time
	// TimestampShift is added to the timestamp of every scraped sample
	// before the fence judges and writes it. Prometheus' scrape engine
	// stamps samples with the system clock and takes no other; with
	// --debug.clock-offset the agent stamps them, as a host whose clock is
	// that far off would, with its shifted clock. Zero outside tests.
	TimestampShift time.Duration
}

// Manager runs Prometheus' scrape manager on the targets its Filter lets
// through.
type Manager struct {
	logger     *slog.Logger
	discovered <-chan map[string][]*targetgroup.Group
	filter     *Filter
	fence      *fence
	prom       *promscrape.Manager
	phaseSeed  string // the cluster's phase seed in use; empty: Prometheus'
}

// New builds the filter and the Prometheus scrape manager, whose metrics it
// registers with reg. It starts nothing.
//
// The appendable goes into scrape.NewManager's AppendableV2 slot, the one
// Prometheus 3.15 itself uses (cmd/prometheus passes its fanout storage there)
// and the only one left once the v1 Appendable is removed. The agent WAL
// (tsdb/agent.DB), remote.Storage and storage.Fanout all implement it, so no
// v1 fallback is needed.
func New(opts Options, logger *slog.Logger, appendable storage.AppendableV2, reg prometheus.Registerer) (*Manager, error) {
	if appendable == nil {
		return nil, errors.New("scrape appendable is required")
	}
	if opts.Discovered == nil {
		return nil, errors.New("discovered targets channel is required")
	}
	if opts.DiscoveryReloadInterval < 0 {
		return nil, fmt.Errorf("discovery reload interval must not be negative, got %s", opts.DiscoveryReloadInterval)
	}
	if opts.DiscoveryReloadInterval == 0 {
		opts.DiscoveryReloadInterval = DefaultDiscoveryReloadInterval
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	filter, err := NewFilter(FilterOptions{
		Owner:              opts.Owner,
		NodeName:           opts.NodeName,
		ReplicaLabel:       opts.ReplicaLabel,
		MinReshardInterval: opts.MinReshardInterval,
		OnReshard:          opts.OnReshard,
		Clock:              opts.Clock,
	}, logger, reg)
	if err != nil {
		return nil, err
	}
	promOpts := &promscrape.Options{
		DiscoveryReloadInterval: model.Duration(opts.DiscoveryReloadInterval),
		AppendMetadata:          opts.AppendMetadata,
		// Apply the first snapshot at once: the agent reports ready only after
		// it, and waiting a reload interval would leave a gap after handoff.
		DiscoveryReloadOnStartup: true,
		// Puts the target in the appender's context, where the fence reads
		// it to judge each scrape against the ownership schedule.
		PassMetadataInContext: true,
	}
	phaseSeed := opts.PhaseSeed
	if phaseSeed != "" {
		if err := setPhaseSeed(promOpts, phaseSeed); err != nil {
			logger.Warn("cannot align scrape phases across the cluster; moved targets may be scraped at a new phase", "err", err)
			phaseSeed = ""
		}
	}
	fence, err := newFence(opts.Owner, appendable, phaseSeed, reg)
	if err != nil {
		return nil, err
	}
	fence.shift = opts.TimestampShift.Milliseconds()
	if opts.Clock != nil {
		fence.now = opts.Clock
	}
	prom, err := promscrape.NewManager(promOpts, logger.With("component", "scrape manager"), nil, nil, fence, reg)
	if err != nil {
		return nil, fmt.Errorf("create scrape manager: %w", err)
	}
	filter.scraper = prom
	return &Manager{
		logger:     logger.With("component", "scrape"),
		discovered: opts.Discovered,
		filter:     filter,
		fence:      fence,
		prom:       prom,
		phaseSeed:  phaseSeed,
	}, nil
}

// setPhaseSeed sets the unexported Options.fqdn of Prometheus' scrape
// manager, the host name its phase seed is computed from (manager.go,
// setOffsetSeed). Prometheus has no public option for it; the field is
// documented there as the test hook that replaces the FQDN lookup.
// TestPhaseSeedAlignsScrapes fails if an upgrade renames it.
func setPhaseSeed(o *promscrape.Options, seed string) error {
	f := reflect.ValueOf(o).Elem().FieldByName("fqdn")
	if !f.IsValid() || f.Kind() != reflect.String {
		return errors.New("prometheus scrape.Options has no string field fqdn")
	}
	reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().SetString(seed)
	return nil
}

// ApplyConfig applies cfg's scrape configs to the scrape manager and then to
// the filter, so the manager knows every job before targets for it arrive.
func (m *Manager) ApplyConfig(cfg *config.Config) error {
	promCfg := cfg
	if m.phaseSeed != "" {
		// Prometheus' scrape manager reads the external labels only for
		// the phase seed; with a cluster seed they stay out of it.
		c := *cfg
		c.GlobalConfig.ExternalLabels = labels.EmptyLabels()
		promCfg = &c
	}
	if err := m.prom.ApplyConfig(promCfg); err != nil {
		return fmt.Errorf("apply scrape config: %w", err)
	}
	m.fence.setExternalLabels(promCfg.GlobalConfig.ExternalLabels)
	return m.filter.ApplyConfig(cfg)
}

// Run filters discovery snapshots and scrapes the owned targets until ctx is
// cancelled. It then stops every scrape loop, waits for them and returns nil.
// Loops stopped this way write no staleness markers: peers take the targets
// over.
func (m *Manager) Run(ctx context.Context) error {
	filtered := make(chan map[string][]*targetgroup.Group)
	filterDone := make(chan struct{})
	promDone := make(chan error, 1)

	go func() {
		defer close(filterDone)
		_ = m.filter.Run(ctx, m.discovered, filtered)
	}()
	go func() {
		promDone <- m.prom.Run(filtered)
	}()

	<-ctx.Done()
	<-filterDone
	m.logger.Info("stopping scrape manager")
	// Stop blocks until every scrape loop has exited, then ends prom.Run.
	m.prom.Stop()
	if err := <-promDone; err != nil {
		m.logger.Warn("scrape manager ended with error", "err", err)
	}
	return nil
}

// Filter returns the ownership filter, for Notify, Stats and Targets.
func (m *Manager) Filter() *Filter {
	return m.filter
}

// TargetsActive returns the targets being scraped, by job.
func (m *Manager) TargetsActive() map[string][]*promscrape.Target {
	return m.prom.TargetsActive()
}

// Get returns the Prometheus scrape manager. It makes Manager a
// remote.ReadyScrapeManager, which remote write uses to send metric metadata.
func (m *Manager) Get() (*promscrape.Manager, error) {
	return m.prom, nil
}

// InFlight returns the keys of the targets whose scrape has been in progress
// (request sent, samples not yet committed) for longer than d, the longest
// first, at most limit: the scrapes that would be in progress if this agent
// died now of one that exhausts its memory. It is safe for concurrent use.
func (m *Manager) InFlight(d time.Duration, limit int) []uint64 { return m.fence.inFlight(d, limit) }
