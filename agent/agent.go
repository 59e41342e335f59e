// Package agent wires one shoal process together: gossip membership and the
// ring, Prometheus service discovery, the ownership filter and scrape engine,
// the agent-mode WAL with remote write, Consul self-registration, and the
// HTTP API and status page.
package agent

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/shoal-dev/shoal/gossip"
	"github.com/shoal-dev/shoal/scrape"
	"github.com/shoal-dev/shoal/sd"
)

// Options are the process settings that come from flags (and their SHOAL_*
// environment twins). What reloads lives in the config file.
type Options struct {
	ConfigFile      string
	StoragePath     string
	ListenAddress   string // web, host:port
	WebConfigFile   string // exporter-toolkit TLS and basic auth
	EnableLifecycle bool   // POST /-/reload and /-/quit
	// ExternalURL is advertised to peers so their pages can link here;
	// empty means http://<advertise host>:<web port>.
	ExternalURL string

	ClusterName       string
	NodeName          string
	ClusterListen     string // gossip bind host:port
	ClusterAdvertise  string // gossip advertise host:port
	Join              []string
	SecretKeyFile     string
	ReplicationFactor int
	RejoinInterval    time.Duration
	ReplicaLabel      string
	Weight            float64
	Timers            gossip.Timers

	ConsulAddress   string
	ConsulTokenFile string
	ConsulRegister  string // service name, empty to disable
	ConsulTags      []string
	// ConsulCheckTTL is the TTL of the registration's check; zero means
	// sd.DefaultTTL.
	ConsulCheckTTL time.Duration
	// ConsulDeregisterAfter is how long the check may stay critical (the
	// agent died without deregistering) before Consul removes the service;
	// zero means sd.DefaultDeregisterCriticalServiceAfter. Consul enforces a
	// minimum of one minute and reaps every 30 seconds.
	ConsulDeregisterAfter time.Duration

	// HandoffTimeout bounds how long a stopping agent waits for peers to
	// acknowledge its leaving before it goes on with the handoff.
	HandoffTimeout time.Duration
	// HandoffLead is how far ahead ownership changes are announced (see
	// gossip.Config.HandoffLead); zero switches owners as soon as the news
	// arrives. The flag defaults to gossip.DefaultHandoffLead.
	HandoffLead time.Duration
	// RestartGrace, when positive, makes a stopping agent keep its targets
	// instead of handing them over: peers hold them for it for this long,
	// expecting it back under the same name (a rolling restart), so no
	// target moves away and back. If it does not return in time, peers take
	// the targets over at the end of the grace. Zero hands targets over on
	// every stop.
	RestartGrace time.Duration
	// FlushDeadline bounds how long remote write may take to send what is
	// queued when the agent stops.
	FlushDeadline time.Duration

	Version string
}

// Defaults for Options.
const (
	DefaultHandoffTimeout = 15 * time.Second
	// DefaultFlushDeadline is Prometheus' --storage.remote.flush-deadline.
	DefaultFlushDeadline = time.Minute
)

// Agent is one shoal process. Create it with New and start it with Run.
type Agent struct {
	opts   Options
	logger *slog.Logger
	reg    *prometheus.Registry

	cfgMu sync.Mutex
	cfg   *Config

	node    *gossip.Node
	disc    *sd.Discovery
	scraper *scrape.Manager
	store   *Storage
	consul  *api.Client
	regist  *sd.Registration
	// peerWatch follows the Consul services named by consul+ join specs.
	peerWatch []*sd.PeerProvider
	moves     *moveLog
	web       *webServer

	// synced is set once the first discovery snapshot has been filtered, or
	// a config without scrape jobs (of which no snapshot ever comes) applied.
	synced atomic.Bool

	reloadOK, reloadTime prometheus.Gauge
	reloads              chan chan error
	quit                 chan struct{}
	quitOnce             sync.Once
	stopping             chan struct{}
	stoppingOnce         sync.Once
	closeOnce            sync.Once
}

// New validates opts, loads the config file and builds every component. It
// starts nothing: no listener is opened and no goroutine runs until Run.
func New(opts Options, logger *slog.Logger, reg *prometheus.Registry) (*Agent, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if opts.HandoffTimeout == 0 {
		opts.HandoffTimeout = DefaultHandoffTimeout
	}
	if opts.FlushDeadline == 0 {
		opts.FlushDeadline = DefaultFlushDeadline
	}
	if opts.StoragePath == "" {
		return nil, errors.New("--storage.path must not be empty")
	}
	if opts.HandoffLead < 0 {
		return nil, fmt.Errorf("--cluster.handoff-lead must not be negative, got %s", opts.HandoffLead)
	}
	if opts.RestartGrace < 0 {
		return nil, fmt.Errorf("--cluster.restart-grace must not be negative, got %s", opts.RestartGrace)
	}
	cfg, err := LoadFile(opts.ConfigFile, logger)
	if err != nil {
		return nil, err
	}
	a := &Agent{
		opts:     opts,
		logger:   logger,
		reg:      reg,
		cfg:      cfg,
		moves:    newMoveLog(moveLogSize),
		reloads:  make(chan chan error),
		quit:     make(chan struct{}),
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

	if err := a.build(cfg); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *Agent) build(cfg *Config) error {
	// Flags are validated before anything is opened (the WAL below).
	if _, _, err := net.SplitHostPort(a.opts.ListenAddress); err != nil {
		return fmt.Errorf("--web.listen-address %q: %w", a.opts.ListenAddress, err)
	}
	var key []byte
	if a.opts.SecretKeyFile != "" {
		b, err := readSecretKey(a.opts.SecretKeyFile)
		if err != nil {
			return err
		}
		key = b
	}
	specs := make([]joinSpec, 0, len(a.opts.Join))
	for _, j := range a.opts.Join {
		s, err := parseJoin(j)
		if err != nil {
			return err
		}
		specs = append(specs, s)
	}

	var consulPeerList consulPeers
	if a.opts.ConsulAddress != "" {
		c, err := newConsulClient(a.opts.ConsulAddress, a.opts.ConsulTokenFile)
		if err != nil {
			return err
		}
		a.consul = c
		consulPeerList = func(ctx context.Context, service string) ([]string, error) {
			p, err := sd.NewPeerProvider(c, service, a.logger)
			if err != nil {
				return nil, err
			}
			return p.Peers(ctx)
		}
	}
	for _, s := range specs {
		if s.kind != "consul" {
			continue
		}
		if a.consul == nil {
			return fmt.Errorf("--cluster.join consul+%s needs --consul.address", s.host)
		}
		p, err := sd.NewPeerProvider(a.consul, s.host, a.logger)
		if err != nil {
			return err
		}
		a.peerWatch = append(a.peerWatch, p)
	}

	if a.opts.ConsulRegister != "" {
		if a.consul == nil {
			return fmt.Errorf("--consul.register=%s needs --consul.address", a.opts.ConsulRegister)
		}
		host, port, err := splitJoinHostPort(a.advertisedHTTP())
		if err != nil {
			return fmt.Errorf("--web.listen-address %q: %w", a.opts.ListenAddress, err)
		}
		r, err := sd.NewRegistration(a.consul, sd.RegistrationOptions{
			Service:    a.opts.ConsulRegister,
			ID:         a.opts.NodeName,
			Address:    host,
			Port:       port,
			GossipAddr: a.gossipAdvertise(),
			Version:    a.opts.Version,
			Tags:       a.opts.ConsulTags,
			TTL:        a.opts.ConsulCheckTTL,

			DeregisterCriticalServiceAfter: a.opts.ConsulDeregisterAfter,
		}, a.logger)
		if err != nil {
			return err
		}
		a.regist = r
	}

	resume := takeRestartMarker(a.opts.StoragePath, a.opts.NodeName, a.logger)
	node, err := gossip.New(gossip.Config{
		Name:              a.opts.NodeName,
		ClusterName:       a.opts.ClusterName,
		BindAddr:          a.opts.ClusterListen,
		AdvertiseAddr:     a.opts.ClusterAdvertise,
		SecretKey:         key,
		HTTPAddr:          a.advertisedHTTP(),
		Version:           a.opts.Version,
		Weight:            a.opts.Weight,
		ReplicationFactor: a.opts.ReplicationFactor,
		Peers:             peerProvider(specs, net.DefaultResolver, consulPeerList),
		RejoinInterval:    rejoinInterval(a.opts.RejoinInterval),
		HandoffLead:       handoffLead(a.opts.HandoffLead),
		Resume:            resume,
		Timers:            a.opts.Timers,
	}, a.logger, a.reg)
	if err != nil {
		return err
	}
	a.node = node

	disc, err := sd.New(a.logger, a.reg)
	if err != nil {
		return err
	}
	a.disc = disc

	store, err := OpenStorage(a.logger, a.reg, a.opts.StoragePath, cfg.Config, a.opts.FlushDeadline)
	if err != nil {
		return err
	}
	a.store = store

	scraper, err := scrape.New(scrape.Options{
		Owner:        node,
		Discovered:   disc.SyncCh(),
		NodeName:     a.opts.NodeName,
		ReplicaLabel: a.opts.ReplicaLabel,
		// Every agent of the cluster scrapes a target at the same phase, so a
		// target keeps its rhythm when it changes owner.
		PhaseSeed: "shoal/" + a.opts.ClusterName,
		OnReshard: a.recordMoves,
	}, a.logger, store.Appendable(), a.reg)
	if err != nil {
		_ = store.Close()
		return err
	}
	a.scraper = scraper
	// Remote write reads metric metadata from the scrape manager.
	store.SetScrapeManager(scraper)

	// Re-shard on every membership change, after the ring is updated. The
	// observer only pokes: Notify never blocks.
	node.Observe(gossip.ObserverFunc(a.membershipChanged))

	if err := a.applyConfig(cfg); err != nil {
		_ = store.Close()
		return err
	}
	a.reloadOK.Set(1)
	a.reloadTime.SetToCurrentTime()

	web, err := newWebServer(a)
	if err != nil {
		_ = store.Close()
		return err
	}
	a.web = web
	return nil
}

// rejoinInterval maps the flag's "0 disables" to gossip's negative value.
func rejoinInterval(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// advertisedHTTP is the web address peers and Consul should use. A
// wildcard listen host is replaced by the host gossip advertises, so that
// the HTTP and gossip addresses published for this agent agree.
func (a *Agent) advertisedHTTP() string {
	host, port, err := net.SplitHostPort(a.opts.ListenAddress)
	if err != nil {
		return a.opts.ListenAddress
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
	if a.opts.ClusterAdvertise != "" {
		return a.opts.ClusterAdvertise
	}
	host, port, err := net.SplitHostPort(a.opts.ClusterListen)
	if err != nil {
		return a.opts.ClusterListen
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

func readSecretKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--cluster.secret-key-file: %w", err)
	}
	s := strings.TrimSpace(string(b))
	key, err := decodeKey(s)
	if err != nil {
		return nil, fmt.Errorf("--cluster.secret-key-file %s: %w", path, err)
	}
	return key, nil
}

func newConsulClient(addr, tokenFile string) (*api.Client, error) {
	c := api.DefaultConfig()
	c.Address = addr
	if tokenFile != "" {
		c.TokenFile = tokenFile
		if _, err := os.Stat(tokenFile); err != nil {
			return nil, fmt.Errorf("--consul.token-file: %w", err)
		}
	}
	client, err := api.NewClient(c)
	if err != nil {
		return nil, fmt.Errorf("--consul.address %q: %w", addr, err)
	}
	return client, nil
}

// applyConfig applies cfg to every reloadable component, in Prometheus'
// order: remote storage, then scraping (and the ownership filter), then
// discovery, so that targets discovered under the new config find their
// scrape pool and their remote-write queue ready.
func (a *Agent) applyConfig(cfg *Config) error {
	for _, w := range cfg.Warnings() {
		a.logger.Warn("configuration: " + w)
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
	if scfgs, err := cfg.GetScrapeConfigs(); err == nil && len(scfgs) == 0 {
		a.synced.Store(true)
	}
	return nil
}

// Reload re-reads the config file and applies it. A file that does not load
// keeps the running config; shoal_config_last_reload_successful says which.
// It is safe to call concurrently; calls are serialized.
func (a *Agent) Reload() error {
	a.cfgMu.Lock()
	defer a.cfgMu.Unlock()
	a.logger.Info("loading configuration file", "file", a.opts.ConfigFile)
	cfg, err := LoadFile(a.opts.ConfigFile, a.logger)
	if err == nil {
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
	a.reloadOK.Set(1)
	a.reloadTime.SetToCurrentTime()
	a.logger.Info("completed loading of configuration file", "file", a.opts.ConfigFile)
	return nil
}

// Quit asks Run to stop as on SIGTERM (POST /-/quit). It never blocks.
func (a *Agent) Quit() { a.quitOnce.Do(func() { close(a.quit) }) }

// Ready reports whether the agent has joined its cluster and received its
// first discovery snapshot, and is not stopping.
func (a *Agent) Ready() bool {
	select {
	case <-a.stopping:
		return false
	default:
	}
	return a.node.Ready() && a.discoverySynced()
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

// Run starts every component and blocks until ctx is cancelled (or Quit is
// called, or a component fails), then stops them in order:
//
//  1. announce leaving with the instant its targets switch to their new
//     owners (the handoff lead ahead) and keep scraping until then, so every
//     slot has one writer; or, with a restart grace, announce that peers
//     hold the targets until the grace ends;
//  2. stop scraping (loops stopped on shutdown write no staleness markers);
//  3. flush remote write with a deadline and close the WAL;
//  4. deregister from Consul;
//  5. leave memberlist and shut it down;
//  6. stop the HTTP server last, so /-/ready says 503 until the end.
//
// It returns nil after a clean stop.
func (a *Agent) Run(ctx context.Context) error {
	var (
		gossipCtx, stopGossip = context.WithCancel(context.Background())
		discCtx, stopDisc     = context.WithCancel(context.Background())
		scrapeCtx, stopScrape = context.WithCancel(context.Background())
		regCtx, stopReg       = context.WithCancel(context.Background())
		webCtx, stopWeb       = context.WithCancel(context.Background())
		scrapeDone            = make(chan struct{})
		gossipDone            = make(chan struct{})
	)
	defer func() {
		stopGossip()
		stopDisc()
		stopScrape()
		stopReg()
		stopWeb()
	}()

	// oklog/run interrupts every actor as soon as one returns. The ordered
	// shutdown below stops components one at a time, so an actor whose
	// component stopped cleanly holds the group until the sequence is over
	// (or until the group is interrupted because something failed).
	sequenceDone := make(chan struct{})
	interrupted := make(chan struct{})
	var interruptOnce sync.Once
	interrupt := func() { interruptOnce.Do(func() { close(interrupted) }) }
	hold := func(err error) error {
		if err != nil {
			return err
		}
		select {
		case <-sequenceDone:
		case <-interrupted:
		}
		return nil
	}

	var g run.Group
	// Lifecycle: waits for the stop signal, then runs the ordered shutdown.
	{
		g.Add(func() error {
			defer close(sequenceDone)
			select {
			case <-ctx.Done():
				a.logger.Info("received stop signal, shutting down")
			case <-a.quit:
				a.logger.Info("quit requested over HTTP, shutting down")
			case <-interrupted:
				return nil
			}
			a.shutdown(stopScrape, scrapeDone, stopDisc, stopReg, stopGossip, gossipDone)
			return nil
		}, func(error) { interrupt() })
	}
	// Web: /metrics, /-/ready, the API and the page. Started first so that
	// probes answer (503) while the agent joins; stopped last.
	{
		g.Add(func() error {
			go func() {
				select {
				case <-sequenceDone:
				case <-interrupted:
				}
				stopWeb()
			}()
			return a.web.Run(webCtx)
		}, func(error) { interrupt() })
	}
	// Gossip: join, keep the ring, leave.
	{
		g.Add(func() error {
			err := a.node.Run(gossipCtx)
			close(gossipDone)
			if err != nil {
				return fmt.Errorf("gossip: %w", err)
			}
			return hold(nil)
		}, func(error) { interrupt(); stopGossip() })
	}
	// Discovery: Prometheus' discovery manager for every scrape job.
	{
		g.Add(func() error { return hold(a.disc.Run(discCtx)) }, func(error) { interrupt(); stopDisc() })
	}
	// Scrape: ownership filter and Prometheus' scrape manager.
	{
		g.Add(func() error {
			err := a.scraper.Run(scrapeCtx)
			close(scrapeDone)
			return hold(err)
		}, func(error) { interrupt(); stopScrape() })
	}
	// Consul registration with a TTL check that follows readiness.
	if a.regist != nil {
		g.Add(func() error { return hold(a.runRegistration(regCtx)) }, func(error) { interrupt(); stopReg() })
	}
	// Consul peer watch: rejoin when the agents registered in Consul change.
	// Stopped with discovery: a leaving node does not rejoin.
	if len(a.peerWatch) > 0 {
		g.Add(func() error {
			a.watchPeers(discCtx)
			return hold(nil)
		}, func(error) { interrupt(); stopDisc() })
	}
	// Reloads (SIGHUP, POST /-/reload) are served by Reload directly.

	err := g.Run()
	// Whatever stopped the group, the WAL must be flushed and closed.
	a.closeStorage()
	if err != nil {
		a.logger.Error("agent stopped with an error", "err", err)
		return err
	}
	a.logger.Info("agent stopped")
	return nil
}

func (a *Agent) shutdown(stopScrape func(), scrapeDone <-chan struct{}, stopDisc, stopReg, stopGossip func(), gossipDone <-chan struct{}) {
	a.stoppingOnce.Do(func() { close(a.stopping) })

	if a.opts.RestartGrace > 0 {
		a.announceRestart()
	} else {
		a.handOver()
	}

	a.logger.Info("shutdown 2/5: stopping scrapes and discovery")
	stopScrape()
	<-scrapeDone
	stopDisc()

	a.logger.Info("shutdown 3/5: flushing remote write", "deadline", a.opts.FlushDeadline)
	a.closeStorage()

	a.logger.Info("shutdown 4/5: deregistering from consul")
	stopReg()
	if a.regist != nil {
		dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := a.regist.Deregister(dctx); err != nil {
			a.logger.Warn("consul deregistration failed; the TTL check will expire it", "err", err)
		}
		cancel()
	}

	a.logger.Info("shutdown 5/5: leaving the cluster")
	stopGossip()
	<-gossipDone
}

// handoffLead maps the flag (zero: at once) to gossip's setting (zero:
// default, negative: at once).
func handoffLead(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// handoffSettle is how long a leaving agent keeps scraping after the
// handoff instant: a scrape of its last slot that started just before the
// instant may still be running.
const handoffSettle = 2 * time.Second

// handOver announces the instant at which this agent's targets move to its
// peers (now plus the handoff lead) and keeps scraping until then, so every
// slot before it is this agent's and every slot after it the new owner's.
func (a *Agent) handOver() {
	until := time.Now().Add(a.node.HandoffLead())
	a.logger.Info("shutdown 1/5: announcing leave; peers take over this agent's targets at the handoff instant",
		"at", until, "timeout", a.opts.HandoffTimeout)
	hctx, cancel := context.WithTimeout(context.Background(), a.opts.HandoffTimeout)
	defer cancel()
	if err := a.node.AnnounceLeaving(hctx, until); err != nil {
		a.logger.Warn("not every peer acknowledged the leave; those that did not take over when they notice it", "err", err)
	}
	cctx, ccancel := context.WithDeadline(hctx, until)
	defer ccancel()
	if err := a.confirmHandoff(cctx); err != nil {
		a.logger.Warn("peers were not scraping every handed-off target at the handoff instant; their first slots may be missed", "err", err)
	}
	wait := time.Until(until.Add(handoffSettle))
	a.logger.Info("scraping until the handoff instant", "remaining", wait.Round(time.Millisecond))
	time.Sleep(wait)
}

// announceRestart announces that this agent is restarting: peers keep its
// targets unassigned for the restart grace, and the marker in the storage
// directory lets the next process take them back at once.
func (a *Agent) announceRestart() {
	until := time.Now().Add(a.opts.RestartGrace)
	a.logger.Info("shutdown 1/5: announcing a restart; peers hold this agent's targets until the grace ends",
		"until", until, "timeout", a.opts.HandoffTimeout)
	hctx, cancel := context.WithTimeout(context.Background(), a.opts.HandoffTimeout)
	defer cancel()
	if err := a.node.AnnounceLeaving(hctx, until); err != nil {
		a.logger.Warn("not every peer acknowledged the restart; those that did not take the targets over when they notice it", "err", err)
	}
	if err := writeRestartMarker(a.opts.StoragePath, a.opts.NodeName, until); err != nil {
		a.logger.Warn("the next start will rejoin with the handoff lead", "err", err)
	}
}

// closeStorage flushes remote write and closes the WAL, once.
func (a *Agent) closeStorage() {
	a.closeOnce.Do(func() {
		if err := a.store.Close(); err != nil {
			a.logger.Error("closing storage", "err", err)
		}
	})
}

// decodeKey accepts the gossip encryption key as base64 (as `openssl rand
// -base64 32` prints it, and as memberlist tools use) or as raw bytes.
func decodeKey(s string) ([]byte, error) {
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		switch len(b) {
		case 16, 24, 32:
			return b, nil
		}
	}
	switch len(s) {
	case 16, 24, 32:
		return []byte(s), nil
	}
	return nil, fmt.Errorf("key must be 16, 24 or 32 bytes, raw or base64-encoded (e.g. `openssl rand -base64 32`), got %d characters", len(s))
}
