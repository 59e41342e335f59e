package agent

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/shoal-dev/shoal/gossip"
	"github.com/shoal-dev/shoal/internal/flagext"
	"github.com/shoal-dev/shoal/scrape"
	"github.com/shoal-dev/shoal/sd"
)

// Options are the process settings that come from flags (and their SHOAL_*
// environment twins); what reloads lives in the config file. Each part is
// declared, defaulted and validated by the package that uses it. Start from
// DefaultOptions.
type Options struct {
	// ConfigFile is the Prometheus configuration file.
	ConfigFile string
	// Join are the --cluster.join specs: host:port, dns+name:port, dns+name
	// or consul+service.
	Join []string
	// Version is advertised to peers, to Consul and in shoal_build_info.
	Version string

	Gossip       gossip.Config
	Placement    PlacementConfig
	Scrape       scrape.Config
	Consul       sd.ConsulConfig
	Registration sd.RegistrationConfig
	Storage      StorageConfig
	Web          WebConfig
	Stop         StopConfig
	Quarantine   QuarantineConfig
}

// WebConfig is the HTTP server's settings.
type WebConfig struct {
	ListenAddress string
	// ConfigFile is an exporter-toolkit web config (TLS, basic auth).
	ConfigFile      string
	EnableLifecycle bool
	// ShowScrapeParams shows the values of scrape URLs' query parameters
	// (a scrape config's params, such as ?token=) in the API and on the
	// status page; by default they are masked.
	ShowScrapeParams bool
}

// StopConfig bounds how the agent hands its targets over when it stops.
type StopConfig struct {
	// HandoffTimeout bounds how long a stopping agent waits for peers to
	// acknowledge its leaving before it goes on with the handoff.
	HandoffTimeout time.Duration
	// RestartGrace, when positive, makes a stopping agent keep its targets
	// instead of handing them over: peers hold them for it for this long,
	// expecting it back under the same name (a rolling restart), so no
	// target moves away and back. If it does not return in time, peers take
	// the targets over at the end of the grace. Zero hands targets over.
	RestartGrace time.Duration
}

// Defaults.
const (
	DefaultHandoffTimeout = 15 * time.Second
	// DefaultFlushDeadline is Prometheus' --storage.remote.flush-deadline.
	DefaultFlushDeadline = time.Minute
)

// DefaultOptions returns every default; nodeName is the default node name
// (the host name in main).
func DefaultOptions(nodeName string) Options {
	g := gossip.DefaultConfig()
	g.Name = nodeName
	return Options{
		ConfigFile:   "shoal.yml",
		Gossip:       g,
		Placement:    DefaultPlacementConfig(),
		Scrape:       scrape.DefaultConfig(),
		Registration: sd.DefaultRegistrationConfig(),
		Storage:      StorageConfig{Path: "data/", MaxSize: DefaultMaxSize, FlushDeadline: DefaultFlushDeadline, HandoffWait: DefaultHandoffWait},
		Web:          WebConfig{ListenAddress: "0.0.0.0:9090"},
		Stop:         StopConfig{HandoffTimeout: DefaultHandoffTimeout},
		Quarantine:   DefaultQuarantineConfig(),
	}
}

// RegisterFlags declares every flag of the agent, with o's values as the
// defaults.
func (o *Options) RegisterFlags(app *kingpin.Application) {
	flagext.String(app, "config.file", "Prometheus configuration file (scrape_configs, remote_write, global).", &o.ConfigFile)
	o.Storage.RegisterFlags(app)
	o.Web.RegisterFlags(app)
	o.Gossip.RegisterFlags(app)
	o.Placement.RegisterFlags(app)
	flagext.Strings(app, "cluster.join", "Peer to join, repeatable: host:port, dns+name:port (A records), dns+name (SRV records) or consul+service (agents registered in Consul). Comma-separated in the environment variable.", &o.Join)
	o.Scrape.RegisterFlags(app)
	o.Stop.RegisterFlags(app)
	o.Quarantine.RegisterFlags(app)
	o.Consul.RegisterFlags(app)
	o.Registration.RegisterFlags(app)
}

// RegisterFlags declares --web.*.
func (c *WebConfig) RegisterFlags(app *kingpin.Application) {
	flagext.String(app, "web.listen-address", "Address to listen on for the API, the status page and /metrics.", &c.ListenAddress)
	flagext.String(app, "web.config.file", "[EXPERIMENTAL] Path to a web configuration file enabling TLS or basic authentication (Prometheus exporter-toolkit format).", &c.ConfigFile)
	flagext.Bool(app, "web.enable-lifecycle", "Enable shutdown and reload via HTTP request (POST /-/quit, /-/reload).", &c.EnableLifecycle)
	flagext.Bool(app, "web.show-scrape-params", "Show the values of scrape URLs' query parameters (params such as ?token=, __param_* labels) in the API and on the status page. By default they are masked (xxxxx); URL passwords are always masked.", &c.ShowScrapeParams)
}

// Validate checks the address and the web config file.
func (c WebConfig) Validate() error {
	_, port, err := net.SplitHostPort(c.ListenAddress)
	if err == nil {
		if n, perr := strconv.Atoi(port); perr != nil || n < 0 || n > 65535 {
			err = fmt.Errorf("port must be a number between 0 and 65535, got %q", port)
		}
	}
	if err != nil {
		return fmt.Errorf("--web.listen-address %q: %w", c.ListenAddress, err)
	}
	if c.ConfigFile != "" {
		if err := web.Validate(c.ConfigFile); err != nil {
			return fmt.Errorf("--web.config.file %s: %w", c.ConfigFile, err)
		}
	}
	return nil
}

// RegisterFlags declares the stop flags under --cluster.
func (c *StopConfig) RegisterFlags(app *kingpin.Application) {
	flagext.Duration(app, "cluster.handoff-timeout", "On shutdown, how long to wait for peers to acknowledge the leave before going on with the handoff.", &c.HandoffTimeout)
	flagext.Duration(app, "cluster.restart-grace", "On shutdown, keep this agent's targets assigned to it for this long instead of handing them over, expecting it back under the same node name and storage path (rolling restarts): nothing moves, and its targets are not scraped while it is down. If it is not back in time, peers take them over. 0 hands targets over on every shutdown (scale-in). At most "+gossip.MaxRestartGrace.String()+".", &c.RestartGrace)
}

// Validate checks every option without opening a port or a file (it reads
// the key, token and web config files). Errors name the flag, quote the
// value and say what is allowed.
func (o *Options) Validate() error {
	var errs []error
	if o.ConfigFile == "" {
		errs = append(errs, errors.New("--config.file must not be empty"))
	}
	// --cluster.advertise-interface becomes the advertise address, which
	// the gossip checks and the HTTP address derive from.
	if err := o.Gossip.ResolveAdvertise(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, o.Storage.Validate(), o.Web.Validate(), o.Gossip.Validate(), o.Placement.Validate(), o.Scrape.Validate(), o.Quarantine.Validate())
	if o.Stop.HandoffTimeout < 0 || o.Stop.RestartGrace < 0 {
		errs = append(errs, fmt.Errorf("--cluster.handoff-timeout and --cluster.restart-grace must not be negative, got %s and %s", o.Stop.HandoffTimeout, o.Stop.RestartGrace))
	}
	if o.Stop.RestartGrace > gossip.MaxRestartGrace {
		errs = append(errs, fmt.Errorf("--cluster.restart-grace must be at most %s (peers refuse a claim to hold targets longer, and nobody scrapes them meanwhile), got %s",
			gossip.MaxRestartGrace, o.Stop.RestartGrace))
	}
	for _, j := range o.Join {
		s, err := parseJoin(j)
		if err == nil && s.kind == "consul" && o.Consul.Address == "" {
			err = fmt.Errorf("--cluster.join consul+%s needs --consul.address", s.host)
		}
		errs = append(errs, err)
	}
	errs = append(errs, o.Consul.Validate())
	if o.Registration.Service != "" {
		if o.Consul.Address == "" {
			errs = append(errs, fmt.Errorf("--consul.register=%s needs --consul.address", o.Registration.Service))
		}
		errs = append(errs, o.Registration.Validate())
	}
	if err := errors.Join(errs...); err != nil {
		return usageError{err}
	}
	return nil
}

// usageError marks an error in the flags or the config file.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// IsUsageError reports whether err comes from an invalid option or config
// file (exit code 2) rather than from running (exit code 1).
func IsUsageError(err error) bool {
	var u usageError
	return errors.As(err, &u)
}
