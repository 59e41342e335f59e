// Package sd connects shoal to service discovery: Prometheus' discovery
// manager for the targets of scrape_configs, and Consul for the agent's own
// registration and for finding peers to join.
package sd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/discovery/targetgroup"

	// The service discovery mechanisms shoal supports. Each registers its
	// scrape_config section (consul_sd_configs, ...) with Prometheus' config
	// package; discovery/install would pull in every cloud SDK.
	_ "github.com/prometheus/prometheus/discovery/consul"
	_ "github.com/prometheus/prometheus/discovery/dns"
	_ "github.com/prometheus/prometheus/discovery/file"
	_ "github.com/prometheus/prometheus/discovery/http"
)

// This file holds every call into Prometheus' discovery package: its
// signatures move between releases.

// managerName labels the discovery manager's metrics, as Prometheus does for
// its scrape discovery (prometheus_sd_discovered_targets{name="scrape"}).
const managerName = "scrape"

// Discovery runs Prometheus' discovery manager for the scrape_configs of the
// loaded config.
type Discovery struct {
	logger *slog.Logger
	mgr    *discovery.Manager
	// cancel ends mgr: Prometheus' manager takes its context at construction,
	// so Run cancels this one when its own ctx ends.
	cancel context.CancelFunc

	mtx     sync.Mutex // guards the fields below
	running bool
	stopped bool
	pending map[string]discovery.Configs // config applied before Run
}

// New creates the discovery manager and registers its metrics, and those of
// every supported SD mechanism, with reg. It starts nothing.
func New(logger *slog.Logger, reg prometheus.Registerer) (*Discovery, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry() // discovery requires a registerer; nil means unexported
	}
	sdMetrics, err := discovery.CreateAndRegisterSDMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("register service discovery metrics: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	logger = logger.With("component", "discovery")
	mgr := discovery.NewManager(ctx, logger, reg, sdMetrics, discovery.Name(managerName))
	if mgr == nil {
		// NewManager logs the reason and returns nil, e.g. on duplicate metrics.
		cancel()
		return nil, errors.New("create discovery manager: see log for the reason")
	}
	return &Discovery{logger: logger, mgr: mgr, cancel: cancel}, nil
}

// ApplyConfig replaces the discovery configs with those of cfg's scrape
// configs, static_configs included. Before Run it only records them, so that
// no discoverer starts before Run; Run applies the last ones.
func (d *Discovery) ApplyConfig(cfg *config.Config) error {
	scfgs, err := cfg.GetScrapeConfigs()
	if err != nil {
		return fmt.Errorf("get scrape configs: %w", err)
	}
	c := make(map[string]discovery.Configs, len(scfgs))
	for _, sc := range scfgs {
		c[sc.JobName] = sc.ServiceDiscoveryConfigs
	}

	d.mtx.Lock()
	defer d.mtx.Unlock()
	if !d.running {
		d.pending = c
		return nil
	}
	if err := d.mgr.ApplyConfig(c); err != nil {
		return fmt.Errorf("apply discovery config: %w", err)
	}
	return nil
}

// Run starts the discoverers and sends target updates on SyncCh until ctx is
// cancelled; then it stops them, closes SyncCh and returns nil. It returns an
// error if the config recorded before Run cannot be applied. Run can be called
// only once.
func (d *Discovery) Run(ctx context.Context) error {
	d.mtx.Lock()
	if d.running || d.stopped {
		d.mtx.Unlock()
		return errors.New("discovery is already running or stopped")
	}
	d.running = true
	var applyErr error
	if d.pending != nil {
		applyErr = d.mgr.ApplyConfig(d.pending)
		d.pending = nil
	}
	d.mtx.Unlock()

	done := make(chan struct{})
	go func() {
		defer close(done)
		// Returns the manager context's error once cancel is called.
		_ = d.mgr.Run()
	}()
	if applyErr == nil {
		<-ctx.Done()
	}

	d.mtx.Lock()
	d.running, d.stopped = false, true
	d.cancel()
	d.mtx.Unlock()
	<-done
	if applyErr != nil {
		return fmt.Errorf("apply discovery config: %w", applyErr)
	}
	return nil
}

// SyncCh delivers the full set of target groups, by job, whenever it changes,
// throttled by Prometheus (at most every 5s after a first quick update). It is
// closed when Run returns.
func (d *Discovery) SyncCh() <-chan map[string][]*targetgroup.Group {
	return d.mgr.SyncCh()
}
