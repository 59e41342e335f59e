package farm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/hashicorp/consul/api"
)

// Consul check timing: short so that a target set unhealthy turns critical
// within a few seconds, which keeps tests that wait for it quick; three
// failures in a row, so that one check timing out on a busy machine does not
// take a healthy target out of discovery.
const (
	checkInterval           = "1s"
	checkTimeout            = "1s"
	checkFailuresToCritical = 3
)

// MetaTarget is the Consul service meta key holding the target ID.
const MetaTarget = "target"

// ServiceID is the Consul service instance ID of the target with index i.
func (f *Farm) ServiceID(i int) string {
	return f.cfg.Service + "-" + strconv.Itoa(i)
}

// Register registers every target with the Consul agent as an instance of
// the configured service, with an HTTP check on /health. Healthy targets
// start out passing and unhealthy ones critical, so discovery sees the right
// state before the first check runs. Registering again replaces the
// instances.
func (f *Farm) Register(ctx context.Context, client *api.Client) error {
	opts := api.ServiceRegisterOpts{ReplaceExistingChecks: true}.WithContext(ctx)
	for i, t := range f.targets {
		host, port, err := splitHostPort(t.addr)
		if err != nil {
			return err
		}
		switch ip := net.ParseIP(host); {
		case f.cfg.AdvertiseHost != "":
			host = f.cfg.AdvertiseHost
		case ip != nil && ip.IsUnspecified():
			// Listening on all interfaces: announce loopback, which works
			// for an agent on this machine.
			host = "127.0.0.1"
		}
		hostPort := net.JoinHostPort(host, strconv.Itoa(port))
		status := api.HealthCritical
		if t.healthy.Load() {
			status = api.HealthPassing
		}
		reg := &api.AgentServiceRegistration{
			ID:      f.ServiceID(i),
			Name:    f.cfg.Service,
			Address: host,
			Port:    port,
			Tags:    f.cfg.Tags,
			Meta:    map[string]string{MetaTarget: t.id},
			Check: &api.AgentServiceCheck{
				Name:     "farm target health",
				HTTP:     "http://" + hostPort + "/health",
				Interval: checkInterval,
				Timeout:  checkTimeout,
				Status:   status,

				FailuresBeforeCritical: checkFailuresToCritical,
			},
		}
		if err := client.Agent().ServiceRegisterOpts(reg, opts); err != nil {
			return fmt.Errorf("register %s in consul: %w", reg.ID, err)
		}
	}
	f.logger.Info("registered targets in consul", "service", f.cfg.Service, "targets", len(f.targets))
	return nil
}

// Deregister removes every target's instance from the Consul agent. It tries
// all of them and returns the errors joined.
func (f *Farm) Deregister(ctx context.Context, client *api.Client) error {
	q := (&api.QueryOptions{}).WithContext(ctx)
	var errs []error
	for i := range f.targets {
		if err := client.Agent().ServiceDeregisterOpts(f.ServiceID(i), q); err != nil {
			errs = append(errs, fmt.Errorf("deregister %s from consul: %w", f.ServiceID(i), err))
		}
	}
	f.logger.Info("deregistered targets from consul", "service", f.cfg.Service, "targets", len(f.targets), "errors", len(errs))
	return errors.Join(errs...)
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("split target address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("parse port of target address %q: %w", addr, err)
	}
	return host, port, nil
}
