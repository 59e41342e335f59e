// Package agent wires one shoal process together: gossip membership and the
// ring, Prometheus service discovery, the ownership filter and scrape engine,
// the agent-mode WAL with remote write, Consul self-registration, and the
// HTTP API and status page.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/shoal-dev/shoal/gossip"
	"github.com/shoal-dev/shoal/internal/goruntime"
	"github.com/shoal-dev/shoal/internal/redact"
	"github.com/shoal-dev/shoal/scrape"
	"github.com/shoal-dev/shoal/sd"
)

// Agent is one shoal process. Create it with New and start it with Run.
type Agent struct {
	opts   Options
	logger *slog.Logger
	reg    *prometheus.Registry
	// preds asks peers how far they delivered, for handoff holds.
	preds *predecessors

	cfgMu sync.Mutex
	cfg   *Config

	node    *gossip.Node
	disc    *sd.Discovery
	scraper *scrape.Manager
	store   *Storage
	regist  *sd.Registration
	// consulToken is the --consul.token-file token, re-read on reload and
	// when the file changes; nil without one.
	consulToken *sd.TokenFile
	// peerWatch follows the Consul services named by consul+ join specs.
	peerWatch []*sd.PeerProvider
	moves     *moveLog
	// hist samples the counters the status page charts.
	hist *history
	web  *webServer
	// discAgree compares what members discover and places targets their
	// ring owner does not see (discovery.go); it is the scrape Owner.
	discAgree *discovery
	// planner follows the cluster's load-aware plans and, on the leader,
	// makes them (plan.go).
	planner *planner
	// quar holds targets that kill their owners out of the ring
	// (quarantine.go); it is the scrape Owner, over discAgree.
	quar *quarantineOwner

	// synced is set once the first discovery snapshot has been filtered, or
	// a config without scrape jobs (of which no snapshot ever comes) applied.
	synced atomic.Bool

	reloadOK, reloadTime prometheus.Gauge
	// quit receives every stop request (Quit): the first starts the stop
	// sequence, each later one cuts the current stage short.
	quit         chan struct{}
	stopping     chan struct{}
	stoppingOnce sync.Once
	closeOnce    sync.Once
	closeErr     error
}

// New validates opts, loads the config file and builds every component. It
// starts nothing: no listener is opened and no goroutine runs until Run. An
// invalid option or config file is a usage error (IsUsageError), found
// before any file or port is opened.
func New(opts Options, logger *slog.Logger, reg *prometheus.Registry) (*Agent, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// Every component's logger derives from this one, Prometheus' remote
	// write, scrape and discovery included: none logs a URL's password.
	logger = redact.Logger(logger)
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	cfg, err := loadConfig(opts, logger)
	if err != nil {
		return nil, usageError{err}
	}
	a := &Agent{
		opts:     opts,
		logger:   logger,
		reg:      reg,
		cfg:      cfg,
		moves:    newMoveLog(moveLogSize),
		hist:     newHistory(historyStep, historyIntervals),
		quit:     make(chan struct{}, maxQuits),
		stopping: make(chan struct{}),
	}
	f := promauto.With(reg)
	a.reloadOK = f.NewGauge(prometheus.GaugeOpts{
		Name: "shoal_config_last_reload_successful",
		Help: "Whether the last configuration reload attempt was successful.",
	})
	a.reloadTime = f.NewGauge(prometheus.GaugeOpts{
		Name: "shoal_config_last_reload_success_timestamp_seconds",
		Help: "Timestamp of the last successful configuration reload.",
	})
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "shoal_build_info",
		Help:        "A metric with a constant '1' value labeled by the shoal version.",
		ConstLabels: prometheus.Labels{"version": opts.Version},
	}, func() float64 { return 1 })

	if err := a.buildCluster(); err != nil {
		return nil, err
	}
	if err := a.buildPipeline(cfg); err != nil {
		return nil, err
	}
	a.registerOpsMetrics(f)
	return a, nil
}

// buildCluster builds the Consul registration, the peer watch and the
// gossip node.
func (a *Agent) buildCluster() error {
	if a.opts.Consul.TokenFile != "" && a.opts.Consul.Address != "" {
		t, err := sd.OpenTokenFile(a.opts.Consul.TokenFile, a.logger)
		if err != nil {
			return usageError{err}
		}
		a.consulToken = t
	}
	consul, err := a.opts.Consul.Client(a.consulToken)
	if err != nil {
		return err
	}
	specs := make([]joinSpec, 0, len(a.opts.Join))
	for _, j := range a.opts.Join {
		s, err := parseJoin(j)
		if err != nil {
			return err
		}
		specs = append(specs, s)
		if s.kind == "consul" {
			p, err := sd.NewPeerProvider(consul, s.host, a.logger)
			if err != nil {
				return err
			}
			a.peerWatch = append(a.peerWatch, p)
		}
	}
	if a.opts.Registration.Service != "" {
		if a.regist, err = a.newRegistration(consul); err != nil {
			return err
		}
	}
	g := a.opts.Gossip
	g.HTTPAddr = a.advertisedHTTP()
	g.Version = a.opts.Version
	if len(specs) > 0 {
		// Without --cluster.join the node is a cluster of one at once; with
		// it, it owns nothing until a peer accepts it (or --cluster.bootstrap).
		g.Peers = peerProvider(specs, net.DefaultResolver, consulPeerList(consul, a.logger))
	}
	g.Resume = takeRestartMarker(a.opts.Storage.Path, g.Name, a.logger)
	a.node, err = gossip.New(g, a.logger, a.reg)
	return err
}

func (a *Agent) newRegistration(consul *api.Client) (*sd.Registration, error) {
	host, port, err := splitJoinHostPort(a.advertisedHTTP())
	if err != nil {
		return nil, fmt.Errorf("--web.listen-address %q: %w", a.opts.Web.ListenAddress, err)
	}
	return sd.NewRegistration(consul, sd.RegistrationOptions{
		RegistrationConfig: a.opts.Registration,
		ID:                 a.opts.Gossip.Name,
		Address:            host,
		Port:               port,
		GossipAddr:         a.gossipAdvertise(),
		Version:            a.opts.Version,
	}, a.logger, a.reg)
}

// consulPeerList lists the agents registered in Consul for consul+ joins;
// nil without Consul.
func consulPeerList(c *api.Client, logger *slog.Logger) consulPeers {
	if c == nil {
		return nil
	}
	return func(ctx context.Context, service string) ([]string, error) {
		p, err := sd.NewPeerProvider(c, service, logger)
		if err != nil {
			return nil, err
		}
		return p.Peers(ctx)
	}
}

// buildPipeline builds discovery, the WAL with remote write, the scrape
// manager with its ownership filter and the web server, and applies cfg.
func (a *Agent) buildPipeline(cfg *Config) (err error) {
	if a.disc, err = sd.New(a.logger, a.reg); err != nil {
		return err
	}
	a.preds = newPredecessors(a)
	if a.store, err = OpenStorage(a.logger, a.reg, a.opts.Storage, cfg.Config, a.preds); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = a.store.Close()
		}
	}()
	if a.discAgree, err = newDiscovery(a.node, a.node.HandoffLead(), a.logger, a.reg); err != nil {
		return err
	}
	if a.quar, err = newQuarantineOwner(a.opts.Quarantine, a.node, a.discAgree, a.logger, a.reg); err != nil {
		return err
	}
	a.scraper, err = scrape.New(scrape.Options{
		Owner:      a.quar,
		Discovered: a.disc.SyncCh(),
		NodeName:   a.opts.Gossip.Name,
		Config:     a.opts.Scrape,
		// Every agent of the cluster scrapes a target at the same phase, so a
		// target keeps its rhythm when it changes owner.
		PhaseSeed: "shoal/" + a.opts.Gossip.ClusterName,
		OnReshard: func() {
			a.recordMoves()
			a.discAgree.resharded(a.scraper.Filter().Discovered())
			a.quar.want()
		},
		// Ownership is judged by the node's clock, and samples are stamped
		// by it under --debug.clock-offset (see handoff.go, clock skew).
		Clock:          a.node.Now,
		TimestampShift: a.opts.Gossip.ClockOffset,
	}, a.logger, a.store.Appendable(), a.reg)
	if err != nil {
		return err
	}
	// Re-shard on every membership change, after the ring is updated. The
	// observer only pokes: Notify never blocks.
	a.node.Observe(gossip.ObserverFunc(a.membershipChanged))
	a.node.Observe(gossip.ObserverFunc(a.discAgree.want))
	a.discAgree.poke = a.membershipChanged
	if a.planner, err = newPlanner(a.node, a.opts.Placement, a.loadReport, a.discoveredKeys, a.logger, a.reg); err != nil {
		return err
	}
	a.node.ObservePlans(a.planner)
	a.node.Observe(gossip.ObserverFunc(a.quar.want))
	a.quar.poke = a.membershipChanged
	a.quar.discovered = func() scrape.Discovered { return a.scraper.Filter().Discovered() }
	a.quar.inFlight = a.scraper.InFlight
	a.quar.targets = func() []scrape.TargetInfo {
		ts := a.scraper.Filter().Targets()
		for i := range ts {
			ts[i].URL = a.showURL(ts[i].URL)
		}
		return ts
	}

	if err := a.applyConfig(cfg); err != nil {
		return err
	}
	a.reloadOK.Set(1)
	a.reloadTime.SetToCurrentTime()
	a.web = newWebServer(a)
	return nil
}

// advertisedHTTP is the web address peers and Consul should use. A
// wildcard listen host is replaced by the host gossip advertises, so that
// the HTTP and gossip addresses published for this agent agree.
func (a *Agent) advertisedHTTP() string {
	host, port, err := net.SplitHostPort(a.opts.Web.ListenAddress)
	if err != nil {
		return a.opts.Web.ListenAddress
	}
	if isWildcard(host) {
		if gh, _, err := net.SplitHostPort(a.gossipAdvertise()); err == nil && !isWildcard(gh) {
			host = gh
		}
	}
	return net.JoinHostPort(host, port)
}

// isWildcard reports whether host listens on every interface.
func isWildcard(host string) bool {
	if host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

// gossipAdvertise is the gossip address to publish in Consul before the
// memberlist has started (its port is known from the flags).
func (a *Agent) gossipAdvertise() string {
	if a.opts.Gossip.AdvertiseAddr != "" {
		return a.opts.Gossip.AdvertiseAddr
	}
	host, port, err := net.SplitHostPort(a.opts.Gossip.BindAddr)
	if err != nil {
		return a.opts.Gossip.BindAddr
	}
	if isWildcard(host) {
		if ip, err := privateIP(); err == nil {
			host = ip
		}
	}
	return net.JoinHostPort(host, port)
}

func privateIP() (string, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", err
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() {
			return ipn.IP.String(), nil
		}
	}
	return "", errors.New("no non-loopback IPv4 address")
}

// loadConfig loads the config file and gives its jobs the default limits.
func loadConfig(opts Options, logger *slog.Logger) (*Config, error) {
	cfg, err := LoadFile(opts.ConfigFile, logger)
	if err != nil {
		return nil, err
	}
	if err := cfg.ApplyDefaultLimits(opts.Scrape.DefaultLimits); err != nil {
		return nil, fmt.Errorf("load config file %s: %w", opts.ConfigFile, err)
	}
	return cfg, nil
}

// applyConfig applies cfg to every reloadable component, in Prometheus'
// order: remote storage, then scraping (and the ownership filter), then
// discovery, so that targets discovered under the new config find their
// scrape pool and their remote-write queue ready.
func (a *Agent) applyConfig(cfg *Config) error {
	for _, w := range cfg.Warnings() {
		a.logger.Warn("configuration: " + w)
	}
	// runtime.gogc: DefaultGoGC (40) unless the file or $GOGC sets it.
	goruntime.SetGCPercent(cfg.Runtime.GoGC, a.logger)
	for _, d := range cfg.DefaultedLimits() {
		a.logger.Info("scrape job sets no limit of its own, applying the default", "job", d.Job,
			"body_size_limit", d.BodySize.String(), "sample_limit", d.Samples)
	}
	if err := a.store.ApplyConfig(cfg.Config); err != nil {
		return fmt.Errorf("apply remote write config: %w", err)
	}
	if err := a.scraper.ApplyConfig(cfg.Config); err != nil {
		return fmt.Errorf("apply scrape config: %w", err)
	}
	if err := a.disc.ApplyConfig(cfg.Config); err != nil {
		return fmt.Errorf("apply service discovery config: %w", err)
	}
	// Prometheus' discovery manager sends nothing while it has no provider,
	// so without jobs there is no first sync to wait for.
	scfgs, err := cfg.GetScrapeConfigs()
	if err == nil && len(scfgs) == 0 {
		a.synced.Store(true)
	}
	a.node.SetShortestInterval(shortestInterval(scfgs))
	if err == nil {
		a.discAgree.setConfig(configDigest(scfgs))
	}
	return nil
}

// Reload re-reads the config file and applies it. A file that does not load
// keeps the running config; shoal_config_last_reload_successful says which.
// It is safe to call concurrently; calls are serialized.
func (a *Agent) Reload() error {
	a.cfgMu.Lock()
	defer a.cfgMu.Unlock()
	if a.isStopping() {
		return ErrStopping
	}
	a.logger.Info("loading configuration file", "file", a.opts.ConfigFile)
	cfg, err := loadConfig(a.opts, a.logger)
	if err == nil && a.isStopping() {
		// A stop began while the file was read: apply nothing, the scrape
		// loops may be stopping already.
		a.logger.Info("not applying the configuration: the agent is stopping")
		return ErrStopping
	}
	if err == nil {
		a.warnDroppedJobs(cfg)
		err = a.applyConfig(cfg)
		if err != nil {
			// Put the running config back everywhere.
			if rerr := a.applyConfig(a.cfg); rerr != nil {
				a.logger.Error("restoring the previous configuration failed", "err", rerr)
			}
		}
	}
	if err != nil {
		a.reloadOK.Set(0)
		a.logger.Error("reload failed, keeping the running configuration", "err", err)
		return err
	}
	a.cfg = cfg
	// The gossip keyring reloads with the file (key rotation); a bad key
	// file keeps the running keys and fails the reload.
	if err := a.node.ReloadKeys(); err != nil {
		a.reloadOK.Set(0)
		return err
	}
	// So does the Consul token; a bad file keeps the running token.
	if a.consulToken != nil {
		if err := a.consulToken.Reload(); err != nil {
			a.reloadOK.Set(0)
			return err
		}
	}
	a.reloadOK.Set(1)
	a.reloadTime.SetToCurrentTime()
	a.logger.Info("completed loading of configuration file", "file", a.opts.ConfigFile)
	return nil
}

// warnDroppedJobs logs a warning for every job that peers discover targets
// for and cfg, about to be applied, drops: a rolling change that removes a
// job is fine, the same change on one agent by mistake is not.
func (a *Agent) warnDroppedJobs(cfg *Config) {
	scfgs, err := cfg.GetScrapeConfigs()
	if err != nil || a.discAgree == nil {
		return
	}
	dropped := a.discAgree.droppedJobs(a.node.Peers(), scfgs)
	for _, job := range slices.Sorted(maps.Keys(dropped)) {
		a.logger.Warn("The new configuration drops a job that peers still discover targets for: this agent stops scraping its share of them (peers take them over) and is not ready until the peers drop the job too or it is restored",
			"job", job, "peers", strings.Join(dropped[job], ","))
	}
}

// ErrStopping is returned by Reload once the agent has begun to stop.
var ErrStopping = errors.New("the agent is stopping, not reloading")

// isStopping reports whether the stop sequence has begun.
func (a *Agent) isStopping() bool {
	select {
	case <-a.stopping:
		return true
	default:
		return false
	}
}

// Ready reports whether the agent has joined its cluster and received its
// first discovery snapshot, and is not stopping.
func (a *Agent) Ready() bool {
	if a.isStopping() {
		return false
	}
	return a.node.Ready() && a.discoverySynced() && a.store.Health() == nil && a.node.ClockStatus().InBound &&
		a.discAgree.notReadyReason() == ""
}

// discoverySynced reports whether the first discovery snapshot has arrived.
// It stays true: a reload does not make the agent unready.
func (a *Agent) discoverySynced() bool {
	if a.synced.Load() {
		return true
	}
	if a.scraper.Filter().Stats().Reshards > 0 {
		a.synced.Store(true)
		return true
	}
	return false
}

// Node returns the gossip node.
func (a *Agent) Node() *gossip.Node { return a.node }

// WebAddr returns the address the web server listens on once Run started.
func (a *Agent) WebAddr() string { return a.web.Addr() }

// membershipChanged is gossip's observer: it only pokes the filter, which
// re-shards on its own goroutine and then calls recordMoves.
func (a *Agent) membershipChanged() { a.scraper.Filter().Notify() }
