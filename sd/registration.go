package sd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
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
	// maxRequestTimeout bounds each call to Consul (a renewal's, at most a
	// third of the TTL): a Consul that accepts connections but never answers
	// is a timeout failure, not a renewal loop stuck forever.
	maxRequestTimeout = 10 * time.Second
)

// Reasons of shoal_consul_registration_failures_total.
const (
	ReasonForbidden   = "forbidden"    // 403: the token is unknown or lacks service:write
	ReasonNotFound    = "not_found"    // 404 after registering again
	ReasonTimeout     = "timeout"      // no answer within the request timeout
	ReasonUnreachable = "unreachable"  // connection refused, DNS, TLS
	ReasonServerError = "server_error" // 5xx
	ReasonOther       = "other"        // any other answer
)

var reasons = []string{ReasonForbidden, ReasonNotFound, ReasonTimeout, ReasonUnreachable, ReasonServerError, ReasonOther}

// RegistrationStatus is how the registration fares, for the status page
// and the API.
type RegistrationStatus struct {
	// Service and ID are what is registered.
	Service, ID string
	// OK is true when the last attempt succeeded.
	OK bool
	// LastSuccess is when an attempt last succeeded; zero if none has.
	LastSuccess time.Time
	// Failures counts the attempts failed in a row; FailingSince is when
	// the first of them failed, Reason and LastError the last one's.
	Failures     int
	FailingSince time.Time
	Reason       string
	LastError    string
}

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
//
// A failing registration (a 403 for a bad token, a timeout) leaves the agent
// running and ready: it scrapes, only peers joining through Consul miss it.
// shoal_consul_registration_failures_total{reason},
// shoal_consul_registration_last_successful and Status show it.
type Registration struct {
	client     *api.Client
	opts       RegistrationOptions
	checkID    string
	logger     *slog.Logger
	timeout    time.Duration
	registered atomic.Bool // Register has succeeded since the last lost registration

	failures    *prometheus.CounterVec
	lastOK      prometheus.Gauge
	lastSuccess prometheus.Gauge

	mu     sync.Mutex // guards status
	status RegistrationStatus
}

// NewRegistration validates opts and registers the registration's metrics
// with reg (none if nil). It starts nothing and contacts no one.
func NewRegistration(client *api.Client, opts RegistrationOptions, logger *slog.Logger, reg prometheus.Registerer) (*Registration, error) {
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
	f := promauto.With(reg)
	r := &Registration{
		client:  client,
		opts:    opts,
		checkID: "service:" + opts.ID,
		logger:  logger.With("component", "consul_registration", "service_id", opts.ID),
		timeout: min(opts.TTL/3, maxRequestTimeout),
		failures: f.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_consul_registration_failures_total",
			Help: "Failed attempts to register this agent in Consul or renew its check, by reason: forbidden (403, the token), not_found, timeout, unreachable, server_error, other.",
		}, []string{"reason"}),
		lastOK: f.NewGauge(prometheus.GaugeOpts{
			Name: "shoal_consul_registration_last_successful",
			Help: "Whether the last attempt to register this agent in Consul or renew its check succeeded.",
		}),
		lastSuccess: f.NewGauge(prometheus.GaugeOpts{
			Name: "shoal_consul_registration_last_success_timestamp_seconds",
			Help: "When the registration in Consul or the renewal of its check last succeeded; 0 if never.",
		}),
		status: RegistrationStatus{Service: opts.Service, ID: opts.ID},
	}
	for _, reason := range reasons {
		r.failures.WithLabelValues(reason)
	}
	return r, nil
}

// Status returns how the registration fares. It is safe for concurrent use.
func (r *Registration) Status() RegistrationStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
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
	r.registered.Store(true)
	return nil
}

// Run registers the service unless Register has, then renews the check
// every TTL/3, passing while ready returns true and warning otherwise
// (alive but not ready: joining, or leaving), until ctx is cancelled; then
// it returns nil. When Consul has lost the registration (restarted in -dev
// mode, removed it after DeregisterCriticalServiceAfter: a 404) Run
// registers again. Each attempt is bounded by the smaller of TTL/3 and 10s;
// failures are counted, shown by Status, logged when they start, change
// reason and end, and retried at the next renewal. Run does not deregister.
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
	actx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	err := r.attempt(actx, status, output)
	if ctx.Err() != nil {
		return // stopping: not a failure of Consul's
	}
	r.record(err)
}

// attempt registers if needed and renews the check, registering again once
// when Consul does not know it.
func (r *Registration) attempt(ctx context.Context, status, output string) error {
	if !r.registered.Load() {
		if err := r.Register(ctx); err != nil {
			return err
		}
	}
	err := r.updateTTL(ctx, status, output)
	if !lostRegistration(err) {
		return err
	}
	r.registered.Store(false)
	r.logger.Info("consul does not know the registration (restarted, or removed it while critical), registering again", "err", err)
	if err := r.Register(ctx); err != nil {
		return err
	}
	return r.updateTTL(ctx, status, output)
}

// lostRegistration reports whether err is Consul saying it does not know
// the check: 404 (Consul 1.x: "Unknown check ID"), or a 500 saying so
// (older versions).
func lostRegistration(err error) bool {
	var se api.StatusError
	if !errors.As(err, &se) {
		return false
	}
	return se.Code == http.StatusNotFound ||
		(se.Code == http.StatusInternalServerError && (strings.Contains(se.Body, "Unknown check") || strings.Contains(se.Body, "does not have associated TTL")))
}

// failureReason classifies err for the failures metric.
func failureReason(err error) string {
	var se api.StatusError
	var ne net.Error
	switch {
	case errors.As(err, &se):
		switch {
		case se.Code == http.StatusForbidden:
			return ReasonForbidden
		case se.Code == http.StatusNotFound:
			return ReasonNotFound
		case se.Code >= 500:
			return ReasonServerError
		default:
			return ReasonOther
		}
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return ReasonTimeout
	default:
		return ReasonUnreachable
	}
}

// record updates the metrics and the status with an attempt's outcome, and
// logs when failures start, change reason or end: not every few seconds.
func (r *Registration) record(err error) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		if r.status.Failures > 0 {
			r.logger.Info("consul registration works again", "failures", r.status.Failures, "failing_for", now.Sub(r.status.FailingSince).Round(time.Second))
		}
		r.status = RegistrationStatus{Service: r.opts.Service, ID: r.opts.ID, OK: true, LastSuccess: now}
		r.lastOK.Set(1)
		r.lastSuccess.Set(float64(now.UnixNano()) / 1e9)
		return
	}
	reason := failureReason(err)
	r.failures.WithLabelValues(reason).Inc()
	r.lastOK.Set(0)
	changed := r.status.Failures == 0 || r.status.Reason != reason
	if r.status.Failures == 0 {
		r.status.FailingSince = now
	}
	r.status.OK = false
	r.status.Failures++
	r.status.Reason, r.status.LastError = reason, err.Error()
	if !changed {
		r.logger.Debug("consul registration still failing, will retry", "reason", reason, "failures", r.status.Failures, "err", err)
		return
	}
	msg := "consul registration failing, will retry; this agent keeps scraping, but agents joining through consul do not find it"
	if reason == ReasonForbidden {
		msg += "; the token (--consul.token-file) is unknown to consul or lacks service:write on " + r.opts.Service
	}
	r.logger.Warn(msg, "reason", reason, "err", err)
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
