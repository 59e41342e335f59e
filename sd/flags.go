package sd

import (
	"errors"
	"fmt"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/hashicorp/consul/api"

	"github.com/shoal-dev/shoal/internal/flagext"
)

// ConsulConfig says how the agent reaches Consul for its own registration
// and for consul+ joins. Scrape targets use consul_sd_configs in the config
// file instead.
type ConsulConfig struct {
	// Address is Consul's HTTP address (host:port); empty means no Consul.
	Address string
	// TokenFile holds the ACL token. The agent re-reads it on reload and
	// when it changes (TokenFile).
	TokenFile string
}

// RegisterFlags declares --consul.address and --consul.token-file.
func (c *ConsulConfig) RegisterFlags(app *kingpin.Application) {
	flagext.String(app, "consul.address", "Consul HTTP address (host:port) for --cluster.join=consul+... and --consul.register. Empty: no Consul. Scrape targets use consul_sd_configs in the config file.", &c.Address)
	flagext.String(app, "consul.token-file", "File with the Consul ACL token; re-read on SIGHUP, POST /-/reload and when it changes (a bad file keeps the running token).", &c.TokenFile)
}

// Validate checks that the token file holds a token: a missing or empty
// one would fail every request.
func (c ConsulConfig) Validate() error {
	if c.TokenFile == "" {
		return nil
	}
	_, err := readToken(c.TokenFile)
	return err
}

// Client returns a Consul client, or nil when no address is set. When token
// is not nil, every request carries its running token (a rotated file is
// used without a new client). Call Validate first.
func (c ConsulConfig) Client(token *TokenFile) (*api.Client, error) {
	if c.Address == "" {
		return nil, nil
	}
	cfg := api.DefaultConfig()
	cfg.Address = c.Address
	if token != nil {
		// The client api.NewClient would build, TLS settings from the
		// CONSUL_* environment included, with the token set per request.
		hc, err := api.NewHttpClient(cfg.Transport, cfg.TLSConfig)
		if err != nil {
			return nil, fmt.Errorf("--consul.address %q: %w", c.Address, err)
		}
		hc.Transport = token.RoundTripper(hc.Transport)
		cfg.HttpClient = hc
	}
	client, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("--consul.address %q: %w", c.Address, err)
	}
	return client, nil
}

// RegistrationConfig is the agent's own Consul service, as the flags set it.
type RegistrationConfig struct {
	// Service is the service name all agents share; empty: do not register.
	Service string
	Tags    []string
	// TTL of the health check, at least MinTTL.
	TTL time.Duration
	// DeregisterCriticalServiceAfter lets Consul remove an agent that died
	// without deregistering. Consul enforces a minimum of one minute and
	// reaps every 30 seconds.
	DeregisterCriticalServiceAfter time.Duration
}

// MinTTL is the shortest check TTL accepted: the check is renewed every
// third of it, and much more often than every few hundred milliseconds only
// loads Consul.
const MinTTL = time.Second

// DefaultRegistrationConfig returns the defaults: no registration.
func DefaultRegistrationConfig() RegistrationConfig {
	return RegistrationConfig{TTL: DefaultTTL, DeregisterCriticalServiceAfter: DefaultDeregisterCriticalServiceAfter}
}

// RegisterFlags declares the registration's --consul.* flags.
func (c *RegistrationConfig) RegisterFlags(app *kingpin.Application) {
	flagext.String(app, "consul.register", "Register this agent in Consul under this service name (with a TTL check that follows readiness). Empty: do not register.", &c.Service)
	flagext.Strings(app, "consul.tags", "Tags of the Consul registration, repeatable.", &c.Tags)
	flagext.Duration(app, "consul.check-ttl", fmt.Sprintf("TTL of the registration's health check (at least %s); it is renewed every third of it while the agent runs.", MinTTL), &c.TTL)
	flagext.Duration(app, "consul.deregister-critical-after", "How long the registration's check may stay critical (the agent died without deregistering) before Consul removes it. Consul enforces at least 1m.", &c.DeregisterCriticalServiceAfter)
}

// Validate checks the settings; messages name the flag.
func (c RegistrationConfig) Validate() error {
	var errs []error
	if c.TTL < MinTTL {
		errs = append(errs, fmt.Errorf("--consul.check-ttl must be at least %s, got %s", MinTTL, c.TTL))
	}
	if c.DeregisterCriticalServiceAfter <= 0 {
		errs = append(errs, fmt.Errorf("--consul.deregister-critical-after must be positive, got %s", c.DeregisterCriticalServiceAfter))
	}
	return errors.Join(errs...)
}
