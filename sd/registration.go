package sd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/hashicorp/consul/api"
)

const (
	// DefaultTTL is the default TTL of the registration's check. Run renews it
	// every TTL/3, so two renewals can be lost before Consul marks the agent
	// critical.
	DefaultTTL = 15 * time.Second
	// DefaultDeregisterCriticalServiceAfter lets Consul remove an agent that
	// died without deregistering, once it has been critical this long.
	DefaultDeregisterCriticalServiceAfter = time.Minute
	// MetaVersion is the service Meta key holding the agent's version.
	MetaVersion = "version"
)

// RegistrationOptions describes the agent's own Consul service: the
// flags' RegistrationConfig and what the agent derives from its addresses.
type RegistrationOptions struct {
	RegistrationConfig
	// ID is the service ID, the agent's node name. Required.
	ID string
	// Address and Port locate the agent's HTTP endpoint. Port is required.
	Address string
	Port    int
	// GossipAddr is the host:port peers join, stored under Meta gossip_addr.
	// Required.
	GossipAddr string
	// Version is stored under Meta version.
	Version string
}

// Registration keeps the agent registered in Consul with a TTL check that
// passes while the agent is ready.
type Registration struct {
	client  *api.Client
	opts    RegistrationOptions
	checkID string
	logger  *slog.Logger
}

// NewRegistration validates opts. It starts nothing and contacts no one.
func NewRegistration(client *api.Client, opts RegistrationOptions, logger *slog.Logger) (*Registration, error) {
	switch {
	case client == nil:
		return nil, errors.New("consul client is required")
	case opts.Service == "":
		return nil, errors.New("consul service name is required")
	case opts.ID == "":
		return nil, errors.New("consul service id is required")
	case opts.Port <= 0 || opts.Port > 65535:
		return nil, fmt.Errorf("consul service port must be between 1 and 65535, got %d", opts.Port)
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if _, _, err := net.SplitHostPort(opts.GossipAddr); err != nil {
		return nil, fmt.Errorf("gossip address must be host:port, got %q: %w", opts.GossipAddr, err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Registration{
		client:  client,
		opts:    opts,
		checkID: "service:" + opts.ID,
		logger:  logger.With("component", "consul_registration", "service_id", opts.ID),
	}, nil
}

// Register registers the service and its check, which starts critical until
// Run reports the agent ready. Registering again replaces the registration.
func (r *Registration) Register(ctx context.Context) error {
	reg := &api.AgentServiceRegistration{
		ID:      r.opts.ID,
		Name:    r.opts.Service,
		Address: r.opts.Address,
		Port:    r.opts.Port,
		Tags:    r.opts.Tags,
		Meta: map[string]string{
			MetaGossipAddr: r.opts.GossipAddr,
			MetaVersion:    r.opts.Version,
		},
		Check: &api.AgentServiceCheck{
			CheckID: r.checkID,
			Name:    "shoal ready",
			TTL:     r.opts.TTL.String(),
			// Warning, not critical: the agent is alive but not ready yet,
			// and agents starting together must find each other to join
			// (PeerProvider lists passing and warning instances). Only an
			// expired TTL (a crashed agent) turns the check critical.
			Status:                         api.HealthWarning,
			DeregisterCriticalServiceAfter: r.opts.DeregisterCriticalServiceAfter.String(),
		},
	}
	opts := api.ServiceRegisterOpts{ReplaceExistingChecks: true}.WithContext(ctx)
	if err := r.client.Agent().ServiceRegisterOpts(reg, opts); err != nil {
		return fmt.Errorf("register service %q as %q: %w", r.opts.Service, r.opts.ID, err)
	}
	return nil
}

// Run renews the check every TTL/3, passing while ready returns true and
// warning otherwise (alive but not ready: joining, or leaving), until ctx is cancelled; then it returns nil. When
// Consul has lost the registration (restarted in -dev mode, removed it after
// DeregisterCriticalServiceAfter) Run registers again. Failures are logged
// and retried at the next renewal; Run does not deregister.
func (r *Registration) Run(ctx context.Context, ready func() bool) error {
	ticker := time.NewTicker(r.opts.TTL / 3)
	defer ticker.Stop()
	for {
		r.renew(ctx, ready())
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

func (r *Registration) renew(ctx context.Context, ready bool) {
	status, output := api.HealthPassing, "ready"
	if !ready {
		status, output = api.HealthWarning, "alive, not ready: joining the cluster, waiting for discovery, or leaving"
	}
	err := r.updateTTL(ctx, status, output)
	if err == nil || ctx.Err() != nil {
		return
	}
	var se api.StatusError
	if !errors.As(err, &se) {
		// Consul is unreachable; re-registering would fail the same way.
		r.logger.Warn("renew consul check failed, will retry", "err", err)
		return
	}
	// Consul answered but does not know the check: it lost the registration.
	r.logger.Info("consul lost the registration, registering again", "err", err)
	if err := r.Register(ctx); err != nil {
		r.logger.Warn("register again failed, will retry", "err", err)
		return
	}
	if err := r.updateTTL(ctx, status, output); err != nil {
		r.logger.Warn("renew consul check failed, will retry", "err", err)
	}
}

func (r *Registration) updateTTL(ctx context.Context, status, output string) error {
	q := (&api.QueryOptions{}).WithContext(ctx)
	if err := r.client.Agent().UpdateTTLOpts(r.checkID, output, status, q); err != nil {
		return fmt.Errorf("update check %q to %s: %w", r.checkID, status, err)
	}
	return nil
}

// Deregister removes the service and its check. The agent calls it when it
// leaves, with a context that bounds the call, after Run has returned: a
// running Run would register the service again.
func (r *Registration) Deregister(ctx context.Context) error {
	q := (&api.QueryOptions{}).WithContext(ctx)
	if err := r.client.Agent().ServiceDeregisterOpts(r.opts.ID, q); err != nil {
		return fmt.Errorf("deregister service %q: %w", r.opts.ID, err)
	}
	return nil
}
